//! Retention: deleting old closed incidents, events, frame results and delivered
//! notifications.

use lookout_core::UtcTime;

use super::{ms, Store, StoreError};

/// Retention limits applied by [`Store::prune`].
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Closed / false-alarm incidents older than this are deleted.
    pub incidents_s: f64,
    /// Frame results older than this are deleted.
    pub frame_results_s: f64,
    /// At most this many frame results are kept.
    pub max_frame_results: u64,
    /// Delivered notifications older than this are deleted.
    pub delivered_s: f64,
}

impl Store {
    /// Applies retention limits; returns the number of rows deleted.
    pub fn prune(&self, r: &Retention, now: UtcTime) -> Result<usize, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let now_ms = ms(now);
        let old = now_ms - (r.incidents_s * 1000.0) as i64;
        let mut n = 0;
        let ids: Vec<String> = tx
            .prepare("SELECT id FROM incidents WHERE state IN ('closed','false_alarm') AND updated_at < ?1")?
            .query_map([old], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let mut paths: Vec<String> = Vec::new();
        for id in &ids {
            let p: Vec<String> = tx
                .prepare_cached("SELECT path FROM snapshots WHERE incident_id = ?1")?
                .query_map([id], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            paths.extend(p);
            for sql in [
                "DELETE FROM snapshots WHERE incident_id = ?1",
                "DELETE FROM incident_revisions WHERE incident_id = ?1",
                "DELETE FROM transitions WHERE incident_id = ?1",
                "DELETE FROM incident_cameras WHERE incident_id = ?1",
                "DELETE FROM incident_aliases WHERE incident_id = ?1",
                "DELETE FROM incidents WHERE id = ?1",
            ] {
                n += tx.prepare_cached(sql)?.execute([id])?;
            }
        }
        n += tx.execute("DELETE FROM events WHERE last_seen < ?1", [old])?;
        n += tx.execute(
            "DELETE FROM frame_results WHERE captured_at < ?1",
            [now_ms - (r.frame_results_s * 1000.0) as i64],
        )?;
        n += tx.execute(
            "DELETE FROM frame_results WHERE id <= (SELECT MAX(id) FROM frame_results) - ?1",
            [r.max_frame_results as i64],
        )?;
        let delivered_before = now_ms - (r.delivered_s * 1000.0) as i64;
        n += tx.execute(
            "DELETE FROM notifications WHERE created_at < ?1 AND NOT EXISTS
               (SELECT 1 FROM deliveries d WHERE d.notification_id = notifications.id
                AND d.delivered_at IS NULL)",
            [delivered_before],
        )?;
        n += tx.execute(
            "DELETE FROM deliveries WHERE delivered_at IS NOT NULL AND delivered_at < ?1",
            [delivered_before],
        )?;
        tx.commit()?;
        for p in paths {
            if let Err(e) = std::fs::remove_file(&p) {
                tracing::debug!(path = %p, error = %e, "Snapshot file already gone.");
            }
        }
        Ok(n)
    }
}
