//! The outbox: one notification per incident revision or camera status change, one
//! delivery row per sink, queued in the transaction that wrote the revision; the sink
//! workers read the pending rows and mark them delivered or failed.

use lookout_core::{Incident, IncidentKind, Severity, UtcTime};
use rusqlite::{params, Transaction};
use serde::{Deserialize, Serialize};

use super::{ms, Store, StoreError};

/// Which notifications a sink gets (resolved from its config filter).
#[derive(Debug, Clone)]
pub struct SinkSpec {
    /// Sink name.
    pub name: String,
    /// Only these incident kinds (empty: all).
    pub kinds: Vec<IncidentKind>,
    /// Only incidents at least this severe.
    pub min_severity: Option<Severity>,
    /// Whether camera status changes go to this sink.
    pub camera_status: bool,
}

impl SinkSpec {
    fn wants(&self, inc: &Incident) -> bool {
        (self.kinds.is_empty() || self.kinds.contains(&inc.kind))
            && self.min_severity.is_none_or(|m| inc.severity >= m)
    }
}

/// Why a notification was raised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// A new incident.
    New,
    /// New evidence (fusion revision, merged detection).
    Update,
    /// An operator changed its state.
    Transition,
    /// Not acknowledged in time: severity raised.
    Escalation,
}

/// What a sink receives: one incident revision or one camera status change.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
// An incident notification is the common case and is built around the incident's JSON on
// the hot path; boxing it would cost an allocation per revision for the rare camera status.
#[allow(clippy::large_enum_variant)]
pub enum Notification {
    /// An incident revision.
    Incident {
        /// Idempotency key `<incident id>:<revision>`.
        key: String,
        /// Why it was sent.
        reason: Reason,
        /// The incident at this revision.
        incident: Incident,
        /// API path of the latest snapshot, when there is one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        snapshot: Option<String>,
    },
    /// A camera's stream status changed.
    CameraStatus {
        /// Idempotency key `camera:<id>:<ms>`.
        key: String,
        /// Camera id.
        camera: String,
        /// When the change was observed.
        at: UtcTime,
        /// New status.
        status: lookout_core::CameraStatus,
    },
}

impl Notification {
    /// The idempotency key.
    pub fn key(&self) -> &str {
        match self {
            Notification::Incident { key, .. } | Notification::CameraStatus { key, .. } => key,
        }
    }
}

/// One pending delivery for one sink.
#[derive(Debug, Clone)]
pub struct Pending {
    /// Row id of the notification.
    pub id: i64,
    /// Idempotency key.
    pub key: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// The notification.
    pub notification: Notification,
    /// Its JSON text (what webhook/MQTT/JSONL send verbatim).
    pub json: String,
}

impl Store {
    /// Queues an incident revision; `data` is the incident's JSON (already serialized for
    /// the revision row, reused so the hot path serializes the incident once).
    pub(super) fn queue_incident(
        &self,
        tx: &Transaction<'_>,
        inc: &Incident,
        data: &str,
        reason: Reason,
        snapshot_id: Option<i64>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let wanted: Vec<&SinkSpec> = self.sinks.iter().filter(|s| s.wants(inc)).collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let key = inc.idempotency_key();
        // Same JSON as `Notification::Incident`, assembled around the incident's JSON.
        let mut payload = format!(
            "{{\"type\":\"incident\",\"key\":{},\"reason\":{},\"incident\":{data}",
            serde_json::to_string(&key)?,
            serde_json::to_string(&reason)?
        );
        if let Some(id) = snapshot_id {
            payload.push_str(&format!(",\"snapshot\":\"/api/snapshots/{id}\""));
        }
        payload.push('}');
        self.queue_payload(
            tx,
            &key,
            "incident",
            inc.kind.as_str(),
            &payload,
            &wanted,
            now_ms,
        )
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn queue(
        &self,
        tx: &Transaction<'_>,
        key: &str,
        kind: &str,
        subject: &str,
        n: &Notification,
        sinks: &[&SinkSpec],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        if sinks.is_empty() {
            return Ok(());
        }
        let payload = serde_json::to_string(n)?;
        self.queue_payload(tx, key, kind, subject, &payload, sinks, now_ms)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn queue_payload(
        &self,
        tx: &Transaction<'_>,
        key: &str,
        kind: &str,
        subject: &str,
        payload: &str,
        sinks: &[&SinkSpec],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let inserted = tx
            .prepare_cached(
                "INSERT OR IGNORE INTO notifications(key, kind, subject, payload, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![key, kind, subject, payload, now_ms])?;
        if inserted == 0 {
            return Ok(());
        }
        let nid = tx.last_insert_rowid();
        let mut st = tx.prepare_cached(
            "INSERT OR IGNORE INTO deliveries(sink, notification_id) VALUES (?1, ?2)",
        )?;
        for s in sinks {
            st.execute(params![s.name, nid])?;
        }
        Ok(())
    }

    /// Queues a camera status change for the sinks that take camera status.
    pub fn queue_camera_status(
        &self,
        camera: &str,
        status: &lookout_core::CameraStatus,
        at: UtcTime,
    ) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let key = format!("camera:{camera}:{}", ms(at));
        let n = Notification::CameraStatus {
            key: key.clone(),
            camera: camera.to_string(),
            at,
            status: status.clone(),
        };
        let sinks: Vec<&SinkSpec> = self.sinks.iter().filter(|s| s.camera_status).collect();
        self.queue(&tx, &key, "camera_status", camera, &n, &sinks, ms(at))?;
        tx.commit()?;
        Ok(())
    }

    /// Up to `limit` undelivered notifications of a sink, oldest first.
    pub fn pending(&self, sink: &str, limit: u32) -> Result<Vec<Pending>, StoreError> {
        let conn = self.read();
        let mut st = conn.prepare_cached(
            "SELECT n.id, n.key, d.attempts, n.payload FROM deliveries d
             JOIN notifications n ON n.id = d.notification_id
             WHERE d.sink = ?1 AND d.delivered_at IS NULL ORDER BY d.notification_id LIMIT ?2",
        )?;
        let rows = st.query_map(params![sink, limit], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for r in rows {
            let (id, key, attempts, json) = r?;
            out.push(Pending {
                id,
                key,
                attempts: attempts as u32,
                notification: serde_json::from_str(&json)?,
                json,
            });
        }
        Ok(out)
    }

    /// Marks deliveries done.
    pub fn delivered(&self, sink: &str, ids: &[i64], now: UtcTime) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        {
            let mut st = tx.prepare_cached(
                "UPDATE deliveries SET delivered_at = ?3, attempts = attempts + 1
                 WHERE sink = ?1 AND notification_id = ?2",
            )?;
            for id in ids {
                st.execute(params![sink, id, ms(now)])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Records a failed attempt.
    pub fn failed(&self, sink: &str, id: i64, error: &str) -> Result<(), StoreError> {
        self.lock()
            .prepare_cached(
                "UPDATE deliveries SET attempts = attempts + 1, last_error = ?3
                 WHERE sink = ?1 AND notification_id = ?2",
            )?
            .execute(params![sink, id, error])?;
        Ok(())
    }

    /// Undelivered notifications per sink.
    pub fn backlog(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let conn = self.read();
        let mut st = conn.prepare_cached(
            "SELECT sink, COUNT(*) FROM deliveries WHERE delivered_at IS NULL GROUP BY sink",
        )?;
        let rows = st.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
        })?;
        let mut out: Vec<(String, u64)> = rows.collect::<Result<_, _>>()?;
        for s in &self.sinks {
            if !out.iter().any(|(n, _)| n == &s.name) {
                out.push((s.name.clone(), 0));
            }
        }
        out.sort();
        Ok(out)
    }
}
