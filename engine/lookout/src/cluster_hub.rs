//! `lookout run` with `cluster.role = "hub"`: fusion, the alert store and the server, fed
//! from the site's NATS JetStream stream.
//!
//! ```text
//! NATS stream LOOKOUT_<site> ─▶ hub thread (lookout_cluster::hub: decode, de-duplicate, Fusion)
//!        ─▶ Alerts::record_incidents (stored) ─▶ ack ─▶ sink workers, server, incidents.jsonl
//! hotspot feed ─▶ [Hotspot] ─▶ cluster-hotspots ─▶ NATS (fused in stream order with the events)
//! ```

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use crossbeam_channel::bounded;
use lookout_alerts::{Alerts, ApplyOutcome};
use lookout_config::Config;
use lookout_core::{Event, Hotspot, Incident};
use lookout_jsonl::JsonlWriter;
use tracing::{error, info, warn};

use crate::cluster_edge::{connect, runtime, stop_flag};
use crate::run::{spawn, spawn_watchdog, RunOptions};

/// The store behind the hub: events, hotspots, incident revisions (and `incidents.jsonl`).
struct StoreSink {
    alerts: Arc<Alerts>,
    log: JsonlWriter,
    /// Edges' snapshots from the site's object store (`None`: `alerts.snapshots` is off).
    snapshots: Option<lookout_cluster::snapshots::Fetcher>,
    /// Clips the edges put, fetched by the clip thread (`[alerts.clips]`).
    clips: Option<(
        crossbeam_channel::Sender<lookout_cluster::clips::HubClip>,
        lookout_alerts::stage::Clipped,
    )>,
}

impl StoreSink {
    /// The snapshot frame of `inc` when it changed: the hub holds no ring of an edge's
    /// camera, so it comes from the object store (missing: stored without a picture).
    fn snapshot(&mut self, inc: &Incident) -> Option<lookout_core::Frame> {
        let got = self.snapshots.as_mut()?.fetch(inc)?;
        let name = lookout_cluster::snapshots::object_name(&got.frame);
        lookout_alerts::snapshot::decode_jpeg(
            &got.jpeg,
            got.frame.camera,
            got.frame.seq,
            got.captured_at,
        )
        .map_err(|e| warn!(object = %name, error = %e, "Cannot decode a snapshot; the incident is stored without a picture."))
        .ok()
    }
}

impl lookout_cluster::hub::HubSink for StoreSink {
    fn event(&mut self, ev: &Event) {
        if let Err(e) = self.alerts.record_event(ev) {
            warn!(error = %e, "Cannot store an event.");
        }
    }

    fn hotspots(&mut self, batch: &[Hotspot]) {
        for h in batch {
            if let Err(e) = self.alerts.record_hotspot(h) {
                warn!(error = %e, "Cannot store a hotspot.");
            }
        }
    }

    fn incidents(&mut self, revisions: &[Incident]) -> bool {
        let frames: Vec<Option<lookout_core::Frame>> =
            revisions.iter().map(|i| self.snapshot(i)).collect();
        let items: Vec<(&Incident, Option<&lookout_core::Frame>)> = revisions
            .iter()
            .zip(frames.iter())
            .map(|(i, f)| (i, f.as_ref()))
            .collect();
        let mut ok = true;
        for (inc, res) in revisions.iter().zip(self.alerts.record_incidents(&items)) {
            let asked = match &res {
                Ok(ApplyOutcome::Created { id, .. }) => Some((id.clone(), true)),
                Ok(ApplyOutcome::Updated { id, .. }) => Some((id.clone(), false)),
                _ => None,
            };
            if let (Some((tx, clipped)), Some((id, created))) = (self.clips.as_mut(), asked) {
                // The edge that owns each camera wrote a clip at its event's start: the
                // object of that camera's earliest event here.
                for req in lookout_alerts::stage::new_clip_requests(
                    &self.alerts,
                    clipped,
                    &id,
                    inc,
                    created,
                ) {
                    let Some(ev) = inc
                        .events
                        .iter()
                        .filter(|e| e.camera == req.camera)
                        .min_by_key(|e| e.first_seen)
                    else {
                        continue;
                    };
                    let clip = lookout_cluster::clips::HubClip {
                        object: lookout_cluster::clips::object_name(&ev.camera, &ev.id),
                        incident: id.clone(),
                        path: req.path,
                    };
                    if tx.try_send(clip).is_err() {
                        warn!(id = %id, camera = %req.camera, "The clip fetch queue is full; the incident goes without this clip.");
                    }
                }
            }
            match res {
                Ok(ApplyOutcome::Duplicate { .. }) => {}
                Ok(_) => self.log.write(inc),
                Err(e) => {
                    error!(id = %inc.id, revision = inc.revision, error = %e, "Cannot store an incident.");
                    ok = false;
                }
            }
        }
        ok
    }
}

/// The hub's side of cameras changed through its API: the new list is published to the
/// site (every edge re-plans its leases and restarts what changed; the hub's fusion takes
/// the geometry from the stream). The answer says what the site will start, stop and
/// restart.
struct HubCameras {
    last: std::sync::Mutex<Vec<lookout_config::cameras::CameraConfig>>,
    tx: crossbeam_channel::Sender<Vec<lookout_config::cameras::CameraConfig>>,
}

impl lookout_server::cameras::CameraControl for HubCameras {
    fn apply(
        &self,
        cameras: &[lookout_config::cameras::CameraConfig],
    ) -> Result<lookout_server::cameras::CameraApply, String> {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let report = lookout_server::cameras::CameraApply::between(&last, cameras);
        self.tx
            .send_timeout(cameras.to_vec(), Duration::from_secs(5))
            .map_err(|_| "the hub is not publishing camera changes (stopping?)".to_string())?;
        *last = cameras.to_vec();
        Ok(report)
    }
}

/// Runs the hub until Ctrl-C/SIGTERM or `engine.run_for_s`.
pub fn run(mut cfg: Config, opts: RunOptions) -> anyhow::Result<()> {
    let started = Instant::now();
    let data_dir = cfg.data_dir();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    let stop = stop_flag()?;
    let rt = runtime()?;
    let node = lookout_cluster::node_name(&cfg.cluster);
    info!(node = %node, site = %cfg.cluster.site, "Starting the hub.");
    let alerts = Arc::new(
        Alerts::open(&cfg, rt.handle())
            .with_context(|| format!("cannot open the store in {}", data_dir.display()))?,
    );
    let mut state = lookout_server::ServerState::new(alerts.clone(), cfg.clone());
    if let Err(e) = state.load_overlay() {
        error!(error = %e, "Cannot read the config overlays; running the config file's rules.");
    }
    cfg.rules = state.config().rules;
    // The site's cameras: the file's with the cameras record (the edges get them below).
    cfg.cameras = state.config().cameras;

    let Some(js) = connect(&cfg, &rt, &node, &stop)? else {
        info!("Stopped before NATS answered.");
        return Ok(());
    };

    // Hotspots go through the stream, so fusion sees them in one order with the events
    // (a restarted hub replays the same order).
    let (hotspots_tx, hotspots_rx) = bounded::<Hotspot>(4096);
    let (feed_stop_tx, feed_stop_rx) = bounded::<()>(0);
    let feed = lookout_fusion::feed::HotspotFeed::spawn(&cfg, hotspots_tx, feed_stop_rx)
        .context("cannot start the hotspot feed")?;
    let publisher = lookout_cluster::publish::Publisher::new(js.clone(), &cfg.cluster.site);
    let hotspot_fwd = lookout_cluster::publish::spawn_hotspot_forwarder(
        rt.handle().clone(),
        publisher,
        hotspots_rx,
        stop.clone(),
    )
    .context("cannot spawn the hotspot publishing thread")?;

    // Rules changes (API overlays, masks, tuning, file reloads) go to every edge: the
    // server's rules control feeds the site's rules subject instead of a local rules stage.
    let (control, control_rx) = lookout_rules::stage::RulesControl::channel(8);
    state.rules = Some(control);
    let rules_fwd = spawn("cluster-rules", {
        let publisher = lookout_cluster::publish::Publisher::new(js.clone(), &cfg.cluster.site);
        let stop = stop.clone();
        let handle = rt.handle().clone();
        let state = state.clone();
        let initial = cfg.rules.clone();
        move || {
            let version = || {
                state
                    .overlay_status()
                    .filter(|s| s.applied)
                    .map_or(0, |s| s.version)
            };
            let mut next = Some(initial);
            while !stop.load(Ordering::SeqCst) {
                let Some(rules) = next
                    .take()
                    .or_else(|| control_rx.recv_timeout(Duration::from_millis(200)).ok())
                else {
                    continue;
                };
                let msg = lookout_rules::stage::RulesControl::message(version(), &rules);
                match handle.block_on(publisher.publish(lookout_core::WireMsg::Control(msg), &stop))
                {
                    Ok(()) => info!("Published the running rules to the edges."),
                    Err(e) => warn!(error = %e, "Could not publish the running rules."),
                }
            }
        }
    })?;
    // Camera changes (the cameras record) go to every edge and, through the stream, to this
    // hub's fusion: the running list is published at start and after every change.
    let (cameras_tx, cameras_rx) = bounded::<Vec<lookout_config::cameras::CameraConfig>>(8);
    state.cameras = Some(Arc::new(HubCameras {
        last: std::sync::Mutex::new(cfg.cameras.clone()),
        tx: cameras_tx,
    }));
    let cameras_fwd = spawn("cluster-cameras", {
        let publisher = lookout_cluster::publish::Publisher::new(js.clone(), &cfg.cluster.site);
        let stop = stop.clone();
        let handle = rt.handle().clone();
        let state = state.clone();
        let initial = cfg.cameras.clone();
        move || {
            let mut next = Some(initial);
            while !stop.load(Ordering::SeqCst) {
                let Some(cameras) = next
                    .take()
                    .or_else(|| cameras_rx.recv_timeout(Duration::from_millis(200)).ok())
                else {
                    continue;
                };
                let msg = lookout_core::ControlMsg::Cameras {
                    version: state
                        .cameras_status()
                        .filter(|s| s.applied)
                        .map_or(0, |s| s.version),
                    cameras: serde_json::to_value(&cameras).unwrap_or(serde_json::Value::Null),
                };
                match handle.block_on(publisher.publish(lookout_core::WireMsg::Control(msg), &stop))
                {
                    Ok(()) => info!(
                        cameras = cameras.len(),
                        "Published the site's cameras to the edges."
                    ),
                    Err(e) => warn!(error = %e, "Could not publish the site's cameras."),
                }
            }
        }
    })?;
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

    let mut core = lookout_cluster::hub::HubCore::new(&cfg).context("cannot start fusion")?;
    let stats = core.stats();
    // The edges' recorded frame results and health changes: the tuning view, the live
    // overlay and the cameras' status (at most once; not part of the stream).
    let live = spawn("cluster-live", {
        let client = js.client();
        let site = cfg.cluster.site.clone();
        let alerts = alerts.clone();
        let stop = stop.clone();
        let handle = rt.handle().clone();
        move || {
            handle.block_on(lookout_cluster::live::follow(
                &client,
                &site,
                |m| {
                    if let Err(e) = alerts.record_frame_result(m) {
                        warn!(error = %e, "Cannot store a frame result.");
                    }
                },
                &stop,
            ))
        }
    })?;
    // Clips: the edges write and put them; this thread fetches them for the incidents.
    let (clip_tx, clip_fetch) = if cfg.alerts.clips.enabled {
        let store = match rt.block_on(lookout_cluster::clips::open(&js, &cfg.cluster)) {
            Ok(s) => Some(s),
            Err(e) => {
                warn!(error = %e, "Cannot open the clip object store; edge incidents go without clips.");
                None
            }
        };
        let (tx, rx) = bounded::<lookout_cluster::clips::HubClip>(256);
        let (thread, _) = lookout_cluster::clips::spawn_fetcher(
            rt.handle().clone(),
            store,
            rx,
            Duration::from_secs_f64(cfg.alerts.clips.post_s * 4.0 + 60.0),
            stop.clone(),
        )
        .context("cannot spawn the clip fetch thread")?;
        (Some(tx), Some(thread))
    } else {
        (None, None)
    };
    let failed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hub_thread = spawn("hub", {
        let stop = stop.clone();
        let failed = failed.clone();
        let cluster = cfg.cluster.clone();
        let handle = rt.handle().clone();
        let node = node.clone();
        let mut sink = StoreSink {
            alerts: alerts.clone(),
            log: JsonlWriter::open_rotating(
                &data_dir.join("incidents.jsonl"),
                alerts.log_rotation(),
            ),
            snapshots: cfg.alerts.snapshots.then(|| {
                let store = match rt.block_on(lookout_cluster::snapshots::open(&js, &cfg.cluster)) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        warn!(error = %e, "Cannot open the snapshot object store; edge incidents are stored without pictures.");
                        None
                    }
                };
                lookout_cluster::snapshots::Fetcher::new(rt.handle().clone(), store)
            }),
            clips: clip_tx.map(|tx| (tx, lookout_alerts::stage::Clipped::default())),
        };
        move || {
            // One hub of the site consumes; another started with the same site stands by
            // until the lease is free.
            if let Err(e) = handle.block_on(lookout_cluster::hub::run_with_lease(
                &js, &cluster, &node, &mut core, &mut sink, &stop,
            )) {
                error!(error = %e, "The hub's consumer stopped; stopping this hub.");
                failed.store(true, Ordering::SeqCst);
                stop.store(true, Ordering::SeqCst);
            }
        }
    })?;

    state.geojson_extra = Some(Arc::new({
        let cameras = lookout_fusion::map_cameras(&cfg);
        move || cameras.clone()
    }));
    let server = if cfg.server.enabled {
        let server = rt
            .block_on(lookout_server::start(
                state,
                lookout_server::configured_addr(&cfg),
            ))
            .context("cannot start the web server")?;
        let url = server.url();
        info!(url = %url, "Operator UI ready.");
        println!("Lookout hub is running: open {url}");
        Some(server)
    } else {
        drop(state);
        println!("Lookout hub is running (web server disabled).");
        None
    };

    let run_for = cfg.engine.run_for_s.map(Duration::from_secs_f64);
    let mut last_log = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        if run_for.is_some_and(|d| started.elapsed() >= d) {
            info!("Configured run time reached; stopping.");
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        if last_log.elapsed() >= Duration::from_secs(10) {
            last_log = Instant::now();
            log_stats(&stats);
        }
    }
    // The hub thread and the forwarder watch the flag.
    stop.store(true, Ordering::SeqCst);

    let deadline = Duration::from_secs_f64(cfg.engine.shutdown_deadline_s);
    spawn_watchdog(deadline);
    info!("Shutting down.");
    drop(feed_stop_tx);
    feed.join();
    drop(watcher);
    for (name, joined) in [
        ("cluster-hotspots", hotspot_fwd.join()),
        ("hub", hub_thread.join()),
        ("cluster-rules", rules_fwd.join()),
        ("cluster-cameras", cameras_fwd.join()),
        ("cluster-live", live.join()),
        (
            "cluster-clip-fetch",
            clip_fetch.map_or(Ok(()), |t| t.join()),
        ),
    ] {
        if joined.is_err() {
            error!(thread = name, "A hub thread panicked.");
        }
    }
    log_stats(&stats);
    if let Some(server) = server {
        rt.block_on(server.stop());
    }
    let mut alerts = alerts;
    for _ in 0..20 {
        match Arc::try_unwrap(alerts) {
            Ok(mut a) => {
                let left = rt.block_on(a.shutdown(deadline.mul_f64(0.3)));
                for (sink, n) in left.iter().filter(|(_, n)| *n > 0) {
                    warn!(sink = %sink, backlog = n, "Sink backlog kept in the outbox for the next start.");
                }
                alerts = Arc::new(a);
                break;
            }
            Err(shared) => {
                alerts = shared;
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    drop(alerts);
    rt.shutdown_timeout(Duration::from_secs(1));
    info!(elapsed_s = started.elapsed().as_secs_f64(), "Stopped.");
    if failed.load(Ordering::SeqCst) {
        anyhow::bail!("the hub stopped consuming the site's stream (see the log above)");
    }
    Ok(())
}

fn log_stats(stats: &lookout_cluster::hub::HubStats) {
    let g = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    info!(
        messages = g(&stats.messages),
        events = g(&stats.events),
        duplicates = g(&stats.duplicates),
        unknown_version = g(&stats.unknown_version),
        malformed = g(&stats.malformed),
        revisions = g(&stats.revisions),
        replayed = g(&stats.replayed),
        "Hub counters."
    );
}
