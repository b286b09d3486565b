//! Incident clips from a ring of **encoded** packets (`[alerts.clips]`).
//!
//! ```text
//! decodebin: … parser ─▶ [probe: PacketRing::push] ─▶ video decoder ─▶ analysis tail
//!                                   │ (a reference to the buffer, no copy)
//! incidents stage ──ClipRequest (bounded, try_send; full: dropped and counted)──▶ clips thread
//!   clips thread: key frame at or before `at - pre` … `at + post` from the camera's ring
//!                 ──▶ appsrc ! h264parse|h265parse ! mp4mux faststart ! filesink (no re-encode)
//!                 ──▶ <clip>.mp4 (temporary name, then renamed) + <clip>.json (ClipInfo)
//! ```
//!
//! * The ring is filled by a pad probe on the **sink pad of the video decoder** inside
//!   `decodebin`, before the key-frames-only gate: the parsed, timestamped access units with
//!   their caps (H.264 `avc` with its `codec_data`, H.265, MJPEG, …), every one of them even
//!   when only key frames are decoded. A push takes the ring's mutex for a `VecDeque`
//!   push and pops; it never waits for the writer.
//! * The ring is bounded by bytes (`ring_mb`) and by seconds of capture time
//!   (`pre_s + post_s + 60`), and always starts at a key frame: trimming drops the oldest
//!   packets and then every delta unit up to the next key frame.
//! * H.264 and H.265 are muxed as they came. Any other codec (MJPEG, MPEG-2, VP8, …) cannot
//!   go into an MP4 the browser plays, so it is decoded and re-encoded to H.264 (`x264enc`),
//!   and the clip's `.json` says `remuxed: false`.
//! * The clips thread polls each pending clip every 200 ms, collecting packets as they
//!   arrive, so the ring only needs to hold the time between the first sighting and the
//!   incident opening. A clip ends at `at + post_s`, at a gap (the ring overran between
//!   two polls), at a new pipeline run, at a caps change or a timestamp going backwards
//!   (file loop), or when the stream stops sending (wall-clock bound): it is written with
//!   what it has.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use lookout_config::alerts::ClipsConfig;
use lookout_core::{CameraId, ClipInfo, ClipRequest, ClipSink, UtcTime};
use serde::Serialize;
use tracing::{debug, info, warn};

/// Requests waiting for the clips thread.
const QUEUE: usize = 32;
/// How often pending clips collect new packets.
const POLL: Duration = Duration::from_millis(200);
/// Longest time a clip's muxing pipeline may take.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// One encoded access unit.
#[derive(Debug, Clone)]
pub(crate) struct Packet {
    seq: u64,
    run: u64,
    buffer: gst::Buffer,
    caps: gst::Caps,
    at: UtcTime,
    key: bool,
}

impl Packet {
    fn ts(&self) -> Option<gst::ClockTime> {
        self.buffer.dts().or(self.buffer.pts())
    }
}

#[derive(Debug, Default)]
struct RingInner {
    packets: VecDeque<Packet>,
    bytes: usize,
    next_seq: u64,
}

/// A camera's recent encoded packets, key-frame aligned, bounded by bytes and seconds.
#[derive(Debug)]
pub struct PacketRing {
    inner: Mutex<RingInner>,
    max_bytes: usize,
    max_span: chrono::Duration,
}

impl PacketRing {
    /// A ring of at most `max_bytes` and `max_span_s` seconds of capture time.
    pub fn new(max_bytes: usize, max_span_s: f64) -> PacketRing {
        PacketRing {
            inner: Mutex::new(RingInner::default()),
            max_bytes,
            max_span: chrono::Duration::milliseconds((max_span_s * 1000.0) as i64),
        }
    }

    fn lock(&self) -> MutexGuard<'_, RingInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a packet (a reference to the buffer, not a copy). Runs on the streaming thread.
    pub(crate) fn push(&self, run: u64, buffer: gst::Buffer, caps: gst::Caps, at: UtcTime) {
        let key = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
        let size = buffer.size();
        let mut r = self.lock();
        if r.packets.is_empty() && !key {
            return;
        }
        let seq = r.next_seq;
        r.next_seq += 1;
        r.bytes += size;
        r.packets.push_back(Packet {
            seq,
            run,
            buffer,
            caps,
            at,
            key,
        });
        while let (Some(front), Some(back)) = (r.packets.front(), r.packets.back()) {
            if r.bytes <= self.max_bytes && back.at - front.at <= self.max_span {
                break;
            }
            Self::pop(&mut r);
            while r.packets.front().is_some_and(|p| !p.key) {
                Self::pop(&mut r);
            }
        }
    }

    fn pop(r: &mut RingInner) {
        if let Some(p) = r.packets.pop_front() {
            r.bytes = r.bytes.saturating_sub(p.buffer.size());
        }
    }

    /// Packets held now (references), oldest first.
    fn after(&self, seq: Option<u64>) -> Vec<Packet> {
        let r = self.lock();
        r.packets
            .iter()
            .filter(|p| seq.is_none_or(|s| p.seq > s))
            .cloned()
            .collect()
    }

    /// (packets, bytes) held now.
    pub fn len(&self) -> (usize, usize) {
        let r = self.lock();
        (r.packets.len(), r.bytes)
    }

    /// True when the ring holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len().0 == 0
    }
}

/// Why a clip request got no clip before it was queued or while it waited: the `reason`
/// label of `lookout_clips_dropped_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The writer's queue was full.
    QueueFull,
    /// The camera has no packet ring (a test pattern, or a camera removed).
    NoRing,
    /// The writer was stopping.
    Stopping,
}

impl DropReason {
    /// Every reason, in the order of [`ClipStats::dropped_by`].
    pub const ALL: [DropReason; 3] = [
        DropReason::QueueFull,
        DropReason::NoRing,
        DropReason::Stopping,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::NoRing => "no_ring",
            DropReason::Stopping => "stopping",
        }
    }
}

/// Counters of the clip writer.
#[derive(Debug, Default)]
pub struct ClipCounters {
    /// Requests queued.
    pub requested: AtomicU64,
    /// Requests dropped, per [`DropReason::ALL`] entry.
    pub dropped: [AtomicU64; 3],
    /// Clips written.
    pub written: AtomicU64,
    /// Clips written by decoding and re-encoding (a codec MP4 cannot carry as it came).
    pub reencoded: AtomicU64,
    /// Clips that could not be written (no packets, muxer error, file error).
    pub failed: AtomicU64,
    /// Bytes of clips written.
    pub bytes: AtomicU64,
}

impl ClipCounters {
    fn drop_one(&self, reason: DropReason) {
        self.drop_n(reason, 1);
    }

    fn drop_n(&self, reason: DropReason, n: u64) {
        let i = DropReason::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(0);
        self.dropped[i].fetch_add(n, Ordering::Relaxed);
    }
}

/// A snapshot of [`ClipCounters`].
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ClipStats {
    /// Requests queued.
    pub requested: u64,
    /// Requests dropped, all reasons.
    pub dropped: u64,
    /// Requests dropped per [`DropReason::ALL`] entry.
    pub dropped_by: [u64; 3],
    /// Clips written.
    pub written: u64,
    /// Clips written by re-encoding.
    pub reencoded: u64,
    /// Clips that failed.
    pub failed: u64,
    /// Bytes written.
    pub bytes: u64,
}

/// The cameras' packet rings, shared by the writer and its thread; cameras come and go at
/// run time ([`ClipWriter::set_ring`]).
#[derive(Debug, Default)]
struct Rings(RwLock<Vec<(CameraId, Arc<PacketRing>)>>);

impl Rings {
    fn get(&self, camera: &str) -> Option<Arc<PacketRing>> {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|(c, _)| c.as_ref() == camera)
            .map(|(_, r)| r.clone())
    }

    fn set(&self, camera: CameraId, ring: Option<Arc<PacketRing>>) {
        let mut rings = self.0.write().unwrap_or_else(|e| e.into_inner());
        rings.retain(|(c, _)| *c != camera);
        if let Some(r) = ring {
            rings.push((camera, r));
        }
    }

    /// True while `ring` is still the camera's ring.
    fn is_current(&self, camera: &str, ring: &Arc<PacketRing>) -> bool {
        self.get(camera).is_some_and(|r| Arc::ptr_eq(&r, ring))
    }
}

/// The clip writer: a bounded queue in front of one thread. Implements [`ClipSink`].
#[derive(Debug)]
pub struct ClipWriter {
    tx: Sender<ClipRequest>,
    rings: Arc<Rings>,
    counters: Arc<ClipCounters>,
    stop: Arc<AtomicBool>,
    done: Receiver<()>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl ClipWriter {
    /// Starts the clips thread over the cameras' rings.
    pub fn spawn(
        cfg: &ClipsConfig,
        rings: Vec<(CameraId, Arc<PacketRing>)>,
    ) -> std::io::Result<ClipWriter> {
        let (tx, rx) = crossbeam_channel::bounded(QUEUE);
        let (done_tx, done) = crossbeam_channel::bounded(1);
        let counters = Arc::new(ClipCounters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let rings = Arc::new(Rings(RwLock::new(rings)));
        let worker = Worker {
            pre: chrono::Duration::milliseconds((cfg.pre_s * 1000.0) as i64),
            post: chrono::Duration::milliseconds((cfg.post_s * 1000.0) as i64),
            give_up: Duration::from_secs_f64(cfg.post_s * 4.0 + 30.0),
            rings: rings.clone(),
            counters: counters.clone(),
            stop: stop.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("clips".into())
            .spawn(move || {
                worker.run(rx);
                let _ = done_tx.send(());
            })?;
        Ok(ClipWriter {
            tx,
            rings,
            counters,
            stop,
            done,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The counters now.
    pub fn stats(&self) -> ClipStats {
        let c = &self.counters;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let dropped_by = [g(&c.dropped[0]), g(&c.dropped[1]), g(&c.dropped[2])];
        ClipStats {
            requested: g(&c.requested),
            dropped: dropped_by.iter().sum(),
            dropped_by,
            written: g(&c.written),
            reencoded: g(&c.reencoded),
            failed: g(&c.failed),
            bytes: g(&c.bytes),
        }
    }

    /// A camera's packet ring (tests, metrics).
    pub fn ring(&self, camera: &str) -> Option<Arc<PacketRing>> {
        self.rings.get(camera)
    }

    /// Gives a camera a packet ring, replaces it, or (`None`) takes it away: for cameras
    /// added, changed or removed at run time. Requests for a camera without a ring are
    /// dropped and counted. A clip being collected from a ring that is replaced or taken
    /// away takes what that ring still holds and is written with it (the old pipeline's
    /// packets do not mix with the new one's).
    pub fn set_ring(&self, camera: CameraId, ring: Option<Arc<PacketRing>>) {
        debug!(camera = %camera, ring = ring.is_some(), "Clip packet ring set.");
        self.rings.set(camera, ring);
    }

    /// Stops the thread: pending clips are written with what they have; waits until
    /// `deadline` at most (a thread still busy then is left detached, logged).
    pub fn shutdown(&self, deadline: Duration) {
        self.stop.store(true, Ordering::Relaxed);
        let handle = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(handle) = handle else { return };
        if self.done.recv_timeout(deadline).is_ok() {
            let _ = handle.join();
        } else {
            warn!("The clips thread did not finish before the shutdown deadline; abandoned.");
        }
        let s = self.stats();
        info!(
            written = s.written,
            failed = s.failed,
            dropped = s.dropped,
            bytes = s.bytes,
            "Clip writer stopped."
        );
    }
}

impl ClipSink for ClipWriter {
    fn request(&self, req: ClipRequest) -> bool {
        if self.stop.load(Ordering::Relaxed) {
            debug!(camera = %req.camera, incident = %req.incident, "The clip writer is stopping; no clip.");
            self.counters.drop_one(DropReason::Stopping);
            return false;
        }
        if self.ring(&req.camera).is_none() {
            debug!(camera = %req.camera, incident = %req.incident, "No packet ring for this camera; no clip.");
            self.counters.drop_one(DropReason::NoRing);
            return false;
        }
        match self.tx.try_send(req) {
            Ok(()) => {
                self.counters.requested.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(TrySendError::Full(r)) => {
                warn!(incident = %r.incident, camera = %r.camera, "Clip queue full; this incident gets no clip.");
                self.counters.drop_one(DropReason::QueueFull);
                false
            }
            Err(TrySendError::Disconnected(r)) => {
                debug!(incident = %r.incident, camera = %r.camera, "The clips thread has stopped; no clip.");
                self.counters.drop_one(DropReason::Stopping);
                false
            }
        }
    }
}

struct Worker {
    pre: chrono::Duration,
    post: chrono::Duration,
    give_up: Duration,
    rings: Arc<Rings>,
    counters: Arc<ClipCounters>,
    stop: Arc<AtomicBool>,
}

/// A clip being collected.
struct Pending {
    req: ClipRequest,
    ring: Arc<PacketRing>,
    packets: Vec<Packet>,
    last_seq: Option<u64>,
    since: Instant,
    /// No more packets will be added (gap, new run, caps change, backwards time).
    closed: bool,
}

impl Pending {
    /// Takes what the ring has; true when the clip is complete.
    fn collect(&mut self, pre: chrono::Duration, post: chrono::Duration) -> bool {
        if !self.closed {
            let new = self.ring.after(self.last_seq);
            let mut iter = new.into_iter().peekable();
            if self.packets.is_empty() {
                // Start: the last key frame at or before `at - pre`, else the oldest held;
                // chosen once the stream has reached `at - pre` (a request may come before
                // its video, e.g. in tests or a replay read ahead).
                let all: Vec<Packet> = iter.collect();
                let from = self.req.at - pre;
                if all.last().is_none_or(|p| p.at < from) {
                    return false;
                }
                let start = all
                    .iter()
                    .rposition(|p| p.key && p.at <= from)
                    .or_else(|| all.iter().position(|p| p.key));
                let mut all = all;
                iter = match start {
                    Some(i) => all.split_off(i).into_iter().peekable(),
                    None => Vec::new().into_iter().peekable(),
                };
            } else if let (Some(last), Some(first)) = (self.last_seq, iter.peek()) {
                if first.seq != last + 1 {
                    debug!(incident = %self.req.incident, "The packet ring overran between two polls; clip ends here.");
                    self.closed = true;
                }
            }
            let end = self.req.at + post;
            for p in iter {
                if self.closed {
                    break;
                }
                if let Some(prev) = self.packets.last() {
                    let backwards = matches!((prev.ts(), p.ts()), (Some(a), Some(b)) if b < a);
                    if p.run != prev.run || p.caps != prev.caps || backwards {
                        self.closed = true;
                        break;
                    }
                    if prev.at >= end {
                        self.closed = true;
                        break;
                    }
                }
                self.last_seq = Some(p.seq);
                self.packets.push(p);
            }
        }
        self.closed
            || self
                .packets
                .last()
                .is_some_and(|p| p.at >= self.req.at + post)
    }
}

impl Worker {
    fn run(self, rx: Receiver<ClipRequest>) {
        let mut pending: Vec<Pending> = Vec::new();
        loop {
            let stopping = self.stop.load(Ordering::Relaxed);
            if !stopping {
                match rx.recv_timeout(POLL) {
                    Ok(req) => {
                        let Some(ring) = self.rings.get(&req.camera) else {
                            self.counters.drop_one(DropReason::NoRing);
                            continue;
                        };
                        debug!(incident = %req.incident, camera = %req.camera, at = %req.at, "Clip requested.");
                        pending.push(Pending {
                            req,
                            ring,
                            packets: Vec::new(),
                            last_seq: None,
                            since: Instant::now(),
                            closed: false,
                        });
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => {
                        self.stop.store(true, Ordering::Relaxed);
                    }
                }
            }
            let stopping = self.stop.load(Ordering::Relaxed);
            let mut i = 0;
            while i < pending.len() {
                let p = &mut pending[i];
                // Checked before collecting: a ring taken away is read one last time.
                let gone = !self.rings.is_current(&p.req.camera, &p.ring);
                let complete = p.collect(self.pre, self.post) || gone;
                if complete || stopping || p.since.elapsed() >= self.give_up {
                    let p = pending.swap_remove(i);
                    self.finish(p);
                } else {
                    i += 1;
                }
            }
            if stopping && pending.is_empty() {
                // Requests still queued get no clip.
                let left = rx.try_iter().count() as u64;
                self.counters.drop_n(DropReason::Stopping, left);
                return;
            }
        }
    }

    fn finish(&self, p: Pending) {
        let started = Instant::now();
        match write_clip(&p.req, &p.packets) {
            Ok(info) => {
                let size = std::fs::metadata(&p.req.path).map(|m| m.len()).unwrap_or(0);
                self.counters.written.fetch_add(1, Ordering::Relaxed);
                if !info.remuxed {
                    self.counters.reencoded.fetch_add(1, Ordering::Relaxed);
                }
                self.counters.bytes.fetch_add(size, Ordering::Relaxed);
                info!(incident = %p.req.incident, camera = %p.req.camera, path = %p.req.path.display(),
                    duration_s = info.duration_s, codec = %info.codec, remuxed = info.remuxed, bytes = size,
                    write_ms = started.elapsed().as_millis() as u64, "Incident clip written.");
            }
            Err(e) => {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                warn!(incident = %p.req.incident, camera = %p.req.camera, path = %p.req.path.display(), error = %e, "Cannot write the incident clip.");
            }
        }
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Whether packets of these caps go into MP4 as they are, and the parser that does it.
pub fn remux_parser(codec: &str) -> Option<&'static str> {
    match codec {
        "video/x-h264" => Some("h264parse"),
        "video/x-h265" => Some("h265parse"),
        _ => None,
    }
}

/// Muxes `packets` into `req.path` (through a temporary file, renamed when complete) and
/// writes the [`ClipInfo`] beside it.
pub(crate) fn write_clip(req: &ClipRequest, packets: &[Packet]) -> Result<ClipInfo, String> {
    let first = packets
        .first()
        .ok_or_else(|| "no encoded video of the camera around the trigger time".to_string())?;
    let codec = first
        .caps
        .structure(0)
        .map(|s| s.name().to_string())
        .unwrap_or_default();
    let parser = remux_parser(&codec);
    if let Some(dir) = req.path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let tmp = with_suffix(&req.path, ".part");
    let moov = with_suffix(&req.path, ".moov");
    let q = |p: &Path| crate::template::quote(&p.to_string_lossy());
    let mux = format!(
        "mp4mux faststart=true faststart-file={} ! filesink location={}",
        q(&moov),
        q(&tmp)
    );
    let launch = match parser {
        Some(parser) => format!("appsrc name=src format=time ! {parser} ! {mux}"),
        None => format!(
            "appsrc name=src format=time ! decodebin ! videoconvert ! video/x-raw,format=I420 ! \
             x264enc speed-preset=veryfast ! h264parse ! {mux}"
        ),
    };
    let pipeline = gst::parse::launch(&launch)
        .map_err(|e| format!("cannot build the muxer: {e}"))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "the muxer is not a pipeline".to_string())?;
    let result = (|| {
        let src = pipeline
            .by_name("src")
            .and_then(|e| e.dynamic_cast::<gst_app::AppSrc>().ok())
            .ok_or_else(|| "no appsrc".to_string())?;
        src.set_caps(Some(&first.caps));
        src.set_max_bytes(0);
        let bus = pipeline.bus().ok_or("no bus")?;
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| format!("cannot start the muxer: {e}"))?;
        let base = match (first.buffer.pts(), first.buffer.dts()) {
            (Some(p), Some(d)) => p.min(d),
            (p, d) => p.or(d).unwrap_or(gst::ClockTime::ZERO),
        };
        let mut min_pts: Option<gst::ClockTime> = None;
        let mut end = gst::ClockTime::ZERO;
        let mut bytes = 0u64;
        let mut count = 0u64;
        for (i, p) in packets.iter().enumerate() {
            let mut b = p.buffer.copy();
            let bm = b.make_mut();
            let pts = p.buffer.pts().and_then(|t| t.checked_sub(base));
            if p.buffer.pts().is_some() && pts.is_none() {
                // A leading picture of the previous group (shown before the key frame).
                continue;
            }
            bm.set_pts(pts);
            bm.set_dts(p.buffer.dts().and_then(|t| t.checked_sub(base)));
            if i == 0 {
                bm.set_flags(gst::BufferFlags::DISCONT);
            }
            if let Some(pts) = pts {
                min_pts = Some(min_pts.map_or(pts, |m| m.min(pts)));
                end = end.max(pts + p.buffer.duration().unwrap_or(gst::ClockTime::ZERO));
            }
            bytes += p.buffer.size() as u64;
            count += 1;
            src.push_buffer(b)
                .map_err(|e| format!("the muxer refused a packet: {e:?}"))?;
        }
        src.end_of_stream()
            .map_err(|e| format!("cannot end the stream: {e:?}"))?;
        let deadline = Instant::now() + WRITE_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err("the muxer did not finish in time".to_string());
            }
            let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(left.as_millis() as u64))
            else {
                continue;
            };
            match msg.view() {
                gst::MessageView::Eos(_) => break,
                gst::MessageView::Error(e) => {
                    return Err(format!(
                        "muxing failed: {} ({})",
                        e.error(),
                        e.debug().map(|d| d.to_string()).unwrap_or_default()
                    ))
                }
                _ => {}
            }
        }
        let zero = min_pts.unwrap_or(gst::ClockTime::ZERO);
        let lead = first
            .buffer
            .pts()
            .and_then(|p| p.checked_sub(base))
            .unwrap_or(gst::ClockTime::ZERO);
        // Media time t is capture time `start + t`: the first packet's picture is at its
        // rebased PTS (`lead`).
        let start = first.at - chrono::Duration::nanoseconds(lead.nseconds() as i64);
        Ok(ClipInfo {
            incident: req.incident.clone(),
            camera: req.camera.to_string(),
            at: req.at,
            start,
            duration_s: end.saturating_sub(zero).nseconds() as f64 / 1e9,
            codec: codec.clone(),
            remuxed: parser.is_some(),
            packets: count,
            bytes,
        })
    })();
    let _ = pipeline.set_state(gst::State::Null);
    let _ = std::fs::remove_file(&moov);
    let info = match result {
        Ok(i) => i,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    let json = serde_json::to_vec_pretty(&info).map_err(|e| e.to_string())?;
    let info_path = req.path.with_extension("json");
    let info_tmp = with_suffix(&info_path, ".part");
    std::fs::write(&info_tmp, json).map_err(|e| format!("{}: {e}", info_tmp.display()))?;
    std::fs::rename(&info_tmp, &info_path).map_err(|e| format!("{}: {e}", info_path.display()))?;
    std::fs::rename(&tmp, &req.path).map_err(|e| format!("{}: {e}", req.path.display()))?;
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> UtcTime {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    /// `secs` seconds of real H.264 (10 fps, a key frame every second), as a camera's
    /// decoder would see it, with capture times from `t0() + from_s`.
    fn fill(ring: &PacketRing, run: u64, from_s: f64, secs: u32) {
        let launch = format!(
            "videotestsrc num-buffers={} ! video/x-raw,width=160,height=120,framerate=10/1 ! \
             x264enc key-int-max=10 bframes=0 speed-preset=ultrafast ! h264parse ! \
             video/x-h264,stream-format=avc,alignment=au ! appsink name=sink sync=false",
            secs * 10
        );
        let pipeline = gst::parse::launch(&launch)
            .unwrap()
            .downcast::<gst::Pipeline>()
            .unwrap();
        let sink = pipeline
            .by_name("sink")
            .unwrap()
            .dynamic_cast::<gst_app::AppSink>()
            .unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        let start = t0() + chrono::Duration::milliseconds((from_s * 1000.0) as i64);
        let mut n = 0;
        let mut first = None;
        while let Ok(sample) = sink.pull_sample() {
            let buffer = sample.buffer_owned().unwrap();
            let caps = sample.caps_owned().unwrap();
            let pts = buffer.pts().unwrap();
            let since = pts - *first.get_or_insert(pts);
            let at = start + chrono::Duration::nanoseconds(since.nseconds() as i64);
            ring.push(run, buffer, caps, at);
            n += 1;
        }
        pipeline.set_state(gst::State::Null).unwrap();
        assert_eq!(n, secs * 10, "the encoder gave every frame");
    }

    fn request(dir: &Path, name: &str, camera: &str, at_s: f64) -> ClipRequest {
        ClipRequest {
            incident: name.into(),
            camera: camera.into(),
            at: t0() + chrono::Duration::milliseconds((at_s * 1000.0) as i64),
            path: dir.join(format!("{name}.mp4")),
        }
    }

    fn wait_info(path: &Path, within: Duration) -> Option<ClipInfo> {
        let info = path.with_extension("json");
        let until = Instant::now() + within;
        while Instant::now() < until {
            if path.exists() {
                let text = std::fs::read(&info).ok()?;
                return serde_json::from_slice(&text).ok();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    #[test]
    fn a_camera_gains_loses_and_replaces_its_ring_at_run_time() {
        gst::init().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cfg = ClipsConfig {
            enabled: true,
            pre_s: 1.0,
            post_s: 1.0,
            ..ClipsConfig::default()
        };
        // give_up is post_s * 4 + 30 = 34 s: every wait below is shorter, so a clip that
        // appears was ended by what the test did, not by the wall-clock bound.
        let within = Duration::from_secs(20);
        let writer = ClipWriter::spawn(&cfg, Vec::new()).unwrap();

        // No ring yet: dropped and counted.
        assert!(!writer.request(request(dir.path(), "before", "cam", 2.0)));
        assert_eq!(writer.stats().dropped, 1);
        assert!(writer.ring("cam").is_none());

        // Gained: the clip is cut from the new ring.
        let ring = Arc::new(PacketRing::new(cfg.ring_bytes(), cfg.ring_seconds()));
        fill(&ring, 1, 0.0, 5);
        writer.set_ring("cam".into(), Some(ring.clone()));
        assert!(writer.ring("cam").is_some_and(|r| Arc::ptr_eq(&r, &ring)));
        let req = request(dir.path(), "gained", "cam", 2.0);
        assert!(writer.request(req.clone()));
        let info = wait_info(&req.path, within).expect("a clip from the gained ring");
        assert_eq!(info.codec, "video/x-h264");
        assert!(info.remuxed);
        // Key frame at 1 s (at - pre) to at + post = 3 s: 2 s and a frame.
        assert!(
            (2.0..=2.25).contains(&info.duration_s),
            "duration {}: {info:?}",
            info.duration_s
        );
        assert_eq!(info.start, t0() + chrono::Duration::seconds(1));

        // Lost while a clip waits for video that will not come (the ring ends at 4.9 s,
        // the clip wants 5.5 s): it is written with what the ring held.
        let req = request(dir.path(), "lost", "cam", 4.5);
        assert!(writer.request(req.clone()));
        std::thread::sleep(POLL * 3);
        assert!(!req.path.exists(), "still waiting for its post_s");
        writer.set_ring("cam".into(), None);
        let info = wait_info(&req.path, within).expect("the waiting clip is written");
        assert_eq!(info.start, t0() + chrono::Duration::seconds(3));
        assert!(
            (1.85..=2.0).contains(&info.duration_s),
            "3.5 s to 4.9 s and a frame: {}",
            info.duration_s
        );
        assert!(writer.ring("cam").is_none());
        assert!(!writer.request(request(dir.path(), "after", "cam", 2.0)));
        assert_eq!(writer.stats().dropped, 2);
        assert_eq!(writer.stats().dropped_by, [0, 2, 0], "no ring, twice");

        // Replaced by another pipeline's ring (a camera edited live): the new video only.
        let ring2 = Arc::new(PacketRing::new(cfg.ring_bytes(), cfg.ring_seconds()));
        fill(&ring2, 7, 100.0, 4);
        writer.set_ring("cam".into(), Some(ring.clone()));
        writer.set_ring("cam".into(), Some(ring2.clone()));
        assert!(writer.ring("cam").is_some_and(|r| Arc::ptr_eq(&r, &ring2)));
        let req = request(dir.path(), "replaced", "cam", 102.0);
        assert!(writer.request(req.clone()));
        let info = wait_info(&req.path, within).expect("a clip from the replacing ring");
        assert_eq!(info.start, t0() + chrono::Duration::seconds(101));

        // Every request counted once.
        let s = writer.stats();
        assert_eq!((s.written, s.failed, s.dropped, s.requested), (3, 0, 2, 3));
        assert_eq!(s.reencoded, 0, "H.264 is muxed as it came");
        writer.shutdown(Duration::from_secs(10));
    }
}
