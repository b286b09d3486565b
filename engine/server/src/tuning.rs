//! Threshold tuning: "what would this setting have done?" over recorded frame results.
//!
//! The recorded raw detections of one camera (last `server.tuning_window_days`) are
//! replayed through the rules engine ([`crate::RulesControl::replay`]) with the camera's class
//! threshold and persistence overridden. The answer: how many alarms that setting raises
//! per day, and how many of the incidents operators confirmed on that camera it would
//! still have caught. [`curve`] does so at every threshold of [`CURVE_THRESHOLDS`] for the
//! tuning view's alarms/day against event-recall curve, loading the window once.

use chrono::Duration;
use lookout_config::rules::{ClassParams, ClassRule, Persistence, RulesConfig};
use lookout_config::Config;
use lookout_core::{EventKind, IncidentKind, StageMsg, UtcTime};
use serde::{Deserialize, Serialize};

/// A setting to try or apply.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TuneRequest {
    /// Camera id.
    pub camera: String,
    /// Class name (`smoke`, `fire`, `person`, ...).
    pub class: String,
    /// Score threshold, 0..1.
    pub threshold: f32,
    /// Persistence (`k` of the last `n` frames); unset keeps the current one.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub persistence: Option<Persistence>,
    /// Why (recorded with an applied change).
    #[serde(default)]
    pub comment: Option<String>,
}

/// What a setting would have done.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReplayResult {
    /// Camera.
    pub camera: String,
    /// Class.
    pub class: String,
    /// Threshold tried.
    pub threshold: f32,
    /// Persistence tried.
    pub persistence: Persistence,
    /// Recorded frames replayed.
    pub frames: usize,
    /// Start of the replayed window.
    pub from: Option<UtcTime>,
    /// End of the replayed window.
    pub until: Option<UtcTime>,
    /// Alarms (distinct events) the setting raises.
    pub alarms: u64,
    /// Alarms per day over the replayed span (at least one hour).
    pub alarms_per_day: f64,
    /// Incidents operators confirmed on this camera in the window.
    pub confirmed: u64,
    /// Of those, how many an alarm of this setting overlaps.
    pub caught: u64,
    /// What temporal verification did to this camera's tracks of this class, when the
    /// class is in `[rules.verify]`.
    pub verification: Option<lookout_rules::TubeSummary>,
}

/// Field errors `(path, message)`.
pub type FieldErrors = Vec<(String, String)>;

/// The effective parameters of `class` on `camera` (built-in, then `[rules.classes]`,
/// then `[rules.cameras.ID.classes]`).
pub fn effective(rules: &RulesConfig, camera: &str, class: &str) -> ClassParams {
    let mut p = ClassParams::builtin(class);
    if let Some(r) = rules.classes.get(class) {
        p.apply(r);
    }
    if let Some(r) = rules.cameras.get(camera).and_then(|c| c.classes.get(class)) {
        p.apply(r);
    }
    p
}

/// Checks a request against the config; errors are by request field.
pub fn check(req: &TuneRequest, cfg: &Config) -> Result<(), FieldErrors> {
    let mut e = Vec::new();
    if cfg.camera(&req.camera).is_none() {
        let ids: Vec<&str> = cfg.cameras.iter().map(|c| c.id.as_str()).collect();
        e.push((
            "camera".into(),
            format!(
                "unknown camera {:?}; configured: {}",
                req.camera,
                ids.join(", ")
            ),
        ));
    }
    if req.class.is_empty()
        || !req
            .class
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        e.push((
            "class".into(),
            "must be a class name such as smoke, fire or person".into(),
        ));
    }
    if !(0.0..=1.0).contains(&req.threshold) || req.threshold.is_nan() {
        e.push((
            "threshold".into(),
            format!("{} is out of range: allowed 0 ..= 1", req.threshold),
        ));
    }
    if let Some(p) = req.persistence {
        if p.n == 0 || p.n > 64 {
            e.push((
                "persistence.n".into(),
                format!("{} is out of range: allowed 1 ..= 64", p.n),
            ));
        }
        if p.k == 0 || p.k > p.n {
            e.push((
                "persistence.k".into(),
                format!("{} must be in 1 ..= n ({})", p.k, p.n),
            ));
        }
    }
    if e.is_empty() {
        Ok(())
    } else {
        Err(e)
    }
}

/// The rules section with this camera's class threshold and persistence set.
pub fn with_setting(rules: &RulesConfig, req: &TuneRequest) -> RulesConfig {
    let mut r = rules.clone();
    let cam = r.cameras.entry(req.camera.clone()).or_default();
    let rule: &mut ClassRule = cam.classes.entry(req.class.clone()).or_default();
    rule.threshold = Some(req.threshold);
    if let Some(k) = rule.keep_threshold {
        if k > req.threshold {
            rule.keep_threshold = Some(req.threshold);
        }
    }
    if let Some(p) = req.persistence {
        rule.persistence = Some(p);
    }
    r
}

/// Validates a whole rules section in the context of the running config.
pub fn validate_rules(rules: &RulesConfig, cfg: &Config) -> Result<(), FieldErrors> {
    lookout_config::overlay::validate_rules(rules, cfg)
}

fn incident_kind_for(class: &str) -> IncidentKind {
    match EventKind::from_class(class) {
        Some(k) if k.is_fire_like() => IncidentKind::Fire,
        _ => IncidentKind::PersonInZone,
    }
}

/// Replays the recorded window with the setting and counts alarms and caught incidents.
pub fn replay(
    state: &crate::ServerState,
    req: &TuneRequest,
    now: UtcTime,
) -> Result<ReplayResult, String> {
    let Some(control) = &state.rules else {
        return Err("the rules replay is not available in this engine".into());
    };
    let cfg = state.config();
    let rec = load_recorded(state, &cfg, &req.camera, &req.class, now)?;
    let rules = with_setting(&cfg.rules, req);
    let persistence = effective(&rules, &req.camera, &req.class).persistence;
    let (alarms, caught, verification) = rec.run(control, &rules, &req.camera, &req.class);
    Ok(ReplayResult {
        camera: req.camera.clone(),
        class: req.class.clone(),
        threshold: req.threshold,
        persistence,
        frames: rec.msgs.len(),
        from: rec.from,
        until: rec.until,
        alarms,
        alarms_per_day: alarms as f64 / rec.span_days(),
        confirmed: rec.spans.len() as u64,
        caught,
        verification,
    })
}

/// The thresholds the tuning curve is replayed at: 0.1 to 0.9 in steps of 0.1 and 0.95
/// (besides the running one).
pub const CURVE_THRESHOLDS: [f32; 10] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95];

/// One threshold of the tuning curve.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CurvePoint {
    /// Threshold replayed.
    pub threshold: f32,
    /// Alarms it raises over the window.
    pub alarms: u64,
    /// Alarms per day.
    pub alarms_per_day: f64,
    /// Confirmed incidents it still catches.
    pub caught: u64,
    /// `caught / confirmed` (`None` without confirmed incidents: recall is unknown).
    pub recall: Option<f64>,
}

/// Alarms/day against event recall over the recorded window, one point per threshold, at
/// one persistence.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CurveResult {
    /// Camera.
    pub camera: String,
    /// Class.
    pub class: String,
    /// Persistence of every point.
    pub persistence: Persistence,
    /// The running threshold of this camera and class.
    pub current: f32,
    /// Recorded frames replayed.
    pub frames: usize,
    /// Start of the replayed window.
    pub from: Option<UtcTime>,
    /// End of the replayed window.
    pub until: Option<UtcTime>,
    /// Incidents operators confirmed on this camera in the window.
    pub confirmed: u64,
    /// By ascending threshold (the running one included).
    pub points: Vec<CurvePoint>,
}

/// The tuning curve: the window loaded once, then replayed at each of
/// [`CURVE_THRESHOLDS`] and the running threshold with `persistence` (unset: the running
/// one). Each replay waits for [`crate::ServerState::replay_lane`], so a slider's what-if
/// is served between two steps; dropping the future (the client went away) stops it.
pub async fn curve(
    state: &crate::ServerState,
    camera: &str,
    class: &str,
    persistence: Option<Persistence>,
    now: UtcTime,
) -> Result<CurveResult, String> {
    let Some(control) = state.rules.clone() else {
        return Err("the rules replay is not available in this engine".into());
    };
    let cfg = std::sync::Arc::new(state.config());
    let running = effective(&cfg.rules, camera, class);
    let rec = {
        let (st, cfg, cam, cls) = (
            state.clone(),
            cfg.clone(),
            camera.to_string(),
            class.to_string(),
        );
        std::sync::Arc::new(
            tokio::task::spawn_blocking(move || load_recorded(&st, &cfg, &cam, &cls, now))
                .await
                .map_err(|e| e.to_string())??,
        )
    };
    let mut thresholds = CURVE_THRESHOLDS.to_vec();
    if !thresholds
        .iter()
        .any(|t| (t - running.threshold).abs() < 1e-4)
    {
        thresholds.push(running.threshold);
        thresholds.sort_by(f32::total_cmp);
    }
    let confirmed = rec.spans.len() as u64;
    let mut points = Vec::with_capacity(thresholds.len());
    let mut used = running.persistence;
    for threshold in thresholds {
        let req = TuneRequest {
            camera: camera.to_string(),
            class: class.to_string(),
            threshold,
            persistence,
            comment: None,
        };
        let rules = with_setting(&cfg.rules, &req);
        used = effective(&rules, camera, class).persistence;
        let _turn = state
            .replay_lane
            .acquire()
            .await
            .map_err(|e| e.to_string())?;
        let (control, run_rec, cam, cls) = (control.clone(), rec.clone(), req.camera, req.class);
        let (alarms, caught, _) =
            tokio::task::spawn_blocking(move || run_rec.run(&control, &rules, &cam, &cls))
                .await
                .map_err(|e| e.to_string())?;
        points.push(CurvePoint {
            threshold,
            alarms,
            alarms_per_day: alarms as f64 / rec.span_days(),
            caught,
            recall: (confirmed > 0).then(|| caught as f64 / confirmed as f64),
        });
    }
    Ok(CurveResult {
        camera: camera.to_string(),
        class: class.to_string(),
        persistence: used,
        current: running.threshold,
        frames: rec.msgs.len(),
        from: rec.from,
        until: rec.until,
        confirmed,
        points,
    })
}

/// The frames and verdicts of one camera's replay window, loaded once for many settings.
struct Recorded {
    msgs: Vec<StageMsg>,
    from: Option<UtcTime>,
    until: Option<UtcTime>,
    spans: Vec<(UtcTime, UtcTime)>,
}

fn load_recorded(
    state: &crate::ServerState,
    cfg: &Config,
    camera: &str,
    class: &str,
    now: UtcTime,
) -> Result<Recorded, String> {
    let window = Duration::milliseconds((cfg.server.tuning_window_days * 86_400_000.0) as i64);
    let since = now - window;
    let store = state.alerts.store();
    let frames = store
        .frame_results(camera, since, now + Duration::seconds(1))
        .map_err(|e| e.to_string())?;
    let from = frames.first().map(|f| f.captured_at);
    let until = frames.last().map(|f| f.captured_at);
    let spans = match (from, until) {
        (Some(f), Some(u)) => store
            .confirmed_spans(
                camera,
                incident_kind_for(class),
                f,
                u + Duration::seconds(1),
            )
            .map_err(|e| e.to_string())?,
        _ => Vec::new(),
    };
    Ok(Recorded {
        msgs: frames.into_iter().map(StageMsg::Frame).collect(),
        from,
        until,
        spans,
    })
}

impl Recorded {
    /// Days the window spans (at least one hour).
    fn span_days(&self) -> f64 {
        match (self.from, self.until) {
            (Some(f), Some(u)) => {
                ((u - f).num_milliseconds() as f64 / 86_400_000.0).max(1.0 / 24.0)
            }
            _ => 1.0,
        }
    }

    /// Replays the window with `rules`: the alarms (distinct events of the class on the
    /// camera), how many confirmed incidents they overlap, and what verification did.
    fn run(
        &self,
        control: &crate::RulesControl,
        rules: &RulesConfig,
        camera: &str,
        class: &str,
    ) -> (u64, u64, Option<lookout_rules::TubeSummary>) {
        let (events, mut tubes) = control.replay_explained(self.msgs.clone(), rules);
        let verification = rules.verify.classes.iter().any(|c| c == class).then(|| {
            tubes
                .remove(&(camera.to_string(), class.to_string()))
                .unwrap_or_default()
        });
        let wanted = EventKind::from_class(class);
        let mut alarms: Vec<(String, UtcTime, UtcTime)> = Vec::new();
        for e in events {
            if e.camera.as_ref() != camera {
                continue;
            }
            let relevant = match wanted {
                Some(k) => e.kind == k,
                None => !e.kind.is_health() && !e.kind.is_fire_like(),
            };
            if !relevant {
                continue;
            }
            match alarms.iter_mut().find(|a| a.0 == e.id) {
                Some(a) => {
                    a.1 = a.1.min(e.first_seen);
                    a.2 = a.2.max(e.last_seen);
                }
                None => alarms.push((e.id.clone(), e.first_seen, e.last_seen)),
            }
        }
        let slack = Duration::seconds(60);
        let caught = self
            .spans
            .iter()
            .filter(|(a, b)| {
                alarms
                    .iter()
                    .any(|(_, f, l)| *f <= *b + slack && *l >= *a - slack)
            })
            .count() as u64;
        (alarms.len() as u64, caught, verification)
    }
}
