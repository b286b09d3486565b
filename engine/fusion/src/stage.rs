//! The fusion stage as a thread behind a handle.
//!
//! ```text
//! rules ──FusionMsg (events, camera clocks; bounded)──▶ ┐
//! hotspot feed ──Hotspot (bounded; drained as a batch)──▶ fusion thread ──Incident (bounded, blocking)──▶ alerts
//!                      1 s tick: per-camera watermarks ─▶ ┘        └─▶ FusionTap (the store: hotspots)
//! ```
//!
//! [`FusionStage::spawn`] starts the thread; it exits when the events input closes (the
//! rules stage has stopped) or when the incidents' consumer has gone.

use std::collections::BTreeMap;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{select, Receiver, Sender};
use lookout_config::Config;
use lookout_core::{CameraId, FusionMsg, Hotspot, Incident, UtcTime};

use crate::Fusion;

/// What the fusion stage reports besides its incidents (the engine passes the store).
/// Called on the fusion thread.
pub trait FusionTap: Send + 'static {
    /// A batch of hotspots, before fusion sees it.
    fn hotspots(&mut self, batch: &[Hotspot]);
}

/// A tap that records nothing.
#[derive(Debug, Default)]
pub struct NoTap;

impl FusionTap for NoTap {
    fn hotspots(&mut self, _: &[Hotspot]) {}
}

/// The fusion stage.
#[derive(Debug)]
pub struct FusionStage;

/// A running fusion stage.
#[derive(Debug)]
pub struct FusionHandle {
    thread: JoinHandle<()>,
    cameras: Sender<CameraChange>,
}

/// A camera changed live (see [`Fusion::set_camera`]).
#[derive(Debug, Clone)]
pub struct CameraChange {
    /// Camera id.
    pub id: String,
    /// Its new settings; `None`: stopped.
    pub config: Option<lookout_config::cameras::CameraConfig>,
}

/// Tells the fusion thread about cameras changed live (a bounded queue: a change waits at
/// most for the fusion step in progress).
#[derive(Debug, Clone)]
pub struct FusionCameras(Sender<CameraChange>);

impl FusionCameras {
    /// Sends one change; false if fusion has stopped.
    pub fn send(&self, change: CameraChange) -> bool {
        self.0.send_timeout(change, Duration::from_secs(5)).is_ok()
    }
}

impl FusionStage {
    /// Starts the fusion thread for `cfg`'s cameras and fusion settings.
    pub fn spawn(
        cfg: &Config,
        events: Receiver<FusionMsg>,
        hotspots: Receiver<Hotspot>,
        output: Sender<Incident>,
        tap: impl FusionTap,
    ) -> std::io::Result<FusionHandle> {
        let fusion = Fusion::new(cfg);
        let (cameras_tx, cameras_rx) = crossbeam_channel::bounded::<CameraChange>(64);
        let thread = std::thread::Builder::new()
            .name("fusion".into())
            .spawn(move || match fusion {
                Ok(f) => run(f, events, hotspots, cameras_rx, output, tap),
                Err(e) => {
                    tracing::error!(error = %e, "Cannot start fusion; events will not become incidents.");
                    for _ in events {}
                }
            })?;
        Ok(FusionHandle {
            thread,
            cameras: cameras_tx,
        })
    }
}

impl FusionHandle {
    /// The handle that tells fusion about cameras changed live.
    pub fn cameras(&self) -> FusionCameras {
        FusionCameras(self.cameras.clone())
    }

    /// Waits for the thread (it exits once its events input has closed). Err if it
    /// panicked.
    pub fn join(self) -> std::thread::Result<()> {
        self.thread.join()
    }
}

fn advance_clock(clocks: &mut BTreeMap<CameraId, UtcTime>, camera: &CameraId, t: UtcTime) {
    match clocks.get_mut(camera) {
        Some(c) => *c = (*c).max(t),
        None => {
            clocks.insert(camera.clone(), t);
        }
    }
}

fn run(
    mut fusion: Fusion,
    events: Receiver<FusionMsg>,
    mut hotspots: Receiver<Hotspot>,
    mut cameras: Receiver<CameraChange>,
    output: Sender<Incident>,
    mut tap: impl FusionTap,
) {
    let mut out = Vec::new();
    let mut batch: Vec<Hotspot> = Vec::new();
    // Event time, per camera: the newest capture time of its analysed frames and events.
    // Fusion joins and closes by it, never by the wall clock, so footage replayed "as of" a
    // past date fuses like live footage, beside live cameras, without one clock closing the
    // other's incidents. Handed to fusion once a tick (it ignores a clock that did not move).
    let mut clocks: BTreeMap<CameraId, UtcTime> = BTreeMap::new();
    let tick = crossbeam_channel::tick(Duration::from_secs(1));
    loop {
        select! {
            recv(events) -> e => match e {
                Ok(FusionMsg::Event(ev)) => {
                    advance_clock(&mut clocks, &ev.camera, ev.last_seen);
                    fusion.on_event(&ev, &mut out)
                }
                Ok(FusionMsg::Clock { camera, at }) => advance_clock(&mut clocks, &camera, at),
                // Rules has stopped: the engine is shutting down.
                Err(_) => break,
            },
            recv(hotspots) -> h => match h {
                Ok(h) => {
                    // A satellite pass arrives as many rows: fuse them as one batch, so an
                    // incident gets one revision per pass.
                    batch.push(h);
                    batch.extend(hotspots.try_iter());
                    tap.hotspots(&batch);
                    fusion.on_hotspots(batch.drain(..), &mut out);
                }
                // Every hotspot source has finished; keep fusing events.
                Err(_) => hotspots = crossbeam_channel::never(),
            },
            recv(cameras) -> c => match c {
                Ok(c) => fusion.set_camera(&c.id, c.config.as_ref()),
                Err(_) => cameras = crossbeam_channel::never(),
            },
            recv(tick) -> _ => {
                for (camera, t) in &clocks {
                    fusion.on_camera_watermark(camera, *t, &mut out);
                }
            }
        }
        for inc in out.drain(..) {
            if output.send(inc).is_err() {
                return;
            }
        }
    }
}
