//! Semantic validation: sections report problems by key path; the loader locates them.

/// Collects problems found while validating deserialized sections.
///
/// Paths use the TOML key syntax Lookout prints everywhere: `cameras[2].source.url`,
/// `rules.classes.smoke.threshold`.
#[derive(Debug, Default)]
pub struct Validator {
    pub(crate) problems: Vec<(String, String)>,
}

impl Validator {
    /// A validator with no problems.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that the value at `path` is wrong; `message` says what is allowed.
    pub fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push((path.into(), message.into()));
    }

    /// Records an error unless `ok`.
    pub fn check(&mut self, ok: bool, path: impl Into<String>, message: impl Into<String>) {
        if !ok {
            self.error(path, message);
        }
    }

    /// Checks `lo <= value <= hi`.
    pub fn range<T: PartialOrd + std::fmt::Display + Copy>(
        &mut self,
        path: impl Into<String>,
        value: T,
        lo: T,
        hi: T,
    ) {
        if !(value >= lo && value <= hi) {
            self.error(
                path,
                format!("{value} is out of range: allowed {lo} ..= {hi}"),
            );
        }
    }

    /// Checks a relative (0..1) polygon: at least 3 points, every coordinate in 0..=1.
    pub fn polygon(&mut self, path: &str, points: &[[f64; 2]]) {
        if points.len() < 3 {
            self.error(
                path,
                format!(
                    "a polygon needs at least 3 points, got {}; points are [x, y] in 0..1 of the image",
                    points.len()
                ),
            );
        }
        for (i, p) in points.iter().enumerate() {
            if !(0.0..=1.0).contains(&p[0]) || !(0.0..=1.0).contains(&p[1]) {
                self.error(
                    format!("{path}[{i}]"),
                    format!(
                        "point [{}, {}] is outside the image: coordinates are relative, 0..1",
                        p[0], p[1]
                    ),
                );
            }
        }
    }

    /// True when no problem was recorded.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// The problems recorded so far, as (path, message).
    pub fn problems(&self) -> &[(String, String)] {
        &self.problems
    }
}

/// What sections may cross-reference while validating: the names the config defines.
///
/// It holds names, not the camera structs, so validation does not depend on the camera
/// section's types, and a camera whose table has a type error still counts as configured
/// (its id and preset names are read from the raw TOML): one mistake is reported once,
/// not again as "unknown camera" wherever a rule names it.
#[derive(Debug, Default)]
pub struct ValidationContext<'a> {
    /// Every configured camera (enabled or not), by id, with its PTZ preset names.
    pub cameras: Vec<CameraNames>,
    /// Names of `[models.NAME]` entries.
    pub models: Vec<&'a str>,
}

/// A configured camera's id and the names of its PTZ presets (empty when it is not PTZ).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CameraNames {
    /// The camera id.
    pub id: String,
    /// Its preset names.
    pub presets: Vec<String>,
}

impl ValidationContext<'_> {
    /// True when a camera with this id is configured.
    pub fn has_camera(&self, id: &str) -> bool {
        self.cameras.iter().any(|c| c.id == id)
    }

    /// Preset names of a camera (empty when it is not PTZ).
    pub fn presets(&self, camera: &str) -> Vec<&str> {
        self.cameras
            .iter()
            .find(|c| c.id == camera)
            .map(|c| c.presets.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }
}

/// An inclusive range of allowed values, shared by a config key and the command-line flag
/// that means the same thing (`engine.run_for_s` and `lookout run --run-for`), so both
/// accept exactly the same values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    /// Least allowed value.
    pub lo: f64,
    /// Greatest allowed value.
    pub hi: f64,
}

impl Range {
    /// True when `lo <= x <= hi` (never for NaN).
    pub fn contains(&self, x: f64) -> bool {
        x >= self.lo && x <= self.hi
    }

    /// Parses a command-line value and checks it is in range: the message says what is
    /// allowed (for clap value parsers).
    pub fn parse_f64(&self, s: &str) -> Result<f64, String> {
        let x: f64 = s
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not a number; allowed {} ..= {}", self.lo, self.hi))?;
        if self.contains(x) {
            Ok(x)
        } else {
            Err(format!(
                "{s} is out of range: allowed {} ..= {}",
                self.lo, self.hi
            ))
        }
    }

    /// Like [`Range::parse_f64`] for `f32` values.
    pub fn parse_f32(&self, s: &str) -> Result<f32, String> {
        self.parse_f64(s).map(|x| x as f32)
    }

    /// Like [`Range::parse_f64`] for whole numbers.
    pub fn parse_usize(&self, s: &str) -> Result<usize, String> {
        let x: usize = s.trim().parse().map_err(|_| {
            format!(
                "{s:?} is not a whole number; allowed {} ..= {}",
                self.lo, self.hi
            )
        })?;
        if self.contains(x as f64) {
            Ok(x)
        } else {
            Err(format!(
                "{s} is out of range: allowed {} ..= {}",
                self.lo, self.hi
            ))
        }
    }
}

/// `engine.run_for_s` and `lookout run --run-for`.
pub const RUN_FOR_S: Range = Range { lo: 0.1, hi: 1e9 };
/// A score or score floor (`inference.score_floor`, `--min-score`, `--score-floor`).
pub const SCORE: Range = Range { lo: 0.0, hi: 1.0 };
/// An IoU (`inference.nms_iou`, `--iou`, `--min-iou`).
pub const IOU: Range = Range { lo: 0.0, hi: 1.0 };
/// ONNX Runtime threads per session (`inference.intra_threads`, `--threads`).
pub const THREADS: Range = Range { lo: 1.0, hi: 256.0 };
