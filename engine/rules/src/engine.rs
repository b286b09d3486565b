//! [`RulesEngine`]: the deterministic state machine from [`StageMsg`] to [`Event`].
//!
//! Time inside the engine is data: capture times of analysed frames, `at` of health
//! messages and watermarks. There is no wall clock, so replaying the same messages with the
//! same config yields the same events, ids included.
//!
//! Time is **per camera**: each camera's clock is the newest capture time of its own frames
//! (a live camera on today's clock and a tower replaying 2023 run side by side), and only a
//! camera's own frames (or a watermark, which speaks for every source) move it, sweep its
//! quiet timers or end its events. A camera whose frames stop keeps its state until its own
//! clock moves again. Within a camera, state that belongs to a PTZ preset (tracks, object
//! events, zone-rule timers) ages only while the camera looks at that preset. Stream status
//! (`camera_offline`) runs on the status clock: the newest `at` of any health message (all
//! stamped by the engine's one wall clock) or watermark, since a dead camera has no frames.
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

/// Tracks remembered per merged episode (older ones can no longer continue it).
const MAX_EPISODE_TRACKS: usize = 8;

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

/// One live track's temporal verification ([`RulesEngine::tubes`]).
#[derive(Debug, Clone, serde::Serialize)]
pub struct TubeInfo {
    /// Camera.
    pub camera: CameraId,
    /// PTZ preset of its tracker.
    pub preset: Option<Arc<str>>,
    /// Track id.
    pub track: u64,
    /// Class.
    pub class: Arc<str>,
    /// Past the thresholds and persistence (only the tube can still hold it back).
    pub active: bool,
    /// The verdict.
    pub verdict: crate::verify::TubeVerdict,
}

/// An open object event (smoke, fire, person in zone).
#[derive(Debug, Clone)]
struct ObjOpen {
    /// Track id (the first track; the event's id names it).
    track: u64,
    /// Tracks that continued the event (`rules.merge_tracks`), newest last, at most
    /// [`MAX_EPISODE_TRACKS`].
    merged: Vec<u64>,
    /// The newest sighting's box.
    last_bbox: BBox,
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

/// Debounce state of one health check in one view.
#[derive(Debug, Clone, Default)]
struct CheckRun {
    /// Consecutive abnormal frames.
    abnormal: u32,
    /// Consecutive normal frames.
    normal: u32,
    /// Capture time of the first abnormal frame of the run.
    since: Option<UtcTime>,
}

/// One camera-health condition (blocked, defocused, moved) of a camera: at most one open,
/// raised again only after it cleared and the cooldown passed.
#[derive(Debug, Clone)]
struct Condition {
    /// Open event (its `preset` is the view that raised it).
    open: Option<Open>,
    /// Not raised again before this camera time, ms.
    quiet_until_ms: i64,
}

impl Default for Condition {
    fn default() -> Self {
        Condition {
            open: None,
            quiet_until_ms: i64::MIN,
        }
    }
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
    /// The camera's clock: newest capture time of its frames (and watermarks), ms.
    clock: Option<i64>,
    /// Last sweep of this camera's idle timers, on its clock, ms.
    last_sweep_ms: i64,
    /// Per preset left: the camera's clock when it last turned away from it, ms.
    left: Vec<(Option<Arc<str>>, i64)>,
    /// One tracker per model and preset (a preset's tracks wait while the camera looks
    /// elsewhere).
    trackers: Vec<(Arc<str>, Option<Arc<str>>, Tracker)>,
    /// Next track id.
    next_track: u64,
    /// Open object events.
    objs: Vec<ObjOpen>,
    /// People counted per zone in the last person-capable frame.
    zone_counts: Vec<u32>,
    /// The people counted in the last person-capable frame (confirmed person tracks).
    people: Vec<Person>,
    /// Per zone, indices into `people` of those counted in it.
    zone_people: Vec<Vec<u32>>,
    /// Health baselines per view.
    views: Vec<ViewState>,
    /// Health conditions: blocked, defocused, moved.
    conditions: [Condition; 3],
    /// Image statistics still to skip after a preset change (the camera settles).
    settle: u32,
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
            clock: None,
            last_sweep_ms: i64::MIN,
            left: Vec::new(),
            trackers: Vec::new(),
            next_track: 1,
            objs: Vec::new(),
            zone_counts: Vec::new(),
            people: Vec::new(),
            zone_people: Vec::new(),
            views: Vec::new(),
            conditions: Default::default(),
            settle: 0,
        }
    }
}

/// One person counted for the personnel rules.
#[derive(Debug, Clone)]
struct Person {
    /// The track's role (majority of its recent measurements); `None` = unknown.
    role: Option<Arc<str>>,
    /// Feet (bottom centre of the box), frame pixels.
    x: f32,
    /// Feet, frame pixels.
    y: f32,
    /// Box height, frame pixels (the scale of distances in metres).
    h: f32,
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
    /// `[[rules.two_person]]`.
    TwoPerson,
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
    /// Active hours (`schedule`, `timezone`); `None` = always.
    hours: Option<Hours>,
}

/// A personnel rule's active hours, compiled.
#[derive(Debug, Clone, PartialEq)]
struct Hours {
    schedule: lookout_config::schedule::Schedule,
    tz: chrono_tz::Tz,
}

impl Hours {
    /// From a rule's `schedule` and `timezone` (validated: a bad one means always).
    fn of(schedule: &Option<String>, tz: &str) -> Option<Hours> {
        let schedule = lookout_config::schedule::Schedule::parse(schedule.as_ref()?).ok()?;
        let tz = tz.trim().parse().unwrap_or(chrono_tz::UTC);
        Some(Hours { schedule, tz })
    }

    /// Whether the rule is active at `t`.
    fn active(h: &Option<Hours>, t: UtcTime) -> bool {
        h.as_ref()
            .is_none_or(|h| h.schedule.active(&t.with_timezone(&h.tz)))
    }
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
    /// Active hours; `None` = always.
    hours: Option<Hours>,
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
    /// The status clock: newest `at` of health messages and watermarks, ms.
    status_ms: Option<i64>,
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
            status_ms: None,
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

    /// `msg` as recordings keep it (`detections.jsonl`, SQLite frame results): a frame
    /// result holds only the detections the rules use, at or above the recording floor
    /// (`[rules.record]`), and is kept even when none is left; other messages are
    /// unchanged. The rules ignore the same detections, so a filtered recording replays to
    /// exactly the live events. `scratch` is reused: no allocation once warm.
    pub fn recorded<'a>(&self, msg: &'a StageMsg, scratch: &'a mut StageMsg) -> &'a StageMsg {
        let StageMsg::Frame(fr) = msg else {
            return msg;
        };
        if fr.detections.iter().all(|d| self.c.keeps(d)) {
            return msg;
        }
        if let StageMsg::Frame(s) = &mut *scratch {
            s.camera.clone_from(&fr.camera);
            s.seq = fr.seq;
            s.captured_at = fr.captured_at;
            s.preset.clone_from(&fr.preset);
            s.width = fr.width;
            s.height = fr.height;
            s.model.clone_from(&fr.model);
            s.detections.clear();
        } else {
            *scratch = StageMsg::Frame(FrameResult {
                camera: fr.camera.clone(),
                seq: fr.seq,
                captured_at: fr.captured_at,
                preset: fr.preset.clone(),
                width: fr.width,
                height: fr.height,
                model: fr.model.clone(),
                detections: Vec::with_capacity(fr.detections.len()),
            });
        }
        if let StageMsg::Frame(s) = &mut *scratch {
            s.detections
                .extend(fr.detections.iter().filter(|d| self.c.keeps(d)).cloned());
        }
        scratch
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
                    .map(|(_, _, t)| t.tracks.len())
                    .sum()
            })
            .unwrap_or(0)
    }

    /// The latest temporal verification of every live track of a `[rules.verify]` class:
    /// why each did or did not (yet) start an event.
    pub fn tubes(&self) -> Vec<TubeInfo> {
        let mut v = Vec::new();
        for cam in &self.cams {
            for (_, preset, t) in &cam.trackers {
                for tr in &t.tracks {
                    if let Some(verdict) = tr.verdict {
                        v.push(TubeInfo {
                            camera: cam.id.clone(),
                            preset: preset.clone(),
                            track: tr.id,
                            class: tr.class.clone(),
                            active: tr.active,
                            verdict,
                        });
                    }
                }
            }
        }
        v
    }

    /// Every event that has started and not ended, as last emitted.
    pub fn open_events(&self) -> Vec<Event> {
        let mut v = Vec::new();
        for cam in &self.cams {
            v.extend(cam.objs.iter().map(|o| o.open.ev.clone()));
            v.extend(cam.offline.iter().map(|o| o.ev.clone()));
            v.extend(
                cam.conditions
                    .iter()
                    .filter_map(|c| c.open.as_ref())
                    .map(|o| o.ev.clone()),
            );
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
                for (_, _, tr) in &mut cam.trackers {
                    for t in &mut tr.tracks {
                        t.zone_frames.clear();
                        t.zone_frames.resize(nz, 0);
                    }
                }
                cam.zone_counts.clear();
                cam.zone_counts.resize(nz, 0);
                cam.zone_people.clear();
                cam.people.clear();
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
            StageMsg::Watermark { at } => {
                // A watermark speaks for every source: every camera's clock and the status
                // clock move to it.
                let t_ms = at.timestamp_millis();
                for ci in 0..self.cams.len() {
                    self.advance(ci, t_ms, out);
                }
                self.advance_status(t_ms, out);
            }
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

    /// The clock of a camera (by index into `cams`), ms.
    fn clock(&self, ci: usize) -> Option<i64> {
        self.cams.get(ci).and_then(|c| c.clock)
    }

    /// The clock of a camera by id, ms.
    fn clock_of(&self, id: &str) -> Option<i64> {
        self.cam_index.get(id).and_then(|&i| self.clock(i))
    }

    /// The camera turns to `preset` (a frame or image statistics of it arrived): the
    /// preset it leaves stops ageing, the preset it returns to resumes where it stopped
    /// (its object events' quiet timers and its zone rules' timers are shifted by the time
    /// spent elsewhere).
    fn enter_preset(&mut self, ci: usize, preset: Option<&Arc<str>>) {
        let cam = &mut self.cams[ci];
        if cam.preset.as_ref() == preset {
            return;
        }
        let old = std::mem::replace(&mut cam.preset, preset.cloned());
        let Some(now) = cam.clock else {
            return;
        };
        // Expected motion: the view's health runs restart and its first frames are skipped.
        cam.settle = self.c.cfg.health.settle_frames;
        if let Some(v) = cam.views.iter_mut().find(|v| v.preset.as_ref() == preset) {
            v.checks = Default::default();
        }
        match cam.left.iter_mut().find(|(p, _)| *p == old) {
            Some(l) => l.1 = now,
            None => cam.left.push((old, now)),
        }
        let Some(away) = cam
            .left
            .iter()
            .find(|(p, _)| p.as_ref() == preset)
            .map(|(_, left)| now - left)
            .filter(|&a| a > 0)
        else {
            return;
        };
        for o in &mut cam.objs {
            if o.open.ev.preset.as_ref() == preset {
                o.open.last_seen_ms += away;
            }
        }
        let shift = chrono::Duration::milliseconds(away);
        let Some(rules) = self.c.cams.get(&*cam.id) else {
            return;
        };
        if let Some(idx) = self.zone_rules_by_cam.get(&cam.id) {
            for &i in idx {
                let r = &mut self.zone_rules[i];
                let only_here = rules
                    .zones
                    .get(r.zone)
                    .and_then(|z| z.preset.as_deref())
                    .is_some_and(|z| Some(z) == preset.map(|p| &**p));
                if only_here {
                    r.since = r.since.map(|t| t + shift);
                    r.clear_since = r.clear_since.map(|t| t + shift);
                }
            }
        }
    }

    /// Advances camera `ci`'s clock to `t_ms`; sweeps its idle timers at most once per
    /// second of its time. Object events of presets it does not look at do not age.
    fn advance(&mut self, ci: usize, t_ms: i64, out: &mut Vec<Event>) {
        let quiet = self.c.quiet_ms;
        let cam = &mut self.cams[ci];
        let now = cam.clock.map_or(t_ms, |n| n.max(t_ms));
        cam.clock = Some(now);
        if now.saturating_sub(cam.last_sweep_ms) < SWEEP_MS {
            return;
        }
        cam.last_sweep_ms = now;
        let mut i = 0;
        while i < cam.objs.len() {
            let o = &cam.objs[i];
            if o.open.ev.preset == cam.preset && now - o.open.last_seen_ms >= quiet {
                let mut o = cam.objs.remove(i);
                o.open.emit(EventPhase::End, now, out);
            } else {
                i += 1;
            }
        }
    }

    /// Advances the status clock (health `at`, watermarks) and checks offline timers.
    fn advance_status(&mut self, t_ms: i64, out: &mut Vec<Event>) {
        let now = self.status_ms.map_or(t_ms, |n| n.max(t_ms));
        self.status_ms = Some(now);
        let offline_ms = ms(self.c.cfg.health.offline_after_s);
        for cam in &mut self.cams {
            check_offline(cam, now, offline_ms, out);
        }
    }
}
