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

/// What sections may cross-reference while validating.
#[derive(Debug)]
pub struct ValidationContext<'a> {
    /// All configured cameras.
    pub cameras: &'a [crate::cameras::CameraConfig],
    /// Names of `[models.NAME]` entries.
    pub models: Vec<&'a str>,
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
            .and_then(|c| c.ptz.as_ref())
            .map(|p| p.presets.iter().map(|p| p.name.as_str()).collect())
            .unwrap_or_default()
    }
}
