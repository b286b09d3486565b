//! Events, FIRMS hotspots and raw frame results (the tuning replay's input).

use lookout_core::{Event, FrameResult, Hotspot, UtcTime};
use rusqlite::params;

use super::{ms, Store, StoreError};

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
        let data = serde_json::to_string(fr)?;
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
                    serde_json::to_string(fr)?
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
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
        let rows = st.query_map(params![camera, ms(since), ms(until)], |r| {
            r.get::<_, String>(0)
        })?;
        let mut out = Vec::new();
        for r in rows {
            out.push(serde_json::from_str(&r?)?);
        }
        Ok(out)
    }
}
