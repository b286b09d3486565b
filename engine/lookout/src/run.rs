//! `lookout run`: wires the stages together and owns shutdown.
//!
//! ```text
//! ingest ─▶ FrameHub ─▶ inference workers ─▶ [results] ─▶ rules thread ─▶ [events] ─▶ fusion thread ─▶ [incidents] ─▶ alerts
//!    └─ CameraHealth ─▶ health forwarder ────▶ [results]                 hotspot feed ─▶ [hotspots] ─┘
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
use crossbeam_channel::{bounded, select, Receiver, Sender};
use lookout_alerts::Alerts;
use lookout_config::Config;
use lookout_core::{
    CameraHealth, CameraId, Event, Frame, FrameHub, FrameRing, Hotspot, Incident, StageMsg,
};
use std::collections::{BTreeMap, HashMap};
use tracing::{error, info, warn};

/// Options of `lookout run` beyond the config file.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The config file, if not the embedded default (watched for rules hot reload).
    pub config_path: Option<PathBuf>,
}

/// Runs the engine until Ctrl-C/SIGTERM or `engine.run_for_s`.
pub fn run(mut cfg: Config, opts: RunOptions) -> anyhow::Result<()> {
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

    let camera_ids: Vec<CameraId> = cfg
        .enabled_cameras()
        .map(|c| c.id.as_str().into())
        .collect();
    let hub = FrameHub::new(camera_ids.clone());
    let (health_tx, health_rx) = bounded::<CameraHealth>(256);
    let (results_tx, results_rx) = bounded::<StageMsg>(cfg.inference.results_capacity);
    let (events_tx, events_rx) = bounded::<ToFusion>(1024);
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
    let (reload_tx, reload_rx) = bounded::<lookout_config::rules::RulesConfig>(4);
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
    state.apply_rules = Some(Arc::new({
        let reload_tx = reload_tx.clone();
        move |rules: &lookout_config::rules::RulesConfig| {
            // Compile strictly first so a bad change is refused with its reason; the rules
            // thread then swaps it in between two messages.
            lookout_rules::RulesEngine::try_new(rules).map_err(|e| e.to_string())?;
            reload_tx
                .send_timeout(rules.clone(), Duration::from_secs(2))
                .map_err(|_| "the rules stage is not accepting changes".to_string())
        }
    }));
    // Held until the end: the rules thread selects on this channel, which must not
    // disconnect while it runs (even with the web server disabled and no file watched).
    let _reload_keepalive = reload_tx;

    // Inference first, so no frame waits for a missing consumer.
    let inference =
        lookout_infer::service::InferenceService::start(&cfg, hub.clone(), results_tx.clone())
            .context("cannot start inference")?;
    let ingest = lookout_ingest::Ingest::start(&cfg, hub.clone(), health_tx)
        .context("cannot start ingest")?;
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

    let rules_thread = spawn("rules", {
        let cfg = cfg.clone();
        let alerts = alerts.clone();
        let record_path = data_dir.join("detections.jsonl");
        let events_path = data_dir.join("events.jsonl");
        move || {
            rules_loop(
                &cfg,
                &alerts,
                record_path,
                events_path,
                results_rx,
                reload_rx,
                events_tx,
            )
        }
    })?;

    let (feed_stop_tx, feed_stop_rx) = bounded::<()>(0);
    let feed = lookout_fusion::feed::HotspotFeed::spawn(&cfg, hotspots_tx, feed_stop_rx)
        .context("cannot start the hotspot feed")?;

    let fusion_thread = spawn("fusion", {
        let cfg = cfg.clone();
        let alerts = alerts.clone();
        move || fusion_loop(&cfg, &alerts, events_rx, hotspots_rx, incidents_tx)
    })?;

    let sink_thread = spawn("incidents", {
        let path = data_dir.join("incidents.jsonl");
        let alerts = alerts.clone();
        let rings = rings.clone();
        move || incidents_loop(path, &alerts, &rings, incidents_rx)
    })?;

    // The operator's desk.
    state.rings = rings
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    state.replay = Some(Arc::new(lookout_rules::replay));
    state.geojson_extra = Some(Arc::new({
        let cfg = cfg.clone();
        move || match lookout_fusion::geojson(&cfg, &[], &[]).get("features") {
            Some(serde_json::Value::Array(f)) => f.clone(),
            _ => Vec::new(),
        }
    }));
    let metrics = state.metrics.clone();
    let server = if cfg.server.enabled {
        let server = rt
            .block_on(lookout_server::start(
                state,
                lookout_server::configured_addr(&cfg),
            ))
            .context("cannot start the web server")?;
        let url = format!("http://{}/", server.addr);
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
            update_metrics(&metrics, &ingest, &inference, &hub, dt, &mut last_analysed);
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
    for (name, h) in [
        ("health-forward", health_fwd),
        ("rules", rules_thread),
        ("fusion", fusion_thread),
        ("incidents", sink_thread),
    ] {
        if h.join().is_err() {
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

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> anyhow::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(f)
        .with_context(|| format!("cannot spawn the {name} thread"))
}

fn spawn_watchdog(deadline: Duration) {
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

fn rules_loop(
    cfg: &Config,
    alerts: &Alerts,
    record_path: PathBuf,
    events_path: PathBuf,
    results: Receiver<StageMsg>,
    reload: Receiver<lookout_config::rules::RulesConfig>,
    events_tx: Sender<ToFusion>,
) {
    let mut engine = lookout_rules::RulesEngine::new(&cfg.rules);
    let mut recorder = if cfg.engine.detections_log {
        match lookout_rules::Recorder::open(&record_path) {
            Ok(r) => Some(r),
            Err(e) => {
                error!(error = %e, "Cannot open the detections log; running without it.");
                None
            }
        }
    } else {
        None
    };
    let mut events_log = JsonlWriter::open(&events_path);
    let mut out = Vec::new();
    let mut clock_sent: HashMap<CameraId, lookout_core::UtcTime> = HashMap::new();
    loop {
        let msg = select! {
            recv(results) -> m => match m { Ok(m) => m, Err(_) => break },
            recv(reload) -> r => {
                if let Ok(new) = r {
                    match engine.apply_config(new) {
                        Ok(()) => info!("Applied the new rules configuration."),
                        Err(e) => error!(error = %e, "Rejected the new rules configuration; keeping the running one."),
                    }
                }
                continue;
            }
        };
        if let Some(rec) = recorder.as_mut() {
            if let Err(e) = rec.record(&msg) {
                warn!(error = %e, "Cannot write the detections log.");
            }
        }
        if let Err(e) = alerts.record_frame_result(&msg) {
            warn!(error = %e, "Cannot store a frame result.");
        }
        engine.handle(&msg, &mut out);
        for ev in out.drain(..) {
            events_log.write(&ev);
            if let Err(e) = alerts.record_event(&ev) {
                warn!(error = %e, "Cannot store an event.");
            }
            if events_tx.send(ToFusion::Event(ev)).is_err() {
                return;
            }
        }
        // Each camera's event time, from every analysed frame (empty ones too), so a quiet
        // camera's incidents still close; sent after that frame's events, at most 1/s.
        if let StageMsg::Frame(fr) = &msg {
            let due = clock_sent
                .get(&fr.camera)
                .is_none_or(|t| fr.captured_at >= *t + chrono::Duration::seconds(1));
            if due {
                clock_sent.insert(fr.camera.clone(), fr.captured_at);
                let clock = ToFusion::Clock(fr.camera.clone(), fr.captured_at);
                if events_tx.send(clock).is_err() {
                    return;
                }
            }
        }
    }
    if let Some(mut rec) = recorder {
        let _ = rec.flush();
    }
}

/// What the rules thread sends the fusion thread, in order.
enum ToFusion {
    /// An event.
    Event(Event),
    /// A camera's event time advanced to this capture time.
    Clock(CameraId, lookout_core::UtcTime),
}

fn advance_clock(
    clocks: &mut BTreeMap<CameraId, lookout_core::UtcTime>,
    camera: &CameraId,
    t: lookout_core::UtcTime,
) {
    match clocks.get_mut(camera) {
        Some(c) => *c = (*c).max(t),
        None => {
            clocks.insert(camera.clone(), t);
        }
    }
}

fn fusion_loop(
    cfg: &Config,
    alerts: &Alerts,
    events: Receiver<ToFusion>,
    hotspots: Receiver<Hotspot>,
    incidents_tx: Sender<Incident>,
) {
    let mut fusion = match lookout_fusion::Fusion::new(cfg) {
        Ok(f) => f,
        Err(e) => {
            error!(error = %e, "Cannot start fusion; events will not become incidents.");
            for _ in events {}
            return;
        }
    };
    let mut out = Vec::new();
    let mut hotspots = hotspots;
    let mut batch: Vec<Hotspot> = Vec::new();
    // Event time, per camera: the newest capture time of its analysed frames and events.
    // Fusion joins and closes by it, never by the wall clock, so footage replayed "as of" a
    // past date fuses like live footage, beside live cameras, without one clock closing the
    // other's incidents. Handed to fusion once a tick (it ignores a clock that did not move).
    let mut clocks: BTreeMap<CameraId, lookout_core::UtcTime> = BTreeMap::new();
    let tick = crossbeam_channel::tick(Duration::from_secs(1));
    loop {
        select! {
            recv(events) -> e => match e {
                Ok(ToFusion::Event(ev)) => {
                    advance_clock(&mut clocks, &ev.camera, ev.last_seen);
                    fusion.on_event(&ev, &mut out)
                }
                Ok(ToFusion::Clock(camera, t)) => advance_clock(&mut clocks, &camera, t),
                // Rules has stopped: the engine is shutting down.
                Err(_) => break,
            },
            recv(hotspots) -> h => match h {
                Ok(h) => {
                    // A satellite pass arrives as many rows: fuse them as one batch, so an
                    // incident gets one revision per pass.
                    batch.push(h);
                    batch.extend(hotspots.try_iter());
                    for h in &batch {
                        if let Err(e) = alerts.record_hotspot(h) {
                            warn!(error = %e, "Cannot store a hotspot.");
                        }
                    }
                    fusion.on_hotspots(batch.drain(..), &mut out);
                }
                // Every hotspot source has finished; keep fusing events.
                Err(_) => hotspots = crossbeam_channel::never(),
            },
            recv(tick) -> _ => {
                for (camera, t) in &clocks {
                    fusion.on_camera_watermark(camera, *t, &mut out);
                }
            }
        }
        for inc in out.drain(..) {
            if incidents_tx.send(inc).is_err() {
                return;
            }
        }
    }
}

/// An append-only JSON-lines log that reports (once) when it cannot be written and never
/// stops the stage that writes it.
struct JsonlWriter {
    file: Option<std::io::BufWriter<std::fs::File>>,
    path: PathBuf,
}

impl JsonlWriter {
    fn open(path: &std::path::Path) -> Self {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path);
        let file = match file {
            Ok(f) => Some(std::io::BufWriter::new(f)),
            Err(e) => {
                error!(path = %path.display(), error = %e, "Cannot open a log file; continuing without it.");
                None
            }
        };
        JsonlWriter {
            file,
            path: path.to_path_buf(),
        }
    }

    fn write<T: serde::Serialize>(&mut self, value: &T) {
        use std::io::Write;
        let Some(f) = self.file.as_mut() else { return };
        let res = serde_json::to_writer(&mut *f, value)
            .map_err(std::io::Error::other)
            .and_then(|_| f.write_all(b"\n"))
            .and_then(|_| f.flush());
        if let Err(e) = res {
            error!(path = %self.path.display(), error = %e, "Cannot write a log file; continuing without it.");
            self.file = None;
        }
    }
}

fn incidents_loop(
    path: PathBuf,
    alerts: &Alerts,
    rings: &HashMap<CameraId, Arc<FrameRing>>,
    incidents: Receiver<Incident>,
) {
    let mut file = JsonlWriter::open(&path);
    let mut batch: Vec<Incident> = Vec::with_capacity(lookout_alerts::GROUP_COMMIT_MAX);
    // Group commit: whatever is already queued (up to GROUP_COMMIT_MAX revisions) is stored
    // with its outbox rows in one transaction; a lone incident is stored at once.
    while let Ok(first) = incidents.recv() {
        batch.push(first);
        batch.extend(
            incidents
                .try_iter()
                .take(lookout_alerts::GROUP_COMMIT_MAX - 1),
        );
        let frames: Vec<Option<Frame>> = batch.iter().map(|i| snapshot_frame(i, rings)).collect();
        let items: Vec<(&Incident, Option<&Frame>)> = batch
            .iter()
            .zip(frames.iter())
            .map(|(i, f)| (i, f.as_ref()))
            .collect();
        let results = alerts.record_incidents(&items);
        for (inc, res) in batch.iter().zip(results) {
            if let Err(e) = res {
                error!(id = %inc.id, error = %e, "Cannot store an incident.");
            }
            if inc.revision == 1 {
                info!(id = %inc.id, kind = inc.kind.as_str(), confidence = ?inc.confidence, "New incident.");
            } else {
                tracing::debug!(id = %inc.id, revision = inc.revision, confidence = ?inc.confidence, "Incident updated.");
            }
            file.write(inc);
        }
        batch.clear();
    }
}

/// The frame an incident's newest event asked to snapshot, if still held by its camera.
fn snapshot_frame(inc: &Incident, rings: &HashMap<CameraId, Arc<FrameRing>>) -> Option<Frame> {
    let r = inc.events.iter().rev().find_map(|e| e.snapshot.as_ref())?;
    let ring = rings.get(&r.camera)?;
    ring.get(r.seq).or_else(|| ring.nearest(r.seq))
}

fn update_metrics(
    metrics: &lookout_server::Metrics,
    ingest: &lookout_ingest::Ingest,
    inference: &lookout_infer::service::InferenceService,
    hub: &FrameHub,
    dt: f64,
    last_analysed: &mut HashMap<String, u64>,
) {
    use std::sync::atomic::Ordering::Relaxed;
    let inf = inference.stats();
    for s in ingest.stats() {
        let m = metrics.camera(&s.camera);
        m.frames_in.store(s.frames_in, Relaxed);
        m.frames_dropped
            .store(s.frames_dropped_fps + s.frames_dropped_hub, Relaxed);
        m.reconnects.store(s.reconnects, Relaxed);
        let analysed = inf.cameras.get(s.camera.as_ref()).map_or(0, |c| c.analysed);
        m.frames_analysed.store(analysed, Relaxed);
        let prev = last_analysed
            .insert(s.camera.to_string(), analysed)
            .unwrap_or(analysed);
        m.set_fps(analysed.saturating_sub(prev) as f64 / dt.max(1e-3));
    }
    metrics
        .queue("frame_hub_pending")
        .store(hub.pending() as i64, Relaxed);
}
