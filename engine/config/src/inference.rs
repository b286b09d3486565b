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

/// `[models.NAME]`: a model the engine loads.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelRef {
    /// Path to the manifest (`models/NAME.toml`), relative to the config file's directory.
    pub manifest: EnvString,
    /// Tiling override for this model (default: the manifest's).
    #[serde(default)]
    pub tile: Option<TileConfig>,
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
}
