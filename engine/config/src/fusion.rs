//! `[fusion]`: how camera bearings, triangulation and satellite hotspots become incidents,
//! and `[[fusion.hotspots]]`, where hotspots come from.

use serde::{Deserialize, Serialize};

use crate::env::{EnvString, Secret};
use crate::validate::{ValidationContext, Validator};

/// `[fusion]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FusionConfig {
    /// Calibration error of a camera's heading in degrees, added to the angular half-width
    /// of every detection's bearing cone (on top of the box's own half-width). Default 0.5.
    pub bearing_error_deg: f64,
    /// Cones from different cameras group into one fire when they intersect and their
    /// events lie within this many seconds of each other. Default 600.
    pub group_window_s: f64,
    /// Two bearings crossing at less than this angle (degrees) are too close to parallel to
    /// give a location. Default 10.
    pub min_intersection_angle_deg: f64,
    /// Two cameras closer together than this (metres) give no location. Default 200.
    pub min_baseline_m: f64,
    /// A hotspot acquired up to this many seconds before an incident was first seen joins
    /// it. Default 3600.
    pub hotspot_before_s: f64,
    /// A hotspot acquired up to this many seconds after an incident was last seen joins it.
    /// Default 10800 (3 h).
    pub hotspot_after_s: f64,
    /// How far (seconds) behind the event-time watermark a hotspot may still arrive and
    /// open a satellite-only incident; closed incidents are kept this long after closing
    /// so late hotspots can annotate them. Satellite products arrive hours late.
    /// Default 21600 (6 h).
    pub allowed_lateness_s: f64,
    /// Minimum MODIS confidence (percent) for a hotspot to open a satellite-only incident
    /// (VIIRS needs `nominal` or `high`). Default 50.
    pub modis_min_confidence: u8,
    /// The area where hotspots alone open incidents, a polygon of `[lon, lat]` points.
    /// Default: the union of every camera's field-of-view cone to its range.
    pub watched_area: Option<Vec<[f64; 2]>>,
    /// Known static heat sources (industry, flares), polygons of `[lon, lat]` points:
    /// hotspots inside never corroborate nor open an incident. Default none.
    pub static_sources: Vec<Vec<[f64; 2]>>,
    /// Hotspots within this many metres of an incident's location or of one of its
    /// hotspots belong to it (hotspot clustering). Default 2000.
    pub incident_merge_m: f64,
    /// Fusion closes a fire incident when the watermark passes its last evidence by this
    /// many seconds. Default 21600 (6 h).
    pub close_after_s: f64,
    /// An open incident whose only change is more of the same evidence (later `last_seen`,
    /// more detections) gets a new revision — and so a notification — at most this often,
    /// in capture time. A material change (confidence, severity, state, cameras, hotspots,
    /// how it is located, the location moving beyond its uncertainty) always makes a
    /// revision at once. 0 = a revision for every change. Default 600.
    pub update_interval_s: f64,
    /// Incident identity over time: a new track of the same camera and incident kind within
    /// this many seconds of the incident's last evidence joins that incident (a fire's
    /// tracks also need their bearing cones to overlap), and a personnel or camera-health
    /// situation that ended stays open this long, so one that recurs is the same incident.
    /// Default: `alerts.cooldown_s` (600).
    pub cooldown_s: Option<f64>,
    /// Where satellite hotspots come from (`[[fusion.hotspots]]`). Default none.
    pub hotspots: Vec<HotspotSourceConfig>,
}

impl Default for FusionConfig {
    fn default() -> Self {
        FusionConfig {
            bearing_error_deg: 0.5,
            group_window_s: 600.0,
            min_intersection_angle_deg: 10.0,
            min_baseline_m: 200.0,
            hotspot_before_s: 3600.0,
            hotspot_after_s: 10_800.0,
            allowed_lateness_s: 21_600.0,
            modis_min_confidence: 50,
            watched_area: None,
            static_sources: Vec::new(),
            incident_merge_m: 2000.0,
            close_after_s: 21_600.0,
            update_interval_s: 600.0,
            cooldown_s: None,
            hotspots: Vec::new(),
        }
    }
}

/// One hotspot source. Written as `{ kind = "...", ... }` in `[[fusion.hotspots]]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum HotspotSourceConfig {
    /// A FIRMS CSV file, read once at start.
    File {
        /// Path (relative paths are relative to the config file's directory).
        path: EnvString,
    },
    /// A directory watched for new or changed `*.csv` FIRMS files.
    Dir {
        /// Directory path (relative paths are relative to the config file's directory).
        path: EnvString,
        /// Seconds between scans. Default 30.
        #[serde(default = "default_scan_s")]
        scan_s: f64,
    },
    /// The FIRMS area API, polled: `{base_url}/api/area/csv/{map_key}/{source}/{w,s,e,n}/{days}`.
    FirmsApi {
        /// Base URL. Default `https://firms.modaps.eosdis.nasa.gov`.
        #[serde(default = "default_firms_url")]
        base_url: EnvString,
        /// FIRMS MAP_KEY, normally `${FIRMS_MAP_KEY}`.
        map_key: Secret,
        /// FIRMS source name, e.g. `VIIRS_SNPP_NRT`, `VIIRS_NOAA20_NRT`, `MODIS_NRT`.
        source: String,
        /// Area `[west, south, east, north]` in degrees.
        bbox: [f64; 4],
        /// Days of data per request, 1..=10. Default 1.
        #[serde(default = "default_days")]
        days: u32,
        /// Seconds between polls. Default 900.
        #[serde(default = "default_interval_s")]
        interval_s: f64,
        /// Seconds before a request is abandoned. Default 60.
        #[serde(default = "default_timeout_s")]
        timeout_s: f64,
    },
}

fn default_scan_s() -> f64 {
    30.0
}
fn default_firms_url() -> EnvString {
    EnvString::literal("https://firms.modaps.eosdis.nasa.gov")
}
fn default_days() -> u32 {
    1
}
fn default_interval_s() -> f64 {
    900.0
}
fn default_timeout_s() -> f64 {
    60.0
}

impl HotspotSourceConfig {
    /// The kind as written in config.
    pub fn kind(&self) -> &'static str {
        match self {
            HotspotSourceConfig::File { .. } => "file",
            HotspotSourceConfig::Dir { .. } => "dir",
            HotspotSourceConfig::FirmsApi { .. } => "firms_api",
        }
    }

    fn validate(&self, path: &str, v: &mut Validator) {
        match self {
            HotspotSourceConfig::File { path: p } => v.check(
                !p.value().is_empty(),
                format!("{path}.path"),
                "path must not be empty",
            ),
            HotspotSourceConfig::Dir { path: p, scan_s } => {
                v.check(
                    !p.value().is_empty(),
                    format!("{path}.path"),
                    "path must not be empty",
                );
                v.range(format!("{path}.scan_s"), *scan_s, 0.1, 86_400.0);
            }
            HotspotSourceConfig::FirmsApi {
                base_url,
                map_key,
                source,
                bbox,
                days,
                interval_s,
                timeout_s,
            } => {
                let u = base_url.value();
                let ok = (u.starts_with("http://") && u.len() > 7)
                    || (u.starts_with("https://") && u.len() > 8);
                v.check(
                    ok,
                    format!("{path}.base_url"),
                    format!(
                        "{:?} is not an http:// or https:// URL",
                        base_url.redacted()
                    ),
                );
                v.check(
                    !map_key.expose().is_empty()
                        && map_key.expose().chars().all(|c| c.is_ascii_alphanumeric()),
                    format!("{path}.map_key"),
                    "the MAP_KEY must be non-empty letters and digits (get one at firms.modaps.eosdis.nasa.gov/api/map_key)",
                );
                v.check(
                    !source.is_empty()
                        && source
                            .chars()
                            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'),
                    format!("{path}.source"),
                    format!(
                        "{source:?} is not a FIRMS source name such as VIIRS_SNPP_NRT or MODIS_NRT"
                    ),
                );
                let [w, s, e, n] = *bbox;
                v.range(format!("{path}.bbox[0]"), w, -180.0, 180.0);
                v.range(format!("{path}.bbox[1]"), s, -90.0, 90.0);
                v.range(format!("{path}.bbox[2]"), e, -180.0, 180.0);
                v.range(format!("{path}.bbox[3]"), n, -90.0, 90.0);
                v.check(
                    w < e && s < n,
                    format!("{path}.bbox"),
                    "bbox is [west, south, east, north] with west < east and south < north",
                );
                v.range(format!("{path}.days"), *days, 1, 10);
                v.range(format!("{path}.interval_s"), *interval_s, 1.0, 86_400.0);
                v.range(format!("{path}.timeout_s"), *timeout_s, 1.0, 600.0);
            }
        }
    }
}

/// Checks a polygon of `[lon, lat]` points.
fn geo_polygon(v: &mut Validator, path: &str, points: &[[f64; 2]]) {
    if points.len() < 3 {
        v.error(
            path,
            format!(
                "a polygon needs at least 3 points, got {}; points are [lon, lat] in degrees",
                points.len()
            ),
        );
    }
    for (i, p) in points.iter().enumerate() {
        if !(-180.0..=180.0).contains(&p[0]) || !(-90.0..=90.0).contains(&p[1]) {
            v.error(
                format!("{path}[{i}]"),
                format!(
                    "point [{}, {}] is not a [lon, lat] position: lon in -180..180, lat in -90..90",
                    p[0], p[1]
                ),
            );
        }
    }
}

impl FusionConfig {
    /// Checks values and cross-references.
    pub fn validate(&self, v: &mut Validator, _ctx: &ValidationContext<'_>) {
        v.range(
            "fusion.bearing_error_deg",
            self.bearing_error_deg,
            0.0,
            45.0,
        );
        v.range("fusion.group_window_s", self.group_window_s, 0.0, 86_400.0);
        v.range(
            "fusion.min_intersection_angle_deg",
            self.min_intersection_angle_deg,
            0.0,
            90.0,
        );
        v.range("fusion.min_baseline_m", self.min_baseline_m, 0.0, 100_000.0);
        v.range(
            "fusion.hotspot_before_s",
            self.hotspot_before_s,
            0.0,
            604_800.0,
        );
        v.range(
            "fusion.hotspot_after_s",
            self.hotspot_after_s,
            0.0,
            604_800.0,
        );
        v.range(
            "fusion.allowed_lateness_s",
            self.allowed_lateness_s,
            0.0,
            604_800.0,
        );
        v.range(
            "fusion.modis_min_confidence",
            self.modis_min_confidence,
            0,
            100,
        );
        v.range(
            "fusion.incident_merge_m",
            self.incident_merge_m,
            1.0,
            100_000.0,
        );
        v.range("fusion.close_after_s", self.close_after_s, 1.0, 2_592_000.0);
        v.range(
            "fusion.update_interval_s",
            self.update_interval_s,
            0.0,
            86_400.0,
        );
        if let Some(c) = self.cooldown_s {
            v.range("fusion.cooldown_s", c, 0.0, 2_592_000.0);
        }
        if let Some(area) = &self.watched_area {
            geo_polygon(v, "fusion.watched_area", area);
        }
        for (i, p) in self.static_sources.iter().enumerate() {
            geo_polygon(v, &format!("fusion.static_sources[{i}]"), p);
        }
        for (i, h) in self.hotspots.iter().enumerate() {
            h.validate(&format!("fusion.hotspots[{i}]"), v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(src: &str) -> Vec<(String, String)> {
        let value: toml::Value = toml::Value::Table(src.parse::<toml::Table>().unwrap());
        let cfg: FusionConfig = serde_path_to_error::deserialize(value).unwrap();
        let mut v = Validator::new();
        let ctx = ValidationContext::default();
        cfg.validate(&mut v, &ctx);
        v.problems().to_vec()
    }

    #[test]
    fn defaults_are_valid() {
        assert!(errors("").is_empty());
    }

    #[test]
    fn reports_key_paths() {
        let e = errors(
            r#"
            min_intersection_angle_deg = 120
            watched_area = [[27.0, 36.0], [200.0, 36.0]]
            [[hotspots]]
            kind = "firms_api"
            base_url = "ftp://x"
            map_key = "abc123"
            source = "viirs"
            bbox = [28.0, 35.0, 27.0, 36.0]
            "#,
        );
        let keys: Vec<&str> = e.iter().map(|(k, _)| k.as_str()).collect();
        for want in [
            "fusion.min_intersection_angle_deg",
            "fusion.watched_area",
            "fusion.watched_area[1]",
            "fusion.hotspots[0].base_url",
            "fusion.hotspots[0].source",
            "fusion.hotspots[0].bbox",
        ] {
            assert!(keys.contains(&want), "{want} missing in {keys:?}");
        }
    }

    #[test]
    fn map_key_is_redacted() {
        let value: toml::Value = toml::Value::Table(
            r#"
            [[hotspots]]
            kind = "firms_api"
            map_key = "abcdef0123"
            source = "VIIRS_SNPP_NRT"
            bbox = [27.0, 35.8, 28.3, 36.5]
            "#
            .parse::<toml::Table>()
            .unwrap(),
        );
        let cfg: FusionConfig = serde_path_to_error::deserialize(value).unwrap();
        let dump = toml::to_string(&cfg).unwrap();
        assert!(!dump.contains("abcdef0123"), "{dump}");
        assert!(format!("{cfg:?}").contains("Secret(***)"));
    }
}
