//! # lookout-ingest
//!
//! Video in: one GStreamer pipeline per camera, frames out at analysis resolution into the
//! [`FrameHub`], stream health out as data. Only this crate knows GStreamer.
//!
//! ## Layout
//!
//! * [`Ingest`]: the running set of cameras. [`Ingest::start`] builds one supervisor thread
//!   per enabled camera; [`Ingest::stats`], [`Ingest::status`] and [`Ingest::rings`] observe
//!   them; [`Ingest::start_camera`] and [`Ingest::stop_camera`] start, restart or stop one
//!   camera while the others run (cameras changed from the API); [`Ingest::shutdown`]
//!   stops them all within a deadline.
//! * [`template`]: the pipeline templates in `pipelines/` (embedded), filled per camera.
//! * `pipeline` (private): builds a pipeline from its description and attaches the probes
//!   (analysis size, key-frame gate before the decoder, fps gate after it, counters) and
//!   the appsink callback that wraps each sample into a [`lookout_core::Frame`] — zero-copy
//!   when rows are unpadded, otherwise one row-by-row copy into a pooled buffer ([`pool`]).
//! * `supervisor` (private): the per-camera state machine (`Starting → Running →
//!   Retrying{attempt, reason} → … → Stopped{reason}`), bus handling, stall detection,
//!   reconnect backoff ([`sampling::Backoff`]), file loop and finish.
//! * [`clips`]: incident clips (`[alerts.clips]`): each camera's ring of encoded packets,
//!   filled by the probe on the decoder's sink pad, and the clip writer thread
//!   ([`clips::ClipWriter`], a [`lookout_core::ClipSink`]) that muxes them into MP4 without
//!   re-encoding H.264/H.265.
//! * [`sampling`]: pure decisions (analysis size, [`sampling::FpsGate`], backoff), unit
//!   tested without GStreamer.
//!
//! ## Edges and their when-full policies
//!
//! * Frames → [`FrameHub`]: one slot per camera, the freshest frame wins; replaced frames
//!   are counted by the hub (`frames_dropped_hub`). Publishing never blocks.
//! * Frames → appsink: `max-buffers=2 drop=true sync=false`; the callback pulls each sample
//!   at once, so nothing queues there.
//! * [`CameraHealth`] → the health channel: `try_send`; a full channel loses the update
//!   and counts it (`health_send_failures`); [`Ingest::status`] always has the current one.
//!
//! ## Capture times
//!
//! * RTSP: the sender's NTP wall clock ([`lookout_core::CaptureClock::Ntp`]) — from an
//!   RFC 7273 `timestamp/x-ntp` reference meta when the server signals one, otherwise from
//!   the RTCP sender reports (PTS mapped through the jitter buffer's `handle-sync`). Before
//!   the first report, or if the sender's clock is more than 10 minutes off, arrival time.
//! * RTMP, SRT, UDP MPEG-TS, test pattern: arrival time ([`lookout_core::CaptureClock::Arrival`]).
//! * Files: `start_time` (default: when ingest started) + stream time, increasing across
//!   loops ([`lookout_core::CaptureClock::Replay`]).
//!
//! PTZ poses come from the configured tour, evaluated at the capture time relative to
//! engine start (live) or `start_time` (replay); frames during travel/settle are `moving`.
//!
//! ## Failure policy
//!
//! Each camera has its own thread, pipeline and bus; nothing on the frame path is shared
//! between cameras except the hub's short mutex, so one broken camera never slows another.
//! Live sources (RTSP, RTMP, SRT, UDP, test) retry every failure with exponential backoff
//! and jitter (capped at `ingest.backoff_max_s`); a stream without any buffer for
//! `ingest.stall_timeout_s` is restarted (`RetryReason::Timeout`). File sources: a file
//! that cannot be opened (missing, no permission) is **retried** (`Unreachable`, the
//! footage may be being copied or a share mounted); a file that opens but cannot be played
//! (not a video, truncated, undecodable) is **`Stopped{Fatal}`** — retrying the same bytes
//! cannot help. A file that ends without `loop` is `Stopped{Finished}`. Every error message
//! names the camera and its file or (redacted) URL.
//!
//! Known GStreamer behaviour: `decodebin` filters its children's error messages while it
//! autoplugs them, so a demuxer that fails at that very moment (a truncated MP4) can stop
//! the stream without any error on the bus. The stall timeout catches it (`Timeout`), and
//! the next attempt normally reports the real error.

mod camera;
pub mod clips;
mod pipeline;
pub mod pool;
pub mod sampling;
mod supervisor;
pub mod template;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use gstreamer as gst;
use gstreamer::prelude::*;
use lookout_config::cameras::{CameraConfig, SourceConfig};
use lookout_config::Config;
use lookout_core::{CameraHealth, CameraId, CameraStatus, FrameHub, FrameRing};
use serde::Serialize;
use tracing::{info, warn};

use camera::CameraShared;
use pipeline::{FrameSetup, PtzTour, TimeBase};
use sampling::Backoff;
use supervisor::Supervisor;

/// Why ingest could not start, or a file could not be probed.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// GStreamer could not be initialised.
    #[error("cannot initialise GStreamer: {0}")]
    Init(String),
    /// A GStreamer element ingest needs is not installed.
    #[error("GStreamer element {0:?} is not installed (install gstreamer1.0-plugins-base/-good/-bad and gstreamer1.0-libav)")]
    MissingElement(&'static str),
    /// A camera's pipeline description could not be made from its template.
    #[error("camera {camera:?}: {reason}")]
    Template {
        /// The camera.
        camera: String,
        /// What went wrong.
        reason: String,
    },
    /// Ingest has shut down; no camera starts any more.
    #[error("camera {0:?}: ingest has stopped")]
    Stopped(String),
    /// An enabled camera is not registered with the frame hub it would publish into.
    #[error("camera {0:?} is enabled but not registered with the frame hub (build the hub from lookout_ingest::camera_ids)")]
    NotInHub(String),
    /// A supervisor thread could not be spawned.
    #[error("camera {camera:?}: cannot spawn its supervisor thread: {source}")]
    Thread {
        /// The camera.
        camera: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A video file cannot be opened or played.
    #[error("file {path:?}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

/// Elements every pipeline needs (checked once at start, for a clear error).
const REQUIRED_ELEMENTS: &[&str] = &[
    "decodebin",
    "clocksync",
    "videoscale",
    "videoconvert",
    "capsfilter",
    "appsink",
];

/// A camera's counters and status, for metrics and the UI.
#[derive(Debug, Clone, Serialize)]
pub struct CameraStats {
    /// The camera.
    pub camera: CameraId,
    /// `source.kind` (`rtsp`, `file`, ...).
    pub source_kind: &'static str,
    /// Current status.
    pub status: CameraStatus,
    /// Frames pulled from the appsink (after the fps gate).
    pub frames_in: u64,
    /// Frames published to the hub.
    pub frames_delivered: u64,
    /// Frames dropped by the analysis fps cap.
    pub frames_dropped_fps: u64,
    /// Frames replaced in the hub before inference took them (freshest wins).
    pub frames_dropped_hub: u64,
    /// Frames the hub refused (closed at shutdown).
    pub frames_publish_failed: u64,
    /// Compressed buffers that reached the video decoder's input (before the key-frame
    /// gate).
    pub packets_to_decoder: u64,
    /// Delta units dropped before the decoder (key-frames-only mode).
    pub delta_units_skipped: u64,
    /// Raw frames out of the decoder (or the test source): the decode work actually done.
    pub frames_decoded: u64,
    /// Pipeline restarts after failures.
    pub reconnects: u64,
    /// Health updates lost to a full or closed health channel.
    pub health_send_failures: u64,
    /// Width of the last delivered frame (0 before the first).
    pub width: u32,
    /// Height of the last delivered frame.
    pub height: u32,
    /// The last error, naming the camera and its source.
    pub last_error: Option<String>,
}

/// What [`probe_file`] learns about a video file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileInfo {
    /// Decoded width in pixels.
    pub width: u32,
    /// Decoded height in pixels.
    pub height: u32,
    /// Frame rate, when the container states one.
    pub fps: Option<f64>,
    /// Duration, when known.
    pub duration: Option<Duration>,
    /// Estimated frame count (duration × fps, rounded), when both are known.
    pub frames: Option<u64>,
}

/// The camera ids ingest will publish for: build the [`FrameHub`] from these.
pub fn camera_ids(cfg: &Config) -> Vec<CameraId> {
    cfg.enabled_cameras()
        .map(|c| CameraId::from(c.id.as_str()))
        .collect()
}

/// One running camera.
struct Running {
    shared: Arc<CameraShared>,
    /// The settings it was started with (a change restarts it).
    config: CameraConfig,
    thread: Option<JoinHandle<()>>,
    /// Dropped to tell the supervisor to stop.
    stop: Option<Sender<()>>,
    /// The supervisor reports here when it has finished.
    done: crossbeam_channel::Receiver<usize>,
}

/// What [`Ingest`] needs to start a camera, at start or later.
struct Spawner {
    /// The configuration ingest started with (ingest settings, clips, templates, paths).
    cfg: Config,
    engine_start: chrono::DateTime<chrono::Utc>,
    /// `None` once ingest has shut down (so the health channel can close).
    health: Option<Sender<CameraHealth>>,
}

/// Running cameras. Cameras can be started and stopped while the others run
/// ([`Ingest::start_camera`], [`Ingest::stop_camera`]).
pub struct Ingest {
    running: std::sync::Mutex<Vec<Running>>,
    spawner: std::sync::Mutex<Spawner>,
    hub: Arc<FrameHub>,
    /// The incident clip writer (`[alerts.clips] enabled`).
    clips: Option<Arc<clips::ClipWriter>>,
}

impl std::fmt::Debug for Ingest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest")
            .field(
                "cameras",
                &self
                    .lock_running()
                    .iter()
                    .map(|c| c.shared.id.clone())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

fn init_gst() -> Result<(), IngestError> {
    gst::init().map_err(|e| IngestError::Init(e.to_string()))?;
    for name in REQUIRED_ELEMENTS {
        if gst::ElementFactory::find(name).is_none() {
            return Err(IngestError::MissingElement(name));
        }
    }
    Ok(())
}

/// Builds camera `cam`'s supervisor and starts its thread. `seq_from`: the first frame
/// number (a restarted camera continues its numbering).
fn spawn_camera(
    sp: &Spawner,
    hub: &Arc<FrameHub>,
    cam: &CameraConfig,
    packets: Option<Arc<clips::PacketRing>>,
    seq_from: u64,
    index: usize,
) -> Result<Running, IngestError> {
    let cfg = &sp.cfg;
    let Some(health) = sp.health.clone() else {
        return Err(IngestError::Stopped(cam.id.clone()));
    };
    let id: CameraId = cam.id.as_str().into();
    if !hub.contains(&id) {
        return Err(IngestError::NotInHub(cam.id.clone()));
    }
    let text =
        template::pipeline_text(cfg, &cam.source).map_err(|reason| IngestError::Template {
            camera: cam.id.clone(),
            reason,
        })?;
    let (source_desc, file, time) = match &cam.source {
        SourceConfig::File {
            looping,
            start_time,
            realtime,
            ..
        } => {
            let path = text.file.clone().unwrap_or_default();
            (
                format!("file {:?}", path.display().to_string()),
                Some((path, *looping, *realtime)),
                TimeBase::Replay {
                    start: start_time.unwrap_or(sp.engine_start),
                },
            )
        }
        SourceConfig::Rtsp { url, .. } | SourceConfig::Rtmp { url } | SourceConfig::Srt { url } => {
            (url.redacted(), None, TimeBase::Live)
        }
        SourceConfig::UdpTs { port, address } => {
            (format!("udp://{address}:{port}"), None, TimeBase::Live)
        }
        SourceConfig::Test { pattern, .. } => {
            (format!("test pattern {pattern:?}"), None, TimeBase::Live)
        }
    };
    let tour_epoch = match time {
        TimeBase::Replay { start } => start,
        TimeBase::Live => sp.engine_start,
    };
    let ptz = cam.ptz.clone().map(|p| {
        Arc::new(PtzTour::new(
            p,
            cam.geo.as_ref().map(|g| g.tilt_deg),
            tour_epoch,
        ))
    });
    let shared = Arc::new(CameraShared::new(
        id.clone(),
        cam.source.kind(),
        source_desc,
        cfg.ingest.ring_frames,
        packets,
        health,
    ));
    shared.seq.store(seq_from, Ordering::Relaxed);
    let setup = FrameSetup {
        camera: shared.clone(),
        hub: hub.clone(),
        time,
        ptz,
        fps_cap: cam.effective_fps(&cfg.ingest),
        keyframes_only: cam.keyframes_only,
        max_side: cam.effective_max_side(&cfg.ingest),
        wait_for_inference: matches!(
            cam.source,
            SourceConfig::File {
                realtime: false,
                ..
            }
        ),
        pool: pool::BytePool::new(cfg.ingest.ring_frames + 4),
    };
    let seed = id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    }) ^ chrono::Utc::now().timestamp_subsec_nanos() as u64;
    let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(0);
    let (done_tx, done_rx) = crossbeam_channel::bounded::<usize>(1);
    let sup = Supervisor {
        setup,
        launch: text.launch,
        redacted: text.redacted,
        file,
        stall: Duration::from_secs_f64(cfg.ingest.stall_timeout_s),
        backoff: Backoff::new(
            Duration::from_secs_f64(cfg.ingest.backoff_initial_s),
            Duration::from_secs_f64(cfg.ingest.backoff_max_s),
            seed,
        ),
        shutdown: stop_rx,
        done: done_tx,
        index,
    };
    shared.set_status(CameraStatus::Starting);
    info!(camera = %id, kind = cam.source.kind(), source = %shared.source_desc, "Starting camera.");
    let handle = std::thread::Builder::new()
        .name(format!("ingest-{}", cam.id))
        .spawn(move || sup.run())
        .map_err(|source| IngestError::Thread {
            camera: cam.id.clone(),
            source,
        })?;
    Ok(Running {
        shared,
        config: cam.clone(),
        thread: Some(handle),
        stop: Some(stop_tx),
        done: done_rx,
    })
}

/// Waits (until `until`) for the supervisors of `cams`, already told to stop; returns how
/// many stopped. Those still busy are left detached (logged).
fn join_stopped(cams: &mut [Running], until: Instant) -> usize {
    let mut stopped = 0;
    for c in cams.iter_mut() {
        let left = until.saturating_duration_since(Instant::now());
        if c.done.recv_timeout(left).is_ok() {
            if let Some(h) = c.thread.take() {
                let _ = h.join();
            }
            stopped += 1;
        } else {
            warn!(camera = %c.shared.id, "Camera did not stop before its deadline; abandoned.");
        }
    }
    stopped
}

impl Ingest {
    /// Starts every enabled camera: one supervisor thread and pipeline each. Initialises
    /// GStreamer (idempotent). Cameras that fail later report it through their status;
    /// only problems that concern the whole engine (GStreamer missing, a camera the hub
    /// does not know) fail here.
    pub fn start(
        cfg: &Config,
        hub: Arc<FrameHub>,
        health: Sender<CameraHealth>,
    ) -> Result<Ingest, IngestError> {
        init_gst()?;
        let sp = Spawner {
            cfg: cfg.clone(),
            engine_start: chrono::Utc::now(),
            health: Some(health),
        };
        let clip_cfg = &cfg.alerts.clips;
        let mut packet_rings = Vec::new();
        let mut running = Vec::new();
        for (index, cam) in cfg.enabled_cameras().enumerate() {
            let packets = packet_ring(cfg, cam);
            if let Some(r) = &packets {
                packet_rings.push((CameraId::from(cam.id.as_str()), r.clone()));
            }
            match spawn_camera(&sp, &hub, cam, packets, 0, index) {
                Ok(r) => running.push(r),
                Err(e) => {
                    // Stop what was started before failing.
                    for r in &mut running {
                        drop(r.stop.take());
                    }
                    join_stopped(&mut running, Instant::now() + Duration::from_secs(5));
                    return Err(e);
                }
            }
        }
        let clips = if clip_cfg.enabled {
            let writer = clips::ClipWriter::spawn(clip_cfg, packet_rings).map_err(|source| {
                IngestError::Thread {
                    camera: "clips".into(),
                    source,
                }
            })?;
            Some(Arc::new(writer))
        } else {
            None
        };
        Ok(Ingest {
            running: std::sync::Mutex::new(running),
            spawner: std::sync::Mutex::new(sp),
            hub,
            clips,
        })
    }

    fn lock_running(&self) -> std::sync::MutexGuard<'_, Vec<Running>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The settings each running camera was started with.
    pub fn running_configs(&self) -> Vec<CameraConfig> {
        self.lock_running()
            .iter()
            .map(|c| c.config.clone())
            .collect()
    }

    /// Starts camera `cam` while the others run (a camera added or enabled live), or
    /// restarts it if it runs (its settings changed): the old pipeline is stopped within
    /// `deadline` first, and frame numbers continue where it stopped. Registers it with
    /// the frame hub. Returns whether it was restarted.
    pub fn start_camera(
        &self,
        cam: &CameraConfig,
        deadline: Duration,
    ) -> Result<bool, IngestError> {
        let id: CameraId = cam.id.as_str().into();
        let mut old = self.take_running(&cam.id);
        let restarted = old.is_some();
        let mut seq_from = 0;
        if let Some(old) = &mut old {
            drop(old.stop.take());
            join_stopped(std::slice::from_mut(old), Instant::now() + deadline);
            seq_from = old.shared.seq.load(Ordering::Relaxed);
        }
        let sp = self.spawner.lock().unwrap_or_else(|e| e.into_inner());
        let packets = packet_ring(&sp.cfg, cam);
        self.hub.add_camera(id.clone());
        let index = self.lock_running().len();
        match spawn_camera(&sp, &self.hub, cam, packets.clone(), seq_from, index) {
            Ok(r) => {
                if let Some(old) = &old {
                    r.shared.counters.carry_over(&old.shared.counters);
                }
                if let (Some(w), Some(p)) = (&self.clips, packets) {
                    w.set_ring(id, Some(p));
                }
                self.lock_running().push(r);
                Ok(restarted)
            }
            Err(e) => {
                self.hub.remove_camera(&cam.id);
                Err(e)
            }
        }
    }

    /// Stops camera `id` while the others run (removed or disabled live): its pipeline is
    /// stopped within `deadline`, it leaves the frame hub (a pending frame is dropped) and
    /// the clip writer. Returns whether it was running.
    pub fn stop_camera(&self, id: &str, deadline: Duration) -> bool {
        let Some(mut old) = self.take_running(id) else {
            return false;
        };
        drop(old.stop.take());
        join_stopped(std::slice::from_mut(&mut old), Instant::now() + deadline);
        self.hub.remove_camera(id);
        if let Some(w) = &self.clips {
            w.set_ring(id.into(), None);
        }
        info!(camera = %id, "Camera stopped.");
        true
    }

    fn take_running(&self, id: &str) -> Option<Running> {
        let mut running = self.lock_running();
        let i = running.iter().position(|c| c.shared.id.as_ref() == id)?;
        Some(running.remove(i))
    }

    /// The incident clip writer, when `[alerts.clips] enabled` (hand it to the incidents
    /// stage as its [`lookout_core::ClipSink`]).
    pub fn clips(&self) -> Option<Arc<clips::ClipWriter>> {
        self.clips.clone()
    }

    /// Each camera's ring of recent frames (snapshots, live view).
    pub fn rings(&self) -> HashMap<CameraId, Arc<FrameRing>> {
        self.lock_running()
            .iter()
            .map(|c| (c.shared.id.clone(), c.shared.ring.clone()))
            .collect()
    }

    /// One running camera's ring of recent frames.
    pub fn ring(&self, camera: &str) -> Option<Arc<FrameRing>> {
        self.lock_running()
            .iter()
            .find(|c| c.shared.id.as_ref() == camera)
            .map(|c| c.shared.ring.clone())
    }

    /// A camera's current status (`None` for an unknown or disabled camera).
    pub fn status(&self, camera: &str) -> Option<CameraStatus> {
        self.lock_running()
            .iter()
            .find(|c| c.shared.id.as_ref() == camera)
            .map(|c| c.shared.status())
    }

    /// Counters and status of every camera.
    pub fn stats(&self) -> Vec<CameraStats> {
        self.lock_running()
            .iter()
            .map(|c| {
                let c = &c.shared;
                let n = &c.counters;
                let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
                CameraStats {
                    camera: c.id.clone(),
                    source_kind: c.kind,
                    status: c.status(),
                    frames_in: get(&n.frames_in),
                    frames_delivered: get(&n.delivered),
                    frames_dropped_fps: get(&n.dropped_fps),
                    frames_dropped_hub: self.hub.stats(&c.id).map(|s| s.dropped).unwrap_or(0),
                    frames_publish_failed: get(&n.publish_failed),
                    packets_to_decoder: get(&n.to_decoder),
                    delta_units_skipped: get(&n.skipped_delta),
                    frames_decoded: get(&n.decoded),
                    reconnects: get(&n.reconnects),
                    health_send_failures: get(&n.health_send_failed),
                    width: n.width.load(Ordering::Relaxed),
                    height: n.height.load(Ordering::Relaxed),
                    last_error: c.last_error(),
                }
            })
            .collect()
    }

    /// Stops every camera: each supervisor sets its pipeline to Null (which stops the
    /// source first and joins GStreamer's streaming threads), then exits; supervisors are
    /// joined until `deadline`. Supervisors still busy then are left detached (logged).
    /// Finally the hub is closed, so inference drains what is pending and stops, and the
    /// health channel's last sender held here is dropped. No camera starts afterwards.
    pub fn shutdown(&self, deadline: Duration) {
        let until = Instant::now() + deadline;
        drop(
            self.spawner
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .health
                .take(),
        );
        let mut cams = std::mem::take(&mut *self.lock_running());
        for c in &mut cams {
            drop(c.stop.take());
        }
        let stopped = join_stopped(&mut cams, until);
        let total = cams.len();
        drop(cams);
        self.hub.close();
        if let Some(c) = &self.clips {
            // Pending clips are written with the packets they have.
            c.shutdown(
                until
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_secs(2)),
            );
        }
        info!(stopped, abandoned = total - stopped, "Ingest stopped.");
    }
}

/// Camera `cam`'s ring of encoded packets, when `[alerts.clips]` is enabled (a test pattern
/// has no encoded video to keep).
fn packet_ring(cfg: &Config, cam: &CameraConfig) -> Option<Arc<clips::PacketRing>> {
    let clip_cfg = &cfg.alerts.clips;
    (clip_cfg.enabled && !matches!(cam.source, SourceConfig::Test { .. })).then(|| {
        Arc::new(clips::PacketRing::new(
            clip_cfg.ring_bytes(),
            clip_cfg.ring_seconds(),
        ))
    })
}

/// Opens a video file with GStreamer and reports its size, rate and length. Errors name
/// the file and say what is wrong with it.
pub fn probe_file(path: &std::path::Path) -> Result<FileInfo, IngestError> {
    init_gst()?;
    let fail = |reason: String| IngestError::File {
        path: path.display().to_string(),
        reason,
    };
    std::fs::File::open(path).map_err(|e| fail(format!("cannot open: {e}")))?;
    let desc = format!(
        "filesrc location={} ! decodebin ! video/x-raw ! fakesink name=sink sync=false",
        template::quote(&path.to_string_lossy())
    );
    let pipeline = gst::parse::launch(&desc)
        .map_err(|e| fail(e.to_string()))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| fail("not a pipeline".into()))?;
    let result = (|| {
        let bus = pipeline.bus().ok_or_else(|| fail("no bus".into()))?;
        if pipeline.set_state(gst::State::Paused).is_err() {
            let msg =
                bus.timed_pop_filtered(gst::ClockTime::from_seconds(1), &[gst::MessageType::Error]);
            return Err(fail(match msg.as_ref().map(|m| m.view()) {
                Some(gst::MessageView::Error(e)) => e.error().to_string(),
                _ => "cannot be played".into(),
            }));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(fail("timed out while opening".into()));
            }
            let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(left.as_millis() as u64))
            else {
                continue;
            };
            match msg.view() {
                gst::MessageView::Error(e) => return Err(fail(e.error().to_string())),
                gst::MessageView::AsyncDone(_) => break,
                gst::MessageView::Eos(_) => return Err(fail("no video frame".into())),
                _ => {}
            }
        }
        let caps = pipeline
            .by_name("sink")
            .and_then(|s| s.static_pad("sink"))
            .and_then(|p| p.current_caps())
            .ok_or_else(|| fail("no video stream".into()))?;
        let vi = gstreamer_video::VideoInfo::from_caps(&caps)
            .map_err(|_| fail(format!("unexpected caps {caps}")))?;
        let fr = vi.fps();
        let fps = (fr.numer() > 0 && fr.denom() > 0)
            .then(|| f64::from(fr.numer()) / f64::from(fr.denom()));
        let duration = pipeline
            .query_duration::<gst::ClockTime>()
            .map(|d| Duration::from_nanos(d.nseconds()));
        let frames = match (duration, fps) {
            (Some(d), Some(f)) => Some((d.as_secs_f64() * f).round() as u64),
            _ => None,
        };
        Ok(FileInfo {
            width: vi.width(),
            height: vi.height(),
            fps,
            duration,
            frames,
        })
    })();
    let _ = pipeline.set_state(gst::State::Null);
    result
}
