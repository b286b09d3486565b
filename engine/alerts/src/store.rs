//! [`Store`]: everything alerts keeps, in one SQLite file (WAL, versioned migrations).
//!
//! Tables: `incidents` (latest revision, operator state), `incident_revisions` (every
//! revision as JSON), `incident_aliases` (fusion ids merged into a stored incident, with the
//! last fusion revision seen: duplicate suppression), `transitions` (who/when/why, verdicts
//! included), `events`, `hotspots`, `snapshots` (index of JPEG files), `frame_results`
//! (raw detections for the tuning replay), `config_overlays` (versioned config changes),
//! `notifications` + `deliveries` (the outbox: one notification per revision, one delivery
//! row per sink, written in the same transaction as the revision).
//!
//! WAL with `synchronous = NORMAL`: a committed transaction survives the process being
//! killed (the WAL is in the OS page cache); only a power cut may lose the last commits.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, TimeZone, Utc};
use lookout_core::{
    Event, FrameResult, Hotspot, Incident, IncidentKind, IncidentState, Severity, UtcTime,
};
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde::{Deserialize, Serialize};

use crate::lifecycle::{check_transition, is_open, parse_state, severity_name, state_name};

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed (disk full, corrupt file, ...).
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    /// A stored JSON document could not be read or written.
    #[error("stored JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The database was written by a newer Lookout.
    #[error("database schema version {found} is newer than this build supports ({supported})")]
    TooNew {
        /// Version found in the file.
        found: i64,
        /// Highest version this build knows.
        supported: i64,
    },
    /// No incident with this id.
    #[error("no incident with id {0:?}")]
    NotFound(String),
    /// The lifecycle does not allow this transition.
    #[error("{0}")]
    InvalidTransition(String),
}

/// Milliseconds since the epoch (the database's time unit).
pub fn ms(t: UtcTime) -> i64 {
    t.timestamp_millis()
}

/// UTC time from milliseconds since the epoch.
pub fn from_ms(v: i64) -> UtcTime {
    Utc.timestamp_millis_opt(v)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

const MIGRATIONS: &[&str] = &[
    // 1: initial schema.
    r#"
CREATE TABLE incidents(
  id TEXT PRIMARY KEY, kind TEXT NOT NULL, state TEXT NOT NULL, severity TEXT NOT NULL,
  confidence TEXT NOT NULL, revision INTEGER NOT NULL, first_seen INTEGER NOT NULL,
  last_seen INTEGER NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
  escalations INTEGER NOT NULL DEFAULT 0, escalate_at INTEGER, snapshot_id INTEGER,
  data TEXT NOT NULL);
CREATE INDEX incidents_escalate ON incidents(state, escalate_at);
CREATE INDEX incidents_updated ON incidents(updated_at);
CREATE TABLE incident_cameras(camera TEXT NOT NULL, incident_id TEXT NOT NULL,
  PRIMARY KEY(camera, incident_id)) WITHOUT ROWID;
CREATE TABLE incident_revisions(incident_id TEXT NOT NULL, revision INTEGER NOT NULL,
  at INTEGER NOT NULL, source TEXT NOT NULL, data TEXT NOT NULL,
  PRIMARY KEY(incident_id, revision)) WITHOUT ROWID;
CREATE TABLE incident_aliases(alias TEXT PRIMARY KEY, incident_id TEXT NOT NULL,
  source_revision INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX incident_aliases_target ON incident_aliases(incident_id);
CREATE TABLE transitions(id INTEGER PRIMARY KEY, incident_id TEXT NOT NULL,
  revision INTEGER NOT NULL, from_state TEXT NOT NULL, to_state TEXT NOT NULL,
  actor TEXT NOT NULL, at INTEGER NOT NULL, comment TEXT NOT NULL);
CREATE INDEX transitions_incident ON transitions(incident_id);
CREATE TABLE events(id TEXT PRIMARY KEY, camera TEXT NOT NULL, kind TEXT NOT NULL,
  phase TEXT NOT NULL, best_score REAL NOT NULL, first_seen INTEGER NOT NULL,
  last_seen INTEGER NOT NULL, data TEXT NOT NULL);
CREATE INDEX events_camera ON events(camera, last_seen);
CREATE TABLE hotspots(key TEXT PRIMARY KEY, source TEXT NOT NULL, lat REAL NOT NULL,
  lon REAL NOT NULL, acquired_at INTEGER NOT NULL, data TEXT NOT NULL);
CREATE INDEX hotspots_time ON hotspots(acquired_at);
CREATE TABLE snapshots(id INTEGER PRIMARY KEY, incident_id TEXT NOT NULL,
  revision INTEGER NOT NULL, camera TEXT NOT NULL, seq INTEGER NOT NULL,
  captured_at INTEGER NOT NULL, path TEXT NOT NULL, created_at INTEGER NOT NULL);
CREATE INDEX snapshots_incident ON snapshots(incident_id);
CREATE TABLE frame_results(id INTEGER PRIMARY KEY, camera TEXT NOT NULL, seq INTEGER NOT NULL,
  captured_at INTEGER NOT NULL, data TEXT NOT NULL);
CREATE INDEX frame_results_camera ON frame_results(camera, captured_at);
CREATE INDEX frame_results_time ON frame_results(captured_at);
CREATE TABLE config_overlays(version INTEGER PRIMARY KEY, section TEXT NOT NULL,
  at INTEGER NOT NULL, author TEXT NOT NULL, comment TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE notifications(id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE,
  kind TEXT NOT NULL, subject TEXT NOT NULL, payload TEXT NOT NULL, created_at INTEGER NOT NULL);
CREATE TABLE deliveries(sink TEXT NOT NULL, notification_id INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0, delivered_at INTEGER, last_error TEXT,
  PRIMARY KEY(sink, notification_id)) WITHOUT ROWID;
CREATE INDEX deliveries_pending ON deliveries(sink, notification_id) WHERE delivered_at IS NULL;
"#,
];

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

/// What [`Store::apply_incident`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum ApplyOutcome {
    /// Stored as a new incident.
    Created {
        /// Stored id.
        id: String,
        /// Revision (1).
        revision: u64,
    },
    /// Stored as a new revision of an existing incident (possibly merged from another
    /// fusion id by the cooldown).
    Updated {
        /// Stored id.
        id: String,
        /// New revision.
        revision: u64,
        /// Whether sinks were notified (not for false alarms and closed incidents).
        notified: bool,
    },
    /// Same fusion revision or same content as already stored: nothing written.
    Duplicate {
        /// Stored id it maps to.
        id: String,
    },
}

impl ApplyOutcome {
    /// The stored incident id.
    pub fn id(&self) -> &str {
        match self {
            ApplyOutcome::Created { id, .. }
            | ApplyOutcome::Updated { id, .. }
            | ApplyOutcome::Duplicate { id } => id,
        }
    }
}

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

/// A stored config change.
#[derive(Debug, Clone, Serialize)]
pub struct OverlayRecord {
    /// Monotonic version.
    pub version: i64,
    /// Config section changed (`rules`).
    pub section: String,
    /// When.
    pub at: UtcTime,
    /// Who.
    pub author: String,
    /// Why.
    pub comment: String,
    /// The change (JSON).
    pub body: serde_json::Value,
}

/// A transaction's changes to [`Store`]'s notification throttle, per incident: the new
/// last notified (capture time ms, fingerprint), or `None` to forget the incident.
type NotifiedChanges = HashMap<String, Option<(i64, u64)>>;

/// Read-only connections kept besides the writer (WAL readers never wait for the writer
/// nor block it). Off by default, see [`Store::set_read_pool`].
const READERS: usize = 4;

/// The SQLite store. Writes and, by default, reads go through one mutex-guarded connection
/// (SQLite has one writer anyway); a pool of WAL reader connections can be switched on.
pub struct Store {
    conn: Mutex<Connection>,
    /// The database file, for the reader pool (`None` in memory: no pool).
    path: Option<std::path::PathBuf>,
    /// Opened the first time the pool is switched on.
    readers: std::sync::OnceLock<Vec<Mutex<Connection>>>,
    next_reader: std::sync::atomic::AtomicUsize,
    read_pool: std::sync::atomic::AtomicBool,
    sinks: Vec<SinkSpec>,
    cooldown_ms: i64,
    escalate_ms: i64,
    /// An open incident's revisions with an unchanged material fingerprint are notified
    /// at most this often (capture time, ms); 0 = every revision.
    update_interval_ms: std::sync::atomic::AtomicI64,
    /// Per stored incident: capture time (ms) and fingerprint of the last notified revision.
    last_notified: Mutex<HashMap<String, (i64, u64)>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("sinks", &self.sinks).finish()
    }
}

fn state_of(s: &str) -> IncidentState {
    parse_state(s).unwrap_or(IncidentState::New)
}

impl Store {
    /// Opens (creating and migrating) the database at `path`.
    pub fn open(
        path: &Path,
        sinks: Vec<SinkSpec>,
        cooldown_s: f64,
        escalate_after_s: f64,
    ) -> Result<Store, StoreError> {
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        migrate(&mut conn)?;
        let in_memory = path.as_os_str().is_empty() || path.as_os_str() == ":memory:";
        Ok(Store {
            conn: Mutex::new(conn),
            path: (!in_memory).then(|| path.to_path_buf()),
            readers: std::sync::OnceLock::new(),
            next_reader: std::sync::atomic::AtomicUsize::new(0),
            read_pool: std::sync::atomic::AtomicBool::new(false),
            sinks,
            cooldown_ms: (cooldown_s * 1000.0) as i64,
            escalate_ms: (escalate_after_s * 1000.0) as i64,
            update_interval_ms: std::sync::atomic::AtomicI64::new(0),
            last_notified: Mutex::new(HashMap::new()),
        })
    }

    /// Notify an open incident's revisions whose material fingerprint did not change at
    /// most once per `s` seconds of capture time (0, the default of a new store: every
    /// revision). Revisions are stored either way. A burning hillside seen as many short
    /// tracks, each merged into the incident, is one incident with updates, not a storm.
    pub fn set_update_interval_s(&self, s: f64) {
        self.update_interval_ms.store(
            (s.max(0.0) * 1000.0) as i64,
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// Whether this revision of a stored incident is worth a notification, and if so
    /// remembers it as the last notified one **in `pending`**: the throttle's state changes
    /// only when the transaction that queued the notification commits
    /// ([`Store::commit_notified`]). Earlier revisions of the same transaction (a group
    /// commit) are seen through `pending`.
    fn worth_notifying(&self, pending: &mut NotifiedChanges, inc: &Incident, new: bool) -> bool {
        let interval = self
            .update_interval_ms
            .load(std::sync::atomic::Ordering::Relaxed);
        if !is_open(inc.state) {
            pending.insert(inc.id.clone(), None);
            return new;
        }
        let fp = inc.material_fingerprint();
        let at = ms(inc.last_seen);
        let prev = match pending.get(&inc.id) {
            Some(p) => *p,
            None => self
                .last_notified
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&inc.id)
                .copied(),
        };
        let send = new
            || interval <= 0
            || match prev {
                None => true,
                Some((t, f)) => f != fp || at >= t + interval,
            };
        if send {
            pending.insert(inc.id.clone(), Some((at, fp)));
        }
        send
    }

    /// Applies a committed transaction's throttle changes. Called only after a successful
    /// commit, so a rolled-back notification is never taken for one that went out.
    fn commit_notified(&self, pending: NotifiedChanges) {
        if pending.is_empty() {
            return;
        }
        let mut last = self.last_notified.lock().unwrap_or_else(|e| e.into_inner());
        for (id, v) in pending {
            match v {
                Some(x) => {
                    last.insert(id, x);
                }
                None => {
                    last.remove(&id);
                }
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (transactions roll back).
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A connection for reading: the writer's (default; always for an in-memory database),
    /// or with the pool on, the first free reader, else the next in turn.
    fn read(&self) -> MutexGuard<'_, Connection> {
        if !self.read_pool.load(std::sync::atomic::Ordering::Relaxed) {
            return self.lock();
        }
        let Some(readers) = self.readers.get().filter(|r| !r.is_empty()) else {
            return self.lock();
        };
        let n = readers.len();
        let start = self
            .next_reader
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        for i in 0..n {
            if let Ok(g) = readers[(start + i) % n].try_lock() {
                return g;
            }
        }
        readers[start % n].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Switches reads (API, outbox polling) to the pool of WAL reader connections, or back
    /// to the writer's connection (the default). Measured on the 2-core box
    /// (`benches/alerts/README.md`), the shared connection serves the UI's reads faster,
    /// even during an incident storm: its page cache stays warm across its own commits,
    /// while every reader drops its cache at each commit and re-reads pages from the WAL.
    /// The pool lets reads run beside a long write (retention pruning) on bigger machines.
    /// The reader connections are opened the first time the pool is switched on (never for
    /// an in-memory database, whose reads always use the writer's connection).
    pub fn set_read_pool(&self, on: bool) -> Result<(), StoreError> {
        if on && self.readers.get().is_none() {
            let mut readers = Vec::new();
            if let Some(path) = &self.path {
                for _ in 0..READERS {
                    let r = Connection::open(path)?;
                    r.pragma_update(None, "query_only", "ON")?;
                    // A reader's page cache is dropped whenever the writer commits; with
                    // the file memory-mapped, re-reading pages costs no system calls.
                    r.pragma_update(None, "mmap_size", 256i64 << 20)?;
                    r.busy_timeout(std::time::Duration::from_secs(5))?;
                    readers.push(Mutex::new(r));
                }
            }
            // Another caller may have won the race; its pool is as good as this one.
            let _ = self.readers.set(readers);
        }
        self.read_pool
            .store(on, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// The sinks notifications are queued for.
    pub fn sinks(&self) -> &[SinkSpec] {
        &self.sinks
    }

    /// The schema version.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .read()
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    /// Stores a fusion revision of an incident: resolves merges (alias, cooldown),
    /// suppresses duplicates, writes the revision, links the snapshot and queues
    /// notifications for every sink — all in one transaction.
    pub fn apply_incident(
        &self,
        inc: &Incident,
        snapshot: Option<&NewSnapshot>,
        now: UtcTime,
    ) -> Result<(ApplyOutcome, Option<StoredIncident>), StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let mut pending = NotifiedChanges::new();
        let r = self.apply_in(&tx, inc, snapshot, now, &mut pending)?;
        tx.commit()?;
        self.commit_notified(pending);
        Ok(r)
    }

    /// Group commit: stores many fusion revisions, in order, in **one** transaction (each
    /// one exactly as [`Store::apply_incident`] would, later ones seeing earlier ones). Either
    /// every revision with its outbox rows is committed or none is; on an error nothing is
    /// written and the caller may retry the revisions one by one to isolate a bad one.
    pub fn apply_incidents(
        &self,
        items: &[(&Incident, Option<&NewSnapshot>)],
        now: UtcTime,
    ) -> Result<Vec<(ApplyOutcome, Option<StoredIncident>)>, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let mut out = Vec::with_capacity(items.len());
        let mut pending = NotifiedChanges::new();
        for (inc, snap) in items {
            out.push(self.apply_in(&tx, inc, *snap, now, &mut pending)?);
        }
        tx.commit()?;
        self.commit_notified(pending);
        Ok(out)
    }

    /// The body of [`Store::apply_incident`] inside the caller's transaction (not committed);
    /// throttle changes go to `pending`, for the caller to apply once the commit succeeded.
    fn apply_in(
        &self,
        tx: &Transaction<'_>,
        inc: &Incident,
        snapshot: Option<&NewSnapshot>,
        now: UtcTime,
        pending: &mut NotifiedChanges,
    ) -> Result<(ApplyOutcome, Option<StoredIncident>), StoreError> {
        let alias: Option<(String, i64)> = tx
            .prepare_cached(
                "SELECT incident_id, source_revision FROM incident_aliases WHERE alias = ?1",
            )?
            .query_row([&inc.id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let (target, merged_from) = match &alias {
            Some((target, rev)) => {
                if inc.revision as i64 <= *rev {
                    return Ok((ApplyOutcome::Duplicate { id: target.clone() }, None));
                }
                (target.clone(), None)
            }
            None => match self.cooldown_target(tx, inc)? {
                Some(t) => (t, Some(inc.id.clone())),
                None => (inc.id.clone(), None),
            },
        };
        tx.prepare_cached(
            "INSERT INTO incident_aliases(alias, incident_id, source_revision) VALUES (?1, ?2, ?3)
             ON CONFLICT(alias) DO UPDATE SET source_revision = excluded.source_revision",
        )?
        .execute(params![inc.id, target, inc.revision as i64])?;

        let existing = load_stored(tx, &target)?;
        let now_ms = ms(now);
        let (merged, outcome_new) = match &existing {
            None => {
                let mut m = inc.clone();
                m.id = target.clone();
                m.revision = 1;
                m.state = IncidentState::New;
                (m, true)
            }
            Some(old) => {
                let mut m = merge(&old.incident, inc);
                if let Some(from) = &merged_from {
                    m.notes.push(format!(
                        "Merged detection {from} (same camera and kind within the cooldown)."
                    ));
                }
                m.revision = old.incident.revision;
                if m == old.incident && snapshot.is_none() {
                    return Ok((ApplyOutcome::Duplicate { id: target }, None));
                }
                m.revision = old.incident.revision + 1;
                (m, false)
            }
        };
        let snapshot_id = match snapshot {
            Some(s) => Some(insert_snapshot(tx, &merged, s, now_ms)?),
            None => existing.as_ref().and_then(|e| e.snapshot_id),
        };
        let data = serde_json::to_string(&merged)?;
        if outcome_new {
            tx.prepare_cached(
                "INSERT INTO incidents(id, kind, state, severity, confidence, revision, first_seen,
                   last_seen, created_at, updated_at, escalations, escalate_at, snapshot_id, data)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, 0, ?10, ?11, ?12)",
            )?
            .execute(params![
                merged.id,
                merged.kind.as_str(),
                state_name(merged.state),
                severity_name(merged.severity),
                confidence_name(&merged),
                merged.revision as i64,
                ms(merged.first_seen),
                ms(merged.last_seen),
                now_ms,
                now_ms + self.escalate_ms,
                snapshot_id,
                data
            ])?;
        } else {
            tx.prepare_cached(
                "UPDATE incidents SET severity = ?2, confidence = ?3, revision = ?4,
                   first_seen = ?5, last_seen = ?6, updated_at = ?7, snapshot_id = ?8, data = ?9
                 WHERE id = ?1",
            )?
            .execute(params![
                merged.id,
                severity_name(merged.severity),
                confidence_name(&merged),
                merged.revision as i64,
                ms(merged.first_seen),
                ms(merged.last_seen),
                now_ms,
                snapshot_id,
                data
            ])?;
        }
        {
            let mut st = tx.prepare_cached(
                "INSERT OR IGNORE INTO incident_cameras(camera, incident_id) VALUES (?1, ?2)",
            )?;
            for c in &merged.cameras {
                st.execute(params![c.as_ref(), merged.id])?;
            }
        }
        insert_revision(tx, &merged, "fusion", now_ms, &data)?;
        let notify =
            outcome_new || (is_open(merged.state) && self.worth_notifying(pending, &merged, false));
        if outcome_new {
            self.worth_notifying(pending, &merged, true);
        }
        if notify {
            let reason = if outcome_new {
                Reason::New
            } else {
                Reason::Update
            };
            self.queue_incident(tx, &merged, &data, reason, snapshot_id, now_ms)?;
        }
        let stored = StoredIncident {
            created_at: existing.as_ref().map(|e| e.created_at).unwrap_or(now),
            updated_at: now,
            escalations: existing.as_ref().map(|e| e.escalations).unwrap_or(0),
            snapshot_id,
            incident: merged.clone(),
        };
        let outcome = if outcome_new {
            ApplyOutcome::Created {
                id: merged.id,
                revision: merged.revision,
            }
        } else {
            ApplyOutcome::Updated {
                id: merged.id,
                revision: merged.revision,
                notified: notify,
            }
        };
        Ok((outcome, Some(stored)))
    }

    fn cooldown_target(
        &self,
        tx: &Transaction<'_>,
        inc: &Incident,
    ) -> Result<Option<String>, StoreError> {
        if self.cooldown_ms <= 0 {
            return Ok(None);
        }
        let mut st = tx.prepare_cached(
            "SELECT i.id FROM incident_cameras c JOIN incidents i ON i.id = c.incident_id
             WHERE c.camera = ?1 AND i.kind = ?2 AND i.state IN ('new','acknowledged','confirmed')
               AND i.last_seen >= ?3 AND i.first_seen <= ?4
             ORDER BY i.last_seen DESC LIMIT 1",
        )?;
        for cam in &inc.cameras {
            let found: Option<String> = st
                .query_row(
                    params![
                        cam.as_ref(),
                        inc.kind.as_str(),
                        ms(inc.first_seen) - self.cooldown_ms,
                        ms(inc.last_seen) + self.cooldown_ms
                    ],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(f) = found {
                if f != inc.id {
                    return Ok(Some(f));
                }
            }
        }
        Ok(None)
    }

    /// Queues an incident revision; `data` is the incident's JSON (already serialized for
    /// the revision row, reused so the hot path serializes the incident once).
    fn queue_incident(
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
    fn queue(
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
    fn queue_payload(
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
                "SELECT id, incident_id, revision, camera, seq, captured_at, path
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
                "SELECT id, incident_id, revision, camera, seq, captured_at, path
                 FROM snapshots WHERE id = ?1",
                [id],
                snapshot_row,
            )
            .optional()?)
    }

    /// Stores a config change; returns its version.
    pub fn add_overlay(
        &self,
        section: &str,
        author: &str,
        comment: &str,
        body: &serde_json::Value,
        now: UtcTime,
    ) -> Result<i64, StoreError> {
        let conn = self.lock();
        conn.execute(
            "INSERT INTO config_overlays(section, at, author, comment, body) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![section, ms(now), author, comment, serde_json::to_string(body)?],
        )?;
        Ok(conn.last_insert_rowid())
    }

    /// Config changes, newest first.
    pub fn overlays(&self, limit: u32) -> Result<Vec<OverlayRecord>, StoreError> {
        let conn = self.read();
        let mut st = conn.prepare_cached(
            "SELECT version, section, at, author, comment, body FROM config_overlays
             ORDER BY version DESC LIMIT ?1",
        )?;
        let rows = st.query_map([limit], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
            ))
        })?;
        let mut out = Vec::new();
        for r in rows {
            let (version, section, at, author, comment, body) = r?;
            out.push(OverlayRecord {
                version,
                section,
                at: from_ms(at),
                author,
                comment,
                body: serde_json::from_str(&body)?,
            });
        }
        Ok(out)
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

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let supported = MIGRATIONS.len() as i64;
    if version > supported {
        return Err(StoreError::TooNew {
            found: version,
            supported,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "Migrated the alerts database.");
    }
    Ok(())
}

fn confidence_name(inc: &Incident) -> String {
    serde_json::to_value(inc.confidence)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn stored_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<StoredIncident, StoreError>> {
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

fn load_stored(conn: &Connection, id: &str) -> Result<Option<StoredIncident>, StoreError> {
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

fn snapshot_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SnapshotRecord> {
    Ok(SnapshotRecord {
        id: r.get(0)?,
        incident_id: r.get(1)?,
        revision: r.get::<_, i64>(2)? as u64,
        camera: r.get(3)?,
        seq: r.get::<_, i64>(4)? as u64,
        captured_at: from_ms(r.get(5)?),
        path: r.get(6)?,
    })
}

fn insert_snapshot(
    tx: &Transaction<'_>,
    inc: &Incident,
    s: &NewSnapshot,
    now_ms: i64,
) -> Result<i64, StoreError> {
    tx.prepare_cached(
        "INSERT INTO snapshots(incident_id, revision, camera, seq, captured_at, path, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        inc.id,
        inc.revision as i64,
        s.camera,
        s.seq as i64,
        ms(s.captured_at),
        s.path,
        now_ms
    ])?;
    Ok(tx.last_insert_rowid())
}

fn insert_revision(
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

/// Merges a fusion revision into the stored incident: the operator's state stays, severity
/// never drops below what escalation set, events and hotspots are unions.
fn merge(old: &Incident, new: &Incident) -> Incident {
    let mut m = old.clone();
    m.confidence = m.confidence.max(new.confidence);
    m.severity = m.severity.max(new.severity);
    if new.location.is_some() {
        m.location = new.location.clone();
    }
    for c in &new.cameras {
        if !m.cameras.contains(c) {
            m.cameras.push(c.clone());
        }
    }
    for s in &new.sectors {
        match m.sectors.iter_mut().find(|x| x.camera == s.camera) {
            Some(x) => *x = s.clone(),
            None => m.sectors.push(s.clone()),
        }
    }
    for e in &new.events {
        match m.events.iter_mut().find(|x| x.id == e.id) {
            Some(x) => *x = e.clone(),
            None => m.events.push(e.clone()),
        }
    }
    for h in &new.hotspots {
        if !m.hotspots.iter().any(|x| x.dedup_key() == h.dedup_key()) {
            m.hotspots.push(h.clone());
        }
    }
    m.first_seen = m.first_seen.min(new.first_seen);
    m.last_seen = m.last_seen.max(new.last_seen);
    for n in &new.notes {
        if !m.notes.contains(n) {
            m.notes.push(n.clone());
        }
    }
    m
}
