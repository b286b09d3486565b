//! A [`RulesConfig`] compiled for the hot path: polygons built, time zones parsed, zones
//! indexed, threshold layers resolvable without allocation.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Timelike;
use lookout_config::rules::{parse_hhmm, ClassParams, ClassRule, RulesConfig};
use lookout_config::Validator;

use crate::geom::Polygon;
use crate::RulesError;

/// One exclude mask.
#[derive(Debug, Clone)]
pub(crate) struct Mask {
    /// Shape.
    pub poly: Polygon,
    /// Preset it belongs to (`None` = every view).
    pub preset: Option<String>,
    /// Classes masked (empty = all).
    pub classes: Vec<String>,
}

/// One named zone.
#[derive(Debug, Clone)]
pub(crate) struct Zone {
    /// Name, shared into events.
    pub name: Arc<str>,
    /// Shape.
    pub poly: Polygon,
    /// Preset it belongs to (`None` = every view).
    pub preset: Option<String>,
    /// Frames inside before an object counts.
    pub inertia: u32,
    /// Classes counted (empty = all).
    pub objects: Vec<String>,
    /// Include zone.
    pub required: bool,
    /// Raise person_in_zone.
    pub person_events: bool,
    /// Has class overrides.
    pub has_overrides: bool,
}

impl Zone {
    /// True when the zone exists in the view at `preset`.
    pub fn visible(&self, preset: Option<&str>) -> bool {
        match &self.preset {
            None => true,
            Some(p) => preset == Some(p.as_str()),
        }
    }

    /// True when the zone counts objects of `class`.
    pub fn counts(&self, class: &str) -> bool {
        self.objects.is_empty() || self.objects.iter().any(|o| o == class)
    }
}

impl Mask {
    /// True when the mask applies to `class` in the view at `preset`.
    pub fn applies(&self, class: &str, preset: Option<&str>) -> bool {
        let view = match &self.preset {
            None => true,
            Some(p) => preset == Some(p.as_str()),
        };
        view && (self.classes.is_empty() || self.classes.iter().any(|c| c == class))
    }
}

/// Masks and zones of one camera.
#[derive(Debug, Clone, Default)]
pub(crate) struct CamRules {
    /// Exclude masks.
    pub masks: Vec<Mask>,
    /// Named zones, in config order (indices are stable for one compiled config).
    pub zones: Vec<Zone>,
}

impl CamRules {
    /// Index of a zone by name.
    pub fn zone_index(&self, name: &str) -> Option<usize> {
        self.zones.iter().position(|z| &*z.name == name)
    }
}

/// A daily window in a time zone.
#[derive(Debug, Clone)]
pub(crate) struct Profile {
    /// Minutes after local midnight, inclusive.
    pub from: u32,
    /// Minutes after local midnight, exclusive.
    pub to: u32,
    /// Time zone.
    pub tz: chrono_tz::Tz,
    /// Cameras (empty = all).
    pub cameras: Vec<String>,
}

impl Profile {
    /// True when active for `camera` at `t`.
    pub fn active(&self, camera: &str, t: lookout_core::UtcTime) -> bool {
        if !self.cameras.is_empty() && !self.cameras.iter().any(|c| c == camera) {
            return false;
        }
        let local = t.with_timezone(&self.tz);
        let m = local.hour() * 60 + local.minute();
        if self.from <= self.to {
            m >= self.from && m < self.to
        } else {
            m >= self.from || m < self.to
        }
    }
}

/// The compiled configuration.
#[derive(Debug, Clone)]
pub(crate) struct Compiled {
    /// The source config (class layers are read from it).
    pub cfg: RulesConfig,
    /// Masks and zones per camera id.
    pub cams: HashMap<String, CamRules>,
    /// Profiles in file order.
    pub profiles: Vec<Profile>,
    /// `quiet_s` in milliseconds.
    pub quiet_ms: i64,
    /// `update_interval_s` in milliseconds.
    pub update_ms: i64,
    /// Classes the rules use ([`RulesConfig::used_classes`]).
    pub used: Vec<Arc<str>>,
    /// `record.min_score`: the floor below which detections are ignored and not recorded.
    pub floor: f32,
}

/// Seconds → whole milliseconds.
pub(crate) fn ms(s: f64) -> i64 {
    (s * 1000.0).round() as i64
}

impl Compiled {
    /// Compiles without refusing: problems are logged, a profile with an unknown time zone
    /// is disabled, out-of-range values act as written (clamped where they index).
    pub fn lenient(cfg: &RulesConfig) -> Compiled {
        let (c, problems) = Compiled::build(cfg);
        for (path, msg) in &problems {
            tracing::error!(key = %path, "Invalid rules configuration (running anyway): {msg}.");
        }
        c
    }

    /// Validates (values only: the camera list is checked by the config loader) and
    /// compiles, or returns every problem by key path.
    pub fn strict(cfg: &RulesConfig) -> Result<Compiled, RulesError> {
        let (c, problems) = Compiled::build(cfg);
        if problems.is_empty() {
            Ok(c)
        } else {
            Err(RulesError::Invalid(problems))
        }
    }

    /// Compiles, collecting validation problems.
    fn build(cfg: &RulesConfig) -> (Compiled, Vec<(String, String)>) {
        let mut v = Validator::new();
        cfg.validate_values(&mut v);
        let mut problems: Vec<(String, String)> = v.problems().to_vec();
        let mut profiles = Vec::with_capacity(cfg.profiles.len());
        for (i, p) in cfg.profiles.iter().enumerate() {
            let tz = match p.timezone.trim().parse::<chrono_tz::Tz>() {
                Ok(tz) => Some(tz),
                Err(_) => {
                    problems.push((
                        format!("rules.profiles[{i}].timezone"),
                        format!(
                            "unknown time zone {:?}: use an IANA name such as \"Europe/Athens\" or \"UTC\"",
                            p.timezone
                        ),
                    ));
                    None
                }
            };
            if let (Some(tz), Some(from), Some(to)) = (tz, parse_hhmm(&p.from), parse_hhmm(&p.to)) {
                profiles.push(Profile {
                    from,
                    to,
                    tz,
                    cameras: p.cameras.clone(),
                });
            } else {
                // Keeps indices aligned with cfg.profiles; never active.
                profiles.push(Profile {
                    from: 0,
                    to: 0,
                    tz: chrono_tz::UTC,
                    cameras: vec![String::new()],
                });
            }
        }
        let mut cams = HashMap::new();
        for (id, c) in &cfg.cameras {
            let masks = c
                .masks
                .iter()
                .map(|m| Mask {
                    poly: Polygon::new(&m.polygon),
                    preset: m.preset.clone(),
                    classes: m.classes.clone(),
                })
                .collect();
            let zones = c
                .zones
                .iter()
                .map(|z| Zone {
                    name: Arc::from(z.name.as_str()),
                    poly: Polygon::new(&z.polygon),
                    preset: z.preset.clone(),
                    inertia: z.inertia.max(1),
                    objects: z.objects.clone(),
                    required: z.required,
                    person_events: z.person_events,
                    has_overrides: !z.classes.is_empty(),
                })
                .collect();
            cams.insert(id.clone(), CamRules { masks, zones });
        }
        let c = Compiled {
            cfg: cfg.clone(),
            cams,
            profiles,
            quiet_ms: ms(cfg.quiet_s),
            update_ms: ms(cfg.update_interval_s),
            used: cfg.used_classes().into_iter().map(Arc::from).collect(),
            floor: cfg.record.min_score,
        };
        (c, problems)
    }

    /// True when the rules use (and recordings keep) this detection.
    pub fn keeps(&self, d: &lookout_core::Detection) -> bool {
        d.score >= self.floor && self.used.iter().any(|c| **c == *d.class)
    }

    /// Bit i set when profile i is active for `camera` at `t`.
    pub fn active_profiles(&self, camera: &str, t: lookout_core::UtcTime) -> u64 {
        let mut mask = 0u64;
        for (i, p) in self.profiles.iter().enumerate().take(64) {
            if p.active(camera, t) {
                mask |= 1 << i;
            }
        }
        mask
    }

    /// The effective thresholds of `class` for a detection on `camera` at `preset`,
    /// anchored in zone `zone` (an index into the camera's zones), with `profiles` active.
    pub fn params(
        &self,
        class: &str,
        camera: &str,
        preset: Option<&str>,
        zone: Option<usize>,
        profiles: u64,
    ) -> ClassParams {
        let mut p = ClassParams::builtin(class);
        let layer = |p: &mut ClassParams, r: Option<&ClassRule>| {
            if let Some(r) = r {
                p.apply(r);
            }
        };
        layer(&mut p, self.cfg.classes.get(class));
        if let Some(cam) = self.cfg.cameras.get(camera) {
            layer(&mut p, cam.classes.get(class));
            if let Some(pr) = preset.and_then(|pr| cam.presets.get(pr)) {
                layer(&mut p, pr.classes.get(class));
            }
            if let Some(z) = zone.and_then(|z| cam.zones.get(z)) {
                layer(&mut p, z.classes.get(class));
            }
        }
        if profiles != 0 {
            for (i, prof) in self.cfg.profiles.iter().enumerate().take(64) {
                if profiles & (1 << i) != 0 {
                    layer(&mut p, prof.classes.get(class));
                }
            }
        }
        p
    }
}
