//! Shared test fixtures: a real engine-less server (store on disk, real rules replay); the
//! tiny blocking HTTP client and the WebDriver client are in `client.rs`.
#![allow(dead_code)]

mod client;
#[allow(unused_imports)] // not every test uses the clients
pub use client::*;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use lookout_alerts::Alerts;
use lookout_config::rules::RulesConfig;
use lookout_core::{
    BBox, Detection, Event, EventKind, EventPhase, Frame, FrameResult, FrameRing, GeoPoint,
    Incident, IncidentConfidence, IncidentKind, IncidentState, Location, LocationMethod, Sector,
    Severity, StageMsg, UtcTime,
};
use lookout_server::{RunningServer, ServerState};

pub const OPERATOR: &str = "operator-token-0001";
pub const VIEWER: &str = "viewer-token-000001";
pub const ADMIN: &str = "admin-token-0000001";

pub const CONFIG: &str = r#"
[[cameras]]
id = "tower1"
name = "Tower 1 (north ridge)"
source = { kind = "file", path = "tower1.mp4" }
geo = { lat = 45.0, lon = 7.0, heading_deg = 40, hfov_deg = 60, range_m = 15000 }

[[cameras]]
id = "tower2"
name = "Tower 2 (valley)"
source = { kind = "file", path = "tower2.mp4" }
geo = { lat = 45.0, lon = 7.2, heading_deg = 320, hfov_deg = 60, range_m = 15000 }

[rules.cameras.tower1]
zones = [{ name = "ridge", polygon = [[0.1, 0.2], [0.9, 0.2], [0.9, 0.6], [0.1, 0.6]] }]

[alerts]
cap_sender = "watch@example.org"
cooldown_s = 30

[[alerts.sinks]]
kind = "webhook"
name = "dispatch"
url = "http://127.0.0.1:9/hook"
token = "webhook-secret-value-1234"

[[server.users]]
name = "vera"
role = "viewer"
token = "viewer-token-000001"

[[server.users]]
name = "ana"
role = "operator"
token = "operator-token-0001"

[[server.users]]
name = "root"
role = "admin"
token = "${LOOKOUT_TEST_ADMIN_TOKEN:-admin-token-0000001}"
"#;

/// The rules a server handed its rules control, in order (the control's queue, as the
/// rules stage would read it).
pub struct Applied {
    rx: crossbeam_channel::Receiver<RulesConfig>,
    seen: Mutex<Vec<RulesConfig>>,
}

impl Applied {
    /// A real control (it compiles every change strictly) and what it applied.
    pub fn control() -> (lookout_server::RulesControl, Applied) {
        let (control, rx) = lookout_server::RulesControl::channel(64);
        (
            control,
            Applied {
                rx,
                seen: Mutex::new(Vec::new()),
            },
        )
    }

    fn drain(&self) -> std::sync::MutexGuard<'_, Vec<RulesConfig>> {
        let mut seen = self.seen.lock().unwrap();
        seen.extend(self.rx.try_iter());
        seen
    }

    /// How many changes were applied.
    pub fn count(&self) -> usize {
        self.drain().len()
    }

    /// The last change applied.
    pub fn last(&self) -> Option<RulesConfig> {
        self.drain().last().cloned()
    }
}

/// A running server with a seeded store.
pub struct Fixture {
    pub rt: tokio::runtime::Runtime,
    pub server: Option<RunningServer>,
    pub addr: SocketAddr,
    pub alerts: Arc<Alerts>,
    pub applied: Applied,
    pub dir: tempfile::TempDir,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            self.rt.block_on(s.stop());
        }
    }
}

pub fn smoke_incident(id: &str, cam: &str, at: UtcTime, score: f32) -> Incident {
    let c: lookout_core::CameraId = cam.into();
    Incident {
        id: id.into(),
        kind: IncidentKind::Fire,
        confidence: IncidentConfidence::Camera,
        severity: Severity::High,
        state: IncidentState::New,
        location: Some(Location {
            point: GeoPoint::new(45.06, 7.08),
            method: LocationMethod::Triangulated,
            ellipse: None,
        }),
        cameras: vec![c.clone()],
        sectors: vec![Sector {
            camera: c.clone(),
            origin: GeoPoint::new(45.0, 7.0),
            bearing_deg: 42.0,
            half_width_deg: 1.5,
            range_m: 15000.0,
            at,
        }],
        events: vec![Event {
            id: format!("{id}-smoke"),
            camera: c.clone(),
            kind: EventKind::Smoke,
            phase: EventPhase::Start,
            track: Some(1),
            zone: None,
            preset: None,
            best_score: score,
            first_seen: at,
            last_seen: at + chrono::Duration::seconds(11),
            bbox: Some(BBox::new(500.0, 200.0, 640.0, 300.0)),
            frame_size: Some((1280, 720)),
            snapshot: None,
            count: None,
            detail: String::new(),
        }],
        hotspots: vec![],
        evidence: Default::default(),
        first_seen: at,
        last_seen: at + chrono::Duration::seconds(11),
        revision: 1,
        notes: vec!["Smoke seen by tower1.".into()],
        changes: vec![],
    }
}

pub fn frame(cam: &str, seq: u64, at: UtcTime) -> Frame {
    let (w, h) = (320u32, 180u32);
    let mut rgb = vec![0u8; (w * h * 3) as usize];
    for (i, p) in rgb.chunks_mut(3).enumerate() {
        let (x, y) = (i as u32 % w, i as u32 / w);
        p[0] = (60 + y / 3) as u8;
        p[1] = (90 + x / 4) as u8;
        p[2] = 140;
    }
    Frame::from_rgb(cam.into(), seq, at, w, h, rgb)
}

/// Smoke episode scores recorded on tower1: one 12-frame episode per score, 2 min apart.
pub const EPISODES: &[f32] = &[0.3, 0.42, 0.55, 0.68, 0.8, 0.92];

/// Start time of episode `i` (recorded within the last day).
pub fn episode_start(base: UtcTime, i: usize) -> UtcTime {
    base + chrono::Duration::seconds(i as i64 * 120)
}

/// A 2-worker runtime and the alerts store and sinks of `cfg`, opened on it.
pub fn open_alerts(cfg: &lookout_config::Config) -> (tokio::runtime::Runtime, Arc<Alerts>) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let alerts = rt
        .block_on(async { Alerts::open(cfg, &tokio::runtime::Handle::current()) })
        .unwrap();
    (rt, Arc::new(alerts))
}

pub fn start() -> Fixture {
    start_in(tempfile::tempdir().unwrap(), CONFIG)
}

/// The seeded server of [`start`] with another config, parsed in `dir` (so files it names,
/// e.g. TLS certificates, can be put there first).
pub fn start_in(dir: tempfile::TempDir, config: &str) -> Fixture {
    let cfg = lookout_config::parse(config, "test.toml", dir.path()).unwrap();
    let (rt, alerts) = open_alerts(&cfg);

    // Recorded raw detections on tower1: episodes of smoke at different scores.
    let base = Utc::now() - chrono::Duration::hours(2);
    let mut seq = 0;
    for (i, score) in EPISODES.iter().enumerate() {
        let t = episode_start(base, i);
        for f in 0..12 {
            let at = t + chrono::Duration::seconds(f);
            let msg = StageMsg::Frame(FrameResult {
                camera: "tower1".into(),
                seq,
                captured_at: at,
                preset: None,
                width: 1280,
                height: 720,
                model: "smoke".into(),
                detections: vec![Detection {
                    class: "smoke".into(),
                    class_id: 0,
                    score: *score,
                    bbox: BBox::new(500.0, 200.0, 640.0, 300.0),
                    role: None,
                }],
            });
            alerts.record_frame_result(&msg).unwrap();
            seq += 1;
        }
        // 40 quiet frames after each episode end the event.
        for f in 12..100 {
            let at = t + chrono::Duration::seconds(f);
            alerts
                .record_frame_result(&StageMsg::Frame(FrameResult {
                    camera: "tower1".into(),
                    seq,
                    captured_at: at,
                    preset: None,
                    width: 1280,
                    height: 720,
                    model: "smoke".into(),
                    detections: vec![],
                }))
                .unwrap();
            seq += 1;
        }
    }
    // Ground truth: the operator confirmed the 0.92 and 0.55 episodes as real fires and
    // called the 0.3 one a false alarm.
    for (i, verdict) in [
        (5, IncidentState::Confirmed),
        (2, IncidentState::Confirmed),
        (0, IncidentState::FalseAlarm),
    ] {
        let id = format!("past-{i}");
        let inc = smoke_incident(&id, "tower1", episode_start(base, i), EPISODES[i]);
        alerts.record_incident(&inc, None).unwrap();
        alerts.transition(&id, verdict, "ana", "verdict").unwrap();
    }

    let mut state = ServerState::new(alerts.clone(), cfg);
    let ring = Arc::new(FrameRing::new(4));
    ring.push(frame("tower1", 1, Utc::now()));
    state.rings.insert("tower1".into(), ring);
    state
        .rings
        .insert("tower2".into(), Arc::new(FrameRing::new(4)));
    state.metrics.camera("tower1").set_fps(2.0);
    let (control, applied) = Applied::control();
    state.rules = Some(control);
    let server = rt
        .block_on(lookout_server::start(state, "127.0.0.1:0".parse().unwrap()))
        .unwrap();
    let addr = server.addr;
    Fixture {
        rt,
        server: Some(server),
        addr,
        alerts,
        applied,
        dir,
    }
}
