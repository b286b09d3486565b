//! [`RulesEngine`]: the deterministic state machine from [`StageMsg`] to [`Event`].
//!
//! Time inside the engine is data: capture times of analysed frames, `at` of health
//! messages and watermarks. There is no wall clock, so replaying the same messages with the
//! same config yields the same events, ids included.
//!
//! The state and the dispatch live here; each job has its own file: `objects` (filters,
//! tracker, thresholds, object events, head counts), `personnel` (duty posts, occupancy,
//! restricted areas, patrols) and `health` (stream status and image checks).

mod health;
mod objects;
mod personnel;

use std::collections::HashMap;
use std::sync::Arc;

use lookout_config::rules::{ClassParams, RulesConfig};
use lookout_core::{
    BBox, CameraHealth, CameraId, CameraStatus, Event, EventKind, EventPhase, FrameRef,
    FrameResult, StageMsg, StopReason, UtcTime,
};

use lookout_core::msg::ImageStats;

use crate::compiled::{ms, CamRules, Compiled};
use crate::geom::anchor;
use crate::tracker::{Candidate, Tracker, TrackerParams};
use crate::RulesError;

use health::check_offline;

/// How often (event time) idle timers are swept: quiet-time ends and offline checks.
const SWEEP_MS: i64 = 1000;

/// An event that has started and not ended.
#[derive(Debug, Clone)]
struct Open {
    /// The event as last emitted (phase aside), kept current.
    ev: Event,
    /// Last qualifying sighting, ms.
    last_seen_ms: i64,
    /// Last emission, ms (event time).
    last_emit_ms: i64,
    /// Best score at the last emission.
    reported_score: f32,
    /// Count at the last emission.
    reported_count: u32,
}

impl Open {
    fn new(ev: Event, now_ms: i64) -> Open {
        Open {
            last_seen_ms: ev.last_seen.timestamp_millis(),
            last_emit_ms: now_ms,
            reported_score: ev.best_score,
            reported_count: ev.count.unwrap_or(0),
            ev,
        }
    }

    fn emit(&mut self, phase: EventPhase, now_ms: i64, out: &mut Vec<Event>) {
        let mut e = self.ev.clone();
        e.phase = phase;
        self.last_emit_ms = now_ms;
        self.reported_score = e.best_score;
        self.reported_count = e.count.unwrap_or(0);
        out.push(e);
    }
}

/// An open object event (smoke, fire, person in zone).
#[derive(Debug, Clone)]
struct ObjOpen {
    /// Track id.
    track: u64,
    /// Kind.
    kind: EventKind,
    /// The event.
    open: Open,
}

/// Running statistics of one view (camera and preset) for the health checks.
#[derive(Debug, Clone)]
struct ViewState {
    /// Preset of the view.
    preset: Option<Arc<str>>,
    /// Normal frames folded into the baseline.
    n: u32,
    /// Baseline brightness.
    brightness: f32,
    /// Baseline contrast.
    contrast: f32,
    /// Baseline sharpness.
    sharpness: f32,
    /// Reference thumbnail.
    reference: Vec<f32>,
    /// Per check: blocked, defocused, moved.
    checks: [CheckRun; 3],
}

/// Debounce state of one health check.
#[derive(Debug, Clone, Default)]
struct CheckRun {
    /// Consecutive abnormal frames.
    abnormal: u32,
    /// Consecutive normal frames.
    normal: u32,
    /// Capture time of the first abnormal frame of the run.
    since: Option<UtcTime>,
    /// Open event.
    open: Option<Open>,
}

/// Per-camera state.
#[derive(Debug, Clone)]
struct CamState {
    /// Camera id.
    id: CameraId,
    /// Stream running (unknown counts as running).
    running: bool,
    /// Not running since (event time).
    down_since: Option<UtcTime>,
    /// Stopped on purpose (shutdown, finite file): no offline event.
    down_quiet: bool,
    /// Open `camera_offline` event.
    offline: Option<Open>,
    /// Current PTZ preset.
    preset: Option<Arc<str>>,
    /// A frame was seen.
    seen_frame: bool,
    /// One tracker per model.
    trackers: Vec<(Arc<str>, Tracker)>,
    /// Next track id.
    next_track: u64,
    /// Open object events.
    objs: Vec<ObjOpen>,
    /// People counted per zone in the last person-capable frame.
    zone_counts: Vec<u32>,
    /// Health baselines per view.
    views: Vec<ViewState>,
}

impl CamState {
    fn new(id: CameraId) -> CamState {
        CamState {
            id,
            running: true,
            down_since: None,
            down_quiet: false,
            offline: None,
            preset: None,
            seen_frame: false,
            trackers: Vec::new(),
            next_track: 1,
            objs: Vec::new(),
            zone_counts: Vec::new(),
            views: Vec::new(),
        }
    }
}

/// Which zone rule a [`ZoneRuleState`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ZoneRuleKind {
    /// `[[rules.duty_posts]]`.
    Duty,
    /// `[[rules.occupancy]]`.
    Occupancy,
    /// `[[rules.restricted]]`.
    Restricted,
}

/// State of one duty-post, occupancy or restricted rule.
#[derive(Debug, Clone)]
struct ZoneRuleState {
    /// Kind.
    kind: ZoneRuleKind,
    /// Index in its config list.
    index: usize,
    /// Camera.
    cam: CameraId,
    /// Zone index in the camera's zones.
    zone: usize,
    /// Zone name.
    zone_name: Arc<str>,
    /// Condition true since (vacant, over the limit).
    since: Option<UtcTime>,
    /// Condition false since (for clear times).
    clear_since: Option<UtcTime>,
    /// Open event.
    open: Option<Open>,
}

/// One patrol checkpoint, resolved.
#[derive(Debug, Clone, PartialEq)]
struct Cp {
    /// Camera.
    cam: CameraId,
    /// Zone index.
    zone: usize,
    /// Zone name.
    zone_name: Arc<str>,
    /// Window in ms.
    within_ms: i64,
}

/// State of one patrol route.
#[derive(Debug, Clone)]
struct PatrolState {
    /// Route name.
    name: Arc<str>,
    /// Checkpoints.
    cps: Vec<Cp>,
    /// Checkpoint expected next.
    next: usize,
    /// The window of `next` opened at (previous visit, or the first frame seen).
    window: Option<UtcTime>,
    /// Open `patrol_missed` event.
    open: Option<Open>,
}

/// The rules stage: one per engine, driven by one thread.
///
/// Feed every [`StageMsg`] to [`RulesEngine::handle`] in channel order; events come out in
/// a deterministic order. [`RulesEngine::apply_config`] swaps the configuration at run
/// time, keeping tracks, open events and timers.
#[derive(Debug)]
pub struct RulesEngine {
    /// Compiled configuration.
    c: Compiled,
    /// Tracker settings.
    tp: TrackerParams,
    /// Per-camera state.
    cams: Vec<CamState>,
    /// Camera id → index in `cams`.
    cam_index: HashMap<CameraId, usize>,
    /// Latest event time seen on any input, ms.
    now_ms: Option<i64>,
    /// Last sweep, ms.
    last_sweep_ms: i64,
    /// Events produced outside `handle` (by `apply_config`), delivered on the next call.
    pending: Vec<Event>,
    /// Models learned to report people.
    person_models: Vec<Arc<str>>,
    /// Duty-post, occupancy and restricted rules.
    zone_rules: Vec<ZoneRuleState>,
    /// Zone rules per camera (indices into `zone_rules`).
    zone_rules_by_cam: HashMap<CameraId, Vec<usize>>,
    /// Patrol routes.
    patrols: Vec<PatrolState>,
    /// Scratch: candidates of the current frame.
    cands: Vec<Candidate>,
    /// Scratch: their effective parameters.
    cand_params: Vec<ClassParams>,
    /// Frames handled.
    frames: u64,
    /// Detections handled.
    detections: u64,
}

impl RulesEngine {
    /// An engine for `cfg`. A config that failed validation still runs: problems the loader
    /// could not catch (an unknown time zone) are logged and the affected profile is
    /// disabled. Use [`RulesEngine::try_new`] to refuse instead.
    pub fn new(cfg: &RulesConfig) -> Self {
        Self::from_compiled(Compiled::lenient(cfg))
    }

    /// An engine for `cfg`, or the validation problems.
    pub fn try_new(cfg: &RulesConfig) -> Result<Self, RulesError> {
        Ok(Self::from_compiled(Compiled::strict(cfg)?))
    }

    fn from_compiled(c: Compiled) -> Self {
        let mut e = RulesEngine {
            tp: TrackerParams::from(&c.cfg.tracker),
            c,
            cams: Vec::new(),
            cam_index: HashMap::new(),
            now_ms: None,
            last_sweep_ms: i64::MIN,
            pending: Vec::new(),
            person_models: Vec::new(),
            zone_rules: Vec::new(),
            zone_rules_by_cam: HashMap::new(),
            patrols: Vec::new(),
            cands: Vec::new(),
            cand_params: Vec::new(),
            frames: 0,
            detections: 0,
        };
        let mut sink = Vec::new();
        e.rebuild_rules(&mut sink);
        e
    }

    /// The configuration in force.
    pub fn config(&self) -> &RulesConfig {
        &self.c.cfg
    }

    /// Frames and detections handled so far.
    pub fn counters(&self) -> (u64, u64) {
        (self.frames, self.detections)
    }

    /// Live tracks of a camera (all models), for tests and the UI.
    pub fn track_count(&self, camera: &str) -> usize {
        self.cam_index
            .get(camera)
            .map(|&i| {
                self.cams[i]
                    .trackers
                    .iter()
                    .map(|(_, t)| t.tracks.len())
                    .sum()
            })
            .unwrap_or(0)
    }

    /// Every event that has started and not ended, as last emitted.
    pub fn open_events(&self) -> Vec<Event> {
        let mut v = Vec::new();
        for cam in &self.cams {
            v.extend(cam.objs.iter().map(|o| o.open.ev.clone()));
            v.extend(cam.offline.iter().map(|o| o.ev.clone()));
            for view in &cam.views {
                v.extend(
                    view.checks
                        .iter()
                        .filter_map(|c| c.open.as_ref())
                        .map(|o| o.ev.clone()),
                );
            }
        }
        v.extend(
            self.zone_rules
                .iter()
                .filter_map(|r| r.open.as_ref())
                .map(|o| o.ev.clone()),
        );
        v.extend(
            self.patrols
                .iter()
                .filter_map(|p| p.open.as_ref())
                .map(|o| o.ev.clone()),
        );
        v
    }

    /// Swaps thresholds, zones, masks and rules at run time. An invalid config is rejected
    /// and the running one stays. Tracks, open events and timers survive; zone counters
    /// restart for cameras whose zones changed; open events of removed rules end (delivered
    /// with the next [`RulesEngine::handle`] call).
    pub fn apply_config(&mut self, cfg: RulesConfig) -> Result<(), RulesError> {
        let c = Compiled::strict(&cfg)?;
        let old = std::mem::replace(&mut self.c, c);
        self.tp = TrackerParams::from(&self.c.cfg.tracker);
        for cam in &mut self.cams {
            let before = old.cfg.cameras.get(&*cam.id).map(|c| &c.zones);
            let after = self.c.cfg.cameras.get(&*cam.id).map(|c| &c.zones);
            if before != after {
                let nz = after.map_or(0, |z| z.len());
                for (_, tr) in &mut cam.trackers {
                    for t in &mut tr.tracks {
                        t.zone_frames.clear();
                        t.zone_frames.resize(nz, 0);
                    }
                }
                cam.zone_counts.clear();
                cam.zone_counts.resize(nz, 0);
            }
        }
        let mut ended = Vec::new();
        self.rebuild_rules(&mut ended);
        self.pending.extend(ended);
        tracing::info!("Rules configuration applied.");
        Ok(())
    }

    /// Handles one message; appends the events it causes to `out`.
    pub fn handle(&mut self, msg: &StageMsg, out: &mut Vec<Event>) {
        out.append(&mut self.pending);
        match msg {
            StageMsg::Frame(fr) => self.on_frame(fr, out),
            StageMsg::Health(h) => self.on_health(h, out),
            StageMsg::ImageStats(s) => self.on_stats(s, out),
            StageMsg::Watermark { at } => self.advance(at.timestamp_millis(), out),
        }
    }

    fn cam(&mut self, id: &CameraId) -> usize {
        if let Some(&i) = self.cam_index.get(id) {
            return i;
        }
        let i = self.cams.len();
        self.cams.push(CamState::new(id.clone()));
        self.cam_index.insert(id.clone(), i);
        i
    }

    /// Advances event time; sweeps idle timers at most once per second of event time.
    fn advance(&mut self, t_ms: i64, out: &mut Vec<Event>) {
        let now = self.now_ms.map_or(t_ms, |n| n.max(t_ms));
        self.now_ms = Some(now);
        if now.saturating_sub(self.last_sweep_ms) < SWEEP_MS {
            return;
        }
        self.last_sweep_ms = now;
        let quiet = self.c.quiet_ms;
        let offline_ms = ms(self.c.cfg.health.offline_after_s);
        for cam in &mut self.cams {
            let mut i = 0;
            while i < cam.objs.len() {
                if now - cam.objs[i].open.last_seen_ms >= quiet {
                    let mut o = cam.objs.remove(i);
                    o.open.emit(EventPhase::End, now, out);
                } else {
                    i += 1;
                }
            }
            check_offline(cam, now, offline_ms, out);
        }
    }
}
