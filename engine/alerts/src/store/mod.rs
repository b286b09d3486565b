//! [`Store`]: everything alerts keeps, in one SQLite file (WAL, versioned migrations).
//!
//! Tables: `incidents` (latest revision, operator state), `incident_revisions` (every
//! revision as JSON), `incident_aliases` (the last fusion revision seen per fusion id:
//! duplicate suppression; rows of older Lookouts also map a fusion id their cooldown merged
//! into another stored incident, and still route it there), `transitions` (who/when/why, verdicts
//! included), `events`, `hotspots`, `snapshots` (index of JPEG files), `frame_results`
//! (raw detections for the tuning replay), `config_overlays` (versioned config changes),
//! `shadow_events` (what a candidate model in shadow mode would have raised),
//! `notifications` + `deliveries` (the outbox: one notification per revision, one delivery
//! row per sink, written in the same transaction as the revision, with its attempts and
//! earliest next attempt), `dead_letters` (deliveries a sink refused, with the status and
//! an excerpt of the answer, until re-driven or deleted by retention after
//! `engine.retention.dead_letters_days`).
//!
//! WAL with `synchronous = NORMAL`: a committed transaction survives the process being
//! killed (the WAL is in the OS page cache); only a power cut may lose the last commits.
//!
//! One file per job: this one opens and migrates the database and holds the connections;
//! `apply` turns fusion revisions into stored incidents, `incidents` the operator's
//! transitions and the API's reads, `outbox` the notifications and deliveries,
//! `frames_events` events/hotspots/frame results, `overlays` config changes, `shadow`
//! the events a shadow model would have raised (`shadow_events`). Retention
//! (age limits, the quota, vacuum) is [`crate::retention`].

mod apply;
mod frames_events;
mod incidents;
mod outbox;
mod overlays;
mod shadow;
mod training;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, TimeZone, Utc};
use lookout_core::UtcTime;
use rusqlite::Connection;

pub use apply::ApplyOutcome;
pub use frames_events::{EventCursor, EventPage};
pub use incidents::{
    IncidentDetail, IncidentFilter, NewSnapshot, RevisionInfo, SnapshotRecord, StoredIncident,
    TransitionRecord,
};
pub use outbox::{DeadLetter, Notification, Pending, Reason, SinkSpec};
pub use overlays::OverlayRecord;
pub use shadow::{ShadowCameraComparison, ShadowEventRecord};
pub use training::{BoxCorrection, SnapshotBoxes, TrainingSnapshot, Verdict};

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
    // 2: outbox retries per row and dead letters.
    r#"
ALTER TABLE deliveries ADD COLUMN not_before INTEGER;
ALTER TABLE deliveries ADD COLUMN dead_at INTEGER;
DROP INDEX deliveries_pending;
CREATE INDEX deliveries_pending ON deliveries(sink, notification_id)
  WHERE delivered_at IS NULL AND dead_at IS NULL;
CREATE TABLE dead_letters(sink TEXT NOT NULL, notification_id INTEGER NOT NULL,
  key TEXT NOT NULL, at INTEGER NOT NULL, attempts INTEGER NOT NULL, status INTEGER,
  error TEXT NOT NULL, body TEXT NOT NULL,
  PRIMARY KEY(sink, notification_id)) WITHOUT ROWID;
"#,
    // 3: training frames (the snapshot's frame without drawing), the detector's boxes on
    // it and an operator's corrected boxes (JSON arrays of boxes; corrected also says who).
    r#"
ALTER TABLE snapshots ADD COLUMN frame_path TEXT;
ALTER TABLE snapshots ADD COLUMN boxes TEXT;
ALTER TABLE snapshots ADD COLUMN corrected TEXT;
"#,
    // 4: shadow events (what a candidate model running in shadow would have raised).
    r#"
CREATE TABLE shadow_events(model TEXT NOT NULL, sha256 TEXT NOT NULL, id TEXT NOT NULL,
  camera TEXT NOT NULL, kind TEXT NOT NULL, phase TEXT NOT NULL, best_score REAL NOT NULL,
  first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL, data TEXT NOT NULL,
  PRIMARY KEY(model, sha256, id));
CREATE INDEX shadow_events_camera ON shadow_events(camera, last_seen);
"#,
];

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

impl Store {
    /// Opens (creating and migrating) the database at `path`. Incident identity is fusion's
    /// (`fusion.cooldown_s`): the store keeps fusion's ids as they are.
    pub fn open(
        path: &Path,
        sinks: Vec<SinkSpec>,
        escalate_after_s: f64,
    ) -> Result<Store, StoreError> {
        let mut conn = Connection::open(path)?;
        // Takes effect on a new database (before its first table); an existing one is
        // switched by a one-time VACUUM in the first retention pass.
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
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
            escalate_ms: (escalate_after_s * 1000.0) as i64,
            update_interval_ms: std::sync::atomic::AtomicI64::new(0),
            last_notified: Mutex::new(HashMap::new()),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Connection> {
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
