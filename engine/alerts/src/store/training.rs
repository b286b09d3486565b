//! Training frames: the snapshot's frame without drawing, the detector's boxes on it, an
//! operator's corrected boxes, and the verdicts that turn them into the site's own labels
//! (`lookout dataset export`).

use lookout_core::UtcTime;
use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::{from_ms, ms, Store, StoreError};
use crate::snapshot::TrainingBox;

/// An operator's correction of a snapshot's boxes: the boxes as they should be (an empty
/// list says the frame shows none of them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoxCorrection {
    /// Who corrected them.
    pub by: String,
    /// When.
    pub at: UtcTime,
    /// The boxes as they should be.
    pub boxes: Vec<TrainingBox>,
}

/// A snapshot's boxes: what the detector raised and, when an operator corrected them, the
/// correction.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotBoxes {
    /// Snapshot row id.
    pub snapshot: i64,
    /// Whether the frame without drawing was kept (`/api/snapshots/<id>/frame`).
    pub training_frame: bool,
    /// The detector's boxes (empty when no training frame was kept).
    pub detected: Vec<TrainingBox>,
    /// The operator's correction, if any.
    pub corrected: Option<BoxCorrection>,
}

/// What an operator said of the incident a training frame belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Confirmed (now, or at some point and never marked a false alarm).
    Confirmed,
    /// Marked a false alarm.
    FalseAlarm,
    /// Neither (yet).
    None,
}

/// One training frame with everything an export needs.
#[derive(Debug, Clone, Serialize)]
pub struct TrainingSnapshot {
    /// Snapshot row id.
    pub snapshot: i64,
    /// Its incident.
    pub incident_id: String,
    /// The incident's kind.
    pub incident_kind: String,
    /// The operator's verdict on the incident.
    pub verdict: Verdict,
    /// Camera.
    pub camera: String,
    /// Frame sequence number.
    pub seq: u64,
    /// Capture time.
    pub captured_at: UtcTime,
    /// The frame without drawing.
    pub frame_path: String,
    /// The detector's boxes.
    pub detected: Vec<TrainingBox>,
    /// The operator's correction, if any.
    pub corrected: Option<BoxCorrection>,
}

fn parse_boxes(s: Option<String>) -> Result<Vec<TrainingBox>, StoreError> {
    match s {
        Some(s) => Ok(serde_json::from_str(&s)?),
        None => Ok(Vec::new()),
    }
}

fn parse_correction(s: Option<String>) -> Result<Option<BoxCorrection>, StoreError> {
    s.map(|s| serde_json::from_str(&s))
        .transpose()
        .map_err(StoreError::from)
}

impl Store {
    /// The boxes of snapshot `id`, or `None` when there is no such snapshot.
    pub fn snapshot_boxes(&self, id: i64) -> Result<Option<SnapshotBoxes>, StoreError> {
        let row: Option<(Option<String>, Option<String>, Option<String>)> = self
            .read()
            .query_row(
                "SELECT frame_path, boxes, corrected FROM snapshots WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((frame, boxes, corrected)) = row else {
            return Ok(None);
        };
        Ok(Some(SnapshotBoxes {
            snapshot: id,
            training_frame: frame.is_some(),
            detected: parse_boxes(boxes)?,
            corrected: parse_correction(corrected)?,
        }))
    }

    /// Stores an operator's correction of snapshot `id`'s boxes (replacing an earlier one).
    /// False when there is no such snapshot or it kept no training frame (nothing to label).
    pub fn correct_snapshot_boxes(
        &self,
        id: i64,
        boxes: Vec<TrainingBox>,
        by: &str,
        at: UtcTime,
    ) -> Result<bool, StoreError> {
        let c = BoxCorrection {
            by: by.to_string(),
            at,
            boxes,
        };
        let n = self.lock().execute(
            "UPDATE snapshots SET corrected = ?2 WHERE id = ?1 AND frame_path IS NOT NULL",
            params![id, serde_json::to_string(&c)?],
        )?;
        Ok(n > 0)
    }

    /// Every snapshot with a training frame captured at or after `since`, oldest first,
    /// with its incident's verdict.
    pub fn training_snapshots(
        &self,
        since: Option<UtcTime>,
    ) -> Result<Vec<TrainingSnapshot>, StoreError> {
        let conn = self.read();
        let mut st = conn.prepare(
            "SELECT s.id, s.incident_id, i.kind, i.state,
                    EXISTS (SELECT 1 FROM transitions t
                            WHERE t.incident_id = i.id AND t.to_state = 'confirmed'),
                    s.camera, s.seq, s.captured_at, s.frame_path, s.boxes, s.corrected
             FROM snapshots s JOIN incidents i ON i.id = s.incident_id
             WHERE s.frame_path IS NOT NULL AND s.captured_at >= ?1
             ORDER BY s.captured_at, s.id",
        )?;
        let rows = st.query_map(params![since.map(ms).unwrap_or(i64::MIN)], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, bool>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, i64>(6)?,
                r.get::<_, i64>(7)?,
                r.get::<_, String>(8)?,
                r.get::<_, Option<String>>(9)?,
                r.get::<_, Option<String>>(10)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, incident, kind, state, ever_confirmed, camera, seq, at, frame, boxes, corr) =
                row?;
            let verdict = match state.as_str() {
                "false_alarm" => Verdict::FalseAlarm,
                "confirmed" => Verdict::Confirmed,
                _ if ever_confirmed => Verdict::Confirmed,
                _ => Verdict::None,
            };
            out.push(TrainingSnapshot {
                snapshot: id,
                incident_id: incident,
                incident_kind: kind,
                verdict,
                camera,
                seq: seq as u64,
                captured_at: from_ms(at),
                frame_path: frame,
                detected: parse_boxes(boxes)?,
                corrected: parse_correction(corr)?,
            });
        }
        Ok(out)
    }
}
