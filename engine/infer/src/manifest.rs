//! Model manifests (`models/NAME.toml`): what an ONNX file is, where it came from, and how to
//! feed it and read it — described as data, so that a new detector of a known family needs
//! a manifest, not code. The format is documented in `models/README.md`.
//!
//! [`Model::load`] parses a manifest, finds the ONNX file (next to the manifest, then in
//! `$LOOKOUT_SHARED/models`), verifies its sha256, and resolves class names. The session
//! checks the tensor shapes against the manifest when it is built
//! ([`crate::Detector::from_model`]).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use lookout_config::inference::TileConfig;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::InferError;

/// The parsed manifest, as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Model name (used in logs and in `FrameResult.model` when no config name is given).
    pub name: String,
    /// ONNX file name, looked up next to the manifest, then in `$LOOKOUT_SHARED/models`.
    pub file: String,
    /// Lower-case hex sha256 of the ONNX file: a different file is refused.
    pub sha256: String,
    /// Public URL where the file can be fetched (so users elsewhere get the same bytes).
    #[serde(default)]
    pub source_url: Option<String>,
    /// Licence of the weights (SPDX id where possible).
    pub licence: String,
    /// Free text: what the model is for, how it was trained.
    #[serde(default)]
    pub description: Option<String>,
    /// How to build the input tensor.
    pub input: InputSpec,
    /// How to read the output tensors.
    pub output: OutputSpec,
    /// Class names and default thresholds.
    pub classes: ClassesSpec,
    /// Default tiling for this model (a camera or `[models.NAME].tile` may override it).
    #[serde(default)]
    pub tile: Option<TileConfig>,
    /// Measured accuracy, free-form (data set → numbers); shown, never interpreted.
    #[serde(default)]
    pub accuracy: Option<toml::Table>,
}

/// The batch axis of the input tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchSpec {
    /// Any batch size (`batch = "dynamic"`): the engine batches up to `inference.max_batch`.
    Dynamic,
    /// Exactly this many images per run (`batch = 1`).
    Fixed(usize),
}

impl Serialize for BatchSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            BatchSpec::Dynamic => s.serialize_str("dynamic"),
            BatchSpec::Fixed(n) => s.serialize_u64(*n as u64),
        }
    }
}

impl<'de> Deserialize<'de> for BatchSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(i64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) if (1..=256).contains(&n) => Ok(BatchSpec::Fixed(n as usize)),
            Raw::S(s) if s == "dynamic" => Ok(BatchSpec::Dynamic),
            Raw::N(n) => Err(serde::de::Error::custom(format!(
                "batch {n} is out of range: use 1..=256 or \"dynamic\""
            ))),
            Raw::S(s) => Err(serde::de::Error::custom(format!(
                "batch {s:?} is not allowed: use a number or \"dynamic\""
            ))),
        }
    }
}

/// Channel order of the input tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelOrder {
    /// Red, green, blue (most PyTorch exports).
    Rgb,
    /// Blue, green, red (OpenCV-trained models such as NanoDet).
    Bgr,
}

/// How a frame (or tile) is fitted into the input size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResizeMode {
    /// Keep the aspect ratio, centre, pad the rest with `pad_value` (YOLO).
    Letterbox,
    /// Scale each axis independently to fill the input (NanoDet's plain resize).
    Stretch,
}

/// `[input]`: the input tensor and its preprocessing.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// Input tensor name.
    pub tensor: String,
    /// Input width in pixels.
    pub width: u32,
    /// Input height in pixels.
    pub height: u32,
    /// `"dynamic"` or a fixed batch size.
    pub batch: BatchSpec,
    /// Channel order of the tensor.
    pub channels: ChannelOrder,
    /// Pixel values (0..255) are multiplied by this first (`1/255` for YOLO). Default 1.
    #[serde(default = "one")]
    pub scale: f32,
    /// Then this is subtracted, per tensor channel (in the tensor's channel order). Default 0.
    #[serde(default)]
    pub mean: [f32; 3],
    /// Then divided by this, per tensor channel. Default 1.
    #[serde(default = "ones")]
    pub std: [f32; 3],
    /// Letterbox or stretch.
    pub resize: ResizeMode,
    /// Pixel value (0..255, before normalisation) of letterbox padding. Default 114.
    #[serde(default = "default_pad")]
    pub pad_value: u8,
}

fn one() -> f32 {
    1.0
}
fn ones() -> [f32; 3] {
    [1.0; 3]
}
fn default_pad() -> u8 {
    114
}

/// Detector output families.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// One tensor `[batch, 4 + nc, N]`: cx, cy, w, h in input pixels, then class scores; no
    /// objectness (YOLOv8 / v11).
    Yolov8,
    /// One tensor `[batch, N, 5 + nc]`: cx, cy, w, h, objectness, class scores (YOLOv5 / v7).
    Yolov5,
    /// NanoDet-Plus GFL heads: per stride a class-score tensor `[batch, N, nc]` (sigmoid
    /// applied) and a box-distribution tensor `[batch, N, 4 × (reg_max + 1)]`, matched by
    /// shape.
    Nanodet,
}

/// `[output]`: how to read the output tensors.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// The family.
    pub layout: Layout,
    /// NanoDet: feature strides. Default `[8, 16, 32]`.
    #[serde(default = "default_strides")]
    pub strides: Vec<u32>,
    /// NanoDet: largest distance bin (bins are 0..=reg_max). Default 7.
    #[serde(default = "default_reg_max")]
    pub reg_max: u32,
    /// NanoDet: anchor centre = grid · stride + `center_offset` · (stride − 1). Default 0.5
    /// (the half-cell offset the published model was trained with).
    #[serde(default = "default_center_offset")]
    pub center_offset: f32,
}

fn default_strides() -> Vec<u32> {
    vec![8, 16, 32]
}
fn default_reg_max() -> u32 {
    7
}
fn default_center_offset() -> f32 {
    0.5
}

/// Default per-class thresholds, either a list in class order or a table by class name.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Thresholds {
    /// One threshold per class, in the order of `names`.
    List(Vec<f32>),
    /// Thresholds by class name (classes not named use 0.5).
    Map(BTreeMap<String, f32>),
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds::Map(BTreeMap::new())
    }
}

/// `[classes]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassesSpec {
    /// Class names in output order.
    pub names: Vec<String>,
    /// Suggested operator thresholds (rules use them as defaults; inference only applies
    /// `inference.score_floor`).
    #[serde(default)]
    pub thresholds: Thresholds,
}

/// A loaded, verified manifest with its ONNX file located.
#[derive(Debug, Clone)]
pub struct Model {
    /// The manifest as written.
    pub manifest: Manifest,
    /// Where the manifest was read from.
    pub manifest_path: PathBuf,
    /// The located, verified ONNX file.
    pub onnx_path: PathBuf,
    /// Class names, shared cheaply into every detection.
    pub class_names: Vec<Arc<str>>,
}

/// Where shared models live: `$LOOKOUT_SHARED/models`, if the variable is set.
pub fn shared_models_dir() -> Option<PathBuf> {
    std::env::var_os("LOOKOUT_SHARED").map(|s| PathBuf::from(s).join("models"))
}

impl Model {
    /// Reads and checks a manifest, finds and verifies its ONNX file.
    pub fn load(manifest_path: &Path) -> Result<Arc<Model>, InferError> {
        let text =
            std::fs::read_to_string(manifest_path).map_err(|e| InferError::ManifestRead {
                path: manifest_path.to_path_buf(),
                message: e.to_string(),
            })?;
        Self::from_toml(&text, manifest_path)
    }

    /// Parses manifest text; `manifest_path` is used to find the ONNX file and in errors.
    pub fn from_toml(text: &str, manifest_path: &Path) -> Result<Arc<Model>, InferError> {
        let invalid = |message: String| InferError::ManifestInvalid {
            path: manifest_path.to_path_buf(),
            message,
        };
        let manifest: Manifest = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        manifest.check().map_err(invalid)?;
        let onnx_path = locate(&manifest.file, manifest_path)?;
        let actual = sha256_file(&onnx_path)?;
        if !actual.eq_ignore_ascii_case(&manifest.sha256) {
            return Err(InferError::Checksum {
                path: onnx_path,
                manifest: manifest_path.to_path_buf(),
                expected: manifest.sha256.clone(),
                actual,
            });
        }
        let class_names = manifest
            .classes
            .names
            .iter()
            .map(|n| Arc::from(n.as_str()))
            .collect();
        Ok(Arc::new(Model {
            manifest,
            manifest_path: manifest_path.to_path_buf(),
            onnx_path,
            class_names,
        }))
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.class_names.len()
    }

    /// The model's name.
    pub fn name(&self) -> &str {
        &self.manifest.name
    }

    /// Index of a class by name.
    pub fn class_index(&self, name: &str) -> Option<usize> {
        self.class_names.iter().position(|n| n.as_ref() == name)
    }

    /// Default threshold of a class (0.5 when the manifest does not say).
    pub fn threshold(&self, class: usize) -> f32 {
        match &self.manifest.classes.thresholds {
            Thresholds::List(v) => v.get(class).copied().unwrap_or(0.5),
            Thresholds::Map(m) => self
                .class_names
                .get(class)
                .and_then(|n| m.get(n.as_ref()))
                .copied()
                .unwrap_or(0.5),
        }
    }
}

impl Manifest {
    /// Checks values that serde cannot: sizes, hex digests, class lists.
    fn check(&self) -> Result<(), String> {
        let mut errs = Vec::new();
        if self.name.trim().is_empty() {
            errs.push("name: must not be empty".to_string());
        }
        if self.file.trim().is_empty() {
            errs.push("file: must name the ONNX file".to_string());
        }
        if self.sha256.len() != 64 || !self.sha256.chars().all(|c| c.is_ascii_hexdigit()) {
            errs.push(format!("sha256: {:?} is not 64 hex digits", self.sha256));
        }
        let i = &self.input;
        if !(16..=8192).contains(&i.width) || !(16..=8192).contains(&i.height) {
            errs.push(format!(
                "input.width/height: {}x{} is out of range 16..=8192",
                i.width, i.height
            ));
        }
        if i.std.iter().any(|s| *s == 0.0 || !s.is_finite()) {
            errs.push("input.std: values must be non-zero".to_string());
        }
        if !i.scale.is_finite() || i.scale == 0.0 {
            errs.push("input.scale: must be non-zero".to_string());
        }
        if self.classes.names.is_empty() {
            errs.push("classes.names: at least one class".to_string());
        }
        if self.classes.names.len() > u16::MAX as usize {
            errs.push("classes.names: too many classes".to_string());
        }
        match &self.classes.thresholds {
            Thresholds::List(v) if v.len() != self.classes.names.len() => errs.push(format!(
                "classes.thresholds: {} values for {} classes",
                v.len(),
                self.classes.names.len()
            )),
            Thresholds::Map(m) => {
                for k in m.keys() {
                    if !self.classes.names.contains(k) {
                        errs.push(format!("classes.thresholds.{k}: not a class name"));
                    }
                }
            }
            _ => {}
        }
        if self.output.layout == Layout::Nanodet {
            if self.output.strides.is_empty() || self.output.strides.contains(&0) {
                errs.push("output.strides: at least one positive stride".to_string());
            }
            if self.output.reg_max == 0 || self.output.reg_max > 64 {
                errs.push("output.reg_max: 1..=64".to_string());
            }
        }
        if let Some(t) = &self.tile {
            if t.grid[0] == 0 || t.grid[1] == 0 || t.grid[0] > 8 || t.grid[1] > 8 {
                errs.push("tile.grid: 1..=8 columns and rows".to_string());
            }
            if !(0.0..=0.5).contains(&t.overlap) {
                errs.push("tile.overlap: 0..=0.5".to_string());
            }
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs.join("; "))
        }
    }
}

/// Finds the ONNX file: absolute as given; otherwise next to the manifest, then in
/// `$LOOKOUT_SHARED/models`. The error names every place tried.
fn locate(file: &str, manifest_path: &Path) -> Result<PathBuf, InferError> {
    let p = Path::new(file);
    let mut candidates = Vec::new();
    if p.is_absolute() {
        candidates.push(p.to_path_buf());
    } else {
        let dir = manifest_path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        candidates.push(dir.join(p));
        if let Some(shared) = shared_models_dir() {
            candidates.push(shared.join(p));
        }
    }
    for c in &candidates {
        if c.is_file() {
            return Ok(c.clone());
        }
    }
    Err(InferError::ModelMissing {
        file: file.to_string(),
        manifest: manifest_path.to_path_buf(),
        looked: candidates,
    })
}

/// Lower-case hex sha256 of a file.
pub fn sha256_file(path: &Path) -> Result<String, InferError> {
    let mut f = std::fs::File::open(path).map_err(|e| InferError::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| InferError::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
name = "t"
file = "t.onnx"
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
licence = "Apache-2.0"
[input]
tensor = "images"
width = 320
height = 320
batch = "dynamic"
channels = "rgb"
scale = 0.00392156862745098
resize = "letterbox"
[output]
layout = "yolov8"
[classes]
names = ["smoke", "fire"]
thresholds = { smoke = 0.4 }
"#;

    #[test]
    fn parses_minimal_manifest_with_defaults() {
        let m: Manifest = toml::from_str(MINIMAL).unwrap();
        m.check().unwrap();
        assert_eq!(m.input.batch, BatchSpec::Dynamic);
        assert_eq!(m.input.pad_value, 114);
        assert_eq!(m.input.std, [1.0; 3]);
        assert_eq!(m.output.strides, vec![8, 16, 32]);
    }

    #[test]
    fn rejects_bad_values() {
        let bad = MINIMAL.replace("batch = \"dynamic\"", "batch = \"many\"");
        let e = toml::from_str::<Manifest>(&bad).unwrap_err().to_string();
        assert!(e.contains("many"), "{e}");
        let bad = MINIMAL.replace("smoke = 0.4", "smok = 0.4");
        let m: Manifest = toml::from_str(&bad).unwrap();
        assert!(m.check().unwrap_err().contains("classes.thresholds.smok"));
        let bad = MINIMAL.replace("layout = \"yolov8\"", "layout = \"yolov8\"\nextra = 1");
        assert!(toml::from_str::<Manifest>(&bad)
            .unwrap_err()
            .to_string()
            .contains("extra"));
    }

    #[test]
    fn missing_file_names_every_place() {
        let dir = tempfile::tempdir().unwrap();
        let mpath = dir.path().join("t.toml");
        let e = Model::from_toml(MINIMAL, &mpath).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains(&dir.path().join("t.onnx").display().to_string()),
            "{msg}"
        );
        if let Some(shared) = shared_models_dir() {
            assert!(
                msg.contains(&shared.join("t.onnx").display().to_string()),
                "{msg}"
            );
        }
    }
}
