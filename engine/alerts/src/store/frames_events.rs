//! Events, FIRMS hotspots and raw frame results (the tuning replay's input).

use lookout_core::{Event, FrameResult, Hotspot, UtcTime};
use rusqlite::params;
use serde::Serialize;

use super::incidents::load_stored;
use super::{ms, Store, StoreError};
use crate::lifecycle::is_open;

impl Store {
    /// Upserts an event (latest phase wins).
    pub fn record_event(&self, e: &Event) -> Result<(), StoreError> {
        let data = serde_json::to_string(e)?;
        self.lock()
            .prepare_cached(
                "INSERT INTO events(id, camera, kind, phase, best_score, first_seen, last_seen, data)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT(id) DO UPDATE SET phase = excluded.phase,
                   best_score = excluded.best_score, last_seen = excluded.last_seen,
                   data = excluded.data",
            )?
            .execute(params![
                e.id,
                e.camera.as_ref(),
                e.kind.as_str(),
                serde_json::to_value(e.phase)?.as_str().unwrap_or("start"),
                e.best_score,
                ms(e.first_seen),
                ms(e.last_seen),
                data
            ])?;
        Ok(())
    }

    /// Events of a camera seen at or after `since`, newest first.
    pub fn events(
        &self,
        camera: Option<&str>,
        since: UtcTime,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError> {
        let conn = self.read();
        let mut st = conn.prepare_cached(
            "SELECT data FROM events WHERE (?1 IS NULL OR camera = ?1) AND last_seen >= ?2
             ORDER BY last_seen DESC LIMIT ?3",
        )?;
        let rows = st.query_map(params![camera, ms(since), limit], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for r in rows {
            out.push(serde_json::from_str(&r?)?);
        }
        Ok(out)
    }

    /// Stores a hotspot (the same pixel seen twice is stored once). Returns true when new.
    pub fn record_hotspot(&self, h: &Hotspot) -> Result<bool, StoreError> {
        let k = h.dedup_key();
        let key = format!("{}:{}:{}:{:?}", k.0, k.1, k.2, k.3);
        let n = self
            .lock()
            .prepare_cached(
                "INSERT OR IGNORE INTO hotspots(key, source, lat, lon, acquired_at, data)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                key,
                format!("{:?}", h.source),
                h.location.lat,
                h.location.lon,
                ms(h.acquired_at),
                serde_json::to_string(h)?
            ])?;
        Ok(n > 0)
    }

    /// Hotspots acquired at or after `since`, newest first.
    pub fn hotspots(&self, since: UtcTime, limit: u32) -> Result<Vec<Hotspot>, StoreError> {
        let conn = self.read();
        let mut st = conn.prepare_cached(
            "SELECT data FROM hotspots WHERE acquired_at >= ?1 ORDER BY acquired_at DESC LIMIT ?2",
        )?;
        let rows = st.query_map(params![ms(since), limit], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for r in rows {
            out.push(serde_json::from_str(&r?)?);
        }
        Ok(out)
    }

    /// Records one frame result (raw detections) for the tuning replay.
    pub fn record_frame_result(&self, fr: &FrameResult) -> Result<(), StoreError> {
        let data = pack_frame(fr)?;
        self.lock()
            .prepare_cached(
                "INSERT INTO frame_results(camera, seq, captured_at, data) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                fr.camera.as_ref(),
                fr.seq as i64,
                ms(fr.captured_at),
                data
            ])?;
        Ok(())
    }

    /// Records many frame results in one transaction.
    pub fn record_frame_results(&self, frs: &[FrameResult]) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        {
            let mut st = tx.prepare_cached(
                "INSERT INTO frame_results(camera, seq, captured_at, data) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for fr in frs {
                st.execute(params![
                    fr.camera.as_ref(),
                    fr.seq as i64,
                    ms(fr.captured_at),
                    pack_frame(fr)?
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Every recorded frame result, in capture order (`lookout replay DATA_DIR`).
    pub fn all_frame_results(&self) -> Result<Vec<FrameResult>, StoreError> {
        let conn = self.read();
        let mut st =
            conn.prepare("SELECT data FROM frame_results ORDER BY captured_at, camera, seq")?;
        let mut rows = st.query([])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(unpack_frame(r.get_ref(0)?)?);
        }
        Ok(out)
    }

    /// Recorded frame results of a camera in `[since, until)`, in capture order.
    pub fn frame_results(
        &self,
        camera: &str,
        since: UtcTime,
        until: UtcTime,
    ) -> Result<Vec<FrameResult>, StoreError> {
        let conn = self.read();
        let mut st = conn.prepare_cached(
            "SELECT data FROM frame_results WHERE camera = ?1 AND captured_at >= ?2
               AND captured_at < ?3 ORDER BY captured_at, seq",
        )?;
        let mut rows = st.query(params![camera, ms(since), ms(until)])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(unpack_frame(r.get_ref(0)?)?);
        }
        Ok(out)
    }
}

/// Where a page of an incident's events ends: the next page starts after it. Written as
/// `<last_seen ms>:<event id>` (opaque to API clients).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventCursor {
    /// `last_seen` (ms) of the last event of the page.
    pub last_seen: i64,
    /// Its id (events with the same `last_seen` are ordered by id).
    pub id: String,
}

impl EventCursor {
    /// Reads a cursor written by [`EventCursor`]'s `Display`; `None` when it is not one.
    pub fn parse(s: &str) -> Option<EventCursor> {
        let (ms, id) = s.split_once(':')?;
        Some(EventCursor {
            last_seen: ms.parse().ok()?,
            id: id.to_string(),
        })
    }
}

impl std::fmt::Display for EventCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.last_seen, self.id)
    }
}

/// One page of an incident's events, newest first.
#[derive(Debug, Clone, Serialize)]
pub struct EventPage {
    /// The events (latest phase of each).
    pub events: Vec<Event>,
    /// Cursor of the next (older) page; `None` on the last page.
    pub next: Option<String>,
}

impl Store {
    /// An incident's events, newest first, `limit` at a time after `before`: the events of
    /// its kinds from the cameras that ever saw it, seen since it was first seen (and, once
    /// an operator closed it, until it was last seen). An incident revision carries only a
    /// few of its events; this is the full history. `None` for an unknown incident.
    pub fn incident_events(
        &self,
        id: &str,
        before: Option<&EventCursor>,
        limit: u32,
    ) -> Result<Option<EventPage>, StoreError> {
        let conn = self.read();
        let Some(stored) = load_stored(&conn, id)? else {
            return Ok(None);
        };
        let inc = &stored.incident;
        let kinds: Vec<&str> = inc.kind.event_kinds().iter().map(|k| k.as_str()).collect();
        let until = if is_open(inc.state) {
            i64::MAX
        } else {
            ms(inc.last_seen)
        };
        let mut sql = String::from(
            "SELECT data, last_seen, id FROM events
             WHERE camera IN (SELECT camera FROM incident_cameras WHERE incident_id = ?1)
               AND last_seen >= ?2 AND first_seen <= ?3
               AND (?4 IS NULL OR last_seen < ?4 OR (last_seen = ?4 AND id < ?5))
               AND kind IN (",
        );
        let mut args: Vec<rusqlite::types::Value> = vec![
            id.to_string().into(),
            ms(inc.first_seen).into(),
            until.into(),
            before.map(|c| c.last_seen).into(),
            before.map(|c| c.id.clone()).into(),
        ];
        for (i, k) in kinds.iter().enumerate() {
            sql.push_str(if i == 0 { "?" } else { ",?" });
            args.push(k.to_string().into());
        }
        sql.push_str(") ORDER BY last_seen DESC, id DESC LIMIT ?");
        let n = limit.clamp(1, 1000);
        args.push(i64::from(n + 1).into());
        let mut st = conn.prepare_cached(&sql)?;
        let mut rows = st.query(rusqlite::params_from_iter(args))?;
        let mut events = Vec::new();
        let mut last = None;
        let mut more = false;
        while let Some(r) = rows.next()? {
            if events.len() == n as usize {
                more = true;
                break;
            }
            events.push(serde_json::from_str::<Event>(&r.get::<_, String>(0)?)?);
            last = Some(EventCursor {
                last_seen: r.get(1)?,
                id: r.get(2)?,
            });
        }
        Ok(Some(EventPage {
            events,
            next: if more {
                last.map(|c| c.to_string())
            } else {
                None
            },
        }))
    }
}

/// A frame result as stored: its JSON, deflate-compressed (a BLOB; about 2.2x smaller on
/// the demo's detections). Frame results are most of what a site's database holds.
fn pack_frame(fr: &FrameResult) -> Result<Vec<u8>, StoreError> {
    use std::io::Write;
    let json = serde_json::to_vec(fr)?;
    let mut enc = flate2::write::DeflateEncoder::new(
        Vec::with_capacity(json.len() / 2 + 16),
        flate2::Compression::fast(),
    );
    enc.write_all(&json)
        .and_then(|_| enc.finish())
        .map_err(|e| StoreError::Json(serde_json::Error::io(e)))
}

/// A stored frame result: a compressed BLOB ([`pack_frame`]), or JSON text as databases
/// written before compression hold.
fn unpack_frame(v: rusqlite::types::ValueRef<'_>) -> Result<FrameResult, StoreError> {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Blob(b) => {
            let dec = flate2::read::DeflateDecoder::new(b);
            Ok(serde_json::from_reader(dec)?)
        }
        ValueRef::Text(t) => Ok(serde_json::from_slice(t)?),
        other => Err(StoreError::Sql(rusqlite::Error::FromSqlConversionFailure(
            0,
            other.data_type(),
            "a frame result is a BLOB or JSON text".into(),
        ))),
    }
}

#[cfg(test)]
mod frame_tests {
    use super::*;

    #[test]
    fn frames_round_trip_compressed_and_old_text_rows_still_read() {
        let fr: FrameResult = serde_json::from_str(
            r#"{"camera":"c","seq":3,"captured_at":"2026-12-07T02:13:51.041Z","width":640,"height":480,"model":"person","detections":[{"class":"person","class_id":0,"score":0.84,"bbox":{"x1":97.1,"y1":215.0,"x2":222.9,"y2":455.1}}]}"#,
        )
        .unwrap();
        let packed = pack_frame(&fr).unwrap();
        let json = serde_json::to_vec(&fr).unwrap();
        assert!(packed.len() < json.len());
        let back = unpack_frame(rusqlite::types::ValueRef::Blob(&packed)).unwrap();
        assert_eq!(serde_json::to_vec(&back).unwrap(), json);
        let old = unpack_frame(rusqlite::types::ValueRef::Text(&json)).unwrap();
        assert_eq!(serde_json::to_vec(&old).unwrap(), json);
        assert!(unpack_frame(rusqlite::types::ValueRef::Integer(1)).is_err());
    }
}
