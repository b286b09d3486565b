//! Incidents: stored revisions, operator transitions and comments, escalation, and the
//! reads of the API (lists, detail, revisions, snapshots).

use lookout_core::{Incident, IncidentKind, IncidentState, Severity, UtcTime};
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde::{Deserialize, Serialize};

use super::outbox::Reason;
use super::{from_ms, ms, Store, StoreError};
use crate::lifecycle::{check_transition, parse_state, severity_name, state_name};

/// The stored incident with its operator-side fields.
#[derive(Debug, Clone, Serialize)]
pub struct StoredIncident {
    /// The incident at its latest revision (state and severity are the operator's view).
    #[serde(flatten)]
    pub incident: Incident,
    /// When it was first stored.
    pub created_at: UtcTime,
    /// When it last changed.
    pub updated_at: UtcTime,
    /// How many times it was escalated.
    pub escalations: u32,
    /// Id of its latest snapshot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<i64>,
}

/// One stored transition or comment.
#[derive(Debug, Clone, Serialize)]
pub struct TransitionRecord {
    /// Incident id.
    pub incident_id: String,
    /// Revision created by it (comments: the revision commented on).
    pub revision: u64,
    /// State before.
    pub from: String,
    /// State after (equal to `from` for a comment).
    pub to: String,
    /// Who.
    pub actor: String,
    /// When.
    pub at: UtcTime,
    /// Why.
    pub comment: String,
}

/// One stored snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotRecord {
    /// Row id (used in `/api/snapshots/<id>`).
    pub id: i64,
    /// Incident.
    pub incident_id: String,
    /// Incident revision it was taken for.
    pub revision: u64,
    /// Camera.
    pub camera: String,
    /// Frame sequence number.
    pub seq: u64,
    /// Frame capture time.
    pub captured_at: UtcTime,
    /// File path on disk.
    #[serde(skip)]
    pub path: String,
    /// The training frame (the same frame without drawing), when one was kept.
    #[serde(skip)]
    pub frame_path: Option<String>,
    /// Whether a training frame was kept (`/api/snapshots/<id>/frame`).
    pub training_frame: bool,
}

/// A snapshot file about to be linked to an incident revision.
#[derive(Debug, Clone)]
pub struct NewSnapshot {
    /// Camera.
    pub camera: String,
    /// Frame sequence number.
    pub seq: u64,
    /// Capture time.
    pub captured_at: UtcTime,
    /// Where the JPEG was written.
    pub path: String,
    /// Where the training frame (no drawing) was written, if one was kept.
    pub frame_path: Option<String>,
    /// The detector's boxes on the training frame.
    pub boxes: Option<Vec<crate::snapshot::TrainingBox>>,
}

/// An incident with everything the operator's detail view shows.
#[derive(Debug, Clone, Serialize)]
pub struct IncidentDetail {
    /// The incident.
    #[serde(flatten)]
    pub stored: StoredIncident,
    /// Transitions and comments, oldest first.
    pub transitions: Vec<TransitionRecord>,
    /// Snapshots, oldest first.
    pub snapshots: Vec<SnapshotRecord>,
    /// Revision numbers with their source and time, oldest first.
    pub revisions: Vec<RevisionInfo>,
}

/// One stored revision (summary).
#[derive(Debug, Clone, Serialize)]
pub struct RevisionInfo {
    /// Revision number.
    pub revision: u64,
    /// `fusion`, `operator`, `escalation` or `health`.
    pub source: String,
    /// When it was stored.
    pub at: UtcTime,
}

/// Filters for listing incidents.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IncidentFilter {
    /// Comma-separated states.
    pub state: Option<String>,
    /// Incident kind.
    pub kind: Option<String>,
    /// Involved camera.
    pub camera: Option<String>,
    /// Minimum severity.
    pub min_severity: Option<String>,
    /// Only incidents updated at or after this time.
    pub since: Option<UtcTime>,
    /// At most this many (default 100, max 1000).
    pub limit: Option<u32>,
}

impl Store {
    /// Moves an incident to `to`, recording who, when and why; queues notifications.
    pub fn transition(
        &self,
        id: &str,
        to: IncidentState,
        actor: &str,
        comment: &str,
        now: UtcTime,
    ) -> Result<StoredIncident, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let mut s = load_stored(&tx, id)?.ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        let from = s.incident.state;
        check_transition(from, to).map_err(StoreError::InvalidTransition)?;
        s.incident.state = to;
        s.incident.revision += 1;
        s.incident.notes.push(format!(
            "{} by {actor}{}",
            state_name(to),
            if comment.is_empty() {
                String::new()
            } else {
                format!(": {comment}")
            }
        ));
        if to == IncidentState::Confirmed && s.incident.severity < Severity::Critical {
            s.incident.severity = s.incident.severity.raised();
        }
        let now_ms = ms(now);
        let data = serde_json::to_string(&s.incident)?;
        tx.prepare_cached(
            "UPDATE incidents SET state = ?2, severity = ?3, revision = ?4, updated_at = ?5,
               data = ?6 WHERE id = ?1",
        )?
        .execute(params![
            id,
            state_name(to),
            severity_name(s.incident.severity),
            s.incident.revision as i64,
            now_ms,
            data
        ])?;
        insert_revision(&tx, &s.incident, "operator", now_ms, &data)?;
        tx.prepare_cached(
            "INSERT INTO transitions(incident_id, revision, from_state, to_state, actor, at, comment)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            id,
            s.incident.revision as i64,
            state_name(from),
            state_name(to),
            actor,
            now_ms,
            comment
        ])?;
        self.queue_incident(
            &tx,
            &s.incident,
            &data,
            Reason::Transition,
            s.snapshot_id,
            now_ms,
        )?;
        tx.commit()?;
        s.updated_at = now;
        Ok(s)
    }

    /// Records an operator comment (no state change, no notification).
    pub fn comment(
        &self,
        id: &str,
        actor: &str,
        comment: &str,
        now: UtcTime,
    ) -> Result<TransitionRecord, StoreError> {
        let conn = self.lock();
        let s = load_stored(&conn, id)?.ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        let st = state_name(s.incident.state);
        conn.execute(
            "INSERT INTO transitions(incident_id, revision, from_state, to_state, actor, at, comment)
             VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6)",
            params![id, s.incident.revision as i64, st, actor, ms(now), comment],
        )?;
        Ok(TransitionRecord {
            incident_id: id.to_string(),
            revision: s.incident.revision,
            from: st.into(),
            to: st.into(),
            actor: actor.into(),
            at: now,
            comment: comment.into(),
        })
    }

    /// Escalates every incident still `new` whose escalation time has come: severity
    /// raised one step, a new revision, re-notified. Returns the escalated incidents.
    pub fn escalate_due(
        &self,
        now: UtcTime,
        max_escalations: u32,
    ) -> Result<Vec<StoredIncident>, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let now_ms = ms(now);
        let ids: Vec<String> = tx
            .prepare_cached(
                "SELECT id FROM incidents WHERE state = 'new' AND escalate_at IS NOT NULL
                   AND escalate_at <= ?1 AND escalations < ?2",
            )?
            .query_map(params![now_ms, max_escalations], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let mut out = Vec::new();
        for id in ids {
            let Some(mut s) = load_stored(&tx, &id)? else {
                continue;
            };
            s.escalations += 1;
            s.incident.severity = s.incident.severity.raised();
            s.incident.revision += 1;
            s.incident.notes.push(format!(
                "Escalated to {}: not acknowledged within {} s.",
                severity_name(s.incident.severity),
                self.escalate_ms / 1000
            ));
            let data = serde_json::to_string(&s.incident)?;
            let next = if s.escalations < max_escalations {
                Some(now_ms + self.escalate_ms)
            } else {
                None
            };
            tx.prepare_cached(
                "UPDATE incidents SET severity = ?2, revision = ?3, updated_at = ?4,
                   escalations = ?5, escalate_at = ?6, data = ?7 WHERE id = ?1",
            )?
            .execute(params![
                id,
                severity_name(s.incident.severity),
                s.incident.revision as i64,
                now_ms,
                s.escalations,
                next,
                data
            ])?;
            insert_revision(&tx, &s.incident, "escalation", now_ms, &data)?;
            self.queue_incident(
                &tx,
                &s.incident,
                &data,
                Reason::Escalation,
                s.snapshot_id,
                now_ms,
            )?;
            s.updated_at = now;
            out.push(s);
        }
        tx.commit()?;
        Ok(out)
    }

    /// The open camera-health incident of a camera, if any.
    pub fn open_incident_for(
        &self,
        camera: &str,
        kind: IncidentKind,
    ) -> Result<Option<StoredIncident>, StoreError> {
        let conn = self.lock();
        let id: Option<String> = conn
            .query_row(
                "SELECT i.id FROM incident_cameras c JOIN incidents i ON i.id = c.incident_id
                 WHERE c.camera = ?1 AND i.kind = ?2
                   AND i.state IN ('new','acknowledged','confirmed')
                 ORDER BY i.updated_at DESC LIMIT 1",
                params![camera, kind.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        match id {
            Some(id) => load_stored(&conn, &id),
            None => Ok(None),
        }
    }

    /// One incident.
    pub fn incident(&self, id: &str) -> Result<Option<StoredIncident>, StoreError> {
        load_stored(&self.read(), id)
    }

    /// One incident with its transitions, snapshots and revision list.
    pub fn incident_detail(&self, id: &str) -> Result<Option<IncidentDetail>, StoreError> {
        let conn = self.read();
        let Some(stored) = load_stored(&conn, id)? else {
            return Ok(None);
        };
        let transitions = conn
            .prepare_cached(
                "SELECT incident_id, revision, from_state, to_state, actor, at, comment
                 FROM transitions WHERE incident_id = ?1 ORDER BY id",
            )?
            .query_map([id], |r| {
                Ok(TransitionRecord {
                    incident_id: r.get(0)?,
                    revision: r.get::<_, i64>(1)? as u64,
                    from: r.get(2)?,
                    to: r.get(3)?,
                    actor: r.get(4)?,
                    at: from_ms(r.get(5)?),
                    comment: r.get(6)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        let snapshots = conn
            .prepare_cached(
                "SELECT id, incident_id, revision, camera, seq, captured_at, path, frame_path
                 FROM snapshots WHERE incident_id = ?1 ORDER BY id",
            )?
            .query_map([id], snapshot_row)?
            .collect::<Result<_, _>>()?;
        let revisions = conn
            .prepare_cached(
                "SELECT revision, source, at FROM incident_revisions WHERE incident_id = ?1
                 ORDER BY revision",
            )?
            .query_map([id], |r| {
                Ok(RevisionInfo {
                    revision: r.get::<_, i64>(0)? as u64,
                    source: r.get(1)?,
                    at: from_ms(r.get(2)?),
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(Some(IncidentDetail {
            stored,
            transitions,
            snapshots,
            revisions,
        }))
    }

    /// A stored revision of an incident.
    pub fn revision(&self, id: &str, revision: u64) -> Result<Option<Incident>, StoreError> {
        let conn = self.read();
        let data: Option<String> = conn
            .query_row(
                "SELECT data FROM incident_revisions WHERE incident_id = ?1 AND revision = ?2",
                params![id, revision as i64],
                |r| r.get(0),
            )
            .optional()?;
        Ok(match data {
            Some(d) => Some(serde_json::from_str(&d)?),
            None => None,
        })
    }

    /// Incidents, most recently updated first.
    pub fn list_incidents(&self, f: &IncidentFilter) -> Result<Vec<StoredIncident>, StoreError> {
        // The filter and the ordering pick ids on the narrow columns only; the wide `data`
        // column is read for the page alone (sorting whole rows, `data` included, made a
        // filtered list ~3x slower).
        let mut sql = String::from("SELECT id FROM incidents i WHERE 1=1");
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        if let Some(states) = &f.state {
            let list: Vec<&str> = states.split(',').map(str::trim).collect();
            sql.push_str(" AND state IN (");
            for (i, s) in list.iter().enumerate() {
                if i > 0 {
                    sql.push(',');
                }
                sql.push('?');
                args.push(s.to_string().into());
            }
            sql.push(')');
        }
        if let Some(k) = &f.kind {
            sql.push_str(" AND kind = ?");
            args.push(k.clone().into());
        }
        if let Some(c) = &f.camera {
            sql.push_str(
                " AND EXISTS (SELECT 1 FROM incident_cameras c WHERE c.incident_id = i.id AND c.camera = ?)",
            );
            args.push(c.clone().into());
        }
        if let Some(s) = f.since {
            sql.push_str(" AND updated_at >= ?");
            args.push(ms(s).into());
        }
        if let Some(min) = f
            .min_severity
            .as_deref()
            .and_then(crate::lifecycle::parse_severity)
        {
            let allowed: Vec<&str> = ["low", "medium", "high", "critical"]
                .into_iter()
                .filter(|s| crate::lifecycle::parse_severity(s).is_some_and(|v| v >= min))
                .collect();
            sql.push_str(&format!(
                " AND severity IN ({})",
                allowed
                    .iter()
                    .map(|s| format!("'{s}'"))
                    .collect::<Vec<_>>()
                    .join(",")
            ));
        }
        sql.push_str(" ORDER BY updated_at DESC LIMIT ?");
        let sql = format!(
            "SELECT id, data, created_at, updated_at, escalations, snapshot_id, state, severity
             FROM incidents WHERE id IN ({sql}) ORDER BY updated_at DESC"
        );
        args.push((f.limit.unwrap_or(100).min(1000) as i64).into());
        let conn = self.read();
        let mut st = conn.prepare_cached(&sql)?;
        let rows = st.query_map(rusqlite::params_from_iter(args), stored_row)?;
        let mut out = Vec::new();
        for r in rows {
            out.push(r??);
        }
        Ok(out)
    }

    /// Time spans `(first_seen, last_seen)` of incidents an operator confirmed on a camera
    /// (the ground truth for the tuning view's recall), overlapping `[since, until)`.
    pub fn confirmed_spans(
        &self,
        camera: &str,
        kind: IncidentKind,
        since: UtcTime,
        until: UtcTime,
    ) -> Result<Vec<(UtcTime, UtcTime)>, StoreError> {
        let conn = self.read();
        let mut st = conn.prepare_cached(
            "SELECT i.first_seen, i.last_seen FROM incidents i
             JOIN incident_cameras c ON c.incident_id = i.id
             WHERE c.camera = ?1 AND i.kind = ?2 AND i.last_seen >= ?3 AND i.first_seen < ?4
               AND (i.state = 'confirmed' OR EXISTS (SELECT 1 FROM transitions t
                    WHERE t.incident_id = i.id AND t.to_state = 'confirmed'))
               AND i.state != 'false_alarm'
             ORDER BY i.first_seen",
        )?;
        let rows = st.query_map(params![camera, kind.as_str(), ms(since), ms(until)], |r| {
            Ok((from_ms(r.get(0)?), from_ms(r.get(1)?)))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One snapshot record.
    pub fn snapshot(&self, id: i64) -> Result<Option<SnapshotRecord>, StoreError> {
        Ok(self
            .read()
            .query_row(
                "SELECT id, incident_id, revision, camera, seq, captured_at, path, frame_path
                 FROM snapshots WHERE id = ?1",
                [id],
                snapshot_row,
            )
            .optional()?)
    }
}

pub(super) fn state_of(s: &str) -> IncidentState {
    parse_state(s).unwrap_or(IncidentState::New)
}

pub(super) fn confidence_name(inc: &Incident) -> String {
    serde_json::to_value(inc.confidence)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

pub(super) fn stored_row(
    r: &rusqlite::Row<'_>,
) -> rusqlite::Result<Result<StoredIncident, StoreError>> {
    let data: String = r.get(1)?;
    let created: i64 = r.get(2)?;
    let updated: i64 = r.get(3)?;
    let escalations: i64 = r.get(4)?;
    let snapshot_id: Option<i64> = r.get(5)?;
    let state: String = r.get(6)?;
    Ok(serde_json::from_str::<Incident>(&data)
        .map(|mut incident| {
            incident.state = state_of(&state);
            StoredIncident {
                incident,
                created_at: from_ms(created),
                updated_at: from_ms(updated),
                escalations: escalations as u32,
                snapshot_id,
            }
        })
        .map_err(StoreError::from))
}

pub(super) fn load_stored(
    conn: &Connection,
    id: &str,
) -> Result<Option<StoredIncident>, StoreError> {
    let row = conn
        .prepare_cached(
            "SELECT id, data, created_at, updated_at, escalations, snapshot_id, state, severity
             FROM incidents WHERE id = ?1",
        )?
        .query_row([id], stored_row)
        .optional()?;
    match row {
        Some(r) => Ok(Some(r?)),
        None => Ok(None),
    }
}

pub(super) fn snapshot_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SnapshotRecord> {
    Ok(SnapshotRecord {
        id: r.get(0)?,
        incident_id: r.get(1)?,
        revision: r.get::<_, i64>(2)? as u64,
        camera: r.get(3)?,
        seq: r.get::<_, i64>(4)? as u64,
        captured_at: from_ms(r.get(5)?),
        path: r.get(6)?,
        frame_path: r.get(7)?,
        training_frame: r.get::<_, Option<String>>(7)?.is_some(),
    })
}

pub(super) fn insert_snapshot(
    tx: &Transaction<'_>,
    inc: &Incident,
    s: &NewSnapshot,
    now_ms: i64,
) -> Result<i64, StoreError> {
    tx.prepare_cached(
        "INSERT INTO snapshots(incident_id, revision, camera, seq, captured_at, path, created_at,
                               frame_path, boxes)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        inc.id,
        inc.revision as i64,
        s.camera,
        s.seq as i64,
        ms(s.captured_at),
        s.path,
        now_ms,
        s.frame_path,
        s.boxes.as_ref().map(serde_json::to_string).transpose()?,
    ])?;
    Ok(tx.last_insert_rowid())
}

pub(super) fn insert_revision(
    tx: &Transaction<'_>,
    inc: &Incident,
    source: &str,
    now_ms: i64,
    data: &str,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO incident_revisions(incident_id, revision, at, source, data)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![inc.id, inc.revision as i64, now_ms, source, data])?;
    Ok(())
}
