//! # lookout-alerts
//!
//! Incidents from fusion become stored, operator-driven, reliably delivered alerts.
//!
//! ## Layout
//! * [`Alerts`]: the front door the engine calls (`record_incident`, `record_event`,
//!   `record_hotspot`, `record_frame_result`, `record_camera_status`, `transition`). It owns
//!   the store, one outbox worker per sink, the escalation and retention timers, and a
//!   broadcast of [`LiveUpdate`]s for the UI.
//! * [`store::Store`]: SQLite (WAL, `user_version` migrations): incidents with every
//!   revision, transitions (who/when/why — the operator verdicts), events, hotspots,
//!   snapshots, recorded frame results for the tuning replay, config overlays, and the
//!   outbox (`notifications` + per-sink `deliveries`, written in the same transaction as
//!   the revision they announce).
//! * [`lifecycle`]: `new → acknowledged → confirmed | false_alarm → closed`, reopen.
//! * [`outbox`]: per-sink workers, at-least-once with exponential backoff and jitter,
//!   `Retry-After` honoured, refused payloads dead-lettered (one failing delivery never
//!   holds up the others); the idempotency key is `<incident id>:<revision>`.
//! * [`events`]: [`events::EventFeed`], what the sinks that take rule events (MQTT
//!   `<prefix>/events`, `<prefix>/<camera>/<label>`) are told of each event: new, bounded
//!   updates, end, with `before`/`after`, and the open events per camera and label.
//! * [`sinks`]: webhook (HTTP or HTTPS POST, [`http`]), MQTT (rumqttc, QoS 1),
//!   JSONL, CAP 1.2 files, GeoJSON files.
//! * [`export`]: CAP 1.2 XML and GeoJSON.
//! * [`stage`]: [`stage::IncidentsStage`], the thread that stores fusion's incident
//!   revisions (group commit) with their snapshots.
//! * [`snapshot`]: JPEG snapshots with boxes and text drawn by a built-in bitmap font.
//! * [`retention`]: `[engine.retention]` — age limits, the data directory's quota (oldest
//!   first, never an open incident or an undelivered outbox row), compression of rotated
//!   logs, incremental vacuum, and the disk usage per file kind.

pub mod events;
pub mod export;
pub mod http;
pub mod lifecycle;
pub mod outbox;
pub mod retention;
pub mod sinks;
pub mod snapshot;
pub mod stage;
pub mod store;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lookout_config::alerts::AlertsConfig;
use lookout_config::retention::RetentionConfig;
use lookout_config::Config;
use lookout_core::{
    CameraId, CameraStatus, Event, Frame, FrameResult, Hotspot, Incident, IncidentConfidence,
    IncidentKind, IncidentState, Severity, StageMsg, StopReason, UtcTime,
};
use serde::Serialize;
use tokio::sync::{broadcast, watch};

pub use store::{ApplyOutcome, Store, StoreError, StoredIncident};

/// Most incident revisions [`Alerts::record_incidents`] should be given at once (what a
/// caller drains from its queue per group commit).
pub const GROUP_COMMIT_MAX: usize = 256;

/// Errors of the alerts stage.
#[derive(Debug, thiserror::Error)]
pub enum AlertsError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A snapshot could not be rendered.
    #[error("snapshot: {0}")]
    Snapshot(#[from] snapshot::SnapshotError),
    /// A file or directory could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A sink's configuration cannot be used.
    #[error("sink {name}: {message}")]
    Sink {
        /// Sink name.
        name: String,
        /// What is wrong.
        message: String,
    },
}

/// A change the UI shows live.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LiveUpdate {
    /// An incident was created or changed.
    Incident {
        /// Incident id.
        id: String,
        /// New revision.
        revision: u64,
        /// Kind.
        kind: IncidentKind,
        /// State.
        state: IncidentState,
        /// Severity.
        severity: Severity,
        /// True when it was just created.
        created: bool,
    },
    /// A camera's stream status changed.
    Camera {
        /// Camera.
        camera: String,
        /// Status.
        status: CameraStatus,
        /// When.
        at: UtcTime,
    },
    /// The configuration changed (version of the overlay).
    Config {
        /// Overlay version.
        version: i64,
    },
}

/// Settings resolved from `[alerts]`.
#[derive(Debug, Clone)]
struct Settings {
    snapshots: bool,
    quality: u8,
    training_frames: bool,
    max_escalations: u32,
    snapshot_dir: PathBuf,
    clip_dir: PathBuf,
}

/// The alerts stage: store, outbox workers, timers, live updates.
pub struct Alerts {
    store: Arc<Store>,
    retention: Arc<retention::Retention>,
    settings: Settings,
    workers: Vec<outbox::Worker>,
    timers: Vec<tokio::task::JoinHandle<()>>,
    /// MQTT sinks' availability connections ([`sinks::mqtt_availability`]), awaited at
    /// shutdown so that each says `offline`.
    availability: Vec<tokio::task::JoinHandle<()>>,
    shutdown: watch::Sender<bool>,
    live: broadcast::Sender<LiveUpdate>,
    latest: Mutex<HashMap<CameraId, FrameResult>>,
    statuses: Mutex<HashMap<CameraId, (CameraStatus, UtcTime)>>,
    /// Rule events as the sinks that take them see them (held while queueing, so the
    /// outbox gets them in order).
    event_feed: Mutex<events::EventFeed>,
    /// Makes count notification keys unique within a millisecond.
    count_seq: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Alerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerts")
            .field("store", &self.store)
            .finish()
    }
}

/// Incident clips' directory under the data directory.
pub const CLIP_DIR: &str = "clips";

pub(crate) fn file_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl Alerts {
    /// Opens the store under `engine.data_dir` and starts the sink workers and timers on
    /// `rt`.
    pub fn open(cfg: &Config, rt: &tokio::runtime::Handle) -> Result<Alerts, AlertsError> {
        let a = Alerts::open_with(
            &cfg.alerts.with_paths_resolved(&cfg.base_dir),
            &cfg.engine.retention,
            &cfg.data_dir(),
            rt,
        )?;
        // The same interval fusion uses: an incident merged from many short tracks is
        // notified like one incident with updates.
        a.store()
            .set_update_interval_s(cfg.fusion.update_interval_s);
        Ok(a)
    }

    /// Like [`Alerts::open`], with the `[alerts]` section and data directory given directly
    /// (and the default `[engine.retention]`).
    pub fn open_in(
        cfg: &AlertsConfig,
        data_dir: &Path,
        rt: &tokio::runtime::Handle,
    ) -> Result<Alerts, AlertsError> {
        Alerts::open_with(cfg, &RetentionConfig::default(), data_dir, rt)
    }

    /// Like [`Alerts::open_in`], with `[engine.retention]` given too.
    pub fn open_with(
        cfg: &AlertsConfig,
        retention_cfg: &RetentionConfig,
        data_dir: &Path,
        rt: &tokio::runtime::Handle,
    ) -> Result<Alerts, AlertsError> {
        std::fs::create_dir_all(data_dir).map_err(|e| AlertsError::Io {
            path: data_dir.to_path_buf(),
            source: e,
        })?;
        let mut specs = Vec::new();
        let mut sinks = Vec::new();
        let mut availability = Vec::new();
        for s in &cfg.sinks {
            let f = s.filter();
            specs.push(store::SinkSpec {
                name: s.name().to_string(),
                kinds: f
                    .kinds
                    .iter()
                    .filter_map(|k| {
                        serde_json::from_value(serde_json::Value::String(k.clone())).ok()
                    })
                    .collect(),
                min_severity: f
                    .min_severity
                    .as_deref()
                    .and_then(lifecycle::parse_severity),
                camera_status: sinks::Sink::takes_camera_status(s),
                events: sinks::Sink::takes_events(s),
            });
            let sink_err = |m| AlertsError::Sink {
                name: s.name().to_string(),
                message: m,
            };
            let mut sink =
                sinks::Sink::from_config(s, data_dir, &cfg.cap_sender).map_err(sink_err)?;
            if let (Some(opts), lookout_config::alerts::SinkConfig::Mqtt { topic_prefix, .. }) = (
                sinks::mqtt_options(s, "-availability").map_err(sink_err)?,
                s,
            ) {
                availability.push((opts, topic_prefix.clone()));
            }
            sink.set_log_rotation(retention::log_rotation(retention_cfg));
            let retry = match s {
                lookout_config::alerts::SinkConfig::Webhook { retry, .. }
                | lookout_config::alerts::SinkConfig::Mqtt { retry, .. } => retry.clone(),
                _ => lookout_config::alerts::RetryConfig::default(),
            };
            sinks.push((s.name().to_string(), sink, retry));
        }
        let store = Arc::new(Store::open(
            &data_dir.join(&cfg.database),
            specs,
            cfg.escalate_after_s,
        )?);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let workers: Vec<outbox::Worker> = sinks
            .into_iter()
            .map(|(name, sink, retry)| {
                outbox::spawn_worker(
                    rt,
                    store.clone(),
                    name,
                    sink,
                    outbox::Backoff {
                        initial: Duration::from_secs_f64(retry.initial_s),
                        max: Duration::from_secs_f64(retry.max_s),
                        max_rejected: retry.max_rejected,
                        max_attempts: retry.max_attempts,
                    },
                    shutdown_rx.clone(),
                )
            })
            .collect();
        let (live, _) = broadcast::channel(1024);
        let settings = Settings {
            snapshots: cfg.snapshots,
            quality: cfg.snapshot_quality,
            training_frames: cfg.training_frames,
            max_escalations: cfg.max_escalations,
            snapshot_dir: data_dir.join("snapshots"),
            clip_dir: data_dir.join(CLIP_DIR),
        };
        let sink_dirs = cfg
            .sinks
            .iter()
            .filter_map(|s| match s {
                lookout_config::alerts::SinkConfig::Cap { dir, .. }
                | lookout_config::alerts::SinkConfig::Geojson { dir, .. } => {
                    Some(data_dir.join(dir))
                }
                _ => None,
            })
            .collect();
        let retention = Arc::new(
            retention::Retention::new(
                retention_cfg.clone(),
                data_dir,
                &data_dir.join(&cfg.database),
                &settings.snapshot_dir,
                sink_dirs,
            )
            .with_clips(&settings.clip_dir, cfg.clips.max_total_bytes()),
        );
        let mut alerts = Alerts {
            store,
            retention,
            settings,
            workers,
            timers: Vec::new(),
            availability: availability
                .into_iter()
                .map(|(opts, prefix)| {
                    rt.spawn(sinks::mqtt_availability(opts, prefix, shutdown_rx.clone()))
                })
                .collect(),
            shutdown,
            live,
            latest: Mutex::new(HashMap::new()),
            statuses: Mutex::new(HashMap::new()),
            event_feed: Mutex::new(events::EventFeed::new(cfg.event_update_interval_s)),
            count_seq: std::sync::atomic::AtomicU64::new(0),
        };
        alerts.start_timers(rt, cfg, shutdown_rx);
        tracing::info!(sinks = alerts.workers.len(), path = %data_dir.join(&cfg.database).display(), "Alerts store open.");
        Ok(alerts)
    }

    fn start_timers(
        &mut self,
        rt: &tokio::runtime::Handle,
        cfg: &AlertsConfig,
        shutdown: watch::Receiver<bool>,
    ) {
        let store = self.store.clone();
        let live = self.live.clone();
        let wakes: Vec<_> = self.workers.iter().map(|w| w.wake.clone()).collect();
        let max = cfg.max_escalations;
        let period = Duration::from_secs_f64((cfg.escalate_after_s / 4.0).clamp(0.2, 5.0));
        let mut sd = shutdown.clone();
        self.timers.push(rt.spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(period) => {}
                    _ = sd.changed() => break,
                }
                match store.escalate_due(chrono::Utc::now(), max) {
                    Ok(list) => {
                        for s in list {
                            tracing::warn!(incident = %s.incident.id, severity = lifecycle::severity_name(s.incident.severity), "Incident not acknowledged in time; escalated.");
                            let _ = live.send(live_of(&s.incident, false));
                        }
                        for w in &wakes {
                            w.notify_one();
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "Escalation check failed."),
                }
            }
        }));
        let store = self.store.clone();
        let retention = self.retention.clone();
        let period = Duration::from_secs_f64(retention.config().check_interval_s);
        let mut sd = shutdown;
        self.timers.push(rt.spawn(async move {
            loop {
                let (r, s) = (retention.clone(), store.clone());
                let pass = tokio::task::spawn_blocking(move || r.run(&s, chrono::Utc::now())).await;
                match pass {
                    Ok(Ok(p)) if !p.is_empty() => {
                        tracing::info!(pruned = ?p, "Retention limits applied.")
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::error!(error = %e, "Retention pass failed."),
                    Err(e) => tracing::error!(error = %e, "Retention pass panicked."),
                }
                tokio::select! {
                    _ = tokio::time::sleep(period) => {}
                    _ = sd.changed() => break,
                }
            }
        }));
    }

    /// Where an incident's clip is (or would be) written: `<data_dir>/clips/<id>.mp4`, its
    /// [`lookout_core::ClipInfo`] beside it as `<id>.json`. This is the clip of the camera
    /// that saw the incident first; [`Alerts::camera_clip_path`] holds the other cameras'.
    pub fn clip_path(&self, incident: &str) -> PathBuf {
        self.settings
            .clip_dir
            .join(format!("{}.mp4", file_safe(incident)))
    }

    /// Where the clip of another camera of a multi-camera incident goes:
    /// `<data_dir>/clips/<id>.<camera>.mp4` (and `.json`). Retention keeps and deletes it
    /// with the incident's first clip (everything named `<id>.*`).
    pub fn camera_clip_path(&self, incident: &str, camera: &str) -> PathBuf {
        self.settings
            .clip_dir
            .join(format!("{}.{}.mp4", file_safe(incident), file_safe(camera)))
    }

    /// The incident's written clips (MP4 present, description read), the first camera's
    /// ([`Alerts::clip_path`]) first, then the others by start time.
    pub fn clips_of(&self, incident: &str) -> Vec<(PathBuf, lookout_core::ClipInfo)> {
        let read = |mp4: PathBuf| -> Option<(PathBuf, lookout_core::ClipInfo)> {
            let bytes = std::fs::read(mp4.with_extension("json")).ok()?;
            let info: lookout_core::ClipInfo = serde_json::from_slice(&bytes).ok()?;
            (info.incident == incident && mp4.is_file()).then_some((mp4, info))
        };
        let mut out: Vec<(PathBuf, lookout_core::ClipInfo)> =
            read(self.clip_path(incident)).into_iter().collect();
        let prefix = format!("{}.", file_safe(incident));
        let mut others: Vec<(PathBuf, lookout_core::ClipInfo)> =
            std::fs::read_dir(&self.settings.clip_dir)
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| {
                    let name = e.file_name().into_string().ok()?;
                    let camera = name.strip_prefix(&prefix)?.strip_suffix(".mp4")?;
                    (!camera.is_empty() && !camera.contains('.'))
                        .then(|| read(e.path()))
                        .flatten()
                })
                .collect();
        others.sort_by(|a, b| (a.1.start, &a.1.camera).cmp(&(b.1.start, &b.1.camera)));
        out.extend(others);
        out
    }

    /// The store (API reads, tests).
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Disk usage of the data directory per file kind, as of the last retention pass.
    pub fn disk_usage(&self) -> retention::DiskUsage {
        self.retention.usage()
    }

    /// When the data directory's JSON-lines logs are rotated (`[engine.retention]`).
    pub fn log_rotation(&self) -> lookout_jsonl::Rotation {
        self.retention.log_rotation()
    }

    /// Runs a retention pass now (the timer does this every `check_interval_s`).
    pub fn retention_now(&self) -> Result<retention::Pruned, retention::RetentionError> {
        self.retention.run(&self.store, chrono::Utc::now())
    }

    /// Subscribes to live updates.
    pub fn subscribe(&self) -> broadcast::Receiver<LiveUpdate> {
        self.live.subscribe()
    }

    /// Publishes a live update (the server announces config changes this way).
    pub fn publish(&self, u: LiveUpdate) {
        let _ = self.live.send(u);
    }

    fn wake(&self) {
        for w in &self.workers {
            w.wake.notify_one();
        }
    }

    /// Stores an incident revision from fusion (merging, deduplicating, escalation-aware),
    /// with a snapshot of `frame` drawn when given, and queues it for every sink.
    pub fn record_incident(
        &self,
        inc: &Incident,
        frame: Option<&Frame>,
    ) -> Result<ApplyOutcome, AlertsError> {
        let snap = match frame.filter(|_| self.settings.snapshots) {
            Some(f) => Some(self.write_snapshot(inc, f)?),
            None => None,
        };
        let (outcome, stored) =
            self.store
                .apply_incident(inc, snap.as_ref(), chrono::Utc::now())?;
        if self.announce(inc, &outcome, stored, snap) {
            self.wake();
        }
        Ok(outcome)
    }

    /// Group commit of many incident revisions (e.g. everything queued on the incidents
    /// channel): snapshots are written first, then every revision, its history row and its
    /// outbox rows go into **one** SQLite transaction, and the sink workers are woken once.
    /// Results are in input order, as [`Alerts::record_incident`] would return them one by
    /// one. The durability promise is unchanged: nothing is acknowledged before the commit
    /// that holds it and its outbox rows. If the batch transaction fails, the revisions are
    /// retried one by one so a single bad one cannot take the others down with it.
    pub fn record_incidents(
        &self,
        items: &[(&Incident, Option<&Frame>)],
    ) -> Vec<Result<ApplyOutcome, AlertsError>> {
        if items.len() == 1 {
            return vec![self.record_incident(items[0].0, items[0].1)];
        }
        let mut snaps: Vec<Option<store::NewSnapshot>> = Vec::with_capacity(items.len());
        let mut failed: Vec<Option<AlertsError>> = Vec::with_capacity(items.len());
        for (inc, frame) in items {
            match frame.filter(|_| self.settings.snapshots) {
                Some(f) => match self.write_snapshot(inc, f) {
                    Ok(s) => {
                        snaps.push(Some(s));
                        failed.push(None);
                    }
                    Err(e) => {
                        snaps.push(None);
                        failed.push(Some(e));
                    }
                },
                None => {
                    snaps.push(None);
                    failed.push(None);
                }
            }
        }
        let batch: Vec<(&Incident, Option<&store::NewSnapshot>)> = items
            .iter()
            .zip(&snaps)
            .zip(&failed)
            .filter(|(_, f)| f.is_none())
            .map(|(((inc, _), s), _)| (*inc, s.as_ref()))
            .collect();
        let applied = match self.store.apply_incidents(&batch, chrono::Utc::now()) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, n = batch.len(), "Group commit failed; storing the revisions one by one.");
                let mut out = Vec::with_capacity(items.len());
                for (((inc, frame), snap), f) in items.iter().zip(snaps).zip(failed) {
                    if let Some(e) = f {
                        out.push(Err(e));
                        continue;
                    }
                    if let Some(s) = snap {
                        let _ = std::fs::remove_file(&s.path);
                    }
                    out.push(self.record_incident(inc, *frame));
                }
                return out;
            }
        };
        let mut applied = applied.into_iter();
        let mut out = Vec::with_capacity(items.len());
        let mut any = false;
        for (((inc, _), snap), f) in items.iter().zip(snaps).zip(failed) {
            if let Some(e) = f {
                out.push(Err(e));
                continue;
            }
            let Some((outcome, stored)) = applied.next() else {
                break;
            };
            any |= self.announce(inc, &outcome, stored, snap);
            out.push(Ok(outcome));
        }
        if any {
            self.wake();
        }
        out
    }

    /// Logs and publishes what storing one revision did; true when sinks have news.
    fn announce(
        &self,
        inc: &Incident,
        outcome: &ApplyOutcome,
        stored: Option<StoredIncident>,
        snap: Option<store::NewSnapshot>,
    ) -> bool {
        match (outcome, stored) {
            (ApplyOutcome::Duplicate { id }, _) => {
                tracing::debug!(incident = %id, revision = inc.revision, "Duplicate incident revision suppressed.");
                if let Some(s) = snap {
                    let _ = std::fs::remove_file(&s.path);
                    if let Some(f) = &s.frame_path {
                        let _ = std::fs::remove_file(f);
                    }
                }
                false
            }
            (o, Some(s)) => {
                let created = matches!(o, ApplyOutcome::Created { .. });
                if created {
                    tracing::info!(incident = %s.incident.id, kind = s.incident.kind.as_str(), "New incident.");
                }
                let _ = self.live.send(live_of(&s.incident, created));
                true
            }
            _ => false,
        }
    }

    fn write_snapshot(&self, inc: &Incident, f: &Frame) -> Result<store::NewSnapshot, AlertsError> {
        let jpg = snapshot::render(f, inc, self.settings.quality)?;
        let dir = self.settings.snapshot_dir.join(file_safe(&inc.id));
        std::fs::create_dir_all(&dir).map_err(|e| AlertsError::Io {
            path: dir.clone(),
            source: e,
        })?;
        let stem = format!("{}-{}-r{}", file_safe(&f.camera), f.seq, inc.revision);
        let path = dir.join(format!("{stem}.jpg"));
        std::fs::write(&path, jpg).map_err(|e| AlertsError::Io {
            path: path.clone(),
            source: e,
        })?;
        // The training frame: the same frame without drawing, with the detector's boxes
        // kept in the snapshot's row. A failure here costs the training frame, not the
        // snapshot nor the incident.
        let (frame_path, boxes) = if self.settings.training_frames {
            let fp = dir.join(format!("{stem}.frame.jpg"));
            match snapshot::frame_jpeg(f, self.settings.quality)
                .map_err(AlertsError::from)
                .and_then(|j| {
                    std::fs::write(&fp, j).map_err(|e| AlertsError::Io {
                        path: fp.clone(),
                        source: e,
                    })
                }) {
                Ok(()) => (
                    Some(fp.display().to_string()),
                    Some(snapshot::training_boxes(f, inc)),
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "Training frame not kept.");
                    (None, None)
                }
            }
        } else {
            (None, None)
        };
        Ok(store::NewSnapshot {
            camera: f.camera.to_string(),
            seq: f.seq,
            captured_at: f.captured_at,
            path: path.display().to_string(),
            frame_path,
            boxes,
        })
    }

    /// Stores an event (latest phase wins) and queues what the sinks that take events are
    /// told of it ([`events::EventFeed`]).
    pub fn record_event(&self, e: &Event) -> Result<(), AlertsError> {
        self.store.record_event(e)?;
        if !self.store.takes_events() {
            return Ok(());
        }
        let mut feed = self.event_feed.lock().unwrap_or_else(|p| p.into_inner());
        let (note, count) = feed.on_event(e);
        let mut list = Vec::with_capacity(2);
        if let Some(n) = note {
            list.push(store::Notification::Event {
                key: format!("event:{}:{}-{}", n.after.id, n.change.as_str(), n.at_ms),
                change: n.change,
                before: n.before,
                after: n.after,
            });
        }
        if let Some(c) = count {
            let seq = self
                .count_seq
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            list.push(store::Notification::ObjectCount {
                key: format!(
                    "count:{}:{}:{}-{seq}",
                    c.camera,
                    c.label,
                    chrono::Utc::now().timestamp_millis()
                ),
                camera: c.camera,
                label: c.label.to_string(),
                count: c.count,
            });
        }
        if list.is_empty() {
            return Ok(());
        }
        self.store
            .queue_event_notifications(&list, chrono::Utc::now())?;
        drop(feed);
        self.wake();
        Ok(())
    }

    /// Stores a satellite hotspot; returns true when it was new.
    pub fn record_hotspot(&self, h: &Hotspot) -> Result<bool, AlertsError> {
        Ok(self.store.record_hotspot(h)?)
    }

    /// Records what inference saw (frame results, for the tuning replay and the live
    /// overlay) and camera health changes (camera-health incidents, retained MQTT status).
    pub fn record_frame_result(&self, msg: &StageMsg) -> Result<(), AlertsError> {
        match msg {
            StageMsg::Frame(fr) => {
                self.store.record_frame_result(fr)?;
                self.latest
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(fr.camera.clone(), fr.clone());
                Ok(())
            }
            StageMsg::Health(h) => self.record_camera_status(&h.camera, &h.status, h.at),
            StageMsg::ImageStats(_) | StageMsg::Watermark { .. } => Ok(()),
        }
    }

    /// The latest frame result of a camera (boxes for the live view).
    pub fn latest_result(&self, camera: &str) -> Option<FrameResult> {
        self.latest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(camera)
            .cloned()
    }

    /// Last known status of every camera that reported one.
    pub fn camera_statuses(&self) -> HashMap<CameraId, (CameraStatus, UtcTime)> {
        self.statuses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A camera's stream status changed: queue the retained status for MQTT, open a
    /// camera-health incident when it fails, close it when frames flow again.
    pub fn record_camera_status(
        &self,
        camera: &CameraId,
        status: &CameraStatus,
        at: UtcTime,
    ) -> Result<(), AlertsError> {
        let prev = self
            .statuses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(camera.clone(), (status.clone(), at));
        if prev
            .as_ref()
            .is_some_and(|(p, _)| p.name() == status.name())
        {
            return Ok(());
        }
        self.store.queue_camera_status(camera, status, at)?;
        let _ = self.live.send(LiveUpdate::Camera {
            camera: camera.to_string(),
            status: status.clone(),
            at,
        });
        let failing = match status {
            CameraStatus::Retrying { reason, .. } => Some(format!("Stream failing: {reason}.")),
            CameraStatus::Stopped {
                reason: StopReason::Fatal(m),
            } => Some(format!("Stream stopped: {m}.")),
            _ => None,
        };
        let open = self
            .store
            .open_incident_for(camera, IncidentKind::CameraHealth)?;
        match (failing, open) {
            (Some(note), None) => {
                let inc = Incident {
                    id: format!("camera-health:{camera}:{}", at.timestamp_millis()),
                    kind: IncidentKind::CameraHealth,
                    confidence: IncidentConfidence::Camera,
                    severity: Severity::Medium,
                    state: IncidentState::New,
                    location: None,
                    cameras: vec![camera.clone()],
                    sectors: Vec::new(),
                    events: Vec::new(),
                    hotspots: Vec::new(),
                    evidence: Default::default(),
                    first_seen: at,
                    last_seen: at,
                    revision: 1,
                    notes: vec![note],
                    changes: vec![],
                };
                self.record_incident(&inc, None)?;
            }
            (None, Some(open)) if status.is_running() => {
                let s = self.store.transition(
                    &open.incident.id,
                    IncidentState::Closed,
                    "system",
                    "Camera is delivering frames again.",
                    chrono::Utc::now(),
                )?;
                let _ = self.live.send(live_of(&s.incident, false));
                self.wake();
            }
            _ => {}
        }
        self.wake();
        Ok(())
    }

    /// An operator moves an incident to `to` (stored with who, when and why).
    pub fn transition(
        &self,
        id: &str,
        to: IncidentState,
        actor: &str,
        comment: &str,
    ) -> Result<StoredIncident, AlertsError> {
        let s = self
            .store
            .transition(id, to, actor, comment, chrono::Utc::now())?;
        tracing::info!(incident = %id, to = lifecycle::state_name(to), actor, "Incident state changed.");
        let _ = self.live.send(live_of(&s.incident, false));
        self.wake();
        Ok(s)
    }

    /// An operator comments on an incident.
    pub fn comment(
        &self,
        id: &str,
        actor: &str,
        comment: &str,
    ) -> Result<store::TransitionRecord, AlertsError> {
        Ok(self.store.comment(id, actor, comment, chrono::Utc::now())?)
    }

    /// Runs the escalation check now (the timer does this periodically).
    pub fn escalate_now(&self) -> Result<usize, AlertsError> {
        let list = self
            .store
            .escalate_due(chrono::Utc::now(), self.settings.max_escalations)?;
        for s in &list {
            let _ = self.live.send(live_of(&s.incident, false));
        }
        self.wake();
        Ok(list.len())
    }

    /// Undelivered notifications per sink.
    pub fn backlog(&self) -> Result<Vec<(String, u64)>, AlertsError> {
        Ok(self.store.backlog()?)
    }

    /// Dead letters per sink (every sink listed).
    pub fn dead_letter_counts(&self) -> Result<Vec<(String, u64)>, AlertsError> {
        Ok(self.store.dead_letter_counts()?)
    }

    /// Re-drives dead letters (of `sink`, or all; only `keys` when not empty) and wakes the
    /// sink workers. Returns how many went back to the outbox.
    pub fn redrive(&self, sink: Option<&str>, keys: &[String]) -> Result<usize, AlertsError> {
        let n = self.store.redrive(sink, keys)?;
        if n > 0 {
            tracing::info!(n, sink = sink.unwrap_or("*"), "Dead letters re-driven.");
            self.wake();
        }
        Ok(n)
    }

    /// Delivered and failed counts per sink since start.
    pub fn sink_stats(&self) -> Vec<(String, u64, u64)> {
        use std::sync::atomic::Ordering::Relaxed;
        self.workers
            .iter()
            .map(|w| {
                (
                    w.name.clone(),
                    w.stats.delivered.load(Relaxed),
                    w.stats.failures.load(Relaxed),
                )
            })
            .collect()
    }

    /// Waits until every sink's backlog is empty or `deadline` passes, then stops the
    /// workers and timers. Returns the backlog left (delivered after the next start).
    pub async fn shutdown(&mut self, deadline: Duration) -> Vec<(String, u64)> {
        let end = tokio::time::Instant::now() + deadline;
        let mut left = self.store.backlog().unwrap_or_default();
        while left.iter().any(|(_, n)| *n > 0) && tokio::time::Instant::now() < end {
            self.wake();
            tokio::time::sleep(Duration::from_millis(20)).await;
            left = self.store.backlog().unwrap_or_default();
        }
        let _ = self.shutdown.send(true);
        self.retention.stop();
        for w in std::mem::take(&mut self.workers) {
            let _ = tokio::time::timeout_at(
                end.max(tokio::time::Instant::now() + Duration::from_millis(200)),
                w.task,
            )
            .await;
        }
        for t in std::mem::take(&mut self.timers) {
            t.abort();
        }
        for t in std::mem::take(&mut self.availability) {
            let _ = tokio::time::timeout(Duration::from_secs(3), t).await;
        }
        left
    }
}

impl Drop for Alerts {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        self.retention.stop();
    }
}

fn live_of(inc: &Incident, created: bool) -> LiveUpdate {
    LiveUpdate::Incident {
        id: inc.id.clone(),
        revision: inc.revision,
        kind: inc.kind,
        state: inc.state,
        severity: inc.severity,
        created,
    }
}
