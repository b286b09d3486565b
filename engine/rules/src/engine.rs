//! [`RulesEngine`]: the deterministic state machine from [`StageMsg`] to [`Event`].
//!
//! Time inside the engine is data: capture times of analysed frames, `at` of health
//! messages and watermarks. There is no wall clock, so replaying the same messages with the
//! same config yields the same events, ids included.

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

    /// Rebuilds personnel rule states from the config, carrying over the state of rules
    /// that still exist (same camera and zone, same route).
    fn rebuild_rules(&mut self, ended: &mut Vec<Event>) {
        let cfg = &self.c.cfg;
        let mut old: Vec<ZoneRuleState> = std::mem::take(&mut self.zone_rules);
        let mut new_rules = Vec::new();
        let mut add = |kind: ZoneRuleKind, index: usize, camera: &str, zone: &str| {
            let Some(z) = self
                .c
                .cams
                .get(camera)
                .and_then(|r: &CamRules| r.zone_index(zone))
            else {
                return;
            };
            let kept = old
                .iter()
                .position(|o| o.kind == kind && &*o.cam == camera && &*o.zone_name == zone)
                .map(|i| old.swap_remove(i));
            let mut st = kept.unwrap_or(ZoneRuleState {
                kind,
                index,
                cam: Arc::from(camera),
                zone: z,
                zone_name: Arc::from(zone),
                since: None,
                clear_since: None,
                open: None,
            });
            st.index = index;
            st.zone = z;
            new_rules.push(st);
        };
        for (i, r) in cfg.duty_posts.iter().enumerate() {
            add(ZoneRuleKind::Duty, i, &r.camera, &r.zone);
        }
        for (i, r) in cfg.occupancy.iter().enumerate() {
            add(ZoneRuleKind::Occupancy, i, &r.camera, &r.zone);
        }
        for (i, r) in cfg.restricted.iter().enumerate() {
            add(ZoneRuleKind::Restricted, i, &r.camera, &r.zone);
        }
        let now = self.now_ms.unwrap_or(0);
        for mut o in old {
            if let Some(open) = o.open.as_mut() {
                open.ev.detail = format!("{} (rule removed)", open.ev.detail);
                open.emit(EventPhase::End, now, ended);
            }
        }
        self.zone_rules = new_rules;
        self.zone_rules_by_cam.clear();
        for (i, r) in self.zone_rules.iter().enumerate() {
            self.zone_rules_by_cam
                .entry(r.cam.clone())
                .or_default()
                .push(i);
        }

        let mut old_p: Vec<PatrolState> = std::mem::take(&mut self.patrols);
        for p in &cfg.patrols {
            let cps: Vec<Cp> = p
                .checkpoints
                .iter()
                .filter_map(|c| {
                    let z = self.c.cams.get(&c.camera)?.zone_index(&c.zone)?;
                    Some(Cp {
                        cam: Arc::from(c.camera.as_str()),
                        zone: z,
                        zone_name: Arc::from(c.zone.as_str()),
                        within_ms: ms(c.within_s),
                    })
                })
                .collect();
            if cps.is_empty() {
                continue;
            }
            let kept = old_p
                .iter()
                .position(|o| *o.name == p.name && o.cps == cps)
                .map(|i| old_p.swap_remove(i));
            self.patrols.push(kept.unwrap_or(PatrolState {
                name: Arc::from(p.name.as_str()),
                cps,
                next: 0,
                window: None,
                open: None,
            }));
        }
        for mut o in old_p {
            if let Some(open) = o.open.as_mut() {
                open.ev.detail = format!("{} (route changed)", open.ev.detail);
                open.emit(EventPhase::End, now, ended);
            }
        }
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

    fn on_health(&mut self, h: &CameraHealth, out: &mut Vec<Event>) {
        let at_ms = h.at.timestamp_millis();
        self.advance(at_ms, out);
        let ci = self.cam(&h.camera);
        let offline_ms = ms(self.c.cfg.health.offline_after_s);
        let cam = &mut self.cams[ci];
        let running = h.status.is_running();
        if running {
            cam.running = true;
            cam.down_since = None;
            if let Some(mut o) = cam.offline.take() {
                o.ev.last_seen = h.at;
                o.ev.detail = format!("camera {} is running again", cam.id);
                o.emit(EventPhase::End, at_ms, out);
            }
            return;
        }
        let quiet = matches!(
            h.status,
            CameraStatus::Stopped {
                reason: StopReason::Shutdown | StopReason::Finished
            }
        );
        let was_running = cam.running;
        cam.running = false;
        cam.down_quiet = quiet;
        if cam.down_since.is_none() {
            cam.down_since = Some(h.at);
        }
        if let Some(o) = cam.offline.as_mut() {
            o.ev.last_seen = h.at;
            o.last_seen_ms = at_ms;
            o.ev.detail = format!("camera {} is {}", cam.id, h.status.name());
        }
        let now = self.now_ms.unwrap_or(at_ms);
        check_offline(cam, now, offline_ms, out);
        if was_running {
            let id = cam.id.clone();
            self.camera_down(&id, h.at, out);
        }
    }

    /// A camera stopped: personnel rules on it cannot know anything any more. Their open
    /// events end and their timers restart when frames come back.
    fn camera_down(&mut self, id: &CameraId, at: UtcTime, out: &mut Vec<Event>) {
        let at_ms = at.timestamp_millis();
        if let Some(idx) = self.zone_rules_by_cam.get(id) {
            for &i in idx {
                let r = &mut self.zone_rules[i];
                r.since = None;
                r.clear_since = None;
                if let Some(mut o) = r.open.take() {
                    o.ev.detail = format!("{}; camera offline, state unknown", o.ev.detail);
                    o.emit(EventPhase::End, at_ms, out);
                }
            }
        }
        for p in &mut self.patrols {
            if p.cps[p.next].cam == *id {
                p.window = None;
                if let Some(mut o) = p.open.take() {
                    o.ev.detail = format!("{}; camera offline, state unknown", o.ev.detail);
                    o.emit(EventPhase::End, at_ms, out);
                }
            }
        }
    }

    fn on_frame(&mut self, fr: &FrameResult, out: &mut Vec<Event>) {
        let t = fr.captured_at;
        let t_ms = t.timestamp_millis();
        self.advance(t_ms, out);
        self.frames += 1;
        self.detections += fr.detections.len() as u64;
        let ci = self.cam(&fr.camera);
        let person_class = self.c.cfg.person_class.as_str();
        if !self.person_models.contains(&fr.model)
            && fr.detections.iter().any(|d| &*d.class == person_class)
        {
            self.person_models.push(fr.model.clone());
        }
        let person_capable = if self.c.cfg.person_models.is_empty() {
            fr.model.contains(person_class) || self.person_models.contains(&fr.model)
        } else {
            self.c.cfg.person_models.iter().any(|m| **m == *fr.model)
        };

        let RulesEngine {
            c,
            tp,
            cams,
            cands,
            cand_params,
            ..
        } = self;
        let c = &*c;
        let person_class = c.cfg.person_class.as_str();
        let cam = &mut cams[ci];
        if cam.preset.as_deref() != fr.preset.as_deref() {
            if cam.seen_frame {
                for (_, tr) in &mut cam.trackers {
                    tr.clear();
                }
            }
            cam.preset = fr.preset.clone();
        }
        cam.seen_frame = true;
        let preset = fr.preset.as_deref();
        let rules = c.cams.get(&*fr.camera);
        let zones = rules.map_or(&[][..], |r| &r.zones[..]);
        let nz = zones.len();
        let (w, h) = (fr.width.max(1), fr.height.max(1));
        let profiles = if c.profiles.is_empty() {
            0
        } else {
            c.active_profiles(&fr.camera, t)
        };

        // Filters and masks; confident vs weak split.
        cands.clear();
        cand_params.clear();
        for d in &fr.detections {
            let (ax, ay) = anchor(&d.bbox, w, h);
            let zone = zones
                .iter()
                .position(|z| z.has_overrides && z.visible(preset) && z.poly.contains(ax, ay));
            let p = c.params(&d.class, &fr.camera, preset, zone, profiles);
            let bw = d.bbox.width() / w as f32;
            let bh = d.bbox.height() / h as f32;
            let area = bw * bh;
            if area < p.min_area || area > p.max_area || bw > p.max_width {
                continue;
            }
            let aspect = if bh > 0.0 {
                bw * w as f32 / (bh * h as f32)
            } else {
                f32::INFINITY
            };
            if aspect < p.min_aspect || aspect > p.max_aspect {
                continue;
            }
            if let Some(r) = rules {
                if r.masks
                    .iter()
                    .any(|m| m.applies(&d.class, preset) && m.poly.contains(ax, ay))
                {
                    continue;
                }
            }
            cands.push(Candidate {
                class: d.class.clone(),
                score: d.score,
                bbox: d.bbox,
                high: d.score >= p.min_score,
            });
            cand_params.push(p);
        }

        let ti = match cam.trackers.iter().position(|(m, _)| *m == fr.model) {
            Some(i) => i,
            None => {
                cam.trackers.push((fr.model.clone(), Tracker::new()));
                cam.trackers.len() - 1
            }
        };
        let tracker = &mut cam.trackers[ti].1;
        tracker.update(cands, tp, &mut cam.next_track, nz);

        // Track confirmation (thresholds with hysteresis, persistence) and zone inertia.
        for tr in &mut tracker.tracks {
            if tr.zone_frames.len() != nz {
                tr.zone_frames.clear();
                tr.zone_frames.resize(nz, 0);
            }
            let Some(j) = tr.matched else { continue };
            let p = &cand_params[j];
            if tr.first_seen.is_none() {
                tr.first_seen = Some(t);
            }
            let med = tr.median(p.history);
            tr.active = if tr.active {
                med >= p.keep_threshold
            } else {
                med >= p.threshold && tr.hits_in(p.persistence.n) >= p.persistence.k
            };
            let (ax, ay) = anchor(&tr.bbox, w, h);
            for (z, zone) in zones.iter().enumerate() {
                if zone.visible(preset) && zone.counts(&tr.class) && zone.poly.contains(ax, ay) {
                    tr.zone_frames[z] = tr.zone_frames[z].saturating_add(1);
                } else {
                    tr.zone_frames[z] = 0;
                }
            }
        }

        // Object events.
        let now_ms = t_ms;
        for tr in &mut tracker.tracks {
            let Some(j) = tr.matched else { continue };
            if !tr.active {
                continue;
            }
            let p = &cand_params[j];
            // Hysteresis keeps an open event alive; a new event needs the start threshold
            // again (after an event ended, or after a reload raised the threshold).
            let can_start = tr.median(p.history) >= p.threshold
                && tr.hits_in(p.persistence.n) >= p.persistence.k;
            let in_zone =
                |z: usize| tr.zone_frames.get(z).copied().unwrap_or(0) >= zones[z].inertia;
            // The first event of a track dates from its first sighting; a later one (after
            // the previous ended) from now, so that its id differs.
            let first = if tr.had_event {
                t
            } else {
                tr.first_seen.unwrap_or(t)
            };
            let mut started = false;
            if let Some(kind) = EventKind::from_class(&tr.class).filter(|_| p.events) {
                let mut required = false;
                let mut inside_required = false;
                let mut zone_name = None;
                for (z, zone) in zones.iter().enumerate() {
                    if !zone.visible(preset) || !zone.counts(&tr.class) {
                        continue;
                    }
                    let inside = in_zone(z);
                    if zone.required {
                        required = true;
                        inside_required |= inside;
                    }
                    if inside && zone_name.is_none() {
                        zone_name = Some(zone.name.clone());
                    }
                }
                if !required || inside_required {
                    started |= upsert_obj(
                        &mut cam.objs,
                        ObjSighting {
                            camera: &fr.camera,
                            kind,
                            track: tr.id,
                            zone: zone_name,
                            preset: fr.preset.as_ref(),
                            first,
                            t,
                            score: tr.last_score(),
                            bbox: tr.bbox,
                            frame: fr,
                        },
                        c.update_ms,
                        now_ms,
                        can_start,
                        out,
                    );
                }
            }
            if *tr.class == *person_class {
                for (z, zone) in zones.iter().enumerate() {
                    if zone.person_events
                        && zone.visible(preset)
                        && zone.counts(&tr.class)
                        && in_zone(z)
                    {
                        started |= upsert_obj(
                            &mut cam.objs,
                            ObjSighting {
                                camera: &fr.camera,
                                kind: EventKind::PersonInZone,
                                track: tr.id,
                                zone: Some(zone.name.clone()),
                                preset: fr.preset.as_ref(),
                                first,
                                t,
                                score: tr.last_score(),
                                bbox: tr.bbox,
                                frame: fr,
                            },
                            c.update_ms,
                            now_ms,
                            can_start,
                            out,
                        );
                    }
                }
            }
            tr.had_event |= started;
        }

        // Head counts for the personnel rules.
        if !person_capable || !cam.running {
            return;
        }
        cam.zone_counts.clear();
        cam.zone_counts.resize(nz, 0);
        let coast = c.cfg.tracker.coast_frames;
        for tr in &tracker.tracks {
            if !tr.active || tr.missed > coast || *tr.class != *person_class {
                continue;
            }
            for (z, zone) in zones.iter().enumerate() {
                if tr.zone_frames[z] >= zone.inertia {
                    cam.zone_counts[z] += 1;
                }
            }
        }
        self.personnel(ci, fr, out);
    }

    fn personnel(&mut self, ci: usize, fr: &FrameResult, out: &mut Vec<Event>) {
        let t = fr.captured_at;
        let t_ms = t.timestamp_millis();
        let RulesEngine {
            c,
            cams,
            zone_rules,
            zone_rules_by_cam,
            patrols,
            ..
        } = self;
        let cam = &cams[ci];
        let preset = fr.preset.as_deref();
        let Some(rules) = c.cams.get(&*fr.camera) else {
            return;
        };
        let visible = |z: usize| rules.zones.get(z).is_some_and(|zz| zz.visible(preset));
        let count = |z: usize| cam.zone_counts.get(z).copied().unwrap_or(0);
        let snapshot = Some(FrameRef {
            camera: fr.camera.clone(),
            seq: fr.seq,
        });
        let base =
            |kind: EventKind, zone: &Arc<str>, first: UtcTime, detail: String, n: u32| Event {
                id: format!(
                    "{}:{}:{}:{}",
                    fr.camera,
                    kind,
                    zone,
                    first.timestamp_millis()
                ),
                camera: fr.camera.clone(),
                kind,
                phase: EventPhase::Start,
                track: None,
                zone: Some(zone.clone()),
                preset: fr.preset.clone(),
                best_score: 0.0,
                first_seen: first,
                last_seen: t,
                bbox: None,
                frame_size: Some((fr.width, fr.height)),
                snapshot: snapshot.clone(),
                count: Some(n),
                detail,
            };
        if let Some(idx) = zone_rules_by_cam.get(&fr.camera) {
            for &i in idx {
                let r = &mut zone_rules[i];
                if !visible(r.zone) {
                    continue;
                }
                let n = count(r.zone);
                match r.kind {
                    ZoneRuleKind::Duty => {
                        let rule = &c.cfg.duty_posts[r.index];
                        if n >= rule.min_people {
                            r.since = None;
                            if let Some(mut o) = r.open.take() {
                                o.ev.last_seen = t;
                                o.ev.count = Some(n);
                                o.ev.snapshot = snapshot.clone();
                                o.ev.detail = format!(
                                    "duty post '{}' staffed again ({n} present)",
                                    r.zone_name
                                );
                                o.emit(EventPhase::End, t_ms, out);
                            }
                        } else {
                            let since = *r.since.get_or_insert(t);
                            if let Some(o) = r.open.as_mut() {
                                o.ev.last_seen = t;
                                o.last_seen_ms = t_ms;
                            } else if t_ms - since.timestamp_millis() >= ms(rule.max_vacant_s) {
                                let secs = (t_ms - since.timestamp_millis()) / 1000;
                                let ev = base(
                                    EventKind::PostVacant,
                                    &r.zone_name,
                                    since,
                                    format!(
                                        "duty post '{}' empty for {secs} s (limit {} s, {} needed)",
                                        r.zone_name, rule.max_vacant_s, rule.min_people
                                    ),
                                    n,
                                );
                                let mut o = Open::new(ev, t_ms);
                                o.emit(EventPhase::Start, t_ms, out);
                                r.open = Some(o);
                            }
                        }
                    }
                    ZoneRuleKind::Occupancy | ZoneRuleKind::Restricted => {
                        let (limit, min_ms, clear_ms, kind) = if r.kind == ZoneRuleKind::Occupancy {
                            let rule = &c.cfg.occupancy[r.index];
                            (
                                rule.max_people,
                                ms(rule.min_duration_s),
                                ms(rule.clear_s),
                                EventKind::OverOccupancy,
                            )
                        } else {
                            let rule = &c.cfg.restricted[r.index];
                            (0, 0, ms(rule.clear_s), EventKind::Restricted)
                        };
                        let detail = |zone: &str| {
                            if kind == EventKind::OverOccupancy {
                                format!("{n} people in '{zone}', limit {limit}")
                            } else {
                                format!("{n} people in restricted area '{zone}'")
                            }
                        };
                        if n > limit {
                            r.clear_since = None;
                            let since = *r.since.get_or_insert(t);
                            if let Some(o) = r.open.as_mut() {
                                o.ev.last_seen = t;
                                o.last_seen_ms = t_ms;
                                if n > o.ev.count.unwrap_or(0) {
                                    o.ev.count = Some(n);
                                    o.ev.snapshot = snapshot.clone();
                                    o.ev.detail = detail(&r.zone_name);
                                    o.emit(EventPhase::Update, t_ms, out);
                                }
                            } else if t_ms - since.timestamp_millis() >= min_ms {
                                let ev = base(kind, &r.zone_name, since, detail(&r.zone_name), n);
                                let mut o = Open::new(ev, t_ms);
                                o.emit(EventPhase::Start, t_ms, out);
                                r.open = Some(o);
                            }
                        } else {
                            r.since = None;
                            if r.open.is_some() {
                                let cs = *r.clear_since.get_or_insert(t);
                                if t_ms - cs.timestamp_millis() >= clear_ms {
                                    if let Some(mut o) = r.open.take() {
                                        o.ev.detail = format!(
                                            "{}; now {n} (since {} s)",
                                            o.ev.detail,
                                            (t_ms - cs.timestamp_millis()) / 1000
                                        );
                                        o.emit(EventPhase::End, t_ms, out);
                                    }
                                    r.clear_since = None;
                                }
                            }
                        }
                    }
                }
            }
        }
        for p in patrols.iter_mut() {
            let cp = &p.cps[p.next];
            if cp.cam != fr.camera || !visible(cp.zone) {
                continue;
            }
            let window = *p.window.get_or_insert(t);
            if count(cp.zone) >= 1 {
                if let Some(mut o) = p.open.take() {
                    o.ev.last_seen = t;
                    o.ev.snapshot = snapshot.clone();
                    o.ev.detail = format!("{}; visited at last", o.ev.detail);
                    o.emit(EventPhase::End, t_ms, out);
                }
                p.next = (p.next + 1) % p.cps.len();
                p.window = Some(t);
            } else if p.open.is_none() && t_ms - window.timestamp_millis() > cp.within_ms {
                let due = window + chrono::Duration::milliseconds(cp.within_ms);
                let mut ev = base(
                    EventKind::PatrolMissed,
                    &cp.zone_name,
                    due,
                    format!(
                        "patrol '{}': checkpoint {} ('{}') not visited within {} s",
                        p.name,
                        p.next + 1,
                        cp.zone_name,
                        cp.within_ms / 1000
                    ),
                    0,
                );
                ev.id = format!(
                    "{}:{}:{}#{}:{}",
                    fr.camera,
                    EventKind::PatrolMissed,
                    p.name,
                    p.next + 1,
                    due.timestamp_millis()
                );
                ev.count = None;
                let mut o = Open::new(ev, t_ms);
                o.emit(EventPhase::Start, t_ms, out);
                p.open = Some(o);
            } else if let Some(o) = p.open.as_mut() {
                o.ev.last_seen = t;
            }
        }
    }

    fn on_stats(&mut self, s: &ImageStats, out: &mut Vec<Event>) {
        let t = s.captured_at;
        let t_ms = t.timestamp_millis();
        self.advance(t_ms, out);
        let ci = self.cam(&s.camera);
        let h = &self.c.cfg.health;
        let cam = &mut self.cams[ci];
        let vi = match cam.views.iter().position(|v| v.preset == s.preset) {
            Some(i) => i,
            None => {
                cam.views.push(ViewState {
                    preset: s.preset.clone(),
                    n: 0,
                    brightness: 0.0,
                    contrast: 0.0,
                    sharpness: 0.0,
                    reference: Vec::new(),
                    checks: Default::default(),
                });
                cam.views.len() - 1
            }
        };
        let view = &mut cam.views[vi];
        let similarity = ncc(&s.thumb, &view.reference);
        if view.n < h.warmup_frames {
            fold(view, s, h.baseline_frames);
            return;
        }
        let blocked = (view.brightness > 10.0
            && s.brightness < view.brightness * (1.0 - h.blocked_brightness_drop))
            || (view.contrast > 4.0 && s.contrast < view.contrast * h.blocked_contrast_ratio);
        let defocused =
            !blocked && view.sharpness > 1.0 && s.sharpness < view.sharpness * h.defocus_ratio;
        let moved = !blocked && similarity < h.moved_similarity;
        let verdicts = [
            (EventKind::ViewBlocked, blocked),
            (EventKind::ViewDefocused, defocused),
            (EventKind::ViewMoved, moved),
        ];
        for (k, (kind, abnormal)) in verdicts.into_iter().enumerate() {
            let run = &mut view.checks[k];
            if abnormal {
                run.abnormal += 1;
                run.normal = 0;
                let since = *run.since.get_or_insert(t);
                if let Some(o) = run.open.as_mut() {
                    o.ev.last_seen = t;
                    o.last_seen_ms = t_ms;
                } else if run.abnormal >= h.persist_frames {
                    let detail = match kind {
                        EventKind::ViewBlocked => format!(
                            "view blocked: brightness {:.0} (baseline {:.0}), contrast {:.1} (baseline {:.1})",
                            s.brightness, view.brightness, s.contrast, view.contrast
                        ),
                        EventKind::ViewDefocused => format!(
                            "view defocused: sharpness {:.1} (baseline {:.1})",
                            s.sharpness, view.sharpness
                        ),
                        _ => format!(
                            "view moved: similarity {similarity:.2} to the reference (limit {:.2})",
                            h.moved_similarity
                        ),
                    };
                    let ev = Event {
                        id: format!(
                            "{}:{}:{}:{}",
                            s.camera,
                            kind,
                            s.preset.as_deref().unwrap_or("-"),
                            since.timestamp_millis()
                        ),
                        camera: s.camera.clone(),
                        kind,
                        phase: EventPhase::Start,
                        track: None,
                        zone: None,
                        preset: s.preset.clone(),
                        best_score: 0.0,
                        first_seen: since,
                        last_seen: t,
                        bbox: None,
                        frame_size: None,
                        snapshot: Some(FrameRef {
                            camera: s.camera.clone(),
                            seq: s.seq,
                        }),
                        count: None,
                        detail,
                    };
                    let mut o = Open::new(ev, t_ms);
                    o.emit(EventPhase::Start, t_ms, out);
                    run.open = Some(o);
                }
            } else {
                run.normal += 1;
                run.abnormal = 0;
                run.since = None;
                if run.normal >= h.persist_frames {
                    if let Some(mut o) = run.open.take() {
                        o.ev.last_seen = t;
                        o.emit(EventPhase::End, t_ms, out);
                    }
                }
            }
        }
        if !blocked && !defocused && !moved {
            fold(view, s, h.baseline_frames);
        }
    }
}

/// One qualifying sighting of a tracked object.
struct ObjSighting<'a> {
    camera: &'a CameraId,
    kind: EventKind,
    track: u64,
    zone: Option<Arc<str>>,
    preset: Option<&'a Arc<str>>,
    first: UtcTime,
    t: UtcTime,
    score: f32,
    bbox: BBox,
    frame: &'a FrameResult,
}

fn upsert_obj(
    objs: &mut Vec<ObjOpen>,
    s: ObjSighting<'_>,
    update_ms: i64,
    now_ms: i64,
    can_start: bool,
    out: &mut Vec<Event>,
) -> bool {
    let t_ms = s.t.timestamp_millis();
    let same = |o: &&mut ObjOpen| {
        o.track == s.track
            && o.kind == s.kind
            && (s.kind != EventKind::PersonInZone || o.open.ev.zone == s.zone)
    };
    if let Some(o) = objs.iter_mut().find(|o| same(o)) {
        let open = &mut o.open;
        open.ev.last_seen = s.t;
        open.last_seen_ms = t_ms;
        if s.score > open.ev.best_score {
            open.ev.best_score = s.score;
            open.ev.bbox = Some(s.bbox);
            open.ev.frame_size = Some((s.frame.width, s.frame.height));
            open.ev.snapshot = Some(FrameRef {
                camera: s.camera.clone(),
                seq: s.frame.seq,
            });
        }
        if open.ev.best_score > open.reported_score && now_ms - open.last_emit_ms >= update_ms {
            open.emit(EventPhase::Update, now_ms, out);
        }
        return false;
    }
    if !can_start {
        return false;
    }
    let zone_part = match (&s.kind, &s.zone) {
        (EventKind::PersonInZone, Some(z)) => format!(":{z}"),
        _ => String::new(),
    };
    let ev = Event {
        id: format!(
            "{}:{}:t{}{}:{}",
            s.camera,
            s.kind,
            s.track,
            zone_part,
            s.first.timestamp_millis()
        ),
        camera: s.camera.clone(),
        kind: s.kind,
        phase: EventPhase::Start,
        track: Some(s.track),
        zone: s.zone.clone(),
        preset: s.preset.cloned(),
        best_score: s.score,
        first_seen: s.first,
        last_seen: s.t,
        bbox: Some(s.bbox),
        frame_size: Some((s.frame.width, s.frame.height)),
        snapshot: Some(FrameRef {
            camera: s.camera.clone(),
            seq: s.frame.seq,
        }),
        count: None,
        detail: match &s.zone {
            Some(z) => format!("{} (track {}) in '{z}'", s.kind, s.track),
            None => format!("{} (track {})", s.kind, s.track),
        },
    };
    let mut o = Open::new(ev, now_ms);
    o.emit(EventPhase::Start, now_ms, out);
    objs.push(ObjOpen {
        track: s.track,
        kind: s.kind,
        open: o,
    });
    true
}

fn check_offline(cam: &mut CamState, now: i64, offline_ms: i64, out: &mut Vec<Event>) {
    let Some(since) = cam.down_since else { return };
    if cam.running || cam.down_quiet || cam.offline.is_some() {
        return;
    }
    let since_ms = since.timestamp_millis();
    if now - since_ms < offline_ms {
        return;
    }
    let last = chrono::DateTime::from_timestamp_millis(now).unwrap_or(since);
    let ev = Event {
        id: format!("{}:{}:{}", cam.id, EventKind::CameraOffline, since_ms),
        camera: cam.id.clone(),
        kind: EventKind::CameraOffline,
        phase: EventPhase::Start,
        track: None,
        zone: None,
        preset: cam.preset.clone(),
        best_score: 0.0,
        first_seen: since,
        last_seen: last,
        bbox: None,
        frame_size: None,
        snapshot: None,
        count: None,
        detail: format!("camera {} delivers no frames", cam.id),
    };
    let mut o = Open::new(ev, now);
    o.emit(EventPhase::Start, now, out);
    cam.offline = Some(o);
}

/// Folds a normal frame into the view's baseline (plain mean while young, then an
/// exponential average over `frames`).
fn fold(view: &mut ViewState, s: &ImageStats, frames: u32) {
    view.n = view.n.saturating_add(1);
    let a = 1.0 / (view.n.min(frames.max(1)) as f32);
    view.brightness += a * (s.brightness - view.brightness);
    view.contrast += a * (s.contrast - view.contrast);
    view.sharpness += a * (s.sharpness - view.sharpness);
    if view.reference.len() != s.thumb.len() {
        view.reference = s.thumb.iter().map(|&b| b as f32).collect();
    } else {
        for (r, &b) in view.reference.iter_mut().zip(&s.thumb) {
            *r += a * (b as f32 - *r);
        }
    }
}

/// Zero-mean normalised correlation of a thumbnail with a reference (1 when either is
/// flat or missing: no evidence of a move).
fn ncc(thumb: &[u8], reference: &[f32]) -> f32 {
    if thumb.len() != reference.len() || thumb.is_empty() {
        return 1.0;
    }
    let n = thumb.len() as f32;
    let ma = thumb.iter().map(|&b| b as f32).sum::<f32>() / n;
    let mb = reference.iter().sum::<f32>() / n;
    let (mut sab, mut saa, mut sbb) = (0f32, 0f32, 0f32);
    for (&a, &b) in thumb.iter().zip(reference) {
        let (da, db) = (a as f32 - ma, b - mb);
        sab += da * db;
        saa += da * da;
        sbb += db * db;
    }
    if saa < 1e-3 * n || sbb < 1e-3 * n {
        return 1.0;
    }
    sab / (saa.sqrt() * sbb.sqrt())
}
