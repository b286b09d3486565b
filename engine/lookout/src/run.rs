//! `lookout run`: wires the stages together and owns signals, metrics and shutdown. Each
//! stage's loop lives in its crate behind a handle (`lookout_rules::stage`,
//! `lookout_fusion::stage`, `lookout_alerts::stage`).
//!
//! ```text
//! ingest ─▶ FrameHub ─▶ inference workers ─▶ [StageMsg] ─▶ RulesStage ─▶ [FusionMsg] ─▶ FusionStage ─▶ [Incident] ─▶ IncidentsStage
//!    └─ CameraHealth ─▶ health forwarder ────▶ [StageMsg]              hotspot feed ─▶ [Hotspot] ─┘
//!                        shadow models ──try_send──▶ [StageMsg] ─▶ rules-shadow ─▶ store (shadow_events)
//! ```
//!
//! Every `[...]` is a bounded crossbeam channel on which senders block: after inference
//! nothing is dropped. Shutdown: stop flag → ingest stops sources → hub closes → workers
//! drain and drop their senders → each downstream thread exits when its input closes.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use crossbeam_channel::bounded;
use lookout_alerts::Alerts;
use lookout_config::Config;
use lookout_core::{
    CameraHealth, CameraId, Event, FrameHub, FrameRing, FusionMsg, Hotspot, Incident, StageMsg,
};
use std::collections::HashMap;
use tracing::{error, info, warn};

/// Options of `lookout run` beyond the config file.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The config file, if not the embedded default (watched for rules hot reload).
    pub config_path: Option<PathBuf>,
}

/// Runs the engine until Ctrl-C/SIGTERM or `engine.run_for_s`.
pub fn run(mut cfg: Config, opts: RunOptions) -> anyhow::Result<()> {
    // Cluster mode: the role's own wiring (`all` is this single process).
    match cfg.cluster.role {
        lookout_config::cluster::Role::All => {}
        lookout_config::cluster::Role::Edge => return crate::cluster_edge::run(cfg, opts),
        lookout_config::cluster::Role::Hub => return crate::cluster_hub::run(cfg, opts),
    }
    let started = Instant::now();
    let data_dir = cfg.data_dir();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;

    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                // Second signal: the operator insists.
                std::process::exit(130);
            }
        })
        .context("cannot install the signal handler")?;
    }

    let (health_tx, health_rx) = bounded::<CameraHealth>(256);
    let (results_tx, results_rx) = bounded::<StageMsg>(cfg.inference.results_capacity);
    let (events_tx, events_rx) = bounded::<FusionMsg>(1024);
    let (hotspots_tx, hotspots_rx) = bounded::<Hotspot>(4096);
    let (incidents_tx, incidents_rx) = bounded::<Incident>(1024);

    // I/O runtime: sinks with retries, escalation timers, the HTTP server, live updates.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("lookout-io")
        .enable_all()
        .build()
        .context("cannot start the I/O runtime")?;
    let alerts = Arc::new(
        Alerts::open(&cfg, rt.handle())
            .with_context(|| format!("cannot open the store in {}", data_dir.display()))?,
    );

    // The running rules: the file's [rules] plus the latest API overlay stored in SQLite
    // (re-applied here at every start and by the watcher at every file reload).
    let mut state = lookout_server::ServerState::new(alerts.clone(), cfg.clone());
    match state.load_overlay() {
        Ok(Some(s)) if s.applied => info!(
            version = s.version,
            author = %s.author,
            "Running the config file's rules with overlay v{} (`lookout config diff` lists it).",
            s.version
        ),
        Ok(_) => {}
        Err(e) => {
            error!(error = %e, "Cannot read the config overlays; running the config file's rules.")
        }
    }
    cfg.rules = state.config().rules;

    // The model slots the API promoted (and shadows it started), re-applied over the file.
    match lookout_server::models::latest(alerts.store()) {
        Ok(Some((rec, ov))) => {
            let problems = ov.apply_to_config(&mut cfg, |p| {
                lookout_infer::Model::load(p)
                    .map(|m| m.manifest.sha256.clone())
                    .map_err(|e| e.to_string())
            });
            for p in &problems {
                error!(version = rec.version, problem = %p, "A model change of the API cannot be re-applied; the config file's model runs.");
            }
            info!(
                version = rec.version,
                author = %rec.author,
                "Model slots as of models record v{} (`lookout config diff` lists it).",
                rec.version
            );
        }
        Ok(None) => {}
        Err(e) => {
            error!(error = %e, "Cannot read the model changes; running the config file's models.")
        }
    }

    // The cameras the API added, edited or disabled: the latest cameras record, applied
    // over the file's [[cameras]] by `load_overlay` above (before the rules that may name
    // them; a record that no longer validates is logged with its version and not applied).
    // The frame hub is made for these cameras.
    cfg.cameras = state.config().cameras;
    let camera_ids: Vec<CameraId> = cfg
        .enabled_cameras()
        .map(|c| c.id.as_str().into())
        .collect();
    let hub = FrameHub::new(camera_ids.clone());

    // Inference first, so no frame waits for a missing consumer. Shadow results go to
    // their own rules stage (`try_send`: never waited for).
    let (shadow_tx, shadow_rx) = bounded::<StageMsg>(cfg.inference.results_capacity);
    let inference = lookout_infer::service::InferenceService::start_with_shadow(
        &cfg,
        hub.clone(),
        results_tx.clone(),
        Some(shadow_tx),
    )
    .context("cannot start inference")?;
    let switch = inference.switch();
    let ingest = Arc::new(
        lookout_ingest::Ingest::start(&cfg, hub.clone(), health_tx)
            .context("cannot start ingest")?,
    );
    info!(cameras = camera_ids.len(), "Ingest and inference started.");
    let rings: HashMap<CameraId, Arc<FrameRing>> = ingest.rings();

    // Health changes travel in-band with frame results.
    let health_fwd = spawn("health-forward", {
        let results_tx = results_tx.clone();
        move || {
            for h in health_rx {
                if results_tx.send(StageMsg::Health(h)).is_err() {
                    break;
                }
            }
        }
    })?;
    drop(results_tx);

    let rules = lookout_rules::stage::RulesStage::spawn(
        &cfg.rules,
        lookout_rules::stage::RulesLogs {
            detections: cfg
                .engine
                .detections_log
                .then(|| data_dir.join("detections.jsonl")),
            events: Some(data_dir.join("events.jsonl")),
            recording: lookout_rules::Recorder::path_from_config(&cfg.rules.record, &data_dir),
            rotation: alerts.log_rotation(),
        },
        results_rx,
        events_tx,
        StoreTap(alerts.clone()),
    )
    .context("cannot spawn the rules thread")?;
    // The shadow models' rules: the same rules, another engine; events to the store only.
    let shadow_rules = lookout_rules::stage::RulesStage::spawn_detached(
        "rules-shadow",
        &cfg.rules,
        shadow_rx,
        ShadowTap {
            alerts: alerts.clone(),
            switch: switch.clone(),
            person_class: cfg.rules.person_class.clone(),
        },
    )
    .context("cannot spawn the shadow rules thread")?;
    // API changes (overlays, masks, tuning) and file reloads reach the rules thread through
    // its control, and the shadow rules follow.
    // Inference's zone crops are built from `[rules.cameras.ID] zones`: a zone drawn in the
    // UI (a rules change) rebuilds the plans of the cameras that crop zones.
    let zone_crops: lookout_rules::stage::RulesObserver = {
        let switch = switch.clone();
        let config = state.config.clone();
        let hub = hub.clone();
        Arc::new(move |rules: &lookout_config::rules::RulesConfig| {
            let mut cfg = config.read().unwrap_or_else(|e| e.into_inner()).clone();
            if cfg.inference.camera_zones.is_empty() {
                return;
            }
            cfg.rules = rules.clone();
            for cam in hub.cameras() {
                if cfg.inference.camera_zones.contains_key(cam.as_ref()) {
                    if let Err(e) = switch.set_camera(&cfg, &cam, false) {
                        warn!(camera = %cam, error = %e, "Cannot rebuild the camera's zone crops after a rules change; the previous ones stay.");
                    }
                }
            }
        })
    };
    state.rules = Some(
        rules
            .control()
            .with_follower(&shadow_rules.control())
            .with_observer(zone_crops),
    );
    state.models = Some(Arc::new(EngineModels {
        switch: switch.clone(),
        base_dir: cfg.base_dir.clone(),
    }));

    // Rules hot reload: the watcher hands each new [rules] section of the file to the
    // overlay layer, which re-applies the API overlay over it and reloads the rules thread.
    let watcher = match &opts.config_path {
        Some(path) => Some(
            lookout_rules::watch_config_file(path.clone(), {
                let state = state.clone();
                move |res| match res {
                    Ok(rules) => state.file_rules_changed(rules),
                    Err(e) => error!(error = %e, "Rejected the changed rules configuration; keeping the running one."),
                }
            })
            .context("cannot watch the config file")?,
        ),
        None => None,
    };

    let (feed_stop_tx, feed_stop_rx) = bounded::<()>(0);
    let feed = lookout_fusion::feed::HotspotFeed::spawn(&cfg, hotspots_tx, feed_stop_rx)
        .context("cannot start the hotspot feed")?;

    let fusion = lookout_fusion::stage::FusionStage::spawn(
        &cfg,
        events_rx,
        hotspots_rx,
        incidents_tx,
        StoreTap(alerts.clone()),
    )
    .context("cannot spawn the fusion thread")?;

    let incidents = lookout_alerts::stage::IncidentsStage::spawn_with_clips(
        alerts.clone(),
        rings.clone(),
        ingest.clips().map(|c| c as Arc<dyn lookout_core::ClipSink>),
        Some(data_dir.join("incidents.jsonl")),
        incidents_rx,
    )
    .context("cannot spawn the incidents thread")?;

    // The operator's desk.
    for (k, v) in &rings {
        state.rings.insert(k.to_string(), v.clone());
    }
    // The map draws the running cameras (changed live through the API).
    state.geojson_extra = Some(Arc::new({
        let config = state.config.clone();
        move || lookout_fusion::map_cameras(&config.read().unwrap_or_else(|e| e.into_inner()))
    }));
    // Cameras changed live: ingest, inference, fusion and the live view follow.
    state.cameras = Some(Arc::new(EngineCameras {
        ingest: ingest.clone(),
        switch: switch.clone(),
        fusion: fusion.cameras(),
        rings: state.rings.clone(),
        metrics: state.metrics.clone(),
        config: state.config.clone(),
        deadline: Duration::from_secs_f64(cfg.engine.shutdown_deadline_s).mul_f64(0.5),
        lane: std::sync::Mutex::new(()),
    }));
    let metrics = state.metrics.clone();
    register_metrics(&metrics, &inference);
    let server = if cfg.server.enabled {
        let server = rt
            .block_on(lookout_server::start(
                state,
                lookout_server::configured_addr(&cfg),
            ))
            .context("cannot start the web server")?;
        let url = server.url();
        info!(url = %url, "Operator UI ready.");
        println!("Lookout is running: open {url}");
        Some(server)
    } else {
        drop(state);
        println!("Lookout is running (web server disabled).");
        None
    };

    // Wait for a signal or the configured run time.
    let run_for = cfg.engine.run_for_s.map(Duration::from_secs_f64);
    let mut last_metrics = Instant::now();
    let mut last_analysed: HashMap<String, u64> = HashMap::new();
    while !stop.load(Ordering::SeqCst) {
        if run_for.is_some_and(|d| started.elapsed() >= d) {
            info!("Configured run time reached; stopping.");
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        if last_metrics.elapsed() >= Duration::from_secs(1) {
            let dt = last_metrics.elapsed().as_secs_f64();
            last_metrics = Instant::now();
            update_metrics(
                &metrics,
                &ingest,
                &inference,
                &feed,
                &hub,
                dt,
                &mut last_analysed,
            );
        }
    }

    // Shutdown, bounded by a watchdog.
    let deadline = Duration::from_secs_f64(cfg.engine.shutdown_deadline_s);
    spawn_watchdog(deadline);
    info!(
        deadline_s = deadline.as_secs_f64(),
        "Shutting down: stopping sources."
    );
    ingest.shutdown(deadline.mul_f64(0.5));
    hub.close();
    inference.join();
    drop(feed_stop_tx);
    feed.join();
    // Upstream first: each stage exits when its input closes.
    for (name, joined) in [
        ("health-forward", health_fwd.join()),
        ("rules", rules.join()),
        ("rules-shadow", shadow_rules.join()),
        ("fusion", fusion.join()),
        ("incidents", incidents.join()),
    ] {
        if joined.is_err() {
            error!(thread = name, "A stage thread panicked.");
        }
    }
    // The watcher holds a handle on the server state (and so on the alerts stage).
    drop(watcher);
    if let Some(server) = server {
        rt.block_on(server.stop());
    }
    // The server's tasks release their handles as they finish; wait briefly for that.
    let mut alerts = alerts;
    for _ in 0..20 {
        match Arc::try_unwrap(alerts) {
            Ok(a) => {
                alerts = Arc::new(a);
                break;
            }
            Err(shared) => {
                alerts = shared;
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    match Arc::try_unwrap(alerts) {
        Ok(mut alerts) => {
            let left = rt.block_on(alerts.shutdown(deadline.mul_f64(0.3)));
            for (sink, n) in left.iter().filter(|(_, n)| *n > 0) {
                warn!(sink = %sink, backlog = n, "Sink backlog kept in the outbox for the next start.");
            }
        }
        Err(_) => warn!("The alerts stage is still shared at shutdown; its outbox stays on disk."),
    }
    rt.shutdown_timeout(Duration::from_secs(1));
    info!(elapsed_s = started.elapsed().as_secs_f64(), "Stopped.");
    Ok(())
}

pub(crate) fn spawn(
    name: &str,
    f: impl FnOnce() + Send + 'static,
) -> anyhow::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(f)
        .with_context(|| format!("cannot spawn the {name} thread"))
}

pub(crate) fn spawn_watchdog(deadline: Duration) {
    let _ = std::thread::Builder::new()
        .name("shutdown-watchdog".into())
        .spawn(move || {
            std::thread::sleep(deadline);
            eprintln!(
                "Shutdown deadline of {:.1} s passed; exiting.",
                deadline.as_secs_f64()
            );
            std::process::exit(3);
        });
}

/// The engine side of cameras changed through the API: makes ingest, inference, fusion
/// and the live view match the running camera list, touching only the cameras that
/// changed.
struct EngineCameras {
    ingest: Arc<lookout_ingest::Ingest>,
    switch: lookout_infer::service::ModelSwitch,
    fusion: lookout_fusion::stage::FusionCameras,
    rings: lookout_server::Rings,
    /// A stopped camera's gauges go to 0 (its counters keep their totals).
    metrics: Arc<lookout_server::Metrics>,
    /// The running configuration (models, tiles, zones of the plans).
    config: Arc<std::sync::RwLock<lookout_config::Config>>,
    /// How long a camera's pipeline may take to stop.
    deadline: Duration,
    /// One change at a time.
    lane: std::sync::Mutex<()>,
}

impl lookout_server::cameras::CameraControl for EngineCameras {
    fn apply(
        &self,
        cameras: &[lookout_config::cameras::CameraConfig],
    ) -> Result<lookout_server::cameras::CameraApply, String> {
        let _one = self.lane.lock().unwrap_or_else(|e| e.into_inner());
        let mut cfg = self
            .config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        cfg.cameras = cameras.to_vec();
        let change =
            lookout_server::cameras::CameraApply::between(&self.ingest.running_configs(), cameras);
        let mut report = lookout_server::cameras::CameraApply::default();
        let mut errors = Vec::new();
        // Stop first: what is gone or disabled.
        for id in &change.stopped {
            self.ingest.stop_camera(id, self.deadline);
            if let Err(e) = self.switch.remove_camera(id) {
                errors.push(format!("camera {id:?}: {e}"));
            }
            self.rings.remove(id);
            let m = self.metrics.camera(id);
            m.up.store(0, std::sync::atomic::Ordering::Relaxed);
            m.set_fps(0.0);
            self.fusion.send(lookout_fusion::stage::CameraChange {
                id: id.clone(),
                config: None,
            });
            report.stopped.push(id.clone());
        }
        // Then start what is new or changed; the others are not touched.
        let restarts = change.restarted.iter().map(|id| (id, true));
        for (id, restart) in change.started.iter().map(|id| (id, false)).chain(restarts) {
            let Some(cam) = cfg.camera(id) else {
                continue;
            };
            let cid: CameraId = id.as_str().into();
            // The plan first, so the camera's first frame finds it.
            if let Err(e) = self.switch.set_camera(&cfg, &cid, restart) {
                errors.push(format!("camera {id:?}: {e}"));
                continue;
            }
            match self.ingest.start_camera(cam, self.deadline) {
                Ok(_) => {
                    if let Some(ring) = self.ingest.ring(id) {
                        self.rings.insert(id.clone(), ring);
                    }
                    self.fusion.send(lookout_fusion::stage::CameraChange {
                        id: id.clone(),
                        config: Some(cam.clone()),
                    });
                    if restart {
                        report.restarted.push(id.clone());
                    } else {
                        report.started.push(id.clone());
                    }
                }
                Err(e) => {
                    let _ = self.switch.remove_camera(id);
                    errors.push(e.to_string());
                }
            }
        }
        info!(started = ?report.started, stopped = ?report.stopped, restarted = ?report.restarted, failed = errors.len(), "Cameras changed live.");
        if errors.is_empty() {
            Ok(report)
        } else {
            Err(format!(
                "{} (the other changes were applied: started {:?}, stopped {:?}, restarted {:?})",
                errors.join("; "),
                report.started,
                report.stopped,
                report.restarted
            ))
        }
    }
}

/// The store's view of the rules and fusion stages: frame results (for the tuning view),
/// events and hotspots.
struct StoreTap(Arc<Alerts>);

impl lookout_rules::stage::RulesTap for StoreTap {
    fn message(&mut self, msg: &StageMsg) {
        if let Err(e) = self.0.record_frame_result(msg) {
            warn!(error = %e, "Cannot store a frame result.");
        }
    }

    fn event(&mut self, ev: &Event) {
        if let Err(e) = self.0.record_event(ev) {
            warn!(error = %e, "Cannot store an event.");
        }
    }
}

impl lookout_fusion::stage::FusionTap for StoreTap {
    fn hotspots(&mut self, batch: &[Hotspot]) {
        for h in batch {
            if let Err(e) = self.0.record_hotspot(h) {
                warn!(error = %e, "Cannot store a hotspot.");
            }
        }
    }
}

/// Registers the inference stage's histograms (observed by its workers) and the build.
fn register_metrics(
    metrics: &lookout_server::Metrics,
    inference: &lookout_infer::service::InferenceService,
) {
    let h = inference.histograms();
    for (model, hist) in &h.model_latency {
        metrics.register_histogram(
            "lookout_inference_latency_seconds",
            "Seconds a model's session spent on one frame group's jobs (all its batches).",
            &[("model", model)],
            hist.clone(),
        );
    }
    for (model, hist) in &h.batch_size {
        metrics.register_histogram(
            "lookout_inference_batch_size",
            "Images per session run, per model.",
            &[("model", model)],
            hist.clone(),
        );
    }
    metrics.register_histogram(
        "lookout_inference_group_latency_seconds",
        "Seconds from a frame group taken from the hub to its last result sent.",
        &[],
        h.group_latency,
    );
    let providers = inference.providers().join(",");
    metrics.set_build_info(&[
        ("version", env!("CARGO_PKG_VERSION")),
        (
            "profile",
            if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
        ),
        ("providers", &providers),
    ]);
}

/// Copies the stages' running totals and states into the registry (every second).
fn update_metrics(
    metrics: &lookout_server::Metrics,
    ingest: &lookout_ingest::Ingest,
    inference: &lookout_infer::service::InferenceService,
    feed: &lookout_fusion::feed::HotspotFeed,
    hub: &FrameHub,
    dt: f64,
    last_analysed: &mut HashMap<String, u64>,
) {
    use std::sync::atomic::Ordering::Relaxed;
    let inf = inference.stats();
    for s in ingest.stats() {
        let m = metrics.camera(&s.camera);
        m.frames_in.store(s.frames_in, Relaxed);
        m.up.store(u64::from(s.status.is_running()), Relaxed);
        m.set_dropped("fps_cap", s.frames_dropped_fps);
        m.set_dropped("stale", s.frames_dropped_hub);
        m.set_dropped("hub_closed", s.frames_publish_failed);
        m.reconnects.store(s.reconnects, Relaxed);
        let cam = inf.cameras.get(s.camera.as_ref());
        m.set_dropped("ptz_moving", cam.map_or(0, |c| c.skipped_moving));
        m.set_dropped("reordered", cam.map_or(0, |c| c.reordered));
        let analysed = cam.map_or(0, |c| c.analysed);
        m.frames_analysed.store(analysed, Relaxed);
        m.zone_crops
            .store(cam.map_or(0, |c| u64::from(c.zone_crops)), Relaxed);
        let prev = last_analysed
            .insert(s.camera.to_string(), analysed)
            .unwrap_or(analysed);
        m.set_fps(analysed.saturating_sub(prev) as f64 / dt.max(1e-3));
    }
    metrics.set_clips(ingest.clips().map(|c| {
        let s = c.stats();
        lookout_server::metrics::ClipMetrics {
            requested: s.requested,
            written: s.written,
            reencoded: s.reencoded,
            failed: s.failed,
            dropped: lookout_ingest::clips::DropReason::ALL
                .iter()
                .zip(s.dropped_by)
                .map(|(r, n)| (r.as_str().to_string(), n))
                .collect(),
            bytes: s.bytes,
        }
    }));
    metrics.set_firms_feeds(
        feed.stats()
            .feeds
            .into_iter()
            .map(|f| lookout_server::metrics::FirmsFeedMetrics {
                feed: f.feed,
                source: f.source,
                successes: f.successes,
                failures: f.failures,
            })
            .collect(),
    );
    metrics
        .queue("frame_hub_pending")
        .store(hub.pending() as i64, Relaxed);
}

/// The shadow rules stage's view of the store: would-be events, marked with the slot and
/// the sha256 of the shadow that raised them. Camera health events (the shadow gets no
/// health or image statistics) and kinds no running shadow's classes raise are not kept.
struct ShadowTap {
    alerts: Arc<Alerts>,
    switch: lookout_infer::service::ModelSwitch,
    person_class: String,
}

impl lookout_rules::stage::RulesTap for ShadowTap {
    fn message(&mut self, _: &StageMsg) {}

    fn event(&mut self, ev: &Event) {
        for slot in self.switch.status() {
            let Some(shadow) = &slot.shadow else {
                continue;
            };
            let classes: Vec<String> = slot
                .live
                .class_names
                .iter()
                .map(|c| c.to_string())
                .collect();
            let (kinds, _) = lookout_server::models::slot_kinds(&classes, &self.person_class);
            if kinds.contains(&ev.kind.as_str()) {
                if let Err(e) =
                    self.alerts
                        .store()
                        .record_shadow_event(&slot.name, &shadow.manifest.sha256, ev)
                {
                    warn!(error = %e, "Cannot store a shadow event.");
                }
                return;
            }
        }
    }
}

/// The server's handle on the model slots: the inference service's switch.
struct EngineModels {
    switch: lookout_infer::service::ModelSwitch,
    base_dir: PathBuf,
}

fn model_info(m: &lookout_infer::Model) -> lookout_server::models::ModelInfo {
    lookout_server::models::ModelInfo {
        file: lookout_server::models::ModelRef {
            manifest: m.manifest_path.display().to_string(),
            sha256: m.manifest.sha256.clone(),
        },
        name: m.manifest.name.clone(),
        licence: m.manifest.licence.clone(),
        classes: m.class_names.iter().map(|c| c.to_string()).collect(),
    }
}

impl EngineModels {
    fn load(
        &self,
        name: &str,
        manifest: &std::path::Path,
    ) -> Result<Arc<lookout_infer::Model>, lookout_server::models::ModelError> {
        use lookout_server::models::ModelError;
        if !self.switch.status().iter().any(|s| s.name == name) {
            return Err(ModelError::NoSlot(name.to_string()));
        }
        // Absolute, so the audit trail and a restart name the same file.
        let path = if manifest.is_absolute() {
            manifest.to_path_buf()
        } else {
            self.base_dir.join(manifest)
        };
        let path = std::fs::canonicalize(&path).unwrap_or(path);
        if !path.is_file() {
            return Err(ModelError::Invalid(format!(
                "{}: not a manifest file",
                path.display()
            )));
        }
        self.switch
            .check(name, &path)
            .map_err(|e| ModelError::Invalid(e.to_string()))
    }
}

impl lookout_server::models::ModelControl for EngineModels {
    fn slots(&self) -> Vec<lookout_server::models::SlotInfo> {
        self.switch
            .status()
            .into_iter()
            .map(|s| lookout_server::models::SlotInfo {
                live: model_info(&s.live),
                shadow: s.shadow.as_deref().map(model_info),
                shadow_frames: s.shadow_stats.frames,
                shadow_dropped_saturated: s.shadow_stats.dropped_saturated,
                shadow_dropped_queue_full: s.shadow_stats.dropped_queue_full,
                name: s.name,
            })
            .collect()
    }

    fn set_live(
        &self,
        name: &str,
        manifest: &std::path::Path,
    ) -> Result<lookout_server::models::ModelInfo, lookout_server::models::ModelError> {
        let m = self.load(name, manifest)?;
        let info = model_info(&m);
        let prev = self
            .switch
            .set_live(name, m)
            .map_err(|e| lookout_server::models::ModelError::Invalid(e.to_string()))?;
        info!(model = name, from = %prev.manifest.sha256, to = %info.file.sha256, manifest = %info.file.manifest, "Live model changed through the API.");
        Ok(info)
    }

    fn set_shadow(
        &self,
        name: &str,
        manifest: Option<&std::path::Path>,
    ) -> Result<Option<lookout_server::models::ModelInfo>, lookout_server::models::ModelError> {
        let m = match manifest {
            Some(p) => Some(self.load(name, p)?),
            None => None,
        };
        let info = m.as_deref().map(model_info);
        self.switch
            .set_shadow(name, m)
            .map_err(|e| lookout_server::models::ModelError::Invalid(e.to_string()))?;
        info!(model = name, shadow = ?info.as_ref().map(|i| &i.file.sha256), "Shadow model changed through the API.");
        Ok(info)
    }
}
