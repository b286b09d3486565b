//! One supervisor thread per camera: builds the pipeline, watches its bus, detects stalls,
//! maps failures to reasons, reconnects with backoff, loops or finishes files, and tears
//! the pipeline down at shutdown. Nothing here is shared with other cameras.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use gstreamer as gst;
use gstreamer::prelude::*;
use lookout_core::{CameraStatus, RetryReason, StopReason};
use tracing::{debug, error, info, warn};

use crate::camera::{CameraShared, Counters, RunState};
use crate::pipeline::{self, Built, FrameSetup};
use crate::sampling::Backoff;

/// What a supervisor needs, fixed for the camera's lifetime.
pub(crate) struct Supervisor {
    /// Shared state, frame path setup.
    pub setup: FrameSetup,
    /// The filled pipeline description (secrets in clear: never logged).
    pub launch: String,
    /// The same, redacted (logged at debug).
    pub redacted: String,
    /// File sources: the resolved path, whether to loop, whether paced in real time.
    pub file: Option<(PathBuf, bool, bool)>,
    /// No frame (or buffer) for this long counts as a failure.
    pub stall: Duration,
    /// Reconnect delays.
    pub backoff: Backoff,
    /// Disconnected when the engine shuts down (nothing is ever sent).
    pub shutdown: Receiver<()>,
    /// Told (with the camera's index) when this supervisor has finished.
    pub done: Sender<usize>,
    /// This camera's index in [`crate::Ingest`].
    pub index: usize,
}

/// How one pipeline run ended.
enum Outcome {
    /// The engine is shutting down.
    Shutdown,
    /// A file without loop reached its end.
    Finished,
    /// Will never work as configured.
    Fatal(String),
    /// Failed; try again after a backoff.
    Retry(RetryReason),
}

impl Supervisor {
    fn cam(&self) -> &Arc<CameraShared> {
        &self.setup.camera
    }

    fn shutting_down(&self) -> bool {
        matches!(self.shutdown.try_recv(), Err(TryRecvError::Disconnected))
    }

    /// The supervisor loop; returns at shutdown.
    pub fn run(mut self) {
        let mut attempt: u32 = 0;
        loop {
            if self.shutting_down() {
                break;
            }
            let run = Arc::new(RunState::new());
            let outcome = self.run_once(&run);
            if run.frames.load(Ordering::Relaxed) > 0 {
                attempt = 0;
            }
            match outcome {
                Outcome::Shutdown => break,
                Outcome::Finished => {
                    self.cam().set_status(CameraStatus::Stopped {
                        reason: StopReason::Finished,
                    });
                    self.wait_for_shutdown();
                    break;
                }
                Outcome::Fatal(msg) => {
                    error!(camera = %self.cam().id, error = %msg, "Stream cannot work as configured; stopped.");
                    self.cam().set_error(msg.clone());
                    self.cam().set_status(CameraStatus::Stopped {
                        reason: StopReason::Fatal(msg),
                    });
                    self.wait_for_shutdown();
                    break;
                }
                Outcome::Retry(reason) => {
                    attempt = attempt.saturating_add(1);
                    Counters::inc(&self.cam().counters.reconnects);
                    self.cam().set_error(reason.to_string());
                    self.cam()
                        .set_status(CameraStatus::Retrying { attempt, reason });
                    let delay = self.backoff.delay(attempt);
                    debug!(camera = %self.cam().id, attempt, delay_ms = delay.as_millis() as u64, "Waiting before reconnecting.");
                    if matches!(
                        self.shutdown.recv_timeout(delay),
                        Err(RecvTimeoutError::Disconnected)
                    ) {
                        break;
                    }
                }
            }
        }
        // Finished and Fatal stay visible; everything else becomes "stopped for shutdown".
        if !matches!(self.cam().status(), CameraStatus::Stopped { .. }) {
            self.cam().set_status(CameraStatus::Stopped {
                reason: StopReason::Shutdown,
            });
        }
        let _ = self.done.send(self.index);
    }

    fn wait_for_shutdown(&self) {
        // Blocks until the sender is dropped.
        let _ = self.shutdown.recv();
    }

    /// Prefixes a message with the camera and its source.
    fn named(&self, msg: impl std::fmt::Display) -> String {
        format!(
            "camera {:?}: {}: {msg}",
            self.cam().id.as_ref(),
            self.cam().source_desc
        )
    }

    fn run_once(&mut self, run: &Arc<RunState>) -> Outcome {
        // A missing or unreadable file is retried (footage being copied, a share being
        // mounted); one that opens but cannot be decoded is fatal (see `classify`).
        if let Some((path, _, _)) = &self.file {
            if let Err(e) = std::fs::File::open(path) {
                return Outcome::Retry(RetryReason::Unreachable(
                    self.named(format!("cannot open the file: {e}")),
                ));
            }
        }
        let built = match pipeline::build(&self.launch, &self.setup, run) {
            Ok(b) => b,
            // A template or a missing plugin: no retry helps.
            Err(e) => return Outcome::Fatal(self.named(e)),
        };
        debug!(camera = %self.cam().id, pipeline = %self.redacted, "Pipeline built.");
        let outcome = self.watch(&built, run);
        // Stop: Null stops the sources and joins the streaming threads (a thread waiting
        // for inference sees `stopping` within 50 ms).
        run.stopping.store(true, Ordering::Relaxed);
        let t = Instant::now();
        if let Err(e) = built.pipeline.set_state(gst::State::Null) {
            warn!(camera = %self.cam().id, error = %e, "Pipeline did not stop cleanly.");
        }
        debug!(camera = %self.cam().id, ms = t.elapsed().as_millis() as u64, "Pipeline stopped.");
        outcome
    }

    fn watch(&mut self, built: &Built, run: &Arc<RunState>) -> Outcome {
        let Some(bus) = built.pipeline.bus() else {
            return Outcome::Fatal(self.named("the pipeline has no bus"));
        };
        if built.pipeline.set_state(gst::State::Playing).is_err() {
            // The reason is normally posted on the bus.
            if let Some(msg) =
                bus.timed_pop_filtered(gst::ClockTime::from_seconds(1), &[gst::MessageType::Error])
            {
                if let gst::MessageView::Error(err) = msg.view() {
                    let text = err.error().to_string();
                    warn!(camera = %self.cam().id, source = %self.cam().source_desc, error = %text, "Pipeline refused to start.");
                    return self.classify(built, msg.src(), text, run);
                }
            }
            return self.classify(built, None, "the pipeline refused to start".into(), run);
        }
        let stall_ms = self.stall.as_millis() as u64;
        let tick = gst::ClockTime::from_mseconds(100);
        loop {
            if self.shutting_down() {
                return Outcome::Shutdown;
            }
            if run.frames.load(Ordering::Relaxed) > 0 && !self.cam().status().is_running() {
                self.cam().set_status(CameraStatus::Running);
            }
            if run.idle_ms() > stall_ms {
                return Outcome::Retry(RetryReason::Timeout);
            }
            let Some(msg) = bus.timed_pop(tick) else {
                continue;
            };
            match msg.view() {
                gst::MessageView::Error(err) => {
                    let text = err.error().to_string();
                    let detail = err.debug().map(|d| d.to_string()).unwrap_or_default();
                    warn!(camera = %self.cam().id, source = %self.cam().source_desc, error = %text, detail = %detail, "Pipeline error.");
                    return self.classify(built, msg.src(), text, run);
                }
                gst::MessageView::Eos(_) => {
                    if let Some((_, looping, realtime)) = self.file.clone() {
                        if !looping {
                            info!(camera = %self.cam().id, file = %self.cam().source_desc, "File replay finished.");
                            return Outcome::Finished;
                        }
                        if run.frames.load(Ordering::Relaxed) == 0 {
                            return Outcome::Fatal(
                                self.named("the file has no decodable video frame"),
                            );
                        }
                        if !self.restart_loop(built, run, realtime) {
                            return Outcome::Shutdown;
                        }
                        continue;
                    }
                    return Outcome::Retry(RetryReason::Eos);
                }
                gst::MessageView::Warning(w) => {
                    debug!(camera = %self.cam().id, warning = %w.error(), "Pipeline warning.");
                }
                _ => {}
            }
        }
    }

    /// Seeks a looping file back to its start; capture times keep increasing. In real time,
    /// first waits until the pass has lasted the file's duration (the last frames may have
    /// been gated out, so nothing else waited for them). Returns false at shutdown.
    fn restart_loop(&self, built: &Built, run: &Arc<RunState>, realtime: bool) -> bool {
        let duration = built
            .pipeline
            .query_duration::<gst::ClockTime>()
            .map(|d| d.nseconds())
            .unwrap_or(0)
            .max(run.last_stream_end_ns.load(Ordering::Relaxed));
        if realtime {
            if let Some(rt) = built.pipeline.current_running_time() {
                let left = Duration::from_nanos(duration.saturating_sub(rt.nseconds()))
                    .min(Duration::from_secs(10));
                if matches!(
                    self.shutdown.recv_timeout(left),
                    Err(RecvTimeoutError::Disconnected)
                ) {
                    return false;
                }
            }
        }
        run.loop_offset_ns.fetch_add(duration, Ordering::Relaxed);
        run.last_stream_end_ns.store(0, Ordering::Relaxed);
        debug!(camera = %self.cam().id, duration_ms = duration / 1_000_000, "File looped.");
        if built
            .pipeline
            .seek_simple(
                gst::SeekFlags::FLUSH | gst::SeekFlags::KEY_UNIT,
                gst::ClockTime::ZERO,
            )
            .is_err()
        {
            warn!(camera = %self.cam().id, "Seek to the start failed; the stall timeout will restart the file.");
        }
        run.touch();
        true
    }

    /// Maps a pipeline error to an outcome: decoder errors → `Decoder`, source errors →
    /// `Unreachable`, the rest → `Error`; for files every error is fatal (the bytes will not
    /// change by retrying).
    fn classify(
        &self,
        built: &Built,
        origin: Option<&gst::Object>,
        text: String,
        run: &Arc<RunState>,
    ) -> Outcome {
        let mut from_decoder = false;
        let mut from_source = false;
        let mut cur = origin.cloned();
        while let Some(obj) = cur {
            if let Some(e) = obj.downcast_ref::<gst::Element>() {
                if pipeline::is_video_decoder(e) {
                    from_decoder = true;
                }
                if built.src.as_ref() == Some(e) {
                    from_source = true;
                }
            }
            cur = obj.parent();
        }
        let msg = self.named(&text);
        if self.file.is_some() {
            let what = if from_decoder {
                "the video cannot be decoded"
            } else {
                "the file cannot be played"
            };
            let frames = run.frames.load(Ordering::Relaxed);
            return Outcome::Fatal(format!(
                "{msg} ({what}; {frames} frame(s) delivered before the error)"
            ));
        }
        Outcome::Retry(if from_decoder {
            RetryReason::Decoder(msg)
        } else if from_source {
            RetryReason::Unreachable(msg)
        } else {
            RetryReason::Error(msg)
        })
    }
}
