//! `[ingest]` defaults and `[[cameras]]`: where video comes from, how often it is analysed,
//! where each camera stands and looks.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::env::EnvString;
use crate::validate::Validator;

/// `[ingest]`: defaults for every camera, and stream-health timing.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Longest side of analysed frames in pixels (aspect kept). Default 1280.
    pub analysis_max_side: u32,
    /// Default analysis rate cap in frames per second. Default 2.
    pub fps: f64,
    /// Recent frames kept per camera for snapshots and the live view. Default 8.
    pub ring_frames: usize,
    /// A stream that delivers no frame for this many seconds is restarted. Default 10.
    pub stall_timeout_s: f64,
    /// First reconnect delay in seconds (doubles each attempt, with jitter). Default 0.5.
    pub backoff_initial_s: f64,
    /// Reconnect delay cap in seconds. Default 30.
    pub backoff_max_s: f64,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            analysis_max_side: 1280,
            fps: 2.0,
            ring_frames: 8,
            stall_timeout_s: 10.0,
            backoff_initial_s: 0.5,
            backoff_max_s: 30.0,
        }
    }
}

impl IngestConfig {
    /// Checks value ranges.
    pub fn validate(&self, v: &mut Validator) {
        v.range("ingest.analysis_max_side", self.analysis_max_side, 64, 7680);
        v.range("ingest.fps", self.fps, 0.001, 120.0);
        v.range("ingest.ring_frames", self.ring_frames, 1, 256);
        v.range("ingest.stall_timeout_s", self.stall_timeout_s, 0.5, 3600.0);
        v.range(
            "ingest.backoff_initial_s",
            self.backoff_initial_s,
            0.01,
            600.0,
        );
        v.range("ingest.backoff_max_s", self.backoff_max_s, 0.01, 3600.0);
        v.check(
            self.backoff_max_s >= self.backoff_initial_s,
            "ingest.backoff_max_s",
            "must be at least ingest.backoff_initial_s",
        );
    }
}

/// RTSP lower transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RtspTransport {
    /// Interleaved in the RTSP TCP connection (robust through NAT and firewalls).
    #[default]
    Tcp,
    /// RTP over UDP (lower latency on clean networks).
    Udp,
}

/// Where a camera's video comes from. Written as `source = { kind = "...", ... }`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceConfig {
    /// An RTSP camera (tower, enterprise CCTV). `pipelines/rtsp.pipeline`.
    Rtsp {
        /// `rtsp://user:${PASS}@host:554/path`.
        url: EnvString,
        /// `tcp` (default) or `udp`.
        #[serde(default)]
        transport: RtspTransport,
        /// Jitter-buffer latency in milliseconds. Default 200.
        #[serde(default = "default_latency_ms")]
        latency_ms: u32,
    },
    /// An RTMP stream (drones pushing to a media server). `pipelines/rtmp.pipeline`.
    Rtmp {
        /// `rtmp://host/app/stream`.
        url: EnvString,
    },
    /// An SRT stream (drones). `pipelines/srt.pipeline`.
    Srt {
        /// `srt://host:port?mode=caller` or `srt://:port?mode=listener`.
        url: EnvString,
    },
    /// H.264/H.265 in MPEG-TS over UDP (drones, encoders). `pipelines/udp-ts.pipeline`.
    UdpTs {
        /// Local port to listen on.
        port: u16,
        /// Local address to bind. Default `0.0.0.0`.
        #[serde(default = "default_bind")]
        address: String,
    },
    /// A local video file (replay). `pipelines/file.pipeline`.
    File {
        /// Path (relative paths are relative to the config file's directory).
        path: EnvString,
        /// Start again at the end. Default false.
        #[serde(default, rename = "loop")]
        looping: bool,
        /// Pace frames at the file's own rate (true, default) or read as fast as possible.
        #[serde(default = "default_true")]
        realtime: bool,
        /// Wall-clock time of the file's first frame: capture times become
        /// `start_time + stream time`, so footage can be replayed "as of" a past date.
        /// Default: the time the file is opened.
        #[serde(default)]
        start_time: Option<DateTime<Utc>>,
    },
    /// A generated test pattern. `pipelines/test.pipeline`.
    Test {
        /// `videotestsrc` pattern name (`smpte`, `ball`, `snow`, ...). Default `ball`.
        #[serde(default = "default_pattern")]
        pattern: String,
        /// Width in pixels. Default 1280.
        #[serde(default = "default_test_w")]
        width: u32,
        /// Height in pixels. Default 720.
        #[serde(default = "default_test_h")]
        height: u32,
        /// Frames per second produced. Default 25.
        #[serde(default = "default_test_fps")]
        framerate: u32,
    },
}

fn default_latency_ms() -> u32 {
    200
}
fn default_bind() -> String {
    "0.0.0.0".into()
}
fn default_true() -> bool {
    true
}
fn default_pattern() -> String {
    "ball".into()
}
fn default_test_w() -> u32 {
    1280
}
fn default_test_h() -> u32 {
    720
}
fn default_test_fps() -> u32 {
    25
}

impl SourceConfig {
    /// The source kind as written in config.
    pub fn kind(&self) -> &'static str {
        match self {
            SourceConfig::Rtsp { .. } => "rtsp",
            SourceConfig::Rtmp { .. } => "rtmp",
            SourceConfig::Srt { .. } => "srt",
            SourceConfig::UdpTs { .. } => "udp_ts",
            SourceConfig::File { .. } => "file",
            SourceConfig::Test { .. } => "test",
        }
    }

    /// True for sources that are live (reconnect on failure, never "finish").
    pub fn is_live(&self) -> bool {
        !matches!(self, SourceConfig::File { .. } | SourceConfig::Test { .. })
    }

    fn validate(&self, path: &str, v: &mut Validator) {
        let url_check = |v: &mut Validator, url: &EnvString, schemes: &[&str]| {
            let val = url.value();
            let ok = schemes
                .iter()
                .any(|s| val.starts_with(&format!("{s}://")) && val.len() > s.len() + 3);
            if !ok {
                v.error(
                    format!("{path}.url"),
                    format!(
                        "{:?} is not a valid URL for this source: expected {}",
                        url.redacted(),
                        schemes
                            .iter()
                            .map(|s| format!("{s}://host/..."))
                            .collect::<Vec<_>>()
                            .join(" or ")
                    ),
                );
            }
        };
        match self {
            SourceConfig::Rtsp {
                url, latency_ms, ..
            } => {
                url_check(v, url, &["rtsp", "rtsps", "rtspt"]);
                v.range(format!("{path}.latency_ms"), *latency_ms, 0, 10_000);
            }
            SourceConfig::Rtmp { url } => url_check(v, url, &["rtmp", "rtmps"]),
            SourceConfig::Srt { url } => url_check(v, url, &["srt"]),
            SourceConfig::UdpTs { port, address } => {
                v.check(*port > 0, format!("{path}.port"), "port must be 1..=65535");
                v.check(
                    address.parse::<std::net::IpAddr>().is_ok(),
                    format!("{path}.address"),
                    format!("{address:?} is not an IP address"),
                );
            }
            SourceConfig::File { path: p, .. } => {
                v.check(
                    !p.value().is_empty(),
                    format!("{path}.path"),
                    "path must not be empty",
                );
            }
            SourceConfig::Test {
                width,
                height,
                framerate,
                ..
            } => {
                v.range(format!("{path}.width"), *width, 16, 7680);
                v.range(format!("{path}.height"), *height, 16, 4320);
                v.range(format!("{path}.framerate"), *framerate, 1, 240);
            }
        }
    }
}

/// Where a camera stands and looks (for bearings, triangulation and the map).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoConfig {
    /// Latitude in degrees (WGS84).
    pub lat: f64,
    /// Longitude in degrees (WGS84).
    pub lon: f64,
    /// Altitude above sea level in metres. Default 0.
    #[serde(default)]
    pub alt_m: f64,
    /// Azimuth of the image centre in degrees from true north (fixed cameras; PTZ presets
    /// override it).
    #[serde(default)]
    pub heading_deg: f64,
    /// Horizontal field of view in degrees. Give this, or `focal_mm` and `sensor_width_mm`.
    #[serde(default)]
    pub hfov_deg: Option<f64>,
    /// Vertical field of view in degrees. Default: from hfov and the frame's aspect.
    #[serde(default)]
    pub vfov_deg: Option<f64>,
    /// Focal length in millimetres (with `sensor_width_mm`, instead of `hfov_deg`).
    #[serde(default)]
    pub focal_mm: Option<f64>,
    /// Sensor width in millimetres.
    #[serde(default)]
    pub sensor_width_mm: Option<f64>,
    /// Tilt of the optical axis in degrees (negative looks down). Default 0.
    #[serde(default)]
    pub tilt_deg: f64,
    /// Maximum useful detection range in metres. Default 20000.
    #[serde(default = "default_range")]
    pub range_m: f64,
    /// Radial lens distortion (fish-eye towers): `k1`, `k2` of the Brown–Conrady model on
    /// normalised image coordinates. Default none.
    #[serde(default)]
    pub distortion: Option<Distortion>,
}

fn default_range() -> f64 {
    20_000.0
}

/// Radial distortion coefficients.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Distortion {
    /// Second-order radial coefficient.
    pub k1: f64,
    /// Fourth-order radial coefficient. Default 0.
    #[serde(default)]
    pub k2: f64,
}

impl GeoConfig {
    /// Horizontal field of view in degrees, from `hfov_deg` or focal length and sensor.
    pub fn hfov(&self) -> Option<f64> {
        self.hfov_deg
            .or_else(|| match (self.focal_mm, self.sensor_width_mm) {
                (Some(f), Some(s)) if f > 0.0 => Some(2.0 * (s / (2.0 * f)).atan().to_degrees()),
                _ => None,
            })
    }

    fn validate(&self, path: &str, v: &mut Validator) {
        v.range(format!("{path}.lat"), self.lat, -90.0, 90.0);
        v.range(format!("{path}.lon"), self.lon, -180.0, 180.0);
        v.range(
            format!("{path}.heading_deg"),
            self.heading_deg,
            -360.0,
            360.0,
        );
        v.range(format!("{path}.tilt_deg"), self.tilt_deg, -90.0, 90.0);
        v.range(format!("{path}.range_m"), self.range_m, 1.0, 200_000.0);
        match self.hfov() {
            Some(h) => v.range(format!("{path}.hfov_deg"), h, 0.1, 360.0),
            None => v.error(
                format!("{path}.hfov_deg"),
                "missing: give hfov_deg, or focal_mm and sensor_width_mm",
            ),
        }
        if let Some(vf) = self.vfov_deg {
            v.range(format!("{path}.vfov_deg"), vf, 0.1, 180.0);
        }
    }
}

/// A PTZ camera's presets and patrol tour.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PtzConfig {
    /// Named poses.
    pub presets: Vec<PresetConfig>,
    /// The patrol tour: presets visited in order, forever. Empty: the pose comes from
    /// outside (pose updates) and the camera stays on its first preset until then.
    #[serde(default)]
    pub tour: Vec<TourStop>,
    /// Seconds after arriving at a preset during which frames are marked moving (the camera
    /// travels and refocuses). Default 3.
    #[serde(default = "default_settle")]
    pub settle_s: f64,
}

fn default_settle() -> f64 {
    3.0
}

/// A named PTZ pose.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresetConfig {
    /// Preset name (zones, masks and references are keyed by it).
    pub name: String,
    /// Azimuth of the image centre at this preset, degrees from true north.
    pub pan_deg: f64,
    /// Tilt at this preset in degrees. Default: the camera's `geo.tilt_deg`.
    #[serde(default)]
    pub tilt_deg: Option<f64>,
    /// Horizontal field of view at this preset (zoom). Default: the camera's.
    #[serde(default)]
    pub hfov_deg: Option<f64>,
}

/// One stop of a patrol tour.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TourStop {
    /// Preset name.
    pub preset: String,
    /// Seconds spent at this preset (settle time included).
    pub dwell_s: f64,
}

impl PtzConfig {
    fn validate(&self, path: &str, v: &mut Validator) {
        v.check(
            !self.presets.is_empty(),
            format!("{path}.presets"),
            "a PTZ camera needs at least one preset",
        );
        let mut seen = std::collections::BTreeSet::new();
        for (i, p) in self.presets.iter().enumerate() {
            if !seen.insert(p.name.as_str()) {
                v.error(
                    format!("{path}.presets[{i}].name"),
                    format!("preset {:?} is defined twice", p.name),
                );
            }
            v.range(
                format!("{path}.presets[{i}].pan_deg"),
                p.pan_deg,
                -360.0,
                360.0,
            );
        }
        for (i, t) in self.tour.iter().enumerate() {
            if !seen.contains(t.preset.as_str()) {
                v.error(
                    format!("{path}.tour[{i}].preset"),
                    format!(
                        "unknown preset {:?}: defined presets are {:?}",
                        t.preset, seen
                    ),
                );
            }
            v.check(
                t.dwell_s > self.settle_s,
                format!("{path}.tour[{i}].dwell_s"),
                format!("must exceed settle_s ({})", self.settle_s),
            );
        }
        v.range(format!("{path}.settle_s"), self.settle_s, 0.0, 600.0);
    }

    /// The preset and whether the camera is still moving/settling, `elapsed_s` seconds after
    /// the tour started. `None` when there is no tour.
    pub fn tour_position(&self, elapsed_s: f64) -> Option<(&PresetConfig, bool)> {
        let total: f64 = self.tour.iter().map(|t| t.dwell_s).sum();
        if self.tour.is_empty() || total <= 0.0 {
            return None;
        }
        let mut t = elapsed_s.max(0.0) % total;
        for stop in &self.tour {
            if t < stop.dwell_s {
                let preset = self.presets.iter().find(|p| p.name == stop.preset)?;
                return Some((preset, t < self.settle_s));
            }
            t -= stop.dwell_s;
        }
        None
    }
}

/// One `[[cameras]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    /// Unique id (letters, digits, `-`, `_`): used in topics, URLs and the database.
    pub id: String,
    /// Human-readable name for the UI. Default: the id.
    #[serde(default)]
    pub name: Option<String>,
    /// Set false to keep a camera in config without running it. Default true.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Where the video comes from.
    pub source: SourceConfig,
    /// Analysis rate cap in frames per second. Default: `ingest.fps`.
    #[serde(default)]
    pub fps: Option<f64>,
    /// Decode key frames only (drops delta frames before the decoder): a tower camera at
    /// one frame every few seconds should not pay for decoding 25 fps. Default false.
    #[serde(default)]
    pub keyframes_only: bool,
    /// Longest side of analysed frames. Default: `ingest.analysis_max_side`.
    #[serde(default)]
    pub analysis_max_side: Option<u32>,
    /// Models (names of `[models.NAME]`) this camera runs. A tower runs smoke/fire; a plant
    /// camera person and fire.
    #[serde(default)]
    pub models: Vec<String>,
    /// Position and view, for geo-fusion and the map.
    #[serde(default)]
    pub geo: Option<GeoConfig>,
    /// PTZ presets and tour.
    #[serde(default)]
    pub ptz: Option<PtzConfig>,
}

impl CameraConfig {
    /// The analysis fps cap, given ingest defaults.
    pub fn effective_fps(&self, ingest: &IngestConfig) -> f64 {
        self.fps.unwrap_or(ingest.fps)
    }

    /// The analysis max side, given ingest defaults.
    pub fn effective_max_side(&self, ingest: &IngestConfig) -> u32 {
        self.analysis_max_side.unwrap_or(ingest.analysis_max_side)
    }

    /// The names other sections may refer to (id, preset names), for validation.
    pub fn names(&self) -> crate::validate::CameraNames {
        crate::validate::CameraNames {
            id: self.id.clone(),
            presets: self
                .ptz
                .iter()
                .flat_map(|p| p.presets.iter().map(|p| p.name.clone()))
                .collect(),
        }
    }

    /// Display name.
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.id)
    }

    pub(crate) fn validate(&self, path: &str, v: &mut Validator, model_names: &[&str]) {
        let id_ok = !self.id.is_empty()
            && self.id.len() <= 64
            && self
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        v.check(
            id_ok,
            format!("{path}.id"),
            format!(
                "{:?} is not a valid camera id: use 1-64 letters, digits, '-' or '_'",
                self.id
            ),
        );
        self.source.validate(&format!("{path}.source"), v);
        if let Some(fps) = self.fps {
            v.range(format!("{path}.fps"), fps, 0.001, 120.0);
        }
        if let Some(s) = self.analysis_max_side {
            v.range(format!("{path}.analysis_max_side"), s, 64, 7680);
        }
        for (i, m) in self.models.iter().enumerate() {
            if !model_names.contains(&m.as_str()) {
                v.error(
                    format!("{path}.models[{i}]"),
                    format!("unknown model {m:?}: defined models are {model_names:?}"),
                );
            }
        }
        if let Some(g) = &self.geo {
            g.validate(&format!("{path}.geo"), v);
        }
        if let Some(p) = &self.ptz {
            p.validate(&format!("{path}.ptz"), v);
        }
    }
}
