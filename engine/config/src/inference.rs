//! `[inference]` (workers, runtime options, batching) and `[models.NAME]` (which model
//! manifests the engine loads).

use serde::{Deserialize, Serialize};

use crate::env::EnvString;
use crate::validate::{ValidationContext, Validator};

/// `[inference]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InferenceConfig {
    /// Inference worker threads; each owns one ONNX Runtime session per model. Default 1.
    pub workers: usize,
    /// ONNX Runtime intra-op threads per session. Default 2.
    pub intra_threads: usize,
    /// ONNX Runtime inter-op threads per session. Default 1.
    pub inter_threads: usize,
    /// Graph optimisation level: `disable`, `basic`, `extended`, `all`. Default `all`.
    pub graph_optimization: String,
    /// Let ONNX Runtime's intra-op threads spin (busy-wait) between runs. Off by default:
    /// on a CPU shared with decoders, spinning threads take the cores the decoders need
    /// (measured in benches/e2e). Turn it on for a machine that does nothing but inference.
    pub spin_wait: bool,
    /// Execution providers in order of preference: `cpu`, `cuda`, `tensorrt`, `openvino`.
    /// The engine logs which one registered. Default `["cpu"]`.
    pub providers: Vec<String>,
    /// Largest batch for models with a dynamic batch axis. Default 4.
    pub max_batch: usize,
    /// Longest wait for a batch to fill, milliseconds. Default 20.
    pub max_wait_ms: u64,
    /// Score floor applied in post-processing. Operator thresholds live in `[rules]`; this
    /// only keeps noise out of the recordings. Default 0.05.
    pub score_floor: f32,
    /// IoU for class-wise non-maximum suppression. Default 0.5.
    pub nms_iou: f32,
    /// Capacity of the results channel to the rules stage (blocks when full). Default 64.
    pub results_capacity: usize,
    /// Per-camera tiling, by camera id (`[inference.camera_tiles.tower1] grid = [2, 2]`):
    /// applies to every model the camera runs and wins over `[models.NAME].tile` and the
    /// manifest's default. Use it for wide views where the smoke of interest is small.
    pub camera_tiles: std::collections::BTreeMap<String, TileConfig>,
    /// Per-camera zone crops, by camera id (`[inference.camera_zones.gate] margin = 0.25`):
    /// person models also run on the bounding box of each personnel zone at native
    /// resolution, so small, far people at a duty post get enough input pixels.
    pub camera_zones: std::collections::BTreeMap<String, ZoneCropConfig>,
}

impl Default for InferenceConfig {
    fn default() -> Self {
        InferenceConfig {
            workers: 1,
            intra_threads: 2,
            inter_threads: 1,
            graph_optimization: "all".into(),
            spin_wait: false,
            providers: vec!["cpu".into()],
            max_batch: 4,
            max_wait_ms: 20,
            score_floor: 0.05,
            nms_iou: 0.5,
            results_capacity: 64,
            camera_tiles: Default::default(),
            camera_zones: Default::default(),
        }
    }
}

/// Tiling: split each frame into overlapping tiles and run the model on each.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TileConfig {
    /// Columns × rows, e.g. `[2, 2]`.
    pub grid: [u32; 2],
    /// Overlap between neighbouring tiles as a fraction of the tile size. Default 0.1.
    #[serde(default = "default_overlap")]
    pub overlap: f32,
    /// Also run the model on the whole frame. Default true.
    #[serde(default = "default_true")]
    pub full_frame: bool,
}

fn default_overlap() -> f32 {
    0.1
}
fn default_true() -> bool {
    true
}

impl TileConfig {
    /// Checks value ranges.
    pub fn validate(&self, path: &str, v: &mut Validator) {
        v.range(format!("{path}.grid[0]"), self.grid[0], 1, 8);
        v.range(format!("{path}.grid[1]"), self.grid[1], 1, 8);
        v.range(format!("{path}.overlap"), self.overlap, 0.0, 0.5);
    }
}

/// Zone crops of one camera: the models that detect people also run on the bounding box
/// of each personnel zone (duty posts, occupancy and restricted zones), padded by
/// `margin`, at native resolution (a crop is grown to at least the model's input size and
/// to its aspect ratio, clipped to the frame, so it is never upscaled nor stretched).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ZoneCropConfig {
    /// Padding on each side of a zone's bounding box, as a fraction of that box's larger
    /// side (people standing at the zone's edge stay whole). Default 0.1.
    #[serde(default = "default_margin")]
    pub margin: f32,
    /// Also run the models on the frame as usual (the resized whole frame, or the camera's
    /// tiles). Default true; false analyses only the zone crops.
    #[serde(default = "default_true")]
    pub full_frame: bool,
    /// Zones to crop, by name (`[rules.cameras.ID] zones`). Default: every zone of the
    /// camera that a duty post, occupancy or restricted rule uses.
    #[serde(default)]
    pub zones: Vec<String>,
}

fn default_margin() -> f32 {
    0.1
}

impl Default for ZoneCropConfig {
    fn default() -> Self {
        ZoneCropConfig {
            margin: default_margin(),
            full_frame: true,
            zones: Vec::new(),
        }
    }
}

/// One zone to crop: its name, PTZ preset (unset = every view) and the bounding box of
/// its polygon, `[x1, y1, x2, y2]` in 0..1 of the image (before the margin).
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneCrop {
    /// Zone name.
    pub name: String,
    /// The zone's PTZ preset; unset = every view of the camera.
    pub preset: Option<String>,
    /// Bounding box of the polygon, relative.
    pub bbox: [f64; 4],
}

impl ZoneCropConfig {
    /// The zones of camera `cam` this config crops: the named ones, or every zone a duty
    /// post, occupancy or restricted rule of the camera uses. Unknown names are left out
    /// (validation reports them).
    pub fn crops(&self, cam: &str, rules: &crate::rules::RulesConfig) -> Vec<ZoneCrop> {
        let Some(cr) = rules.cameras.get(cam) else {
            return Vec::new();
        };
        let used = |name: &str| -> bool {
            if !self.zones.is_empty() {
                return self.zones.iter().any(|z| z == name);
            }
            let is = |c: &str, z: &str| c == cam && z == name;
            rules.duty_posts.iter().any(|r| is(&r.camera, &r.zone))
                || rules.occupancy.iter().any(|r| is(&r.camera, &r.zone))
                || rules.restricted.iter().any(|r| is(&r.camera, &r.zone))
        };
        cr.zones
            .iter()
            .filter(|z| used(&z.name) && !z.polygon.is_empty())
            .map(|z| {
                let mut b = [f64::MAX, f64::MAX, f64::MIN, f64::MIN];
                for p in &z.polygon {
                    b = [
                        b[0].min(p[0]),
                        b[1].min(p[1]),
                        b[2].max(p[0]),
                        b[3].max(p[1]),
                    ];
                }
                ZoneCrop {
                    name: z.name.clone(),
                    preset: z.preset.clone(),
                    bbox: b.map(|v| v.clamp(0.0, 1.0)),
                }
            })
            .collect()
    }

    /// Checks the zone names against `[rules.cameras.CAM] zones` (and that there is
    /// something to crop).
    pub fn validate_zones(&self, cam: &str, rules: &crate::rules::RulesConfig, v: &mut Validator) {
        let path = format!("inference.camera_zones.{cam}");
        let names: Vec<&str> = rules
            .cameras
            .get(cam)
            .map(|c| c.zones.iter().map(|z| z.name.as_str()).collect())
            .unwrap_or_default();
        for (i, z) in self.zones.iter().enumerate() {
            v.check(
                names.contains(&z.as_str()),
                format!("{path}.zones[{i}]"),
                format!("unknown zone {z:?}: camera {cam:?} has {names:?} in [rules.cameras.{cam}] zones"),
            );
        }
        if self.zones.is_empty() && self.crops(cam, rules).is_empty() {
            v.error(
                &path,
                format!("camera {cam:?} has no zone used by a duty post, occupancy or restricted rule: name the zones to crop with `zones = [...]`"),
            );
        }
    }
}

/// `[models.NAME]`: a model the engine loads.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelRef {
    /// Path to the manifest (`models/NAME.toml`), relative to the config file's directory.
    pub manifest: EnvString,
    /// Tiling override for this model (default: the manifest's).
    #[serde(default)]
    pub tile: Option<TileConfig>,
    /// A candidate model's manifest to run in **shadow** beside this one (relative to the
    /// config file's directory): on the same frames of the cameras that run this model,
    /// through the same rules in a separate rules engine; its would-be events are stored
    /// marked shadow, never delivered nor shown as incidents. It must have the same classes.
    /// The API can start, change and stop it at run time (`/api/models/NAME/shadow`).
    #[serde(default)]
    pub shadow: Option<EnvString>,
    /// The model's precision/recall plot (`lookout eval --plot FILE.png` on the site's
    /// evaluation set), relative to the config file's directory: shown in the tuning view
    /// (`GET /api/tuning/pr/{model}`). A file that is missing when asked for is a 404.
    #[serde(default)]
    pub pr_plot: Option<EnvString>,
}

impl InferenceConfig {
    /// Checks values.
    pub fn validate(&self, v: &mut Validator, ctx: &ValidationContext<'_>) {
        v.range("inference.workers", self.workers, 1, 64);
        v.range("inference.intra_threads", self.intra_threads, 1, 256);
        v.range("inference.inter_threads", self.inter_threads, 1, 256);
        if !["disable", "basic", "extended", "all"].contains(&self.graph_optimization.as_str()) {
            v.error(
                "inference.graph_optimization",
                format!(
                    "{:?} is not allowed: use disable, basic, extended or all",
                    self.graph_optimization
                ),
            );
        }
        for (i, p) in self.providers.iter().enumerate() {
            if !["cpu", "cuda", "tensorrt", "openvino"].contains(&p.as_str()) {
                v.error(
                    format!("inference.providers[{i}]"),
                    format!("{p:?} is not allowed: use cpu, cuda, tensorrt or openvino"),
                );
            }
        }
        v.range("inference.max_batch", self.max_batch, 1, 64);
        v.range("inference.max_wait_ms", self.max_wait_ms, 0, 10_000);
        v.range("inference.score_floor", self.score_floor, 0.0, 1.0);
        v.range("inference.nms_iou", self.nms_iou, 0.0, 1.0);
        v.range(
            "inference.results_capacity",
            self.results_capacity,
            1,
            65_536,
        );
        for (cam, t) in &self.camera_tiles {
            let path = format!("inference.camera_tiles.{cam}");
            if !ctx.has_camera(cam) {
                v.error(
                    &path,
                    format!("unknown camera {cam:?}: tiles are keyed by camera id"),
                );
            }
            t.validate(&path, v);
        }
        for (cam, z) in &self.camera_zones {
            let path = format!("inference.camera_zones.{cam}");
            if !ctx.has_camera(cam) {
                v.error(
                    &path,
                    format!("unknown camera {cam:?}: zone crops are keyed by camera id"),
                );
            }
            v.range(format!("{path}.margin"), z.margin, 0.0, 2.0);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn camera_tiles_must_name_a_camera_and_be_in_range() {
        let src = r#"
[inference.camera_tiles.tower]
grid = [2, 2]

[inference.camera_tiles.nope]
grid = [9, 1]

[[cameras]]
id = "tower"
source = { kind = "test" }
"#;
        let errs = crate::parse(src, "t.toml", std::path::Path::new(".")).unwrap_err();
        let keys: Vec<&str> = errs.errors.iter().map(|e| e.key.as_str()).collect();
        assert!(keys.contains(&"inference.camera_tiles.nope"), "{keys:?}");
        assert!(
            keys.contains(&"inference.camera_tiles.nope.grid[0]"),
            "{keys:?}"
        );
        assert!(!keys.iter().any(|k| k.contains("tower")), "{keys:?}");
        let ok = src
            .replace("grid = [9, 1]", "grid = [1, 1]")
            .replace("camera_tiles.nope", "camera_tiles.tower2");
        let ok = format!("{ok}\n[[cameras]]\nid = \"tower2\"\nsource = {{ kind = \"test\" }}\n");
        let cfg = crate::parse(&ok, "t.toml", std::path::Path::new(".")).unwrap();
        assert_eq!(cfg.inference.camera_tiles["tower"].grid, [2, 2]);
        assert!(cfg.inference.camera_tiles["tower"].full_frame);
    }

    #[test]
    fn camera_zones_name_known_zones_and_crop_the_personnel_ones() {
        let src = r#"
[inference.camera_zones.gate]
margin = 0.3

[inference.camera_zones.yard]
margin = 3.0
zones = ["nowhere"]

[[cameras]]
id = "gate"
source = { kind = "test" }

[[cameras]]
id = "yard"
source = { kind = "test" }

[rules.cameras.gate]
zones = [
  { name = "post", polygon = [[0.1, 0.5], [0.2, 0.5], [0.2, 0.9], [0.1, 0.9]] },
  { name = "lawn", polygon = [[0.5, 0.5], [0.9, 0.5], [0.9, 0.9]] },
]

[rules.cameras.yard]
zones = [{ name = "pit", polygon = [[0.5, 0.5], [0.9, 0.5], [0.9, 0.9]] }]

[[rules.duty_posts]]
camera = "gate"
zone = "post"
max_vacant_s = 20
"#;
        let errs = crate::parse(src, "t.toml", std::path::Path::new(".")).unwrap_err();
        let keys: Vec<&str> = errs.errors.iter().map(|e| e.key.as_str()).collect();
        assert!(
            keys.contains(&"inference.camera_zones.yard.margin"),
            "{keys:?}"
        );
        let unknown = errs
            .errors
            .iter()
            .find(|e| e.key == "inference.camera_zones.yard.zones[0]")
            .unwrap_or_else(|| panic!("{keys:?}"));
        assert_eq!(unknown.line, Some(7), "{unknown:?}");
        assert!(unknown.message.contains("\"pit\""), "{unknown:?}");
        assert!(!keys.iter().any(|k| k.contains("gate")), "{keys:?}");

        // Fixed: the gate crops its duty post only (the lawn is in no personnel rule).
        let ok = src
            .replace("margin = 3.0", "margin = 0.1")
            .replace("[\"nowhere\"]", "[\"pit\"]");
        let cfg = crate::parse(&ok, "t.toml", std::path::Path::new(".")).unwrap();
        let crops = cfg.inference.camera_zones["gate"].crops("gate", &cfg.rules);
        assert_eq!(crops.len(), 1);
        assert_eq!(crops[0].name, "post");
        assert_eq!(crops[0].bbox, [0.1, 0.5, 0.2, 0.9]);
        assert_eq!(
            cfg.inference.camera_zones["yard"]
                .crops("yard", &cfg.rules)
                .len(),
            1
        );

        // A camera without a personnel zone has nothing to crop; a zone outside the frame
        // is a located error naming the point.
        let bad = ok
            .replace("zone = \"post\"", "zone = \"lawn\"")
            .replace("[0.2, 0.9], [0.1, 0.9]", "[1.2, 0.9], [0.1, 0.9]");
        let errs = crate::parse(&bad, "t.toml", std::path::Path::new(".")).unwrap_err();
        let keys: Vec<&str> = errs.errors.iter().map(|e| e.key.as_str()).collect();
        assert!(
            keys.contains(&"rules.cameras.gate.zones[0].polygon[2]"),
            "{keys:?}"
        );
        let bad = ok.replace("zone = \"post\"", "zone = \"lawn\"").replace(
            "[[rules.duty_posts]]\ncamera = \"gate\"\nzone = \"lawn\"\nmax_vacant_s = 20\n",
            "",
        );
        let errs = crate::parse(&bad, "t.toml", std::path::Path::new(".")).unwrap_err();
        let e = errs
            .errors
            .iter()
            .find(|e| e.key == "inference.camera_zones.gate")
            .unwrap_or_else(|| panic!("{errs:?}"));
        assert_eq!(e.line, Some(2), "{e:?}");
    }
}
