//! The outbox: one notification per incident revision or camera status change, one
//! delivery row per sink, queued in the transaction that wrote the revision; the sink
//! workers read the pending rows and mark them delivered, retried later (`not_before`) or
//! dead-lettered; dead letters are listed and re-driven from here.

use lookout_core::{Incident, IncidentKind, Severity, UtcTime};
use rusqlite::{params, Transaction};
use serde::{Deserialize, Serialize};

use super::{from_ms, ms, Store, StoreError};

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
    /// Whether rule events and per camera and label counts go to this sink
    /// ([`Notification::Event`], [`Notification::ObjectCount`]).
    pub events: bool,
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

/// What a sink receives: one incident revision, one camera status change, one rule event
/// change or one count change.
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
    /// A rule event started, changed materially or ended ([`crate::events::EventFeed`]);
    /// MQTT publishes it on `<prefix>/events` as `{"type", "before", "after"}`.
    Event {
        /// Idempotency key `event:<event id>:<change>-<last seen ms>`.
        key: String,
        /// New, update or end.
        change: crate::events::EventChange,
        /// The state published before (null for a new event).
        before: Option<crate::events::EventState>,
        /// The current state.
        after: crate::events::EventState,
    },
    /// The number of open events of an object label on a camera changed; MQTT publishes
    /// it retained on `<prefix>/<camera>/<label>`.
    ObjectCount {
        /// Idempotency key `count:<camera>:<label>:<wall ms>-<sequence>`.
        key: String,
        /// Camera.
        camera: String,
        /// Label (`fire`, `smoke`, `person`).
        label: String,
        /// Open events of that label on that camera.
        count: u32,
    },
}

impl Notification {
    /// The idempotency key.
    pub fn key(&self) -> &str {
        match self {
            Notification::Incident { key, .. }
            | Notification::CameraStatus { key, .. }
            | Notification::Event { key, .. }
            | Notification::ObjectCount { key, .. } => key,
        }
    }

    /// The `kind` and `subject` columns of its outbox row.
    fn kind_subject(&self) -> (&'static str, &str) {
        match self {
            Notification::Incident { incident, .. } => ("incident", incident.kind.as_str()),
            Notification::CameraStatus { camera, .. } => ("camera_status", camera),
            Notification::Event { after, .. } => ("event", &after.camera),
            Notification::ObjectCount { camera, .. } => ("object_count", camera),
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
    /// Not to be attempted before this time (set by a failed attempt).
    pub not_before: Option<UtcTime>,
    /// When it was queued: the time of the revision it announces (CAP `<sent>`).
    pub queued_at: UtcTime,
}

impl Pending {
    /// The ordering group: deliveries of one group go out in order (the incident id of an
    /// incident revision, `camera:<id>` of a camera status change).
    pub fn group(&self) -> &str {
        self.key
            .rsplit_once(':')
            .map(|(g, _)| g)
            .unwrap_or(&self.key)
    }
}

/// A delivery the sink refused for good (or gave up on), kept until re-driven.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    /// Sink.
    pub sink: String,
    /// Notification row id.
    pub notification_id: i64,
    /// Idempotency key (`<incident id>:<revision>`).
    pub key: String,
    /// When it was dead-lettered.
    pub at: UtcTime,
    /// Attempts made.
    pub attempts: u32,
    /// Last HTTP status, when the receiver answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Why it failed.
    pub error: String,
    /// Start of the receiver's answer (at most 512 bytes).
    pub body: String,
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

    /// Queues rule event and count notifications, in order and in one transaction, for the
    /// sinks that take events.
    pub fn queue_event_notifications(
        &self,
        list: &[Notification],
        at: UtcTime,
    ) -> Result<(), StoreError> {
        let sinks: Vec<&SinkSpec> = self.sinks.iter().filter(|s| s.events).collect();
        if sinks.is_empty() || list.is_empty() {
            return Ok(());
        }
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        for n in list {
            let (kind, subject) = n.kind_subject();
            self.queue(&tx, n.key(), kind, subject, n, &sinks, ms(at))?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Whether any sink takes rule events.
    pub fn takes_events(&self) -> bool {
        self.sinks.iter().any(|s| s.events)
    }

    /// Up to `limit` undelivered notifications of a sink (dead letters excluded), oldest
    /// first, with the time each may be attempted again.
    pub fn pending(&self, sink: &str, limit: u32) -> Result<Vec<Pending>, StoreError> {
        let conn = self.read();
        let mut st = conn.prepare_cached(
            "SELECT n.id, n.key, d.attempts, n.payload, d.not_before, n.created_at
             FROM deliveries d
             JOIN notifications n ON n.id = d.notification_id
             WHERE d.sink = ?1 AND d.delivered_at IS NULL AND d.dead_at IS NULL
             ORDER BY d.notification_id LIMIT ?2",
        )?;
        let rows = st.query_map(params![sink, limit], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<i64>>(4)?,
                r.get::<_, i64>(5)?,
            ))
        })?;
        let mut out = Vec::new();
        for r in rows {
            let (id, key, attempts, json, not_before, queued) = r?;
            out.push(Pending {
                id,
                key,
                attempts: attempts as u32,
                notification: serde_json::from_str(&json)?,
                json,
                not_before: not_before.map(from_ms),
                queued_at: from_ms(queued),
            });
        }
        Ok(out)
    }

    /// The notifications of `p`'s group (its incident) queued for `sink` before `p`, oldest
    /// first: key and queued time (what a CAP `<references>` lists). Delivered
    /// notifications older than `outbox_retention_days` are no longer there.
    pub fn earlier(&self, sink: &str, p: &Pending) -> Result<Vec<(String, UtcTime)>, StoreError> {
        let group = p.group();
        let lo = format!("{group}:");
        // Keys of the group sort between "<group>:" and "<group>;" (';' follows ':').
        let hi = format!("{group};");
        let conn = self.read();
        let mut st = conn.prepare_cached(
            "SELECT n.key, n.created_at FROM notifications n
             JOIN deliveries d ON d.notification_id = n.id AND d.sink = ?1
             WHERE n.key >= ?2 AND n.key < ?3 AND n.id < ?4 ORDER BY n.id",
        )?;
        let rows = st.query_map(params![sink, lo, hi, p.id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })?;
        let mut out = Vec::new();
        for r in rows {
            let (key, at) = r?;
            // Keys of an incident whose id starts with this one's and a ':' belong to it.
            if key.rsplit_once(':').is_some_and(|(g, _)| g == group) {
                out.push((key, from_ms(at)));
            }
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

    /// Records a failed attempt; the row is not attempted again before `not_before`
    /// (`None`: at once).
    pub fn failed(
        &self,
        sink: &str,
        id: i64,
        error: &str,
        not_before: Option<UtcTime>,
    ) -> Result<(), StoreError> {
        self.lock()
            .prepare_cached(
                "UPDATE deliveries SET attempts = attempts + 1, last_error = ?3, not_before = ?4
                 WHERE sink = ?1 AND notification_id = ?2",
            )?
            .execute(params![sink, id, error, not_before.map(ms)])?;
        Ok(())
    }

    /// Records a last failed attempt and moves the delivery to the dead letters, with the
    /// receiver's status and the start of its answer.
    pub fn dead_letter(
        &self,
        sink: &str,
        id: i64,
        status: Option<u16>,
        error: &str,
        body: &str,
        now: UtcTime,
    ) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let attempts: i64 = tx
            .prepare_cached(
                "UPDATE deliveries SET attempts = attempts + 1, last_error = ?3, dead_at = ?4
                 WHERE sink = ?1 AND notification_id = ?2 RETURNING attempts",
            )?
            .query_row(params![sink, id, error, ms(now)], |r| r.get(0))?;
        tx.prepare_cached(
            "INSERT OR REPLACE INTO dead_letters(sink, notification_id, key, at, attempts,
               status, error, body)
             SELECT ?1, ?2, key, ?3, ?4, ?5, ?6, ?7 FROM notifications WHERE id = ?2",
        )?
        .execute(params![
            sink,
            id,
            ms(now),
            attempts,
            status,
            error,
            excerpt(body, 512)
        ])?;
        tx.commit()?;
        Ok(())
    }

    /// Dead letters, newest first (of one sink, or of all).
    pub fn dead_letters(
        &self,
        sink: Option<&str>,
        limit: u32,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        let conn = self.read();
        let mut st = conn.prepare_cached(
            "SELECT sink, notification_id, key, at, attempts, status, error, body
             FROM dead_letters WHERE ?1 IS NULL OR sink = ?1
             ORDER BY at DESC, notification_id DESC LIMIT ?2",
        )?;
        let rows = st.query_map(params![sink, limit], |r| {
            Ok(DeadLetter {
                sink: r.get(0)?,
                notification_id: r.get(1)?,
                key: r.get(2)?,
                at: from_ms(r.get(3)?),
                attempts: r.get::<_, i64>(4)? as u32,
                status: r.get::<_, Option<i64>>(5)?.map(|s| s as u16),
                error: r.get(6)?,
                body: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Dead letters per sink (every configured sink listed, 0 included).
    pub fn dead_letter_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let conn = self.read();
        let mut st =
            conn.prepare_cached("SELECT sink, COUNT(*) FROM dead_letters GROUP BY sink")?;
        let rows = st.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
        })?;
        let mut out: Vec<(String, u64)> = rows.collect::<Result<_, _>>()?;
        self.with_every_sink(&mut out);
        Ok(out)
    }

    /// Re-drives dead letters: of `sink` (all sinks when `None`), only those whose key is
    /// in `keys` (all when empty). Each goes back to the outbox with its attempts reset, to
    /// be sent at once. Returns how many.
    pub fn redrive(&self, sink: Option<&str>, keys: &[String]) -> Result<usize, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let rows: Vec<(String, i64, String)> = tx
            .prepare_cached(
                "SELECT sink, notification_id, key FROM dead_letters WHERE ?1 IS NULL OR sink = ?1",
            )?
            .query_map(params![sink], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        let mut n = 0;
        for (s, id, key) in rows {
            if !keys.is_empty() && !keys.contains(&key) {
                continue;
            }
            tx.prepare_cached(
                "UPDATE deliveries SET dead_at = NULL, not_before = NULL, attempts = 0
                 WHERE sink = ?1 AND notification_id = ?2",
            )?
            .execute(params![s, id])?;
            tx.prepare_cached("DELETE FROM dead_letters WHERE sink = ?1 AND notification_id = ?2")?
                .execute(params![s, id])?;
            n += 1;
        }
        tx.commit()?;
        Ok(n)
    }

    fn with_every_sink(&self, out: &mut Vec<(String, u64)>) {
        for s in &self.sinks {
            if !out.iter().any(|(n, _)| n == &s.name) {
                out.push((s.name.clone(), 0));
            }
        }
        out.sort();
    }

    /// Undelivered notifications per sink (dead letters not counted).
    pub fn backlog(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let conn = self.read();
        let mut st = conn.prepare_cached(
            "SELECT sink, COUNT(*) FROM deliveries WHERE delivered_at IS NULL AND dead_at IS NULL
             GROUP BY sink",
        )?;
        let rows = st.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
        })?;
        let mut out: Vec<(String, u64)> = rows.collect::<Result<_, _>>()?;
        self.with_every_sink(&mut out);
        Ok(out)
    }
}

/// At most `max` bytes of `s`, cut at a character boundary.
fn excerpt(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
