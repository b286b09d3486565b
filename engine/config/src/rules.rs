//! `[rules]`: everything an operator tunes between raw detections and events.
//!
//! Thresholds are layered. For one detection of class `C` the effective values are the
//! built-in defaults for `C` ([`ClassParams::builtin`]), then `rules.classes.C`, then
//! `rules.cameras.CAM.classes.C`, then `rules.cameras.CAM.presets.P.classes.C`, then the
//! `classes.C` of the first zone (of that camera and preset) whose polygon holds the
//! detection's anchor point, then every active `[[rules.profiles]]` entry in file order.
//! Each layer sets only the keys it names.
//!
//! Geometry is relative: polygons are `[x, y]` points in 0..1 of the image, so one zone
//! works at any analysis resolution. An object is "in" a polygon when its anchor point —
//! the bottom centre of its box (a person's feet, a plume's base) — is inside.
//!
//! ```toml
//! [rules]
//! quiet_s = 30
//! [rules.classes.smoke]
//! threshold = 0.5
//! persistence = { k = 3, n = 5 }
//! [[rules.profiles]]
//! name = "night"
//! from = "20:00"
//! to = "06:00"
//! timezone = "Europe/Athens"
//! classes.smoke.threshold = 0.6
//! [rules.cameras.plant1]
//! masks = [{ polygon = [[0, 0], [1, 0], [1, 0.2]], classes = ["smoke"] }]
//! zones = [{ name = "control-room", polygon = [[0.1, 0.1], [0.5, 0.1], [0.5, 0.9]], inertia = 3 }]
//! [[rules.duty_posts]]
//! camera = "plant1"
//! zone = "control-room"
//! max_vacant_s = 300
//! ```

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::validate::{ValidationContext, Validator};

/// Longest score history a class may ask for (the median window).
pub const MAX_HISTORY: u32 = 32;
/// Longest persistence window `n` (frames).
pub const MAX_PERSISTENCE_N: u32 = 64;

/// `[rules]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RulesConfig {
    /// Seconds (capture time) without a qualifying sighting after which an object event
    /// (smoke, fire, person in zone) ends. Default 30.
    pub quiet_s: f64,
    /// Least seconds between two `update` emissions of one event; a better score or a
    /// higher count is reported at most this often. Default 5.
    pub update_interval_s: f64,
    /// One smoke or fire event per episode: a new track of the class near an open event of
    /// the same class on the same camera view (boxes within about one box size of each
    /// other) continues that event instead of starting another, however often the tracker
    /// loses and finds the plume again. Default true.
    pub merge_tracks: bool,
    /// Class name whose tracks the personnel rules count. Default `person`.
    pub person_class: String,
    /// Models whose frames are evidence about people: an empty frame from one of them means
    /// nobody is there. Empty (the default): every model whose name contains
    /// `person_class`, and every model that has reported a `person_class` detection.
    pub person_models: Vec<String>,
    /// Per-class thresholds and filters (keys are model class names). Unset keys keep the
    /// built-in defaults: smoke, fire and person have their own, other classes a strict
    /// generic set.
    pub classes: BTreeMap<String, ClassRule>,
    /// The multi-object tracker.
    pub tracker: TrackerConfig,
    /// Schedules: class overrides switched on by local time of day (day/night thresholds).
    pub profiles: Vec<ProfileConfig>,
    /// Per-camera overrides, masks and zones, keyed by camera id.
    pub cameras: BTreeMap<String, CameraRules>,
    /// Zones that must be staffed.
    pub duty_posts: Vec<DutyPostRule>,
    /// Head-count limits per zone.
    pub occupancy: Vec<OccupancyRule>,
    /// Zones nobody may enter.
    pub restricted: Vec<RestrictedRule>,
    /// Patrol routes: ordered checkpoints that must each see a person in time.
    pub patrols: Vec<PatrolRule>,
    /// Two-person zones (hot work, confined spaces): nobody may work there alone.
    pub two_person: Vec<TwoPersonRule>,
    /// Roles by vest and helmet colour (measured by inference on each person's box).
    pub roles: Vec<crate::roles::RoleConfig>,
    /// How sure the role measurement must be.
    pub role_match: crate::roles::RoleMatch,
    /// Camera-health checks (offline, blocked, defocused, moved).
    pub health: HealthRules,
    /// Recording of the rules stage's input for replay.
    pub record: RecordConfig,
    /// Temporal verification: which classes need a plume-like tube before an event.
    pub verify: VerifyConfig,
}

impl Default for RulesConfig {
    fn default() -> Self {
        RulesConfig {
            quiet_s: 30.0,
            update_interval_s: 5.0,
            merge_tracks: true,
            person_class: "person".into(),
            person_models: Vec::new(),
            classes: BTreeMap::new(),
            tracker: TrackerConfig::default(),
            profiles: Vec::new(),
            cameras: BTreeMap::new(),
            duty_posts: Vec::new(),
            occupancy: Vec::new(),
            restricted: Vec::new(),
            patrols: Vec::new(),
            two_person: Vec::new(),
            roles: Vec::new(),
            role_match: crate::roles::RoleMatch::default(),
            health: HealthRules::default(),
            record: RecordConfig::default(),
            verify: VerifyConfig::default(),
        }
    }
}

/// Thresholds and filters of one class. Every key is optional: a layer sets only what it
/// names (see the module docs for the layering order).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClassRule {
    /// Per-frame score floor: weaker detections only keep an existing track alive, they
    /// never start one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_score: Option<f32>,
    /// The median of the track's recent scores must reach this to start an event (a single
    /// lucky frame is not an event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f32>,
    /// Hysteresis: once started, the event stays alive while the median stays at or above
    /// this (at most `threshold`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_threshold: Option<f32>,
    /// Number of recent scores in the median, 1..=32.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<u32>,
    /// The track must have been seen (above `min_score`) in `k` of its last `n` analysed
    /// frames before an event starts. Smoke and fire need persistence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence: Option<Persistence>,
    /// Smallest box area as a fraction of the frame area.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_area: Option<f32>,
    /// Largest box area as a fraction of the frame area.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_area: Option<f32>,
    /// Smallest width/height ratio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_aspect: Option<f32>,
    /// Largest width/height ratio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_aspect: Option<f32>,
    /// Boxes wider than this fraction of the frame width are dropped (haze and sky
    /// detections span the image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_width: Option<f32>,
    /// Whether tracks of this class raise events by themselves. Only smoke and fire have
    /// an event kind of their own (default true for both); people raise events through
    /// zones (`person_events`) and the personnel rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<bool>,
}

/// `k` of the last `n` analysed frames.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Persistence {
    /// Frames (of the last `n`) in which the track must have been seen.
    pub k: u32,
    /// Window length in analysed frames, 1..=64.
    pub n: u32,
}

/// The effective thresholds and filters of one class after layering (all values set).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClassParams {
    /// See [`ClassRule::min_score`].
    pub min_score: f32,
    /// See [`ClassRule::threshold`].
    pub threshold: f32,
    /// See [`ClassRule::keep_threshold`].
    pub keep_threshold: f32,
    /// See [`ClassRule::history`].
    pub history: u32,
    /// See [`ClassRule::persistence`].
    pub persistence: Persistence,
    /// See [`ClassRule::min_area`].
    pub min_area: f32,
    /// See [`ClassRule::max_area`].
    pub max_area: f32,
    /// See [`ClassRule::min_aspect`].
    pub min_aspect: f32,
    /// See [`ClassRule::max_aspect`].
    pub max_aspect: f32,
    /// See [`ClassRule::max_width`].
    pub max_width: f32,
    /// See [`ClassRule::events`].
    pub events: bool,
}

impl ClassParams {
    /// The built-in defaults of a class: smoke and fire need persistence and raise events;
    /// person feeds zones and personnel rules; anything else is strict and silent.
    pub fn builtin(class: &str) -> ClassParams {
        let generic = ClassParams {
            min_score: 0.5,
            threshold: 0.7,
            keep_threshold: 0.6,
            history: 3,
            persistence: Persistence { k: 2, n: 3 },
            min_area: 0.0,
            max_area: 1.0,
            min_aspect: 0.0,
            max_aspect: f32::INFINITY,
            max_width: 1.0,
            events: false,
        };
        match class {
            "smoke" => ClassParams {
                min_score: 0.25,
                threshold: 0.45,
                keep_threshold: 0.35,
                history: 5,
                persistence: Persistence { k: 3, n: 5 },
                min_area: 0.0001,
                max_width: 0.8,
                events: true,
                ..generic
            },
            "fire" => ClassParams {
                min_score: 0.3,
                threshold: 0.5,
                keep_threshold: 0.4,
                history: 5,
                persistence: Persistence { k: 2, n: 4 },
                min_area: 0.00005,
                max_width: 0.8,
                events: true,
                ..generic
            },
            "person" => ClassParams {
                min_score: 0.4,
                threshold: 0.55,
                keep_threshold: 0.45,
                history: 3,
                persistence: Persistence { k: 2, n: 3 },
                ..generic
            },
            _ => generic,
        }
    }

    /// Applies the keys a layer sets.
    pub fn apply(&mut self, r: &ClassRule) {
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = r.$f { self.$f = v; } )* };
        }
        set!(
            min_score,
            threshold,
            keep_threshold,
            history,
            persistence,
            min_area,
            max_area,
            min_aspect,
            max_aspect,
            max_width,
            events
        );
        if self.keep_threshold > self.threshold {
            self.keep_threshold = self.threshold;
        }
    }
}

impl ClassRule {
    fn validate(&self, path: &str, v: &mut Validator) {
        let unit = |v: &mut Validator, key: &str, x: Option<f32>| {
            if let Some(x) = x {
                v.range(format!("{path}.{key}"), x, 0.0, 1.0);
            }
        };
        unit(v, "min_score", self.min_score);
        unit(v, "threshold", self.threshold);
        unit(v, "keep_threshold", self.keep_threshold);
        unit(v, "min_area", self.min_area);
        unit(v, "max_area", self.max_area);
        unit(v, "max_width", self.max_width);
        if let (Some(k), Some(t)) = (self.keep_threshold, self.threshold) {
            v.check(
                k <= t,
                format!("{path}.keep_threshold"),
                format!("must not exceed threshold ({t}): it is the lower, keep-alive threshold"),
            );
        }
        if let (Some(lo), Some(hi)) = (self.min_area, self.max_area) {
            v.check(
                lo <= hi,
                format!("{path}.min_area"),
                format!("must not exceed max_area ({hi})"),
            );
        }
        for (key, x) in [
            ("min_aspect", self.min_aspect),
            ("max_aspect", self.max_aspect),
        ] {
            if let Some(x) = x {
                v.check(
                    x.is_finite() && x >= 0.0,
                    format!("{path}.{key}"),
                    "must be a ratio width/height >= 0",
                );
            }
        }
        if let (Some(lo), Some(hi)) = (self.min_aspect, self.max_aspect) {
            v.check(
                lo <= hi,
                format!("{path}.min_aspect"),
                format!("must not exceed max_aspect ({hi})"),
            );
        }
        if let Some(h) = self.history {
            v.range(format!("{path}.history"), h, 1, MAX_HISTORY);
        }
        if let Some(p) = self.persistence {
            v.range(format!("{path}.persistence.n"), p.n, 1, MAX_PERSISTENCE_N);
            v.check(
                p.k >= 1 && p.k <= p.n,
                format!("{path}.persistence.k"),
                format!("must be in 1 ..= n ({})", p.n),
            );
        }
    }
}

fn validate_classes(path: &str, classes: &BTreeMap<String, ClassRule>, v: &mut Validator) {
    for (name, rule) in classes {
        rule.validate(&format!("{path}.{}", quote(name)), v);
    }
}

fn quote(k: &str) -> String {
    if !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        k.to_string()
    } else {
        format!("\"{k}\"")
    }
}

/// `[rules.tracker]`: IoU / ByteTrack-style association.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TrackerConfig {
    /// Least IoU between a track's predicted box and a confident detection to match them.
    /// Default 0.3.
    pub match_iou: f32,
    /// Least IoU for the second pass that lets weak detections (below `min_score`) keep a
    /// track alive through partial occlusion. Default 0.5.
    pub low_match_iou: f32,
    /// Analysed frames a track survives without a match before its id is retired (keeps
    /// ids through short occlusions). Default 10.
    pub max_missed: u32,
    /// Analysed frames a missed track still counts at its last position for zone counts
    /// (smooths head counts over detector flicker). Default 2.
    pub coast_frames: u32,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            match_iou: 0.3,
            low_match_iou: 0.5,
            max_missed: 10,
            coast_frames: 2,
        }
    }
}

/// `[[rules.profiles]]`: class overrides active during a daily time window.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProfileConfig {
    /// Name, for logs and the UI.
    pub name: String,
    /// Local start time `HH:MM` (inclusive).
    pub from: String,
    /// Local end time `HH:MM` (exclusive); earlier than `from` wraps past midnight.
    pub to: String,
    /// IANA time zone of `from`/`to`, e.g. `Europe/Athens`. Default `UTC`.
    #[serde(default = "default_tz")]
    pub timezone: String,
    /// Cameras the profile applies to; empty = all.
    #[serde(default)]
    pub cameras: Vec<String>,
    /// Class overrides while active (applied after camera, preset and zone overrides).
    #[serde(default)]
    pub classes: BTreeMap<String, ClassRule>,
}

fn default_tz() -> String {
    "UTC".into()
}

/// Checks a personnel rule's `schedule` and `timezone` (errors at `{path}.schedule`,
/// `{path}.timezone`).
fn validate_schedule(v: &mut Validator, path: &str, schedule: &Option<String>, tz: &str) {
    if let Some(s) = schedule {
        if let Err(m) = crate::schedule::Schedule::parse(s) {
            v.error(format!("{path}.schedule"), m);
        }
    }
    v.check(
        tz.trim().parse::<chrono_tz::Tz>().is_ok(),
        format!("{path}.timezone"),
        format!("{tz:?} is not an IANA time zone such as \"Europe/Athens\" or \"UTC\""),
    );
}

/// Parses `HH:MM` into minutes after midnight.
pub fn parse_hhmm(s: &str) -> Option<u32> {
    let t = chrono::NaiveTime::parse_from_str(s.trim(), "%H:%M").ok()?;
    use chrono::Timelike;
    Some(t.hour() * 60 + t.minute())
}

/// `[rules.cameras.ID]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CameraRules {
    /// Class overrides for this camera.
    pub classes: BTreeMap<String, ClassRule>,
    /// Class overrides per PTZ preset of this camera.
    pub presets: BTreeMap<String, PresetRules>,
    /// Exclude masks: detections anchored inside are dropped (a chimney, a road).
    pub masks: Vec<MaskConfig>,
    /// Named zones (include zones, duty posts, restricted areas, checkpoints).
    pub zones: Vec<ZoneConfig>,
}

/// `[rules.cameras.ID.presets.NAME]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PresetRules {
    /// Class overrides while the camera is at this preset.
    pub classes: BTreeMap<String, ClassRule>,
}

/// An exclude mask.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MaskConfig {
    /// Polygon, `[x, y]` points in 0..1 of the image.
    pub polygon: Vec<[f64; 2]>,
    /// PTZ preset the mask belongs to; unset = every view of the camera.
    #[serde(default)]
    pub preset: Option<String>,
    /// Classes masked; empty = all.
    #[serde(default)]
    pub classes: Vec<String>,
}

/// A named zone.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ZoneConfig {
    /// Zone name, unique per camera; personnel rules refer to it.
    pub name: String,
    /// Polygon, `[x, y]` points in 0..1 of the image.
    pub polygon: Vec<[f64; 2]>,
    /// PTZ preset the zone belongs to; unset = every view of the camera.
    #[serde(default)]
    pub preset: Option<String>,
    /// Consecutive analysed frames an object must be inside before it counts as in the
    /// zone (one box jittering over the edge is not an entry). Default 3.
    #[serde(default = "default_inertia")]
    pub inertia: u32,
    /// Classes the zone counts; empty = all.
    #[serde(default)]
    pub objects: Vec<String>,
    /// An include zone: objects of `objects` that are in no required zone of the camera
    /// raise no object event. Default false.
    #[serde(default)]
    pub required: bool,
    /// Raise `person_in_zone` events for people tracked inside. Default false.
    #[serde(default)]
    pub person_events: bool,
    /// Class overrides for detections anchored in this zone.
    #[serde(default)]
    pub classes: BTreeMap<String, ClassRule>,
}

fn default_inertia() -> u32 {
    3
}

/// `[[rules.duty_posts]]`: a zone that must be staffed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DutyPostRule {
    /// Camera that sees the post.
    pub camera: String,
    /// Zone (of that camera) that is the post.
    pub zone: String,
    /// Seconds (capture time) the post may be empty before `post_vacant` starts.
    pub max_vacant_s: f64,
    /// People needed for the post to count as staffed. Default 1.
    #[serde(default = "one")]
    pub min_people: u32,
    /// A `[[rules.roles]]` name: only people of this role staff the post (a post with only
    /// other or unknown roles in it counts as vacant). Unset = anybody.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_role: Option<String>,
    /// Active hours, e.g. `"Mon-Fri 06:00-18:00"` (see `schedule` in configs/README.md):
    /// outside them the rule raises nothing and its open event ends. Unset = always.
    #[serde(default)]
    pub schedule: Option<String>,
    /// IANA time zone of `schedule`, e.g. `"Europe/Athens"`. Default `UTC`.
    #[serde(default = "default_tz")]
    pub timezone: String,
}

fn one() -> u32 {
    1
}

/// `[[rules.occupancy]]`: a head-count limit.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OccupancyRule {
    /// Camera.
    pub camera: String,
    /// Zone of that camera.
    pub zone: String,
    /// Most people allowed at once.
    pub max_people: u32,
    /// Seconds the count must stay above the limit before `over_occupancy` starts.
    /// Default 10.
    #[serde(default = "ten")]
    pub min_duration_s: f64,
    /// Seconds the count must stay within the limit before the event ends. Default 5.
    #[serde(default = "five")]
    pub clear_s: f64,
    /// Active hours, e.g. `"Mon-Fri 06:00-18:00"` (see `schedule` in configs/README.md):
    /// outside them the rule raises nothing and its open event ends. Unset = always.
    #[serde(default)]
    pub schedule: Option<String>,
    /// IANA time zone of `schedule`, e.g. `"Europe/Athens"`. Default `UTC`.
    #[serde(default = "default_tz")]
    pub timezone: String,
}

fn ten() -> f64 {
    10.0
}

fn five() -> f64 {
    5.0
}

/// `[[rules.restricted]]`: nobody may be inside.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RestrictedRule {
    /// Camera.
    pub camera: String,
    /// Zone of that camera (its `inertia` applies).
    pub zone: String,
    /// Seconds the zone must be empty before the event ends. Default 5.
    #[serde(default = "five")]
    pub clear_s: f64,
    /// `[[rules.roles]]` names that may not be inside; empty (the default) = nobody may.
    /// With roles listed, only people of those roles count (others and unknown roles may
    /// be there) and the event kind is `forbidden_role` instead of `restricted`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forbid_roles: Vec<String>,
    /// With `forbid_roles`: a forbidden-role person is fine while a person of an escort
    /// role is close by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escort: Option<Escort>,
    /// Active hours, e.g. `"Mon-Fri 06:00-18:00"` (see `schedule` in configs/README.md):
    /// outside them the rule raises nothing and its open event ends. Unset = always.
    #[serde(default)]
    pub schedule: Option<String>,
    /// IANA time zone of `schedule`, e.g. `"Europe/Athens"`. Default `UTC`.
    #[serde(default = "default_tz")]
    pub timezone: String,
}

/// `escort` of a restricted rule.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Escort {
    /// `[[rules.roles]]` names that may escort.
    pub roles: Vec<String>,
    /// Most distance in frame pixels between the feet (bottom centres of the boxes) of the
    /// escorted person and an escort, who may stand inside or outside the zone. Give this
    /// or `within_m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within_px: Option<f64>,
    /// The same in metres, measured with the two people's own boxes as the scale (a
    /// standing person is [`PERSON_HEIGHT_M`] tall): near the camera a metre is more
    /// pixels than far away, and no camera geometry is needed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within_m: Option<f64>,
}

/// Height of a standing person, metres: the scale of `escort.within_m`.
pub const PERSON_HEIGHT_M: f64 = 1.7;

/// `[[rules.two_person]]`: a zone where nobody may work alone (hot work, confined space).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TwoPersonRule {
    /// Camera.
    pub camera: String,
    /// Zone of that camera (its `inertia` applies).
    pub zone: String,
    /// Seconds exactly one person may be in the zone before `lone_worker` starts.
    /// Default 30.
    #[serde(default = "thirty")]
    pub max_alone_s: f64,
    /// Seconds the zone must be empty or have two or more people before the event ends.
    /// Default 5.
    #[serde(default = "five")]
    pub clear_s: f64,
    /// Active hours, e.g. `"Mon-Fri 06:00-18:00"` (see `schedule` in configs/README.md):
    /// outside them the rule raises nothing and its open event ends. Unset = always.
    #[serde(default)]
    pub schedule: Option<String>,
    /// IANA time zone of `schedule`, e.g. `"Europe/Athens"`. Default `UTC`.
    #[serde(default = "default_tz")]
    pub timezone: String,
}

fn thirty() -> f64 {
    30.0
}

/// `[[rules.patrols]]`: an ordered round of checkpoints.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PatrolRule {
    /// Route name (unique).
    pub name: String,
    /// Checkpoints in the order they must be visited; after the last the round restarts.
    pub checkpoints: Vec<Checkpoint>,
    /// Active hours, e.g. `"Mon-Fri 06:00-18:00"` (see `schedule` in configs/README.md):
    /// outside them the rule raises nothing and its open event ends. Unset = always.
    #[serde(default)]
    pub schedule: Option<String>,
    /// IANA time zone of `schedule`, e.g. `"Europe/Athens"`. Default `UTC`.
    #[serde(default = "default_tz")]
    pub timezone: String,
}

/// One patrol checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// Camera that sees the checkpoint.
    pub camera: String,
    /// Zone of that camera.
    pub zone: String,
    /// Seconds after the previous checkpoint's visit (or the round's start) within which a
    /// person must be seen here; later → `patrol_missed`.
    pub within_s: f64,
}

/// `[rules.health]`: camera-health checks against each camera's own running baseline.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HealthRules {
    /// Seconds a camera may be not running before `camera_offline` starts (0 = at once).
    /// Default 60.
    pub offline_after_s: f64,
    /// Frames the running baseline averages over (exponential). Default 50.
    pub baseline_frames: u32,
    /// Frames of a view (camera and preset) before its baseline is trusted. Default 10.
    pub warmup_frames: u32,
    /// Consecutive abnormal frames of a view before its condition is raised. Default 5.
    pub persist_frames: u32,
    /// Consecutive normal frames of the view that raised a condition before it clears.
    /// Default 10.
    pub clear_frames: u32,
    /// Seconds (the camera's capture time) after a condition cleared before the same kind
    /// can be raised again on that camera. At most one condition per camera and kind is
    /// open at a time. Default 600.
    pub cooldown_s: f64,
    /// Frames skipped by the image checks after a PTZ preset change (expected motion: the
    /// camera settles; each preset has its own reference). Default 3.
    pub settle_frames: u32,
    /// `view_blocked` when brightness falls by more than this fraction of the baseline.
    /// Default 0.7.
    pub blocked_brightness_drop: f32,
    /// `view_blocked` when contrast falls below this fraction of the baseline. Default 0.3.
    pub blocked_contrast_ratio: f32,
    /// `view_defocused` when sharpness falls below this fraction of the baseline.
    /// Default 0.3.
    pub defocus_ratio: f32,
    /// `view_moved` when the thumbnail's correlation with the preset's reference falls
    /// below this (-1..1). Default 0.5.
    pub moved_similarity: f32,
}

impl Default for HealthRules {
    fn default() -> Self {
        HealthRules {
            offline_after_s: 60.0,
            baseline_frames: 50,
            warmup_frames: 10,
            persist_frames: 5,
            clear_frames: 10,
            cooldown_s: 600.0,
            settle_frames: 3,
            blocked_brightness_drop: 0.7,
            blocked_contrast_ratio: 0.3,
            defocus_ratio: 0.3,
            moved_similarity: 0.5,
        }
    }
}

/// `[rules.record]`: record the rules stage's input (JSONL, one message a line) so that a
/// threshold change can be replayed against real traffic, and what every recording keeps.
///
/// Recordings (`detections.jsonl`, the frame results in SQLite, this file) keep only the
/// detections the rules can use: classes named anywhere in `[rules]` (thresholds of any
/// layer, zone `objects`), smoke and fire (they raise events by default), `person_class`,
/// and `classes`; each at or above `min_score`. The rules stage ignores every other
/// detection too, so replaying a recording gives exactly the live events. A frame with no
/// detection left is still recorded (an empty frame is evidence: nobody was there).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RecordConfig {
    /// Record. Default false.
    pub enabled: bool,
    /// File to append to, relative to `engine.data_dir`. Default `recordings/rules.jsonl`.
    pub path: String,
    /// Recording floor: detections scoring below it are neither recorded nor seen by the
    /// rules (keep it below every class's `min_score`). Default 0.2.
    pub min_score: f32,
    /// More classes to keep besides those the rules use (e.g. for exports). Default none.
    pub classes: Vec<String>,
}

/// `[rules.verify]`: temporal verification of a track before it may start an event.
///
/// A smoke plume is behaviour, not one frame: it persists, its base stays where the fire
/// is while its top rises, it drifts slowly with the wind and it does not shrink away.
/// Clouds racing across a view, haze that comes and goes, glare and insects do not. For the
/// classes listed, a track starts an event only once the tube of its last `window` boxes
/// passes every check below (an event already open is kept by the usual hysteresis).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct VerifyConfig {
    /// Classes verified. Default none (a tower site sets `["smoke"]`).
    pub classes: Vec<String>,
    /// Analysed frames the tube spans. Default 8.
    pub window: u32,
    /// Frames of the window the track must have been seen in (weak sightings count).
    /// Default 3: a shorter tube is judged by its pace projected over the window, so the
    /// window need not fill before an event (time to detection +1 analysed frame).
    pub min_frames: u32,
    /// Most the box's bottom edge may move over the window, in mean box heights.
    /// Default 0.5.
    pub max_base_shift: f32,
    /// Most the box's centre may move sideways over the window, in mean box widths.
    /// Default 1.0.
    pub max_drift: f32,
    /// Least ratio of the newest box's area to the oldest's. Default 0.5.
    pub min_growth: f32,
    /// Most ratio of the newest box's area to the oldest's. Default 8.
    pub max_growth: f32,
}

/// Most frames a verification tube spans.
pub const MAX_TUBE: u32 = 16;

impl Default for VerifyConfig {
    fn default() -> Self {
        VerifyConfig {
            classes: Vec::new(),
            window: 8,
            min_frames: 3,
            max_base_shift: 0.5,
            max_drift: 1.0,
            min_growth: 0.5,
            max_growth: 8.0,
        }
    }
}

impl VerifyConfig {
    fn validate(&self, v: &mut Validator) {
        let p = "rules.verify";
        v.range(format!("{p}.window"), self.window, 2, MAX_TUBE);
        v.range(
            format!("{p}.min_frames"),
            self.min_frames,
            1,
            self.window.max(1),
        );
        v.range(
            format!("{p}.max_base_shift"),
            self.max_base_shift,
            0.0,
            100.0,
        );
        v.range(format!("{p}.max_drift"), self.max_drift, 0.0, 100.0);
        v.range(format!("{p}.min_growth"), self.min_growth, 0.0, 1.0);
        v.range(format!("{p}.max_growth"), self.max_growth, 1.0, 1000.0);
        for (i, c) in self.classes.iter().enumerate() {
            v.check(
                !c.is_empty(),
                format!("{p}.classes[{i}]"),
                "must name a class",
            );
        }
    }
}

impl Default for RecordConfig {
    fn default() -> Self {
        RecordConfig {
            enabled: false,
            path: "recordings/rules.jsonl".into(),
            min_score: 0.2,
            classes: Vec::new(),
        }
    }
}

impl RulesConfig {
    /// The classes the rules use and recordings keep (see [`RecordConfig`]), sorted.
    pub fn used_classes(&self) -> BTreeSet<&str> {
        let mut used: BTreeSet<&str> = ["smoke", "fire", self.person_class.as_str()].into();
        used.extend(self.record.classes.iter().map(String::as_str));
        used.extend(self.classes.keys().map(String::as_str));
        for p in &self.profiles {
            used.extend(p.classes.keys().map(String::as_str));
        }
        for c in self.cameras.values() {
            used.extend(c.classes.keys().map(String::as_str));
            for p in c.presets.values() {
                used.extend(p.classes.keys().map(String::as_str));
            }
            for z in &c.zones {
                used.extend(z.classes.keys().map(String::as_str));
                used.extend(z.objects.iter().map(String::as_str));
            }
        }
        used
    }
}

impl RulesConfig {
    /// Checks values and cross-references (cameras and presets exist).
    pub fn validate(&self, v: &mut Validator, ctx: &ValidationContext<'_>) {
        self.validate_values(v);
        let cam = |v: &mut Validator, path: String, id: &str| {
            v.check(
                ctx.has_camera(id),
                path,
                format!("unknown camera {id:?}: it must be configured in [[cameras]]"),
            );
        };
        let preset = |v: &mut Validator, path: String, camera: &str, p: &str| {
            if !ctx.has_camera(camera) {
                return;
            }
            let presets = ctx.presets(camera);
            v.check(
                presets.contains(&p),
                path,
                if presets.is_empty() {
                    format!("unknown preset {p:?}: camera {camera:?} has no PTZ presets")
                } else {
                    format!("unknown preset {p:?}: camera {camera:?} has {presets:?}")
                },
            );
        };
        for (id, c) in &self.cameras {
            let path = format!("rules.cameras.{}", quote(id));
            cam(v, path.clone(), id);
            for name in c.presets.keys() {
                preset(v, format!("{path}.presets.{}", quote(name)), id, name);
            }
            for (i, m) in c.masks.iter().enumerate() {
                if let Some(p) = &m.preset {
                    preset(v, format!("{path}.masks[{i}].preset"), id, p);
                }
            }
            for (i, z) in c.zones.iter().enumerate() {
                if let Some(p) = &z.preset {
                    preset(v, format!("{path}.zones[{i}].preset"), id, p);
                }
            }
        }
        for (i, p) in self.profiles.iter().enumerate() {
            for (j, c) in p.cameras.iter().enumerate() {
                cam(v, format!("rules.profiles[{i}].cameras[{j}]"), c);
            }
        }
    }

    /// Checks values and internal references (zones named by rules exist), without the
    /// camera list: what a hot reload can check on its own.
    pub fn validate_values(&self, v: &mut Validator) {
        v.range("rules.quiet_s", self.quiet_s, 0.0, 86_400.0);
        v.range(
            "rules.update_interval_s",
            self.update_interval_s,
            0.0,
            86_400.0,
        );
        v.check(
            !self.person_class.is_empty(),
            "rules.person_class",
            "must name a class",
        );
        validate_classes("rules.classes", &self.classes, v);
        self.verify.validate(v);
        crate::roles::validate_roles(&self.roles, v);
        self.role_match.validate(v);
        let roles: Vec<&str> = self.roles.iter().map(|r| r.name.as_str()).collect();
        let known_role = |v: &mut Validator, path: String, role: &str| {
            v.check(
                roles.contains(&role),
                path,
                if roles.is_empty() {
                    format!("unknown role {role:?}: no [[rules.roles]] are configured")
                } else {
                    format!("unknown role {role:?}: [[rules.roles]] has {roles:?}")
                },
            );
        };
        let t = &self.tracker;
        v.range("rules.tracker.match_iou", t.match_iou, 0.01, 1.0);
        v.range("rules.tracker.low_match_iou", t.low_match_iou, 0.01, 1.0);
        v.range("rules.tracker.max_missed", t.max_missed, 0, 10_000);
        v.range(
            "rules.tracker.coast_frames",
            t.coast_frames,
            0,
            t.max_missed,
        );
        v.check(
            self.profiles.len() <= 64,
            "rules.profiles",
            "at most 64 profiles",
        );
        for (i, p) in self.profiles.iter().enumerate() {
            let path = format!("rules.profiles[{i}]");
            v.check(
                !p.name.is_empty(),
                format!("{path}.name"),
                "must not be empty",
            );
            for (key, val) in [("from", &p.from), ("to", &p.to)] {
                v.check(
                    parse_hhmm(val).is_some(),
                    format!("{path}.{key}"),
                    format!("{val:?} is not a local time: write HH:MM, e.g. \"20:00\""),
                );
            }
            v.check(
                !p.timezone.trim().is_empty(),
                format!("{path}.timezone"),
                "must be an IANA time zone such as \"Europe/Athens\" or \"UTC\"",
            );
            validate_classes(&format!("{path}.classes"), &p.classes, v);
        }
        for (id, c) in &self.cameras {
            let path = format!("rules.cameras.{}", quote(id));
            validate_classes(&format!("{path}.classes"), &c.classes, v);
            for (name, p) in &c.presets {
                validate_classes(
                    &format!("{path}.presets.{}.classes", quote(name)),
                    &p.classes,
                    v,
                );
            }
            for (i, m) in c.masks.iter().enumerate() {
                v.polygon(&format!("{path}.masks[{i}].polygon"), &m.polygon);
            }
            let mut names = BTreeSet::new();
            for (i, z) in c.zones.iter().enumerate() {
                let zp = format!("{path}.zones[{i}]");
                v.check(
                    !z.name.is_empty(),
                    format!("{zp}.name"),
                    "must not be empty",
                );
                if !names.insert(z.name.as_str()) {
                    v.error(
                        format!("{zp}.name"),
                        format!("zone {:?} is defined twice for this camera", z.name),
                    );
                }
                v.polygon(&format!("{zp}.polygon"), &z.polygon);
                v.range(format!("{zp}.inertia"), z.inertia, 1, 1000);
                validate_classes(&format!("{zp}.classes"), &z.classes, v);
            }
        }
        let zone = |v: &mut Validator, path: &str, camera: &str, zone: &str| match self
            .cameras
            .get(camera)
        {
            None => v.error(
                format!("{path}.camera"),
                format!("camera {camera:?} has no [rules.cameras.{camera}] zones"),
            ),
            Some(c) => {
                let names: Vec<&str> = c.zones.iter().map(|z| z.name.as_str()).collect();
                v.check(
                    names.contains(&zone),
                    format!("{path}.zone"),
                    format!("unknown zone {zone:?}: camera {camera:?} has {names:?}"),
                );
            }
        };
        for (i, r) in self.duty_posts.iter().enumerate() {
            let p = format!("rules.duty_posts[{i}]");
            zone(v, &p, &r.camera, &r.zone);
            v.range(
                format!("{p}.max_vacant_s"),
                r.max_vacant_s,
                0.0,
                7.0 * 86_400.0,
            );
            v.range(format!("{p}.min_people"), r.min_people, 1, 10_000);
            validate_schedule(v, &p, &r.schedule, &r.timezone);
            if let Some(role) = &r.require_role {
                known_role(v, format!("{p}.require_role"), role);
            }
        }
        for (i, r) in self.occupancy.iter().enumerate() {
            let p = format!("rules.occupancy[{i}]");
            zone(v, &p, &r.camera, &r.zone);
            v.range(format!("{p}.max_people"), r.max_people, 0, 10_000);
            v.range(
                format!("{p}.min_duration_s"),
                r.min_duration_s,
                0.0,
                86_400.0,
            );
            v.range(format!("{p}.clear_s"), r.clear_s, 0.0, 86_400.0);
            validate_schedule(v, &p, &r.schedule, &r.timezone);
        }
        for (i, r) in self.restricted.iter().enumerate() {
            let p = format!("rules.restricted[{i}]");
            zone(v, &p, &r.camera, &r.zone);
            v.range(format!("{p}.clear_s"), r.clear_s, 0.0, 86_400.0);
            validate_schedule(v, &p, &r.schedule, &r.timezone);
            for (j, role) in r.forbid_roles.iter().enumerate() {
                known_role(v, format!("{p}.forbid_roles[{j}]"), role);
            }
            if let Some(e) = &r.escort {
                v.check(
                    !r.forbid_roles.is_empty(),
                    format!("{p}.escort"),
                    "an escort only applies with `forbid_roles` (without them nobody may enter)",
                );
                v.check(
                    !e.roles.is_empty(),
                    format!("{p}.escort.roles"),
                    "name at least one escort role",
                );
                for (j, role) in e.roles.iter().enumerate() {
                    known_role(v, format!("{p}.escort.roles[{j}]"), role);
                }
                match (e.within_px, e.within_m) {
                    (Some(px), None) => {
                        v.range(format!("{p}.escort.within_px"), px, 0.0, 100_000.0)
                    }
                    (None, Some(m)) => v.range(format!("{p}.escort.within_m"), m, 0.0, 1_000.0),
                    _ => v.error(
                        format!("{p}.escort"),
                        "give the distance once: `within_px` (frame pixels) or `within_m` (metres)",
                    ),
                }
            }
        }
        for (i, r) in self.two_person.iter().enumerate() {
            let p = format!("rules.two_person[{i}]");
            zone(v, &p, &r.camera, &r.zone);
            v.range(format!("{p}.max_alone_s"), r.max_alone_s, 0.0, 86_400.0);
            v.range(format!("{p}.clear_s"), r.clear_s, 0.0, 86_400.0);
            validate_schedule(v, &p, &r.schedule, &r.timezone);
        }
        let mut patrol_names = BTreeSet::new();
        for (i, r) in self.patrols.iter().enumerate() {
            let p = format!("rules.patrols[{i}]");
            v.check(!r.name.is_empty(), format!("{p}.name"), "must not be empty");
            validate_schedule(v, &p, &r.schedule, &r.timezone);
            if !patrol_names.insert(r.name.as_str()) {
                v.error(
                    format!("{p}.name"),
                    format!("patrol {:?} is defined twice", r.name),
                );
            }
            v.check(
                !r.checkpoints.is_empty(),
                format!("{p}.checkpoints"),
                "a patrol needs at least one checkpoint",
            );
            for (j, c) in r.checkpoints.iter().enumerate() {
                let cp = format!("{p}.checkpoints[{j}]");
                zone(v, &cp, &c.camera, &c.zone);
                v.range(format!("{cp}.within_s"), c.within_s, 1.0, 7.0 * 86_400.0);
            }
        }
        let h = &self.health;
        v.range(
            "rules.health.offline_after_s",
            h.offline_after_s,
            0.0,
            86_400.0,
        );
        v.range(
            "rules.health.baseline_frames",
            h.baseline_frames,
            1,
            100_000,
        );
        v.range("rules.health.warmup_frames", h.warmup_frames, 1, 100_000);
        v.range("rules.health.persist_frames", h.persist_frames, 1, 10_000);
        v.range("rules.health.clear_frames", h.clear_frames, 1, 10_000);
        v.range("rules.health.cooldown_s", h.cooldown_s, 0.0, 7.0 * 86_400.0);
        v.range("rules.health.settle_frames", h.settle_frames, 0, 1_000);
        v.range(
            "rules.health.blocked_brightness_drop",
            h.blocked_brightness_drop,
            0.0,
            1.0,
        );
        v.range(
            "rules.health.blocked_contrast_ratio",
            h.blocked_contrast_ratio,
            0.0,
            1.0,
        );
        v.range("rules.health.defocus_ratio", h.defocus_ratio, 0.0, 1.0);
        v.range(
            "rules.health.moved_similarity",
            h.moved_similarity,
            -1.0,
            1.0,
        );
        v.range("rules.record.min_score", self.record.min_score, 0.0, 1.0);
        v.check(
            !self.record.enabled || !self.record.path.trim().is_empty(),
            "rules.record.path",
            "must name a file when recording is enabled",
        );
    }
}
