//! Per-camera state shared between the supervisor thread, GStreamer's streaming threads and
//! the [`crate::Ingest`] handle: counters, status, the frame ring.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crossbeam_channel::Sender;
use lookout_core::{CameraHealth, CameraId, CameraStatus, FrameRing};
use tracing::{info, warn};

/// Monotonic counters of one camera, updated lock-free on the frame path.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Samples pulled from the appsink.
    pub frames_in: AtomicU64,
    /// Frames published to the hub.
    pub delivered: AtomicU64,
    /// Frames the hub refused (closed at shutdown).
    pub publish_failed: AtomicU64,
    /// Frames dropped by the fps gate.
    pub dropped_fps: AtomicU64,
    /// Compressed buffers that reached the decoder's sink pad (before the key-frame gate).
    pub to_decoder: AtomicU64,
    /// Delta units dropped before the decoder in key-frames-only mode.
    pub skipped_delta: AtomicU64,
    /// Raw frames that left the decoder (or the test source).
    pub decoded: AtomicU64,
    /// Pipeline restarts after a failure.
    pub reconnects: AtomicU64,
    /// Health updates lost because the health channel was full or closed.
    pub health_send_failed: AtomicU64,
    /// Width of the last delivered frame.
    pub width: AtomicU32,
    /// Height of the last delivered frame.
    pub height: AtomicU32,
}

impl Counters {
    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds a previous run's counts (a camera restarted live keeps counting up, so its
    /// metrics stay monotonic).
    pub fn carry_over(&self, old: &Counters) {
        for (new, old) in [
            (&self.frames_in, &old.frames_in),
            (&self.delivered, &old.delivered),
            (&self.publish_failed, &old.publish_failed),
            (&self.dropped_fps, &old.dropped_fps),
            (&self.to_decoder, &old.to_decoder),
            (&self.skipped_delta, &old.skipped_delta),
            (&self.decoded, &old.decoded),
            (&self.reconnects, &old.reconnects),
            (&self.health_send_failed, &old.health_send_failed),
        ] {
            new.fetch_add(old.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }
}

/// One camera's shared state.
#[derive(Debug)]
pub(crate) struct CameraShared {
    /// The camera.
    pub id: CameraId,
    /// `source.kind` from config (for stats).
    pub kind: &'static str,
    /// What the source is, for error messages and logs (file path, redacted URL, port).
    pub source_desc: String,
    /// Counters for metrics.
    pub counters: Counters,
    /// Recent frames (snapshots, live view); survives reconnects.
    pub ring: Arc<FrameRing>,
    /// Recent encoded packets for incident clips (`[alerts.clips]`; `None` when off or
    /// for a source without encoded video); survives reconnects.
    pub packets: Option<Arc<crate::clips::PacketRing>>,
    /// Next frame sequence number; increases across reconnects.
    pub seq: AtomicU64,
    /// Current status (queried by [`crate::Ingest::status`]); written by the supervisor only.
    status: Mutex<CameraStatus>,
    /// The last error, with camera and source named.
    last_error: Mutex<Option<String>>,
    /// Where status changes go.
    health: Sender<CameraHealth>,
}

impl CameraShared {
    pub fn new(
        id: CameraId,
        kind: &'static str,
        source_desc: String,
        ring_frames: usize,
        packets: Option<Arc<crate::clips::PacketRing>>,
        health: Sender<CameraHealth>,
    ) -> Self {
        CameraShared {
            id,
            kind,
            source_desc,
            counters: Counters::default(),
            ring: Arc::new(FrameRing::new(ring_frames)),
            packets,
            seq: AtomicU64::new(0),
            status: Mutex::new(CameraStatus::Starting),
            last_error: Mutex::new(None),
            health,
        }
    }

    fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
        m.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current status.
    pub fn status(&self) -> CameraStatus {
        Self::lock(&self.status).clone()
    }

    /// The last error message.
    pub fn last_error(&self) -> Option<String> {
        Self::lock(&self.last_error).clone()
    }

    /// Records an error message (camera and source named).
    pub fn set_error(&self, msg: String) {
        *Self::lock(&self.last_error) = Some(msg);
    }

    /// Changes the status; sends a [`CameraHealth`] when it differs (never blocks: a full
    /// channel loses the update and counts it, the status stays queryable).
    pub fn set_status(&self, status: CameraStatus) {
        {
            let mut s = Self::lock(&self.status);
            if *s == status {
                return;
            }
            *s = status.clone();
        }
        match &status {
            CameraStatus::Retrying { attempt, reason } => {
                warn!(camera = %self.id, attempt, %reason, "Stream failed; retrying.")
            }
            CameraStatus::Stopped { reason } => {
                info!(camera = %self.id, ?reason, "Stream stopped.")
            }
            other => info!(camera = %self.id, status = other.name(), "Stream status changed."),
        }
        let msg = CameraHealth {
            camera: self.id.clone(),
            at: chrono::Utc::now(),
            status,
        };
        if self.health.try_send(msg).is_err() {
            Counters::inc(&self.counters.health_send_failed);
        }
    }
}

/// State of one pipeline run (one connection attempt), shared by its probes and appsink.
#[derive(Debug)]
pub(crate) struct RunState {
    /// Unique per run in this process (packets of two runs never go into one clip).
    pub id: u64,
    /// When the run started.
    pub started: Instant,
    /// Milliseconds since `started` of the last buffer seen anywhere (stall detection).
    pub last_activity_ms: AtomicU64,
    /// Frames delivered in this run.
    pub frames: AtomicU64,
    /// File replay: stream time added by previous loops, in nanoseconds.
    pub loop_offset_ns: AtomicU64,
    /// File replay: end of the last frame seen, stream time in nanoseconds.
    pub last_stream_end_ns: AtomicU64,
    /// RTSP: Unix time in ns minus PTS, from the last RTCP sender report (`i64::MIN`: none
    /// yet). Lock-free: written every few seconds, read per frame.
    pub ntp_offset_ns: AtomicI64,
    /// Set before the pipeline is stopped: a streaming thread waiting for inference
    /// (file backpressure) gives up waiting so the pipeline can stop.
    pub stopping: AtomicBool,
}

impl RunState {
    pub fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        RunState {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            started: Instant::now(),
            last_activity_ms: AtomicU64::new(0),
            frames: AtomicU64::new(0),
            loop_offset_ns: AtomicU64::new(0),
            last_stream_end_ns: AtomicU64::new(0),
            ntp_offset_ns: AtomicI64::new(i64::MIN),
            stopping: AtomicBool::new(false),
        }
    }

    /// Marks activity now.
    pub fn touch(&self) {
        let ms = self.started.elapsed().as_millis() as u64;
        self.last_activity_ms.store(ms, Ordering::Relaxed);
    }

    /// Milliseconds since the last activity.
    pub fn idle_ms(&self) -> u64 {
        let now = self.started.elapsed().as_millis() as u64;
        now.saturating_sub(self.last_activity_ms.load(Ordering::Relaxed))
    }
}
