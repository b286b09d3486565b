//! [`Retention`]: what the data directory keeps, how much disk it may use, and what that
//! use is ([`DiskUsage`], per file kind).
//!
//! One pass ([`Retention::run`], every `engine.retention.check_interval_s` from the alerts
//! runtime, on a blocking thread):
//!
//! 1. **Disk usage** of the whole data directory, per kind: the SQLite database (with its
//!    WAL), live JSON-lines logs, rotated ones, snapshots, sink files (CAP, GeoJSON), other.
//! 2. **Rotated logs**: leftovers of an interrupted compression are cleaned, rotated files
//!    are gzip-compressed (`.jsonl` → `.jsonl.gz`: written to a temporary name, fsynced,
//!    renamed, the directory fsynced, and only then the uncompressed file removed, so a
//!    kill at any point leaves one complete copy), and only the newest `jsonl_keep` per log
//!    are kept.
//! 3. **Age limits**, in batches of short transactions (the engine's writes wait at most
//!    one batch): frame results, events and shadow models' would-be events
//!    (`shadow_events`, kept as long as events) by when they were stored (wall-clock
//!    marks of the highest row id, in `retention_marks`: their own times are capture
//!    times, years in the past for a replayed camera), snapshots (never an open incident's latest),
//!    closed and false-alarm incidents with their history (and their clips), dead letters
//!    by when they were dead-lettered (with their delivery rows), delivered outbox rows
//!    (never an undelivered one), sink files; clips ([`Retention::with_clips`])
//!    of incidents no longer stored, older than `snapshots_days`, or beyond their bound
//!    (oldest first), never an open incident's.
//! 4. **Quota**: above `quota_mb`, the oldest data goes first until usage is under 90 % of
//!    it: rotated logs, sink files, clips, snapshots, delivered outbox rows, frame results,
//!    shadow events, events, closed incidents. Open incidents, undelivered outbox rows and the live logs are never
//!    deleted.
//!
//! SQLite gives freed pages back to the file system with `auto_vacuum = INCREMENTAL` and
//! `PRAGMA incremental_vacuum` after deletes (then a `wal_checkpoint(TRUNCATE)`); a database
//! created before that setting is switched once with a `VACUUM` (logged; skipped with a
//! warning if it fails, e.g. for lack of space, and tried again at the next start).
//!
//! A rotated log is named `<stem>.<YYYYMMDDTHHMMSSmmmZ>.jsonl` next to its live
//! `<stem>.jsonl` ([`rotated_name`], [`parse_rotated`]).

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use lookout_config::retention::RetentionConfig;
use lookout_core::UtcTime;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::store::{ms, Store, StoreError};

/// Incident states that are no longer open (what retention may delete).
const CLOSED: &str = "('closed','false_alarm')";

/// Rows deleted per transaction.
const BATCH: i64 = 2000;
/// Incidents deleted per transaction (each with its revisions, transitions, snapshots).
const INCIDENT_BATCH: i64 = 50;
/// Snapshots deleted per transaction.
const SNAPSHOT_BATCH: i64 = 200;
/// Under quota pressure usage is brought down to this share of the quota.
const LOW_WATER: f64 = 0.9;
/// A file this young is never treated as an orphan or an empty leftover (it may be in
/// the middle of being linked).
const GRACE: Duration = Duration::from_secs(600);

/// Errors of a retention pass.
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// SQLite failed.
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    /// A file could not be read, written or removed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RetentionError + '_ {
    move |source| RetentionError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Bytes on disk under the data directory, per kind of file.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct DiskUsage {
    /// The SQLite database with its WAL and shared-memory files.
    pub database: u64,
    /// Live JSON-lines logs (`detections.jsonl`, `events.jsonl`, `incidents.jsonl`, a
    /// `jsonl` sink's file).
    pub jsonl: u64,
    /// Rotated logs, compressed or not.
    pub jsonl_rotated: u64,
    /// Snapshot JPEGs.
    pub snapshots: u64,
    /// Incident clips (MP4 and their `.json`).
    pub clips: u64,
    /// Files written by the `cap` and `geojson` sinks.
    pub sink_files: u64,
    /// Anything else in the data directory (e.g. sample clips).
    pub other: u64,
    /// The sum of the above.
    pub total: u64,
    /// The quota, if any.
    pub quota: Option<u64>,
    /// When it was measured (`None` before the first pass).
    pub at: Option<UtcTime>,
}

impl DiskUsage {
    /// `(kind, bytes)` for every kind, in a fixed order (metrics labels).
    pub fn kinds(&self) -> [(&'static str, u64); 7] {
        [
            ("database", self.database),
            ("jsonl", self.jsonl),
            ("jsonl_rotated", self.jsonl_rotated),
            ("snapshots", self.snapshots),
            ("clips", self.clips),
            ("sink_files", self.sink_files),
            ("other", self.other),
        ]
    }

    fn add(&mut self, kind: Kind, n: u64) {
        match kind {
            Kind::Database => self.database += n,
            Kind::Jsonl => self.jsonl += n,
            Kind::Rotated => self.jsonl_rotated += n,
            Kind::Snapshot => self.snapshots += n,
            Kind::Clip => self.clips += n,
            Kind::SinkFile => self.sink_files += n,
            Kind::Other => self.other += n,
        }
        self.total += n;
    }

    fn sub(&mut self, kind: Kind, n: u64) {
        let f = match kind {
            Kind::Database => &mut self.database,
            Kind::Jsonl => &mut self.jsonl,
            Kind::Rotated => &mut self.jsonl_rotated,
            Kind::Snapshot => &mut self.snapshots,
            Kind::Clip => &mut self.clips,
            Kind::SinkFile => &mut self.sink_files,
            Kind::Other => &mut self.other,
        };
        *f = f.saturating_sub(n);
        self.total = self.total.saturating_sub(n);
    }
}

/// What one pass deleted.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Pruned {
    /// Rotated log files deleted.
    pub rotated_files: u64,
    /// Rotated log files compressed.
    pub compressed_files: u64,
    /// Sink files deleted.
    pub sink_files: u64,
    /// Snapshots deleted (rows and files).
    pub snapshots: u64,
    /// Incident clips deleted.
    pub clips: u64,
    /// Frame results deleted.
    pub frame_results: u64,
    /// Events deleted.
    pub events: u64,
    /// Shadow models' would-be events deleted.
    pub shadow_events: u64,
    /// Closed incidents deleted.
    pub incidents: u64,
    /// Delivered outbox rows (notifications and deliveries) deleted.
    pub outbox_rows: u64,
    /// Dead letters deleted (with their delivery rows).
    pub dead_letters: u64,
    /// Whether the quota had to delete data.
    pub quota_applied: bool,
}

impl Pruned {
    /// True when nothing was deleted or compressed.
    pub fn is_empty(&self) -> bool {
        *self == Pruned::default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Database,
    Jsonl,
    Rotated,
    Snapshot,
    Clip,
    SinkFile,
    Other,
}

/// One file found under the data directory.
#[derive(Debug, Clone)]
struct FileInfo {
    path: PathBuf,
    kind: Kind,
    size: u64,
    modified: SystemTime,
}

/// Rotated files per live log (directory, stem): (timestamp, file), oldest first.
type RotatedLogs = BTreeMap<(PathBuf, String), Vec<(String, FileInfo)>>;

pub use lookout_jsonl::{parse_rotated, rotated_name, sync_dir};

/// When JSON-lines logs are rotated under `cfg` (`jsonl_rotate_mb`, `jsonl_rotate_hours`).
pub fn log_rotation(cfg: &RetentionConfig) -> lookout_jsonl::Rotation {
    lookout_jsonl::Rotation::new(cfg.jsonl_rotate_bytes(), cfg.jsonl_rotate_age())
}

/// Retention of one data directory and its store.
#[derive(Debug)]
pub struct Retention {
    cfg: RetentionConfig,
    data_dir: PathBuf,
    db_path: PathBuf,
    snapshot_dir: PathBuf,
    sink_dirs: Vec<PathBuf>,
    /// Incident clips' directory and the bound of all clips together.
    clips: Option<(PathBuf, u64)>,
    usage: Mutex<DiskUsage>,
    vacuum_checked: AtomicBool,
    stop: AtomicBool,
}

impl Retention {
    /// Retention of `data_dir`, whose database is `db_path`, snapshots are under
    /// `snapshot_dir` and `sink_dirs` are the `cap`/`geojson` sinks' directories.
    pub fn new(
        cfg: RetentionConfig,
        data_dir: &Path,
        db_path: &Path,
        snapshot_dir: &Path,
        sink_dirs: Vec<PathBuf>,
    ) -> Retention {
        Retention {
            cfg,
            data_dir: data_dir.to_path_buf(),
            db_path: db_path.to_path_buf(),
            snapshot_dir: snapshot_dir.to_path_buf(),
            sink_dirs,
            clips: None,
            usage: Mutex::new(DiskUsage::default()),
            vacuum_checked: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        }
    }

    /// Clips under `clip_dir` (`<incident>.mp4` and `<incident>.json`) live and die with
    /// their incidents, age like snapshots (never an open incident's), and take at most
    /// `max_bytes` together (the oldest closed incidents' go first).
    pub fn with_clips(mut self, clip_dir: &Path, max_bytes: u64) -> Retention {
        self.clips = Some((clip_dir.to_path_buf(), max_bytes));
        self
    }

    /// The settings.
    pub fn config(&self) -> &RetentionConfig {
        &self.cfg
    }

    /// When the data directory's JSON-lines logs are rotated.
    pub fn log_rotation(&self) -> lookout_jsonl::Rotation {
        log_rotation(&self.cfg)
    }

    /// The disk usage measured by the last pass.
    pub fn usage(&self) -> DiskUsage {
        self.usage.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Asks a running pass to stop after its current batch (shutdown).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// One retention pass (see the module docs). Errors of single files are logged and
    /// skipped; a database error ends the pass.
    pub fn run(&self, store: &Store, now: UtcTime) -> Result<Pruned, RetentionError> {
        let mut pruned = Pruned::default();
        if !self.vacuum_checked.swap(true, Ordering::Relaxed) {
            ensure_incremental_vacuum(&mut store.lock());
        }
        self.finish_compression(&mut pruned);
        self.keep_newest_rotated(&mut pruned);
        self.age_limits(store, now, &mut pruned)?;
        let mut usage = self.measure()?;
        if let Some(quota) = self.cfg.quota_bytes() {
            if usage.total > quota {
                pruned.quota_applied = true;
                self.apply_quota(store, quota, &mut usage, &mut pruned)?;
                usage = self.measure()?;
                if usage.total > quota {
                    tracing::warn!(used = usage.total, quota, "The data directory is over its quota with only open incidents, undelivered outbox rows and live logs left.");
                }
            }
        }
        usage.at = Some(now);
        *self.usage.lock().unwrap_or_else(|e| e.into_inner()) = usage;
        Ok(pruned)
    }

    /// Walks the data directory: every file with its kind and size.
    fn scan(&self) -> Result<Vec<FileInfo>, RetentionError> {
        let mut out = Vec::new();
        let mut dirs = vec![self.data_dir.clone()];
        let db = self.db_path.to_string_lossy().into_owned();
        let db_files: [PathBuf; 4] = [
            PathBuf::from(&db),
            PathBuf::from(format!("{db}-wal")),
            PathBuf::from(format!("{db}-shm")),
            PathBuf::from(format!("{db}-journal")),
        ];
        while let Some(dir) = dirs.pop() {
            let rd = match std::fs::read_dir(&dir) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io(&dir)(e)),
            };
            for entry in rd.flatten() {
                let Ok(meta) = entry.metadata() else { continue };
                let path = entry.path();
                if meta.is_dir() {
                    dirs.push(path);
                    continue;
                }
                if !meta.is_file() {
                    continue;
                }
                let name = entry.file_name().to_string_lossy().into_owned();
                let kind = if db_files.contains(&path) {
                    Kind::Database
                } else if path.starts_with(&self.snapshot_dir) {
                    Kind::Snapshot
                } else if self
                    .clips
                    .as_ref()
                    .is_some_and(|(d, _)| path.starts_with(d))
                {
                    Kind::Clip
                } else if self.sink_dirs.iter().any(|d| path.starts_with(d)) {
                    Kind::SinkFile
                } else if parse_rotated(&name).is_some()
                    || parse_rotated(name.strip_suffix(".tmp").unwrap_or("")).is_some()
                {
                    Kind::Rotated
                } else if name.ends_with(".jsonl") {
                    Kind::Jsonl
                } else {
                    Kind::Other
                };
                out.push(FileInfo {
                    path,
                    kind,
                    size: meta.len(),
                    modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                });
            }
        }
        Ok(out)
    }

    /// Disk usage now.
    pub fn measure(&self) -> Result<DiskUsage, RetentionError> {
        let mut u = DiskUsage {
            quota: self.cfg.quota_bytes(),
            ..DiskUsage::default()
        };
        for f in self.scan()? {
            u.add(f.kind, f.size);
        }
        Ok(u)
    }

    /// Rotated logs grouped by live log (directory + stem), oldest first in each.
    fn rotated(&self) -> Result<RotatedLogs, RetentionError> {
        let mut logs = RotatedLogs::new();
        for f in self.scan()? {
            if f.kind != Kind::Rotated {
                continue;
            }
            let name = file_name(&f.path);
            let Some((stem, ts, _)) = parse_rotated(&name) else {
                continue;
            };
            let dir = f.path.parent().map(Path::to_path_buf).unwrap_or_default();
            logs.entry((dir, stem.to_string()))
                .or_default()
                .push((ts.to_string(), f));
        }
        for v in logs.values_mut() {
            v.sort_by(|a, b| a.0.cmp(&b.0));
        }
        Ok(logs)
    }

    /// Cleans what an interrupted compression left and compresses rotated logs.
    fn finish_compression(&self, pruned: &mut Pruned) {
        let files = match self.scan() {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "Cannot list the data directory.");
                return;
            }
        };
        let present: HashSet<PathBuf> = files.iter().map(|f| f.path.clone()).collect();
        for f in files.iter().filter(|f| f.kind == Kind::Rotated) {
            if self.stopped() {
                return;
            }
            let name = file_name(&f.path);
            if name.ends_with(".gz.tmp") {
                // A compression killed half-way: its source is still there.
                remove(&f.path);
                continue;
            }
            if name.ends_with(".gz") {
                continue;
            }
            let gz = f.path.with_file_name(format!("{name}.gz"));
            if present.contains(&gz) {
                // Killed after the rename: the .gz is complete (it was fsynced first).
                remove(&f.path);
                continue;
            }
            if !self.cfg.jsonl_compress {
                continue;
            }
            match compress(&f.path, &gz) {
                Ok(()) => {
                    remove(&f.path);
                    pruned.compressed_files += 1;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Cannot compress a rotated log; keeping it as it is.")
                }
            }
        }
    }

    /// Keeps the newest `jsonl_keep` rotated files of each log.
    fn keep_newest_rotated(&self, pruned: &mut Pruned) {
        let Ok(logs) = self.rotated() else { return };
        let keep = self.cfg.jsonl_keep as usize;
        for files in logs.values() {
            let extra = files.len().saturating_sub(keep);
            for (_, f) in &files[..extra] {
                if remove(&f.path) {
                    pruned.rotated_files += 1;
                }
            }
        }
    }

    fn age_limits(
        &self,
        store: &Store,
        now: UtcTime,
        pruned: &mut Pruned,
    ) -> Result<(), RetentionError> {
        let now_ms = ms(now);
        let days = |d: f64| now_ms - (d * 86_400_000.0) as i64;
        let mut deleted_rows = false;
        {
            let conn = store.lock();
            mark(&conn, now_ms, &self.cfg)?;
        }
        // Frame results: by when they were stored, and by count.
        let cut = cutoff(store, "frame_results", days(self.cfg.frame_results_days))?;
        let by_count: Option<i64> = store
            .lock()
            .query_row(
                "SELECT id FROM frame_results ORDER BY id DESC LIMIT 1 OFFSET ?1",
                [self.cfg.max_frame_results as i64],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(c) = cut.max(by_count) {
            let n = self.delete_rows_upto(store, "frame_results", "id", c)?;
            pruned.frame_results += n;
            deleted_rows |= n > 0;
        }
        if let Some(c) = cutoff(store, "events", days(self.cfg.events_days))? {
            let n = self.delete_rows_upto(store, "events", "rowid", c)?;
            pruned.events += n;
            deleted_rows |= n > 0;
        }
        // Shadow events: as long as the live events they are compared with.
        if let Some(c) = cutoff(store, "shadow_events", days(self.cfg.events_days))? {
            let n = self.delete_rows_upto(store, "shadow_events", "rowid", c)?;
            pruned.shadow_events += n;
            deleted_rows |= n > 0;
        }
        // Snapshots (never an open incident's latest).
        loop {
            let n = self.delete_snapshots(store, Some(days(self.cfg.snapshots_days)))?;
            pruned.snapshots += n;
            deleted_rows |= n > 0;
            if n == 0 || self.stopped() {
                break;
            }
        }
        loop {
            let n =
                self.delete_closed_incidents(store, Some(days(self.cfg.closed_incidents_days)))?;
            pruned.incidents += n;
            deleted_rows |= n > 0;
            if n == 0 || self.stopped() {
                break;
            }
        }
        // Dead letters first: a notification whose only undelivered row was a dead letter
        // then goes with the delivered ones.
        loop {
            let n = self.delete_dead_letters(store, days(self.cfg.dead_letters_days))?;
            pruned.dead_letters += n;
            deleted_rows |= n > 0;
            if n == 0 || self.stopped() {
                break;
            }
        }
        loop {
            let n = self.delete_delivered(store, Some(days(self.cfg.outbox_delivered_days)))?;
            pruned.outbox_rows += n;
            deleted_rows |= n > 0;
            if n == 0 || self.stopped() {
                break;
            }
        }
        // Sink files by age, orphaned snapshot files, empty snapshot directories.
        let old = SystemTime::UNIX_EPOCH
            + Duration::from_millis(days(self.cfg.sink_files_days).max(0) as u64);
        let files = self.scan()?;
        for f in files.iter().filter(|f| f.kind == Kind::SinkFile) {
            if f.modified < old && remove(&f.path) {
                pruned.sink_files += 1;
            }
        }
        self.remove_orphan_snapshots(store, &files)?;
        pruned.clips += self.prune_clips(store, Some(days(self.cfg.snapshots_days)), None)?;
        if deleted_rows {
            reclaim(&store.lock());
        }
        Ok(())
    }

    /// Deletes rows of `table` whose `key` ≤ `upto`, a batch per transaction.
    fn delete_rows_upto(
        &self,
        store: &Store,
        table: &str,
        key: &str,
        upto: i64,
    ) -> Result<u64, RetentionError> {
        let sql = format!(
            "DELETE FROM {table} WHERE {key} IN
               (SELECT {key} FROM {table} WHERE {key} <= ?1 ORDER BY {key} LIMIT ?2)"
        );
        let mut total = 0;
        loop {
            let n = store
                .lock()
                .prepare_cached(&sql)?
                .execute(params![upto, BATCH])?;
            total += n as u64;
            if n == 0 || self.stopped() {
                return Ok(total);
            }
        }
    }

    /// Deletes the oldest `BATCH` rows of `table` (by `key`); returns how many.
    fn delete_oldest_rows(
        &self,
        store: &Store,
        table: &str,
        key: &str,
    ) -> Result<u64, RetentionError> {
        let sql = format!(
            "DELETE FROM {table} WHERE {key} IN (SELECT {key} FROM {table} ORDER BY {key} LIMIT ?1)"
        );
        Ok(store.lock().prepare_cached(&sql)?.execute([BATCH])? as u64)
    }

    /// Deletes up to a batch of snapshots (oldest first; created before `before` when
    /// given), never an open incident's latest; rows first, then files.
    fn delete_snapshots(&self, store: &Store, before: Option<i64>) -> Result<u64, RetentionError> {
        let paths: Vec<(i64, String, Option<String>)> = {
            let mut conn = store.lock();
            let tx = conn.transaction()?;
            let rows: Vec<(i64, String, Option<String>)> = tx
                .prepare_cached(&format!(
                    "SELECT id, path, frame_path FROM snapshots WHERE created_at < ?1 AND id NOT IN
                       (SELECT snapshot_id FROM incidents
                        WHERE snapshot_id IS NOT NULL AND state NOT IN {CLOSED})
                     ORDER BY id LIMIT ?2"
                ))?
                .query_map(params![before.unwrap_or(i64::MAX), SNAPSHOT_BATCH], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?
                .collect::<Result<_, _>>()?;
            {
                let mut st = tx.prepare_cached("DELETE FROM snapshots WHERE id = ?1")?;
                for (id, _, _) in &rows {
                    st.execute([id])?;
                }
            }
            tx.commit()?;
            rows
        };
        for (_, p, frame) in &paths {
            remove(Path::new(p));
            if let Some(f) = frame {
                remove(Path::new(f));
            }
        }
        Ok(paths.len() as u64)
    }

    /// Deletes up to a batch of closed / false-alarm incidents (least recently changed
    /// first; changed before `before` when given) with their history and snapshots.
    fn delete_closed_incidents(
        &self,
        store: &Store,
        before: Option<i64>,
    ) -> Result<u64, RetentionError> {
        let paths: Vec<String>;
        let n;
        {
            let mut conn = store.lock();
            let tx = conn.transaction()?;
            let ids: Vec<String> = tx
                .prepare_cached(&format!(
                    "SELECT id FROM incidents WHERE state IN {CLOSED} AND updated_at < ?1
                     ORDER BY updated_at LIMIT ?2"
                ))?
                .query_map(params![before.unwrap_or(i64::MAX), INCIDENT_BATCH], |r| {
                    r.get(0)
                })?
                .collect::<Result<_, _>>()?;
            let mut p = Vec::new();
            for id in &ids {
                p.extend(
                    tx.prepare_cached(
                        "SELECT path FROM snapshots WHERE incident_id = ?1
                         UNION ALL SELECT frame_path FROM snapshots
                         WHERE incident_id = ?1 AND frame_path IS NOT NULL",
                    )?
                    .query_map([id], |r| r.get::<_, String>(0))?
                    .collect::<Result<Vec<_>, _>>()?,
                );
                for sql in [
                    "DELETE FROM snapshots WHERE incident_id = ?1",
                    "DELETE FROM incident_revisions WHERE incident_id = ?1",
                    "DELETE FROM transitions WHERE incident_id = ?1",
                    "DELETE FROM incident_cameras WHERE incident_id = ?1",
                    "DELETE FROM incident_aliases WHERE incident_id = ?1",
                    "DELETE FROM incidents WHERE id = ?1",
                ] {
                    tx.prepare_cached(sql)?.execute([id])?;
                }
            }
            tx.commit()?;
            if let Some((dir, _)) = &self.clips {
                // Every clip of the incident: `<id>.mp4`, `<id>.json`, and the other
                // cameras' `<id>.<camera>.*`.
                let stems: HashSet<String> = ids.iter().map(|id| crate::file_safe(id)).collect();
                for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    if name
                        .split_once('.')
                        .is_some_and(|(stem, _)| stems.contains(stem))
                    {
                        p.push(e.path().to_string_lossy().into_owned());
                    }
                }
            }
            paths = p;
            n = ids.len() as u64;
        }
        for p in &paths {
            remove(Path::new(p));
        }
        Ok(n)
    }

    /// Clip files (`.mp4`, `.json`, leftovers) by incident stem, oldest first.
    fn clip_files(&self) -> Result<Vec<(String, Vec<FileInfo>)>, RetentionError> {
        let Some((dir, _)) = &self.clips else {
            return Ok(Vec::new());
        };
        let mut by_stem: BTreeMap<String, Vec<FileInfo>> = BTreeMap::new();
        for f in self.scan()? {
            if f.kind != Kind::Clip || !f.path.starts_with(dir) {
                continue;
            }
            let name = file_name(&f.path);
            let stem = name.split('.').next().unwrap_or_default().to_string();
            by_stem.entry(stem).or_default().push(f);
        }
        let mut out: Vec<(String, Vec<FileInfo>)> = by_stem.into_iter().collect();
        out.sort_by_key(|(_, fs)| fs.iter().map(|f| f.modified).max());
        Ok(out)
    }

    /// Deletes clips: of incidents no longer stored (after the grace period), older than
    /// `before` (ms, wall clock), and the oldest while all clips take more than their bound
    /// (or, under the quota, until `usage` reaches `target`); never an open incident's.
    /// Returns how many clips (incidents) were deleted.
    fn prune_clips(
        &self,
        store: &Store,
        before: Option<i64>,
        mut quota: Option<(&mut DiskUsage, u64)>,
    ) -> Result<u64, RetentionError> {
        let Some((_, max_bytes)) = &self.clips else {
            return Ok(0);
        };
        let clips = self.clip_files()?;
        if clips.is_empty() {
            return Ok(0);
        }
        let (known, open): (HashSet<String>, HashSet<String>) = {
            let conn = store.lock();
            let mut st =
                conn.prepare(&format!("SELECT id, state NOT IN {CLOSED} FROM incidents"))?;
            let rows = st
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, bool>(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            let mut known = HashSet::new();
            let mut open = HashSet::new();
            for (id, is_open) in rows {
                let stem = crate::file_safe(&id);
                if is_open {
                    open.insert(stem.clone());
                }
                known.insert(stem);
            }
            (known, open)
        };
        let grace = SystemTime::now()
            .checked_sub(GRACE)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let old = before.map(|ms| SystemTime::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64));
        let mut total: u64 = clips.iter().flat_map(|(_, fs)| fs).map(|f| f.size).sum();
        let mut n = 0;
        for (stem, files) in &clips {
            if open.contains(stem) {
                continue;
            }
            let newest = files
                .iter()
                .map(|f| f.modified)
                .max()
                .unwrap_or(SystemTime::UNIX_EPOCH);
            let orphan = !known.contains(stem) && newest < grace;
            let aged = old.is_some_and(|o| newest < o);
            let over = total > *max_bytes;
            let quota_over = quota.as_ref().is_some_and(|(u, target)| u.total > *target);
            if !(orphan || aged || over || quota_over) {
                continue;
            }
            let size: u64 = files.iter().map(|f| f.size).sum();
            for f in files {
                remove(&f.path);
            }
            total = total.saturating_sub(size);
            if let Some((u, _)) = quota.as_mut() {
                u.sub(Kind::Clip, size);
            }
            n += 1;
        }
        if total > *max_bytes {
            tracing::warn!(bytes = total, bound = max_bytes, "Clips take more than alerts.clips.max_total_mb with only open incidents' clips left.");
        }
        Ok(n)
    }

    /// Deletes up to a batch of delivered outbox rows (created before `before` when
    /// given). A notification goes only when every sink has delivered it.
    fn delete_delivered(&self, store: &Store, before: Option<i64>) -> Result<u64, RetentionError> {
        let before = before.unwrap_or(i64::MAX);
        let mut conn = store.lock();
        let tx = conn.transaction()?;
        let ids: Vec<i64> = tx
            .prepare_cached(
                "SELECT id FROM notifications n WHERE created_at < ?1 AND NOT EXISTS
                   (SELECT 1 FROM deliveries d WHERE d.notification_id = n.id
                    AND d.delivered_at IS NULL)
                 ORDER BY id LIMIT ?2",
            )?
            .query_map(params![before, BATCH], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let mut n = 0;
        {
            let mut del_d = tx.prepare_cached(
                "DELETE FROM deliveries WHERE notification_id = ?1 AND delivered_at IS NOT NULL",
            )?;
            let mut del_n = tx.prepare_cached("DELETE FROM notifications WHERE id = ?1")?;
            for id in &ids {
                n += del_d.execute([id])?;
                n += del_n.execute([id])?;
            }
        }
        tx.commit()?;
        Ok(n as u64)
    }

    /// Deletes up to a batch of dead letters dead-lettered before `before` (wall clock,
    /// ms), oldest first, with their delivery rows (what re-driving would have reset).
    fn delete_dead_letters(&self, store: &Store, before: i64) -> Result<u64, RetentionError> {
        let mut conn = store.lock();
        let tx = conn.transaction()?;
        let rows: Vec<(String, i64)> = tx
            .prepare_cached(
                "SELECT sink, notification_id FROM dead_letters WHERE at < ?1
                 ORDER BY at, notification_id LIMIT ?2",
            )?
            .query_map(params![before, BATCH], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        {
            let mut del_l = tx.prepare_cached(
                "DELETE FROM dead_letters WHERE sink = ?1 AND notification_id = ?2",
            )?;
            let mut del_d = tx.prepare_cached(
                "DELETE FROM deliveries WHERE sink = ?1 AND notification_id = ?2
                 AND delivered_at IS NULL AND dead_at IS NOT NULL",
            )?;
            for (sink, id) in &rows {
                del_l.execute(params![sink, id])?;
                del_d.execute(params![sink, id])?;
            }
        }
        tx.commit()?;
        Ok(rows.len() as u64)
    }

    /// Snapshot files no row points to (a kill between deleting the rows and the files),
    /// and empty incident directories, older than the grace period.
    fn remove_orphan_snapshots(
        &self,
        store: &Store,
        files: &[FileInfo],
    ) -> Result<(), RetentionError> {
        let grace = SystemTime::now()
            .checked_sub(GRACE)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let old: Vec<&FileInfo> = files
            .iter()
            .filter(|f| f.kind == Kind::Snapshot && f.modified < grace)
            .collect();
        if old.is_empty() {
            return Ok(());
        }
        let known: HashSet<PathBuf> = store
            .lock()
            .prepare(
                "SELECT path FROM snapshots
                 UNION ALL SELECT frame_path FROM snapshots WHERE frame_path IS NOT NULL",
            )?
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .map(PathBuf::from)
            .collect();
        for f in old {
            if !known.contains(&f.path) {
                remove(&f.path);
            }
        }
        if let Ok(rd) = std::fs::read_dir(&self.snapshot_dir) {
            for e in rd.flatten() {
                let Ok(meta) = e.metadata() else { continue };
                if meta.is_dir() && meta.modified().is_ok_and(|m| m < grace) {
                    // Fails (and is left alone) unless it is empty.
                    let _ = std::fs::remove_dir(e.path());
                }
            }
        }
        Ok(())
    }

    /// Deletes the oldest data, kind by kind, until usage is under the low-water mark.
    fn apply_quota(
        &self,
        store: &Store,
        quota: u64,
        usage: &mut DiskUsage,
        pruned: &mut Pruned,
    ) -> Result<(), RetentionError> {
        let target = (quota as f64 * LOW_WATER) as u64;
        tracing::warn!(
            used = usage.total,
            quota,
            "The data directory is over its quota; deleting the oldest data."
        );
        // 1. Rotated logs, oldest first across all logs.
        let mut rotated: Vec<(String, FileInfo)> =
            self.rotated()?.into_values().flatten().collect();
        rotated.sort_by(|a, b| a.0.cmp(&b.0));
        for (_, f) in rotated {
            if usage.total <= target || self.stopped() {
                return Ok(());
            }
            if remove(&f.path) {
                usage.sub(Kind::Rotated, f.size);
                pruned.rotated_files += 1;
            }
        }
        // 2. Sink files, least recently written first.
        let mut sink: Vec<FileInfo> = self
            .scan()?
            .into_iter()
            .filter(|f| f.kind == Kind::SinkFile)
            .collect();
        sink.sort_by_key(|f| f.modified);
        for f in sink {
            if usage.total <= target || self.stopped() {
                return Ok(());
            }
            if remove(&f.path) {
                usage.sub(Kind::SinkFile, f.size);
                pruned.sink_files += 1;
            }
        }
        // 3. Clips of closed incidents, oldest first.
        pruned.clips += self.prune_clips(store, None, Some((&mut *usage, target)))?;
        if usage.total <= target || self.stopped() {
            return Ok(());
        }
        // 4. Snapshots, then database rows: a batch at a time, re-measured after each.
        #[derive(Clone, Copy)]
        enum Step {
            Snapshots,
            Delivered,
            FrameResults,
            ShadowEvents,
            Events,
            Incidents,
        }
        for step in [
            Step::Snapshots,
            Step::Delivered,
            Step::FrameResults,
            Step::ShadowEvents,
            Step::Events,
            Step::Incidents,
        ] {
            loop {
                if usage.total <= target || self.stopped() {
                    return Ok(());
                }
                let n = match step {
                    Step::Snapshots => {
                        let n = self.delete_snapshots(store, None)?;
                        pruned.snapshots += n;
                        n
                    }
                    Step::Delivered => {
                        let n = self.delete_delivered(store, None)?;
                        pruned.outbox_rows += n;
                        n
                    }
                    Step::FrameResults => {
                        let n = self.delete_oldest_rows(store, "frame_results", "id")?;
                        pruned.frame_results += n;
                        n
                    }
                    Step::ShadowEvents => {
                        let n = self.delete_oldest_rows(store, "shadow_events", "rowid")?;
                        pruned.shadow_events += n;
                        n
                    }
                    Step::Events => {
                        let n = self.delete_oldest_rows(store, "events", "rowid")?;
                        pruned.events += n;
                        n
                    }
                    Step::Incidents => {
                        let n = self.delete_closed_incidents(store, None)?;
                        pruned.incidents += n;
                        n
                    }
                };
                if n == 0 {
                    break;
                }
                reclaim(&store.lock());
                *usage = self.measure()?;
            }
        }
        Ok(())
    }
}

/// Records the highest row id of the age-limited tables now, and forgets marks no limit
/// needs any more.
fn mark(conn: &Connection, now_ms: i64, cfg: &RetentionConfig) -> Result<(), RetentionError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS retention_marks(tbl TEXT NOT NULL, at INTEGER NOT NULL,
           max_rowid INTEGER NOT NULL, PRIMARY KEY(tbl, at)) WITHOUT ROWID;",
    )?;
    for (tbl, days) in [
        ("frame_results", cfg.frame_results_days),
        ("events", cfg.events_days),
        ("shadow_events", cfg.events_days),
    ] {
        conn.prepare_cached(&format!(
            "INSERT OR REPLACE INTO retention_marks(tbl, at, max_rowid)
             SELECT ?1, ?2, COALESCE(MAX(rowid), 0) FROM {tbl}"
        ))?
        .execute(params![tbl, now_ms])?;
        // Keep every mark inside the window and the newest one before it.
        let horizon = now_ms - (days * 86_400_000.0) as i64;
        conn.prepare_cached(
            "DELETE FROM retention_marks WHERE tbl = ?1 AND at <
               (SELECT MAX(at) FROM retention_marks WHERE tbl = ?1 AND at <= ?2)",
        )?
        .execute(params![tbl, horizon])?;
    }
    Ok(())
}

/// The highest row id of `tbl` stored before `before` (wall clock), from the marks.
fn cutoff(store: &Store, tbl: &str, before: i64) -> Result<Option<i64>, RetentionError> {
    Ok(store
        .lock()
        .prepare_cached(
            "SELECT max_rowid FROM retention_marks WHERE tbl = ?1 AND at <= ?2
             ORDER BY at DESC LIMIT 1",
        )?
        .query_row(params![tbl, before], |r| r.get::<_, i64>(0))
        .optional()?
        .filter(|c| *c > 0))
}

/// Switches the database to incremental auto-vacuum; an existing database needs one
/// `VACUUM` for that. Failures are logged (the next start tries again).
pub fn ensure_incremental_vacuum(conn: &mut Connection) {
    let mode: i64 = conn
        .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
        .unwrap_or(0);
    if mode == 2 {
        return;
    }
    let started = std::time::Instant::now();
    let res = conn
        .pragma_update(None, "auto_vacuum", "INCREMENTAL")
        .and_then(|_| conn.execute_batch("VACUUM"));
    match res {
        Ok(()) => tracing::info!(
            seconds = started.elapsed().as_secs_f64(),
            "Switched the database to incremental vacuum (a one-time VACUUM)."
        ),
        Err(e) => {
            tracing::warn!(error = %e, "Cannot switch the database to incremental vacuum; freed space stays in the file until the next start.")
        }
    }
}

/// Gives the database's free pages back to the file system and truncates the WAL.
fn reclaim(conn: &Connection) {
    // `incremental_vacuum` frees one page per step: step it to the end.
    let res = conn
        .prepare("PRAGMA incremental_vacuum")
        .and_then(|mut st| {
            let mut rows = st.query([])?;
            while rows.next()?.is_some() {}
            Ok(())
        });
    let res = res.and_then(|_| conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())));
    if let Err(e) = res {
        tracing::debug!(error = %e, "Incremental vacuum or checkpoint incomplete; retried next pass.");
    }
}

/// Compresses `src` into `dst` crash-safely: a temporary file, fsynced, renamed, and the
/// directory fsynced. The caller removes `src` afterwards.
fn compress(src: &Path, dst: &Path) -> Result<(), RetentionError> {
    let tmp = dst.with_file_name(format!("{}.tmp", file_name(dst)));
    let mut input = std::fs::File::open(src).map_err(io(src))?;
    let out = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    let mut enc =
        flate2::write::GzEncoder::new(std::io::BufWriter::new(out), flate2::Compression::default());
    std::io::copy(&mut input, &mut enc).map_err(io(&tmp))?;
    let mut w = enc.finish().map_err(io(&tmp))?;
    w.flush().map_err(io(&tmp))?;
    let out = w.into_inner().map_err(|e| io(&tmp)(e.into_error()))?;
    out.sync_all().map_err(io(&tmp))?;
    drop(out);
    std::fs::rename(&tmp, dst).map_err(io(dst))?;
    sync_dir(dst);
    Ok(())
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Removes a file; true when it was removed (gone already is not an error worth more
/// than a debug line).
fn remove(p: &Path) -> bool {
    match std::fs::remove_file(p) {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!(path = %p.display(), error = %e, "Cannot remove a file.");
            false
        }
    }
}
