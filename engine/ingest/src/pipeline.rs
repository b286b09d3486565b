//! Builds one camera's GStreamer pipeline from its filled template and attaches what the
//! template syntax cannot say: the analysis-size probe, the key-frame gate before the
//! decoder, the fps gate, the counters, and the appsink callback that turns samples into
//! [`Frame`]s.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use lookout_config::cameras::PtzConfig;
use lookout_core::{CaptureClock, Frame, FrameHub, Pixels, Pose, UtcTime};
use tracing::{debug, trace};

use crate::camera::{CameraShared, Counters, RunState};
use crate::pool::BytePool;
use crate::sampling::{analysis_size, FpsGate};

/// Seconds between the NTP epoch (1900) and the Unix epoch (1970).
const NTP_UNIX_OFFSET_S: u64 = 2_208_988_800;

/// How a camera's frames get their capture time.
#[derive(Debug, Clone, Copy)]
pub(crate) enum TimeBase {
    /// Live source: the sender's NTP time when the stream carries it, else arrival time.
    Live,
    /// File replay: `start + stream time` (plus the length of previous loops).
    Replay {
        /// Wall-clock time of the file's first frame.
        start: UtcTime,
    },
}

/// PTZ tour data prepared once per camera (no allocation per frame).
#[derive(Debug, Clone)]
pub(crate) struct PtzTour {
    /// The configured presets and tour.
    pub cfg: PtzConfig,
    /// Preset names as shared strings, in `cfg.presets` order.
    pub names: Vec<Arc<str>>,
    /// The camera's default tilt (`geo.tilt_deg`) for presets without one.
    pub default_tilt: Option<f64>,
    /// When the tour started (engine start for live cameras, `start_time` for replays).
    pub epoch: UtcTime,
}

impl PtzTour {
    pub fn new(cfg: PtzConfig, default_tilt: Option<f64>, epoch: UtcTime) -> Self {
        let names = cfg
            .presets
            .iter()
            .map(|p| Arc::from(p.name.as_str()))
            .collect();
        PtzTour {
            cfg,
            names,
            default_tilt,
            epoch,
        }
    }

    /// The pose at capture time `at`.
    pub fn pose(&self, at: UtcTime) -> Option<Pose> {
        let elapsed = (at - self.epoch).num_milliseconds() as f64 / 1000.0;
        let (preset, moving) = match self.cfg.tour_position(elapsed) {
            Some(p) => p,
            None => (self.cfg.presets.first()?, false),
        };
        let idx = self
            .cfg
            .presets
            .iter()
            .position(|p| std::ptr::eq(p, preset))?;
        Some(Pose {
            preset: Some(self.names[idx].clone()),
            pan_deg: Some(preset.pan_deg),
            tilt_deg: preset.tilt_deg.or(self.default_tilt),
            moving,
        })
    }
}

/// Everything the frame path of one camera needs, fixed for the camera's lifetime.
#[derive(Debug, Clone)]
pub(crate) struct FrameSetup {
    pub camera: Arc<CameraShared>,
    pub hub: Arc<FrameHub>,
    pub time: TimeBase,
    pub ptz: Option<Arc<PtzTour>>,
    pub fps_cap: f64,
    pub keyframes_only: bool,
    pub max_side: u32,
    /// Wait for inference to take the previous frame instead of replacing it (a file read
    /// as fast as possible: backpressure slows the decoder, no frame is dropped).
    pub wait_for_inference: bool,
    /// Buffers for frames whose rows need repacking.
    pub pool: BytePool,
}

/// A built pipeline.
pub(crate) struct Built {
    pub pipeline: gst::Pipeline,
    /// The element named `src` (to tell source errors from the rest).
    pub src: Option<gst::Element>,
}

// Probes that discard a buffer return `Handled` (the buffer is released by the binding),
// not `Drop`: with gstreamer-rs 0.25 `Drop` makes GStreamer unref a pointer the binding has
// already taken (a harmless but noisy CRITICAL per dropped buffer).

/// True for elements whose factory class is a video decoder.
pub(crate) fn is_video_decoder(e: &gst::Element) -> bool {
    e.factory().is_some_and(|f| {
        let k = f.klass();
        k.contains("Decoder") && k.contains("Video")
    })
}

/// True for elements whose factory class is an image decoder (`jpegdec` for MJPEG).
fn is_image_decoder(e: &gst::Element) -> bool {
    e.factory().is_some_and(|f| {
        let k = f.klass();
        k.contains("Decoder") && k.contains("Image")
    })
}

/// Puts the encoded packet a decoder's sink pad sees into the camera's clip ring (a
/// reference, not a copy), stamped with its capture time.
fn keep_packet(
    ring: &crate::clips::PacketRing,
    time: TimeBase,
    run: &RunState,
    pad: &gst::Pad,
    info: &gst::PadProbeInfo,
) {
    let (Some(buffer), Some(caps)) = (info.buffer(), pad.current_caps()) else {
        return;
    };
    let segment = pad.sticky_event::<gst::event::Segment>(0);
    let seg = segment
        .as_ref()
        .and_then(|s| s.segment().downcast_ref::<gst::ClockTime>());
    let (at, _, _) = capture_time_of(time, run, buffer, seg);
    ring.push(run.id, buffer.to_owned(), caps, at);
}

fn buffer_pts(info: &gst::PadProbeInfo) -> Option<Option<u64>> {
    info.buffer().map(|b| b.pts().map(|t| t.nseconds()))
}

fn buffer_is_delta(info: &gst::PadProbeInfo) -> bool {
    info.buffer()
        .is_some_and(|b| b.flags().contains(gst::BufferFlags::DELTA_UNIT))
}

/// Parses the description and wires probes and the appsink.
pub(crate) fn build(
    launch: &str,
    setup: &FrameSetup,
    run: &Arc<RunState>,
) -> Result<Built, String> {
    let element =
        gst::parse::launch(launch).map_err(|e| format!("cannot build the pipeline: {e}"))?;
    let pipeline = element
        .downcast::<gst::Pipeline>()
        .map_err(|_| "the template did not produce a pipeline".to_string())?;
    let get = |name: &str| {
        pipeline
            .by_name(name)
            .ok_or_else(|| format!("the pipeline has no element named {name:?}"))
    };
    let pace = get("pace")?;
    let size = get("size")?;
    let sink = get("sink")?
        .dynamic_cast::<gst_app::AppSink>()
        .map_err(|_| "element \"sink\" is not an appsink".to_string())?;
    let src = pipeline.by_name("src");

    // One gate per run; used either before the decoder (key-frames-only: gating key frames
    // there saves decoding them) or right after it (before scaling and conversion).
    let gate = Arc::new(Mutex::new(FpsGate::new(setup.fps_cap)));
    let gate_before_decoder = setup.keyframes_only;

    // Key-frame gate and "to decoder" counter on every video decoder decodebin plugs.
    {
        let cam = setup.camera.clone();
        let run = run.clone();
        let gate = gate.clone();
        let keyframes_only = setup.keyframes_only;
        let time = setup.time;
        pipeline.connect_deep_element_added(move |_, _, element| {
            if !is_video_decoder(element) {
                // An image decoder (MJPEG's jpegdec): only its packets go to the clip ring.
                if let (true, Some(ring), Some(pad)) = (
                    is_image_decoder(element),
                    cam.packets.clone(),
                    element.static_pad("sink"),
                ) {
                    let run = run.clone();
                    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
                        keep_packet(&ring, time, &run, pad, info);
                        gst::PadProbeReturn::Ok
                    });
                }
                return;
            }
            let Some(pad) = element.static_pad("sink") else {
                return;
            };
            debug!(camera = %cam.id, decoder = %element.name(), keyframes_only, "Decoder plugged.");
            let cam = cam.clone();
            let run = run.clone();
            let gate = gate.clone();
            let time = time;
            pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
                run.touch();
                Counters::inc(&cam.counters.to_decoder);
                // Every packet (key frame or not) into the clip ring, before the gate.
                if let Some(ring) = &cam.packets {
                    keep_packet(ring, time, &run, pad, info);
                }
                if keyframes_only {
                    if buffer_is_delta(info) {
                        Counters::inc(&cam.counters.skipped_delta);
                        return gst::PadProbeReturn::Handled;
                    }
                    let pts = buffer_pts(info).flatten();
                    let admit = gate.lock().map(|mut g| g.admit(pts)).unwrap_or(true);
                    if !admit {
                        Counters::inc(&cam.counters.dropped_fps);
                        return gst::PadProbeReturn::Handled;
                    }
                }
                gst::PadProbeReturn::Ok
            });
        });
    }

    let pace_sink = pace
        .static_pad("sink")
        .ok_or_else(|| "element \"pace\" has no sink pad".to_string())?;

    // Analysis size from the decoded caps, set before scale/convert negotiate.
    {
        let size = size.downgrade();
        let max_side = setup.max_side;
        let cam = setup.camera.clone();
        pace_sink.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
            let Some(ev) = info.event() else {
                return gst::PadProbeReturn::Ok;
            };
            let gst::EventView::Caps(c) = ev.view() else {
                return gst::PadProbeReturn::Ok;
            };
            let Ok(vi) = gst_video::VideoInfo::from_caps(c.caps()) else {
                return gst::PadProbeReturn::Ok;
            };
            let par = vi.par();
            let (w, h) = analysis_size(vi.width(), vi.height(), par.numer(), par.denom(), max_side);
            debug!(camera = %cam.id, in_w = vi.width(), in_h = vi.height(), w, h, "Decoded size known; analysis size set.");
            if let Some(size) = size.upgrade() {
                let caps = gst_video::VideoCapsBuilder::new()
                    .format(gst_video::VideoFormat::Rgb)
                    .width(w as i32)
                    .height(h as i32)
                    .pixel_aspect_ratio(gst::Fraction::new(1, 1))
                    .build();
                size.set_property("caps", &caps);
            }
            gst::PadProbeReturn::Ok
        });
    }

    // Decoded-frame counter and the fps gate after the decoder.
    {
        let cam = setup.camera.clone();
        let run = run.clone();
        let gate = gate.clone();
        pace_sink.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            run.touch();
            Counters::inc(&cam.counters.decoded);
            if !gate_before_decoder {
                let pts = buffer_pts(info).flatten();
                let admit = gate.lock().map(|mut g| g.admit(pts)).unwrap_or(true);
                if !admit {
                    Counters::inc(&cam.counters.dropped_fps);
                    return gst::PadProbeReturn::Handled;
                }
            }
            gst::PadProbeReturn::Ok
        });
    }

    if let Some(src) = &src {
        if src.factory().is_some_and(|f| f.name() == "rtspsrc") {
            watch_sender_reports(src, setup, run);
        }
    }

    let mut maker = FrameMaker {
        setup: setup.clone(),
        run: run.clone(),
        caps: None,
    };
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Flushing)?;
                maker.deliver(&sample);
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );

    Ok(Built { pipeline, src })
}

/// Unix time (ns) in an RTCP sender report (`None` if the buffer is not an SR).
pub(crate) fn sender_report_unix_ns(rtcp: &[u8]) -> Option<i128> {
    if rtcp.len() < 20 || rtcp[0] >> 6 != 2 || rtcp[1] != 200 {
        return None;
    }
    let msw = u32::from_be_bytes([rtcp[8], rtcp[9], rtcp[10], rtcp[11]]) as i128;
    let lsw = u32::from_be_bytes([rtcp[12], rtcp[13], rtcp[14], rtcp[15]]) as i128;
    let ntp_ns = msw * 1_000_000_000 + ((lsw * 1_000_000_000) >> 32);
    Some(ntp_ns - NTP_UNIX_OFFSET_S as i128 * 1_000_000_000)
}

/// RTSP: follows RTCP sender reports through the jitter buffer's `handle-sync` signal and
/// keeps `Unix time - PTS` in the run state, so each frame's PTS maps to the sender's NTP
/// wall clock. The jitter buffer gives PTS = base-time + (rtp - base-rtptime) / rate; the
/// SR pairs an NTP time with sr-ext-rtptime; decoders keep PTS.
fn watch_sender_reports(src: &gst::Element, setup: &FrameSetup, run: &Arc<RunState>) {
    let run = Arc::downgrade(run);
    let cam = setup.camera.id.clone();
    src.connect("new-manager", false, move |args| {
        let rtpbin = args.get(1)?.get::<gst::Element>().ok()?;
        let run = run.clone();
        let cam = cam.clone();
        rtpbin.connect("new-jitterbuffer", false, move |args| {
            let jb = args.get(1)?.get::<gst::Element>().ok()?;
            let run = run.clone();
            let cam = cam.clone();
            jb.connect("handle-sync", false, move |args| {
                let s = args.get(1)?.get::<gst::Structure>().ok()?;
                let base_rtp = s.get::<u64>("base-rtptime").ok()? as i128;
                let base_time = s.get::<u64>("base-time").ok()? as i128;
                let rate = s.get::<u32>("clock-rate").ok()? as i128;
                let sr_rtp = s.get::<u64>("sr-ext-rtptime").ok()? as i128;
                let sr = s.get::<gst::Buffer>("sr-buffer").ok()?;
                let map = sr.map_readable().ok()?;
                let sr_unix = sender_report_unix_ns(map.as_slice())?;
                if rate <= 0 {
                    return None;
                }
                let offset = sr_unix - base_time + (base_rtp - sr_rtp) * 1_000_000_000 / rate;
                let offset = i64::try_from(offset).ok()?;
                if let Some(run) = run.upgrade() {
                    run.ntp_offset_ns.store(offset, Ordering::Relaxed);
                    debug!(camera = %cam, offset, "RTCP sender report: frames now carry the sender's NTP time.");
                }
                None
            });
            None
        });
        None
    });
}

/// Turns appsink samples into frames (runs on the streaming thread; never blocks beyond
/// the ring's and the hub's short mutexes, except for a file read as fast as possible,
/// which waits for inference to free the camera's hub slot).
struct FrameMaker {
    setup: FrameSetup,
    run: Arc<RunState>,
    /// The last caps seen and what they say (width, height, row stride).
    caps: Option<(gst::Caps, u32, u32, usize)>,
}

impl FrameMaker {
    fn deliver(&mut self, sample: &gst::Sample) {
        let cam = &self.setup.camera;
        Counters::inc(&cam.counters.frames_in);
        let (Some(buffer), Some(caps)) = (sample.buffer_owned(), sample.caps()) else {
            return;
        };
        let fresh = match &self.caps {
            // Same caps object (the usual case) or equal caps: nothing to parse.
            Some((c, ..)) => !std::ptr::eq(c.as_ptr(), caps.as_ptr()) && c.as_ref() != caps,
            None => true,
        };
        if fresh {
            let Ok(vi) = gst_video::VideoInfo::from_caps(caps) else {
                debug!(camera = %cam.id, %caps, "Sample caps are not raw video; skipped.");
                return;
            };
            let stride = vi.stride().first().copied().unwrap_or(0).max(0) as usize;
            self.caps = Some((caps.to_owned(), vi.width(), vi.height(), stride));
        }
        let Some((width, height, stride)) = self.caps.as_ref().map(|c| (c.1, c.2, c.3)) else {
            return;
        };
        let (captured_at, clock) = self.capture_time(sample, &buffer);
        let pose = self.setup.ptz.as_ref().and_then(|t| t.pose(captured_at));

        let row = width as usize * 3;
        let need = row * height as usize;
        let pixels = if stride == row && buffer.size() == need {
            match buffer.into_mapped_buffer_readable() {
                Ok(m) => Pixels::new(m),
                Err(_) => return,
            }
        } else {
            let Ok(map) = buffer.map_readable() else {
                return;
            };
            let src = map.as_slice();
            if stride < row || src.len() < stride * (height as usize).saturating_sub(1) + row {
                debug!(camera = %cam.id, stride, row, len = src.len(), "Frame smaller than its caps; skipped.");
                return;
            }
            let mut out = self.setup.pool.take(need);
            let dst = out.as_mut_slice();
            for (y, chunk) in dst.chunks_exact_mut(row).enumerate() {
                chunk.copy_from_slice(&src[y * stride..y * stride + row]);
            }
            Pixels::new(out)
        };

        let seq = cam.seq.fetch_add(1, Ordering::Relaxed);
        let frame = Frame {
            camera: cam.id.clone(),
            seq,
            captured_at,
            clock,
            width,
            height,
            pixels,
            pose,
        };
        trace!(camera = %cam.id, seq, "Frame delivered.");
        cam.counters.width.store(width, Ordering::Relaxed);
        cam.counters.height.store(height, Ordering::Relaxed);
        cam.ring.push(frame.clone());
        let published = if self.setup.wait_for_inference {
            let run = &self.run;
            self.setup.hub.publish_when_free(frame, || {
                // Waiting for inference is not a stalled source.
                run.touch();
                !run.stopping.load(Ordering::Relaxed)
            })
        } else {
            self.setup.hub.publish(frame)
        };
        match published {
            Ok(()) => Counters::inc(&cam.counters.delivered),
            Err(_) => Counters::inc(&cam.counters.publish_failed),
        }
        self.run.frames.fetch_add(1, Ordering::Relaxed);
    }

    fn capture_time(&self, sample: &gst::Sample, buffer: &gst::Buffer) -> (UtcTime, CaptureClock) {
        let seg = sample
            .segment()
            .and_then(|s| s.downcast_ref::<gst::ClockTime>());
        let (at, clock, end) = capture_time_of(self.setup.time, &self.run, buffer, seg);
        if let Some(end) = end {
            self.run
                .last_stream_end_ns
                .fetch_max(end, Ordering::Relaxed);
        }
        (at, clock)
    }
}

/// A buffer's capture time (frames, and packets for clips): file replay `start + stream
/// time` (plus previous loops), live the sender's NTP time when known, else arrival. The
/// third value is a replayed buffer's stream end (ns), for the loop offset.
pub(crate) fn capture_time_of(
    time: TimeBase,
    run: &RunState,
    buffer: &gst::BufferRef,
    segment: Option<&gst::FormattedSegment<gst::ClockTime>>,
) -> (UtcTime, CaptureClock, Option<u64>) {
    match time {
        TimeBase::Replay { start } => {
            let pts = buffer.pts().or(buffer.dts());
            let stream = pts
                .and_then(|pts| segment.and_then(|s| s.to_stream_time(pts)))
                .or(pts)
                .map(|t| t.nseconds())
                .unwrap_or(0);
            let end = stream + buffer.duration().map(|d| d.nseconds()).unwrap_or(0);
            let offset = run.loop_offset_ns.load(Ordering::Relaxed);
            let at = start
                + chrono::Duration::nanoseconds((stream + offset).min(i64::MAX as u64) as i64);
            (at, CaptureClock::Replay, Some(end))
        }
        TimeBase::Live => {
            for meta in buffer.iter_meta::<gst::ReferenceTimestampMeta>() {
                let is_ntp = meta
                    .reference()
                    .structure(0)
                    .is_some_and(|s| s.name() == "timestamp/x-ntp");
                if !is_ntp {
                    continue;
                }
                let ns = meta.timestamp().nseconds();
                let secs = ns / 1_000_000_000;
                if secs <= NTP_UNIX_OFFSET_S {
                    continue;
                }
                if let Some(at) = chrono::DateTime::from_timestamp(
                    (secs - NTP_UNIX_OFFSET_S) as i64,
                    (ns % 1_000_000_000) as u32,
                ) {
                    return (at, CaptureClock::Ntp, None);
                }
            }
            let now = chrono::Utc::now();
            let offset = run.ntp_offset_ns.load(Ordering::Relaxed);
            if let (Some(pts), true) = (buffer.pts(), offset != i64::MIN) {
                let unix_ns = i128::from(offset) + pts.nseconds() as i128;
                if let Ok(ns) = i64::try_from(unix_ns) {
                    let at = chrono::DateTime::from_timestamp_nanos(ns);
                    // A sender clock more than 10 minutes off (or a broken mapping)
                    // is not trusted: arrival time is then the better estimate.
                    if (at - now).num_seconds().abs() < 600 {
                        return (at, CaptureClock::Ntp, None);
                    }
                }
            }
            (now, CaptureClock::Arrival, None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sender_report_ntp_to_unix() {
        // V=2, PT=200 (SR), length, SSRC, NTP 2024-01-01T00:00:00.5Z, RTP ts, counts.
        let secs = 1_704_067_200u64 + NTP_UNIX_OFFSET_S;
        let mut sr = vec![0x80, 200, 0, 6, 1, 2, 3, 4];
        sr.extend_from_slice(&(secs as u32).to_be_bytes());
        sr.extend_from_slice(&(1u32 << 31).to_be_bytes());
        sr.extend_from_slice(&[0; 12]);
        assert_eq!(sender_report_unix_ns(&sr), Some(1_704_067_200_500_000_000));
        sr[1] = 201;
        assert_eq!(sender_report_unix_ns(&sr), None);
    }
}
