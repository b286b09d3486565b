//! `lookout run` with `cluster.role = "edge"`: ingest, inference and rules for this node's
//! cameras; the rules stage's events and camera clocks go to the site's NATS JetStream
//! stream (`lookout_cluster::publish`), where the hub fuses them.
//!
//! ```text
//! ingest ─▶ FrameHub ─▶ inference workers ─▶ [StageMsg] ─▶ RulesStage ─▶ [FusionMsg] ─▶ cluster-publish ─▶ NATS
//!    └─ CameraHealth ─▶ health forwarder ────▶ [StageMsg]
//! ```

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use crossbeam_channel::bounded;
use lookout_config::Config;
use lookout_core::{CameraHealth, CameraId, FrameHub, FusionMsg, StageMsg};
use tracing::{error, info, warn};

use crate::run::{spawn, spawn_watchdog, RunOptions};

/// The stop flag, set by Ctrl-C or SIGTERM (a second signal exits at once).
pub(crate) fn stop_flag() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    ctrlc::set_handler(move || {
        if s.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
    })
    .context("cannot install the signal handler")?;
    Ok(stop)
}

/// The I/O runtime of a cluster node (NATS client, and on the hub sinks and HTTP).
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("lookout-io")
        .enable_all()
        .build()
        .context("cannot start the I/O runtime")
}

/// Connects to NATS (retrying with backoff until it answers or the node is stopped) and
/// makes sure the site's stream exists. `None`: stopped while waiting.
pub(crate) fn connect(
    cfg: &Config,
    rt: &tokio::runtime::Runtime,
    node: &str,
    stop: &AtomicBool,
) -> anyhow::Result<Option<async_nats::jetstream::Context>> {
    let client = match rt.block_on(lookout_cluster::connect(&cfg.cluster, node, stop)) {
        Ok(c) => c,
        Err(lookout_cluster::ClusterError::Stopped) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    // The JetStream context spawns its ack task on the runtime.
    let js = {
        let _rt = rt.enter();
        async_nats::jetstream::new(client)
    };
    rt.block_on(lookout_cluster::ensure_stream(&js, &cfg.cluster))
        .with_context(|| {
            format!(
                "cannot open the stream of site {:?} on {} (is JetStream enabled: nats-server -js?)",
                cfg.cluster.site,
                cfg.cluster.nats.join(", ")
            )
        })?;
    Ok(Some(js))
}

/// The stages analysing the cameras this node holds; replaced whenever the held set
/// changes (a camera is analysed by one node at a time: this one stops before it releases).
struct Generation {
    cameras: Vec<String>,
    hub: std::sync::Arc<FrameHub>,
    ingest: lookout_ingest::Ingest,
    inference: lookout_infer::service::InferenceService,
    health_fwd: std::thread::JoinHandle<()>,
    rules: lookout_rules::stage::RulesHandle,
    forwarder: std::thread::JoinHandle<()>,
    /// Puts this generation's clips into the site's object store (`[alerts.clips]`).
    clip_upload: Option<std::thread::JoinHandle<()>>,
}

/// Clips on an edge: every event's start asks the clip writer for a clip around its first
/// sighting, which the upload thread puts into the site's object store for the hub.
struct EdgeClips {
    writer: Arc<lookout_ingest::clips::ClipWriter>,
    tx: crossbeam_channel::Sender<lookout_cluster::clips::EdgeClip>,
    dir: std::path::PathBuf,
}

/// The rules stage's tap on an edge: recorded frame results and health changes go to the
/// hub's operator desk (`lookout_cluster::live`), dropped when the queue is full.
struct LiveTap {
    tx: crossbeam_channel::Sender<StageMsg>,
    stats: Arc<lookout_cluster::live::LiveStats>,
    clips: Option<EdgeClips>,
}

impl lookout_rules::stage::RulesTap for LiveTap {
    fn message(&mut self, msg: &StageMsg) {
        if self.tx.try_send(msg.clone()).is_err() {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn event(&mut self, ev: &lookout_core::Event) {
        use lookout_core::ClipSink;
        let Some(c) = &self.clips else { return };
        if ev.phase != lookout_core::EventPhase::Start {
            return;
        }
        let object = lookout_cluster::clips::object_name(&ev.camera, &ev.id);
        let path = c.dir.join(format!("{}.mp4", object.replace('/', ".")));
        let req = lookout_core::ClipRequest {
            incident: ev.id.clone(),
            camera: ev.camera.clone(),
            at: ev.first_seen,
            path: path.clone(),
        };
        if c.writer.request(req) {
            let clip = lookout_cluster::clips::EdgeClip { object, path };
            if c.tx.try_send(clip).is_err() {
                warn!(event = %ev.id, "The clip upload queue is full; the hub gets no clip of this event.");
            }
        }
    }
}

impl Generation {
    #[allow(clippy::too_many_arguments)]
    fn start(
        cfg: &Config,
        held: &BTreeSet<String>,
        rules: &lookout_config::rules::RulesConfig,
        rt: &tokio::runtime::Runtime,
        publisher: &lookout_cluster::publish::Publisher,
        live: LiveTap,
        snapshots: Option<&async_nats::jetstream::object_store::ObjectStore>,
        clip_store: Option<&async_nats::jetstream::object_store::ObjectStore>,
        stop: &Arc<AtomicBool>,
    ) -> anyhow::Result<Generation> {
        let mut live = live;
        let mut cfg = cfg.clone();
        cfg.rules = rules.clone();
        for c in &mut cfg.cameras {
            c.enabled = c.enabled && held.contains(c.id.as_str());
        }
        let data_dir = cfg.data_dir();
        let camera_ids: Vec<CameraId> = cfg
            .enabled_cameras()
            .map(|c| c.id.as_str().into())
            .collect();
        let hub = FrameHub::new(camera_ids.clone());
        let (health_tx, health_rx) = bounded::<CameraHealth>(256);
        let (results_tx, results_rx) = bounded::<StageMsg>(cfg.inference.results_capacity);
        let (events_tx, events_rx) = bounded::<FusionMsg>(1024);
        let inference =
            lookout_infer::service::InferenceService::start(&cfg, hub.clone(), results_tx.clone())
                .context("cannot start inference")?;
        let ingest = lookout_ingest::Ingest::start(&cfg, hub.clone(), health_tx)
            .context("cannot start ingest")?;
        // Clips: written here (this node holds the packets), put for the hub.
        let mut clip_upload = None;
        if let Some(writer) = ingest.clips() {
            let (tx, rx) = bounded::<lookout_cluster::clips::EdgeClip>(256);
            let clips = &cfg.alerts.clips;
            let (thread, _) = lookout_cluster::clips::spawn_uploader(
                rt.handle().clone(),
                clip_store.cloned(),
                rx,
                Duration::from_secs_f64(clips.post_s * 4.0 + 40.0),
                clips.ring_bytes() as u64 + (1 << 20),
            )
            .context("cannot spawn the clip upload thread")?;
            clip_upload = Some(thread);
            live.clips = Some(EdgeClips {
                writer,
                tx,
                dir: data_dir.join("clips"),
            });
        }
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
                rotation: lookout_alerts::retention::log_rotation(&cfg.engine.retention),
            },
            results_rx,
            events_tx,
            live,
        )
        .context("cannot spawn the rules thread")?;
        // Snapshots: the frame an event asks for, from its camera's ring, as JPEG into the
        // site's object store before the event is published (the hub has no ring of ours).
        let uploader = cfg.alerts.snapshots.then(|| {
            let rings = ingest.rings();
            let quality = cfg.alerts.snapshot_quality;
            lookout_cluster::snapshots::Uploader::new(
                snapshots.cloned(),
                Box::new(move |r: &lookout_core::FrameRef| {
                    let ring = rings.get(&r.camera)?;
                    let frame = ring.get(r.seq).or_else(|| ring.nearest(r.seq))?;
                    lookout_alerts::snapshot::frame_jpeg(&frame, quality)
                        .map_err(|e| warn!(camera = %r.camera, seq = r.seq, error = %e, "Cannot encode a snapshot."))
                        .ok()
                }),
            )
        });
        let forwarder = lookout_cluster::publish::spawn_fusion_forwarder(
            rt.handle().clone(),
            publisher.clone(),
            events_rx,
            uploader,
            stop.clone(),
        )
        .context("cannot spawn the publishing thread")?;
        let cameras: Vec<String> = camera_ids.iter().map(|c| c.to_string()).collect();
        info!(cameras = ?cameras, "Analysing the cameras this node holds.");
        Ok(Generation {
            cameras,
            hub,
            ingest,
            inference,
            health_fwd,
            rules,
            forwarder,
            clip_upload,
        })
    }

    /// Stops analysing: sources first, then each stage as its input closes; everything the
    /// rules stage produced is published before this returns.
    fn stop(self, deadline: Duration) {
        self.ingest.shutdown(deadline.mul_f64(0.5));
        self.hub.close();
        self.inference.join();
        for (name, joined) in [
            ("health-forward", self.health_fwd.join()),
            ("rules", self.rules.join()),
            ("cluster-publish", self.forwarder.join()),
            (
                "cluster-clip-upload",
                self.clip_upload.map_or(Ok(()), |t| t.join()),
            ),
        ] {
            if joined.is_err() {
                error!(thread = name, "A stage thread panicked.");
            }
        }
        info!(cameras = ?self.cameras, "Stopped analysing.");
    }
}

/// The hub published the site's cameras: checked like a config file's, they replace the
/// file's list (leases are re-planned over the enabled ones at the next heartbeat). Returns
/// whether the running generation must restart (one of its cameras changed or went).
fn site_cameras_changed(
    cfg: &mut Config,
    version: i64,
    body: &serde_json::Value,
    leases: &mut lookout_cluster::lease::Leases,
    generation: Option<&Generation>,
) -> bool {
    let list: Vec<lookout_config::cameras::CameraConfig> = match serde_json::from_value(
        body.clone(),
    ) {
        Ok(l) => l,
        Err(e) => {
            error!(version, error = %e, "Unreadable cameras from the hub; keeping the running ones.");
            return false;
        }
    };
    let as_json = |c: &lookout_config::cameras::CameraConfig| serde_json::to_value(c).ok();
    if list.iter().map(as_json).eq(cfg.cameras.iter().map(as_json)) {
        return false;
    }
    let mut next = cfg.clone();
    next.cameras = list;
    let problems = lookout_config::validate_loaded(&next);
    if !problems.is_empty() {
        let text: Vec<String> = problems.iter().map(|(k, m)| format!("{k}: {m}")).collect();
        error!(version, problems = %text.join("; "), "Refused the cameras the hub published; keeping the running ones.");
        return false;
    }
    let change = lookout_server::cameras::CameraApply::between(&cfg.cameras, &next.cameras);
    let restart = generation.is_some_and(|g| {
        g.cameras
            .iter()
            .any(|id| change.stopped.contains(id) || change.restarted.contains(id))
    });
    let enabled: Vec<String> = next.enabled_cameras().map(|c| c.id.clone()).collect();
    leases.set_cameras(&enabled);
    info!(version, cameras = ?enabled, restart, "Took the site's cameras from the hub.");
    cfg.cameras = next.cameras;
    restart
}

/// Runs an edge node until Ctrl-C/SIGTERM or `engine.run_for_s`: holds a fair share of the
/// site's enabled cameras by lease (`lookout_cluster::lease`) and analyses those, with the
/// rules the hub publishes (`lookout_cluster::control`; the config file's until then).
pub fn run(mut cfg: Config, _opts: RunOptions) -> anyhow::Result<()> {
    let started = Instant::now();
    let data_dir = cfg.data_dir();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    let stop = stop_flag()?;
    let rt = runtime()?;
    let node = lookout_cluster::node_name(&cfg.cluster);
    info!(node = %node, site = %cfg.cluster.site, "Starting an edge node.");
    let Some(js) = connect(&cfg, &rt, &node, &stop)? else {
        info!("Stopped before NATS answered.");
        return Ok(());
    };
    let cameras: Vec<String> = cfg.enabled_cameras().map(|c| c.id.clone()).collect();
    let mut leases = rt
        .block_on(lookout_cluster::lease::Leases::open(
            &js,
            &cfg.cluster,
            &node,
            &cameras,
        ))
        .context("cannot open the camera lease bucket")?;
    // Rules changes from the hub (its file and API overlay), newest first.
    let (control_tx, control_rx) = bounded::<lookout_core::ControlMsg>(8);
    let follower = spawn("cluster-control", {
        let js = js.clone();
        let control_tx = control_tx.clone();
        let cluster = cfg.cluster.clone();
        let stop = stop.clone();
        let handle = rt.handle().clone();
        move || {
            handle.block_on(lookout_cluster::control::follow(
                &js,
                &cluster,
                lookout_cluster::control::Topic::Rules,
                &control_tx,
                &stop,
            ))
        }
    })?;
    // Camera changes from the hub (its cameras record), newest first, into the same queue.
    let cameras_follower = spawn("cluster-cameras", {
        let js = js.clone();
        let cluster = cfg.cluster.clone();
        let stop = stop.clone();
        let handle = rt.handle().clone();
        let tx = control_tx;
        move || {
            handle.block_on(lookout_cluster::control::follow(
                &js,
                &cluster,
                lookout_cluster::control::Topic::Cameras,
                &tx,
                &stop,
            ))
        }
    })?;
    let mut rules = cfg.rules.clone();
    let live_stats = Arc::new(lookout_cluster::live::LiveStats::default());
    let (live_tx, live_rx) = bounded::<StageMsg>(1024);
    let live_fwd = lookout_cluster::live::spawn_forwarder(
        rt.handle().clone(),
        js.client(),
        cfg.cluster.site.clone(),
        live_rx,
        live_stats.clone(),
        stop.clone(),
    )
    .context("cannot spawn the frame results thread")?;
    let snapshots = if cfg.alerts.snapshots {
        match rt.block_on(lookout_cluster::snapshots::open(&js, &cfg.cluster)) {
            Ok(s) => Some(s),
            Err(e) => {
                warn!(error = %e, "Cannot open the snapshot object store; events go without pictures.");
                None
            }
        }
    } else {
        None
    };
    let clip_store = if cfg.alerts.clips.enabled {
        match rt.block_on(lookout_cluster::clips::open(&js, &cfg.cluster)) {
            Ok(s) => Some(s),
            Err(e) => {
                warn!(error = %e, "Cannot open the clip object store; the hub's incidents go without clips.");
                None
            }
        }
    } else {
        None
    };
    let publisher = lookout_cluster::publish::Publisher::new(js, &cfg.cluster.site).node(&node);
    let stats = publisher.stats();
    println!(
        "Lookout edge {node} is running (site {}).",
        cfg.cluster.site
    );

    let deadline = Duration::from_secs_f64(cfg.engine.shutdown_deadline_s);
    let heartbeat = Duration::from_secs_f64(cfg.cluster.heartbeat_s);
    let ttl = Duration::from_secs_f64(cfg.cluster.lease_ttl_s);
    let run_for = cfg.engine.run_for_s.map(Duration::from_secs_f64);
    let mut generation: Option<Generation> = None;
    let mut next_beat = Instant::now();
    let mut last_ok = Instant::now();
    let mut last_log = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        if run_for.is_some_and(|d| started.elapsed() >= d) {
            info!("Configured run time reached; stopping.");
            break;
        }
        for msg in control_rx.try_iter() {
            let (version, body) = match &msg {
                lookout_core::ControlMsg::Rules { version, rules } => (version, rules),
                lookout_core::ControlMsg::Cameras { version, cameras } => {
                    if site_cameras_changed(
                        &mut cfg,
                        *version,
                        cameras,
                        &mut leases,
                        generation.as_ref(),
                    ) {
                        // Restarted at once with the new settings (and leases re-planned).
                        if let Some(g) = generation.take() {
                            g.stop(deadline);
                        }
                        next_beat = Instant::now();
                    }
                    continue;
                }
            };
            match serde_json::from_value::<lookout_config::rules::RulesConfig>(body.clone()) {
                Ok(r) if r == rules => {}
                Ok(r) => {
                    let applied = match &generation {
                        Some(g) => g.rules.control().apply(&r).map_err(|e| e.to_string()),
                        None => lookout_rules::RulesEngine::try_new(&r)
                            .map(|_| ())
                            .map_err(|e| e.to_string()),
                    };
                    match applied {
                        Ok(()) => {
                            info!(version, "Applied the rules the hub published.");
                            rules = r;
                        }
                        Err(e) => {
                            error!(version, error = %e, "Refused the rules the hub published; keeping the running ones.")
                        }
                    }
                }
                Err(e) => {
                    error!(version, error = %e, "Unreadable rules from the hub; keeping the running ones.")
                }
            }
        }
        if Instant::now() >= next_beat {
            next_beat = Instant::now() + heartbeat;
            match rt.block_on(leases.heartbeat()) {
                Ok(plan) => {
                    last_ok = Instant::now();
                    let mut changed = false;
                    if !plan.release.is_empty() || !plan.lost.is_empty() {
                        if let Some(g) = generation.take() {
                            g.stop(deadline);
                        }
                        rt.block_on(leases.release(&plan.release));
                        info!(released = ?plan.release, lost = ?plan.lost, nodes = ?plan.nodes, "Handed cameras over.");
                        changed = true;
                    }
                    if !plan.wanted.is_empty() {
                        let taken = rt.block_on(leases.take(&plan.wanted));
                        if !taken.is_empty() {
                            info!(taken = ?taken, nodes = ?plan.nodes, "Took cameras.");
                            if let Some(g) = generation.take() {
                                g.stop(deadline);
                            }
                            changed = true;
                        }
                    }
                    let held = leases.held();
                    if (changed || generation.is_none()) && !held.is_empty() {
                        generation = Some(Generation::start(
                            &cfg,
                            &held,
                            &rules,
                            &rt,
                            &publisher,
                            LiveTap {
                                tx: live_tx.clone(),
                                stats: live_stats.clone(),
                                clips: None,
                            },
                            snapshots.as_ref(),
                            clip_store.as_ref(),
                            &stop,
                        )?);
                    }
                }
                Err(e) => {
                    warn!(error = %e, "Camera lease heartbeat failed.");
                    // Without heartbeats our leases run out and other nodes take the
                    // cameras: stop analysing before that, so no camera runs twice.
                    if last_ok.elapsed() + heartbeat >= ttl {
                        if let Some(g) = generation.take() {
                            warn!("Leases about to expire; stopping analysis until NATS answers.");
                            g.stop(deadline);
                        }
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
        if last_log.elapsed() >= Duration::from_secs(10) {
            last_log = Instant::now();
            info!(
                held = ?leases.held(),
                published = stats.published.load(Ordering::Relaxed),
                duplicates = stats.duplicates.load(Ordering::Relaxed),
                failures = stats.failures.load(Ordering::Relaxed),
                live_sent = live_stats.sent.load(Ordering::Relaxed),
                live_dropped = live_stats.dropped.load(Ordering::Relaxed),
                "Edge publishing."
            );
        }
    }
    spawn_watchdog(deadline);
    info!("Shutting down.");
    if let Some(g) = generation.take() {
        g.stop(deadline);
    }
    rt.block_on(leases.release_all());
    stop.store(true, Ordering::SeqCst);
    drop(live_tx);
    for (name, joined) in [
        ("cluster-control", follower.join()),
        ("cluster-cameras", cameras_follower.join()),
        ("cluster-live", live_fwd.join()),
    ] {
        if joined.is_err() {
            error!(thread = name, "A thread panicked.");
        }
    }
    rt.shutdown_timeout(Duration::from_secs(1));
    info!(elapsed_s = started.elapsed().as_secs_f64(), "Stopped.");
    Ok(())
}
