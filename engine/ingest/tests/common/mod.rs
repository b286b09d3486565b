//! Helpers for the ingest integration tests: configs, a frame consumer, generated clips,
//! an in-process RTSP server.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer_rtsp_server as rtsp;
use gstreamer_rtsp_server::prelude::*;
use lookout_core::{CameraHealth, CameraStatus, CaptureClock, FrameHub, Pose, UtcTime};
use lookout_ingest::{CameraStats, Ingest};

/// Prints expected vs actual on failure.
#[macro_export]
macro_rules! check {
    ($cond:expr, $($arg:tt)+) => {
        let ok: bool = $cond;
        if !ok {
            panic!("check failed: {}\n  {}", stringify!($cond), format!($($arg)+));
        }
    };
}

pub fn shared_dir() -> PathBuf {
    std::env::var("LOOKOUT_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared")))
}

pub fn furg() -> PathBuf {
    shared_dir().join("datasets/furg-house6/furg_house6.mp4")
}

/// A validated config from TOML text (relative paths against `base`).
pub fn config(toml: &str, base: &Path) -> lookout_config::Config {
    match lookout_config::parse(toml, "test.toml", base) {
        Ok(c) => c,
        Err(e) => panic!("config does not load: {e}\n{toml}"),
    }
}

/// What the consumer saw of one frame.
#[derive(Debug, Clone)]
pub struct Seen {
    pub seq: u64,
    pub captured_at: UtcTime,
    pub clock: CaptureClock,
    pub width: u32,
    pub height: u32,
    pub bytes: usize,
    pub pose: Option<Pose>,
    pub arrived: Instant,
}

/// Ingest running with a consumer thread that takes every frame from the hub.
pub struct Running {
    pub ingest: Option<Ingest>,
    pub hub: Arc<FrameHub>,
    pub health: Receiver<CameraHealth>,
    pub seen: Arc<Mutex<HashMap<String, Vec<Seen>>>>,
    consumer: Option<JoinHandle<()>>,
}

impl Running {
    pub fn start(cfg: &lookout_config::Config) -> Running {
        Running::start_slow(cfg, Duration::ZERO)
    }

    /// Like [`Running::start`], with a consumer that sleeps `delay` after every take (a slow
    /// inference stage).
    pub fn start_slow(cfg: &lookout_config::Config, delay: Duration) -> Running {
        let hub = FrameHub::new(lookout_ingest::camera_ids(cfg));
        let (tx, rx) = crossbeam_channel::bounded(256);
        let ingest = Ingest::start(cfg, hub.clone(), tx).expect("ingest starts");
        let seen: Arc<Mutex<HashMap<String, Vec<Seen>>>> = Arc::default();
        let (h, s) = (hub.clone(), seen.clone());
        let consumer = std::thread::spawn(move || {
            let mut out = Vec::new();
            while h.take(8, Duration::from_millis(50), &mut out) {
                let now = Instant::now();
                let mut g = s.lock().unwrap();
                for f in out.drain(..) {
                    g.entry(f.camera.to_string()).or_default().push(Seen {
                        seq: f.seq,
                        captured_at: f.captured_at,
                        clock: f.clock,
                        width: f.width,
                        height: f.height,
                        bytes: f.pixels.as_slice().len(),
                        pose: f.pose.clone(),
                        arrived: now,
                    });
                }
                drop(g);
                if !delay.is_zero() {
                    std::thread::sleep(delay);
                }
            }
        });
        Running {
            ingest: Some(ingest),
            hub,
            health: rx,
            seen,
            consumer: Some(consumer),
        }
    }

    pub fn ingest(&self) -> &Ingest {
        self.ingest.as_ref().unwrap()
    }

    pub fn status(&self, cam: &str) -> CameraStatus {
        self.ingest().status(cam).unwrap()
    }

    pub fn stats(&self, cam: &str) -> CameraStats {
        self.ingest()
            .stats()
            .into_iter()
            .find(|s| s.camera.as_ref() == cam)
            .unwrap()
    }

    pub fn seen(&self, cam: &str) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap()
            .get(cam)
            .cloned()
            .unwrap_or_default()
    }

    /// Polls `cond` every 20 ms until it holds or `timeout` passes; returns whether it held.
    pub fn wait(&self, timeout: Duration, mut cond: impl FnMut(&Running) -> bool) -> bool {
        let until = Instant::now() + timeout;
        while Instant::now() < until {
            if cond(self) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        cond(self)
    }

    /// Shuts ingest down and returns how long it took.
    pub fn stop(mut self) -> Duration {
        let t = Instant::now();
        self.ingest.take().unwrap().shutdown(Duration::from_secs(5));
        let took = t.elapsed();
        if let Some(c) = self.consumer.take() {
            c.join().unwrap();
        }
        took
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(i) = self.ingest.take() {
            i.shutdown(Duration::from_secs(5));
        }
    }
}

/// Runs a pipeline description to EOS (panics on error).
pub fn run_to_eos(desc: &str) {
    gst::init().unwrap();
    let p = gst::parse::launch(desc).unwrap();
    let bus = p.bus().unwrap();
    p.set_state(gst::State::Playing).unwrap();
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(60)) {
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => {
                p.set_state(gst::State::Null).unwrap();
                panic!("{desc}: {} {:?}", e.error(), e.debug());
            }
            _ => {}
        }
    }
    p.set_state(gst::State::Null).unwrap();
}

/// Encodes `frames` frames of a moving test pattern into an H.264 MP4 (GOP `gop`, 25 fps).
pub fn make_clip(dir: &Path, name: &str, w: u32, h: u32, frames: u32, gop: u32) -> PathBuf {
    let path = dir.join(name);
    run_to_eos(&format!(
        "videotestsrc num-buffers={frames} pattern=ball ! video/x-raw,width={w},height={h},framerate=25/1 \
         ! x264enc speed-preset=ultrafast key-int-max={gop} bframes=0 ! h264parse ! mp4mux ! filesink location=\"{}\"",
        path.display()
    ));
    path
}

/// A free TCP/UDP port on 127.0.0.1 (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An RTSP server on 127.0.0.1 serving a live H.264 test pattern at `/cam`.
pub struct RtspServer {
    pub port: u16,
    server: rtsp::RTSPServer,
    source: Option<glib::SourceId>,
    ctx: glib::MainContext,
    main_loop: glib::MainLoop,
    thread: Option<JoinHandle<()>>,
}

impl RtspServer {
    pub fn start(port: u16) -> RtspServer {
        gst::init().unwrap();
        let ctx = glib::MainContext::new();
        let server = rtsp::RTSPServer::new();
        server.set_address("127.0.0.1");
        server.set_service(&port.to_string());
        let factory = rtsp::RTSPMediaFactory::new();
        factory.set_launch(
            "( videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=25/1 \
             ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25 ! rtph264pay name=pay0 pt=96 )",
        );
        factory.set_shared(true);
        server.mount_points().unwrap().add_factory("/cam", factory);
        let source = server.attach(Some(&ctx)).expect("rtsp server binds");
        let port = server.bound_port() as u16;
        let main_loop = glib::MainLoop::new(Some(&ctx), false);
        let ml = main_loop.clone();
        let thread = std::thread::spawn(move || ml.run());
        RtspServer {
            port,
            server,
            source: Some(source),
            ctx,
            main_loop,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("rtsp://127.0.0.1:{}/cam", self.port)
    }

    /// Closes the listening socket and every client connection.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.server
            .client_filter(Some(&mut |_, _| rtsp::RTSPFilterResult::Remove));
        if let Some(id) = self.source.take() {
            // The listening socket's source lives on our own context.
            if let Some(s) = self.ctx.find_source_by_id(&id) {
                s.destroy();
            }
        }
        std::thread::sleep(Duration::from_millis(100));
        self.main_loop.quit();
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.shutdown();
        }
    }
}
