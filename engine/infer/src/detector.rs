//! [`Detector`]: one model's ONNX Runtime session plus its pre- and post-processing, owned by
//! one thread (`Session::run` takes `&mut self`: no mutex on the hot path).

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use lookout_config::inference::{InferenceConfig, TileConfig};
use lookout_core::Detection;
use ort::ep::ExecutionProvider;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};
use ort::session::Session;
use ort::value::{TensorRef, ValueType};
use tracing::{info, warn};

use crate::decode::{
    decode_nanodet, decode_yolo, nms_classwise, Candidate, NanodetLevel, YoloShape,
};
use crate::manifest::{BatchSpec, Layout, Model};
use crate::preprocess::{AsImageView, ImageView, Preprocessor, Region, Transform};
use crate::tiling;
use crate::InferError;

/// Runtime settings shared by all sessions (from `[inference]`, or defaults for the CLI).
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeOptions {
    /// ONNX Runtime intra-op threads per session.
    pub intra_threads: usize,
    /// ONNX Runtime inter-op threads per session.
    pub inter_threads: usize,
    /// `disable`, `basic`, `extended` or `all`.
    pub graph_optimization: String,
    /// Let intra-op threads busy-wait between runs (`[inference] spin_wait`).
    pub spin_wait: bool,
    /// Execution providers in order of preference (`cpu`, `cuda`, `tensorrt`, `openvino`).
    pub providers: Vec<String>,
    /// Largest batch for dynamic-batch models.
    pub max_batch: usize,
    /// Scores below this are dropped in post-processing.
    pub score_floor: f32,
    /// IoU above which class-wise NMS suppresses a box.
    pub nms_iou: f32,
    /// Most detections kept per frame and model after NMS.
    pub max_detections: usize,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        Self::from_config(&InferenceConfig::default())
    }
}

impl RuntimeOptions {
    /// The options of an `[inference]` section.
    pub fn from_config(c: &InferenceConfig) -> Self {
        RuntimeOptions {
            intra_threads: c.intra_threads,
            inter_threads: c.inter_threads,
            graph_optimization: c.graph_optimization.clone(),
            spin_wait: c.spin_wait,
            providers: c.providers.clone(),
            max_batch: c.max_batch.max(1),
            score_floor: c.score_floor,
            nms_iou: c.nms_iou,
            max_detections: 300,
        }
    }
}

/// The process-wide ONNX Runtime environment, loading the library named by `ORT_DYLIB_PATH`
/// (default `libonnxruntime.so` on the library path) on first use.
fn environment() -> Result<&'static ort::environment::Environment, InferError> {
    static ENV: OnceLock<Result<ort::environment::Environment, String>> = OnceLock::new();
    ENV.get_or_init(|| {
        let path: PathBuf = match std::env::var("ORT_DYLIB_PATH") {
            Ok(s) if !s.is_empty() => s.into(),
            _ => format!(
                "{}onnxruntime{}",
                std::env::consts::DLL_PREFIX,
                std::env::consts::DLL_SUFFIX
            )
            .into(),
        };
        let builder = ort::init_from(&path).map_err(|e| {
            format!(
                "cannot load the ONNX Runtime library {} (set ORT_DYLIB_PATH): {e}",
                path.display()
            )
        })?;
        let env = builder
            .with_name("lookout")
            .build()
            .map_err(|e| e.to_string())?;
        // ONNX Runtime's own warnings (e.g. "initializer appears in graph inputs", printed
        // once per initializer of the NanoDet file) are noise to operators; errors remain.
        env.set_log_level(ort::logging::LogLevel::Error);
        Ok(env)
    })
    .as_ref()
    .map_err(|m| InferError::Runtime {
        model: "-".into(),
        message: m.clone(),
    })
}

/// Registers the configured execution providers in order; returns the name of the first one
/// that registered (`cpu` when none of the accelerators is available).
fn register_providers(
    b: &mut SessionBuilder,
    providers: &[String],
    model: &str,
) -> Result<String, InferError> {
    fn try_ep<E: ExecutionProvider>(
        ep: E,
        b: &mut SessionBuilder,
        name: &str,
        model: &str,
    ) -> bool {
        match E::is_available() {
            Ok(true) => match ep.register(b) {
                Ok(()) => true,
                Err(e) => {
                    warn!(model, provider = name, error = %e, "Execution provider failed to register; trying the next.");
                    false
                }
            },
            _ => {
                warn!(
                    model,
                    provider = name,
                    "Execution provider is not in this ONNX Runtime build; trying the next."
                );
                false
            }
        }
    }
    for p in providers {
        let ok = match p.as_str() {
            "cuda" => try_ep(ort::ep::CUDA::default(), b, p, model),
            "tensorrt" => try_ep(ort::ep::TensorRT::default(), b, p, model),
            "openvino" => try_ep(ort::ep::OpenVINO::default(), b, p, model),
            "cpu" => try_ep(ort::ep::CPU::default(), b, p, model),
            other => {
                return Err(InferError::Runtime {
                    model: model.into(),
                    message: format!("unknown execution provider {other:?}"),
                })
            }
        };
        if ok {
            return Ok(p.clone());
        }
    }
    Ok("cpu".into())
}

fn rt(model: &str) -> impl Fn(ort::Error) -> InferError + '_ {
    move |e| InferError::Runtime {
        model: model.to_string(),
        message: e.to_string(),
    }
}

fn rtb<T>(model: &str) -> impl Fn(ort::Error<T>) -> InferError + '_ {
    move |e| InferError::Runtime {
        model: model.to_string(),
        message: e.to_string(),
    }
}

/// Builds a session with the runtime options, exactly as [`Detector`] does; returns it and
/// the provider that registered. Public for benchmarks that time the raw session.
pub fn build_session(
    model: &Model,
    opts: &RuntimeOptions,
) -> Result<(Session, String), InferError> {
    let name = model.name();
    let env = environment()?;
    let level = match opts.graph_optimization.as_str() {
        "disable" => GraphOptimizationLevel::Disable,
        "basic" => GraphOptimizationLevel::Level1,
        "extended" => GraphOptimizationLevel::Level2,
        _ => GraphOptimizationLevel::All,
    };
    let mut b = Session::builder(env)
        .map_err(rt(name))?
        .with_intra_threads(opts.intra_threads.max(1))
        .map_err(rtb(name))?
        .with_inter_threads(opts.inter_threads.max(1))
        .map_err(rtb(name))?
        .with_optimization_level(level)
        .map_err(rtb(name))?
        .with_intra_op_spinning(opts.spin_wait)
        .map_err(rtb(name))?
        .with_inter_op_spinning(opts.spin_wait)
        .map_err(rtb(name))?
        .with_log_level(ort::logging::LogLevel::Error)
        .map_err(rtb(name))?;
    let provider = register_providers(&mut b, &opts.providers, name)?;
    let session = b.commit_from_file(&model.onnx_path).map_err(rt(name))?;
    Ok((session, provider))
}

/// How the output tensors map onto the layout, worked out once from the session's outlets.
#[derive(Debug, Clone)]
enum OutputPlan {
    /// One YOLO tensor at this output index.
    Yolo { index: usize, shape: YoloShape },
    /// Per stride: (stride level, class-score output index, box output index).
    Nanodet(Vec<(NanodetLevel, usize, usize)>),
}

fn dims(v: &ValueType) -> Option<Vec<i64>> {
    v.tensor_shape().map(|s| s.iter().copied().collect())
}

/// Checks the session's input and outputs against the manifest; returns the output plan.
fn check_shapes(model: &Model, session: &Session) -> Result<(usize, OutputPlan), InferError> {
    let m = &model.manifest;
    let err = |message: String| InferError::Shape {
        model: m.name.clone(),
        message,
    };
    let inputs: Vec<&str> = session.inputs().iter().map(|o| o.name()).collect();
    let Some(input_index) = session
        .inputs()
        .iter()
        .position(|o| o.name() == m.input.tensor)
    else {
        return Err(err(format!(
            "input tensor {:?} (manifest input.tensor) is not an input of {}; the model's inputs are {inputs:?}",
            m.input.tensor,
            model.onnx_path.display()
        )));
    };
    if session.inputs().len() != 1 {
        return Err(err(format!(
            "models with several inputs are not supported; inputs are {inputs:?}"
        )));
    }
    let in_dims = dims(session.inputs()[input_index].dtype()).unwrap_or_default();
    let want_batch = match m.input.batch {
        BatchSpec::Dynamic => -1,
        BatchSpec::Fixed(n) => n as i64,
    };
    let fits = |got: i64, want: i64| got == want || (got < 0 && want > 0);
    let shape_ok = in_dims.len() == 4
        && (in_dims[0] == want_batch || (in_dims[0] < 0 && want_batch > 0))
        && in_dims[1] == 3
        && fits(in_dims[2], m.input.height as i64)
        && fits(in_dims[3], m.input.width as i64);
    if !shape_ok {
        let b = match m.input.batch {
            BatchSpec::Dynamic => "dynamic".to_string(),
            BatchSpec::Fixed(n) => n.to_string(),
        };
        return Err(err(format!(
            "input {:?} has shape {in_dims:?} (-1 = dynamic), but the manifest declares [batch {b}, 3, {}, {}] (NCHW)",
            m.input.tensor, m.input.height, m.input.width
        )));
    }
    let nc = model.num_classes() as i64;
    let outs: Vec<Vec<i64>> = session
        .outputs()
        .iter()
        .map(|o| dims(o.dtype()).unwrap_or_default())
        .collect();
    let plan = match m.output.layout {
        Layout::Yolov8 | Layout::Yolov5 => {
            let shape = if m.output.layout == Layout::Yolov8 {
                YoloShape::V8
            } else {
                YoloShape::V5
            };
            let want = shape.head() as i64 + nc;
            let axis = if shape.channels_first { 1 } else { 2 };
            let found = outs
                .iter()
                .position(|d| d.len() == 3 && (d[axis] == want || d[axis] < 0));
            let Some(index) = found else {
                return Err(err(format!(
                    "layout {:?} with {nc} classes needs an output [batch, {}] with {want} on axis {axis}; the model's outputs are {outs:?}",
                    m.output.layout,
                    if shape.channels_first { "4 + nc, N" } else { "N, 5 + nc" }
                )));
            };
            OutputPlan::Yolo { index, shape }
        }
        Layout::Nanodet => {
            let bins = 4 * (m.output.reg_max as i64 + 1);
            let mut levels = Vec::new();
            for &s in &m.output.strides {
                let cols = m.input.width.div_ceil(s) as usize;
                let rows = m.input.height.div_ceil(s) as usize;
                let n = (cols * rows) as i64;
                let find = |c: i64, skip: Option<usize>| {
                    outs.iter().enumerate().position(|(i, d)| {
                        Some(i) != skip && d.len() == 3 && d[1] == n && d[2] == c
                    })
                };
                let Some(ci) = find(nc, None) else {
                    return Err(err(format!(
                        "nanodet stride {s}: no class-score output of shape [batch, {n}, {nc}]; outputs are {outs:?}"
                    )));
                };
                let Some(ri) = find(bins, Some(ci)) else {
                    return Err(err(format!(
                        "nanodet stride {s}: no box output of shape [batch, {n}, {bins}] (reg_max {}); outputs are {outs:?}",
                        m.output.reg_max
                    )));
                };
                levels.push((
                    NanodetLevel {
                        stride: s,
                        cols,
                        rows,
                    },
                    ci,
                    ri,
                ));
            }
            OutputPlan::Nanodet(levels)
        }
    };
    Ok((input_index, plan))
}

/// One unit of work: a region of one image.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Job {
    /// Index of the image in the caller's list.
    pub image: usize,
    /// Region of that image.
    pub region: Region,
}

/// A model ready to run: session, preprocessing, decoder. Owned by one thread.
pub struct Detector {
    model: Arc<Model>,
    session: Session,
    provider: String,
    plan: OutputPlan,
    pre: Preprocessor,
    opts: RuntimeOptions,
    /// Images per run: the fixed batch, or `max_batch` for dynamic models.
    batch_cap: usize,
    /// Fixed-batch models must always get exactly this many images (unused slots zeroed).
    fixed_batch: Option<usize>,
    /// The reused NCHW input buffer (`batch_cap` slots).
    input: Vec<f32>,
    transforms: Vec<Transform>,
    candidates: Vec<Candidate>,
    jobs: Vec<Job>,
    regions: Vec<Region>,
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detector")
            .field("model", &self.model.name())
            .field("provider", &self.provider)
            .field("batch_cap", &self.batch_cap)
            .finish()
    }
}

impl Detector {
    /// Loads a manifest (verifying the ONNX file) and builds a session.
    pub fn load(manifest_path: &Path, opts: &RuntimeOptions) -> Result<Detector, InferError> {
        Self::from_model(Model::load(manifest_path)?, opts)
    }

    /// Builds a session for an already loaded model and checks its shapes.
    pub fn from_model(model: Arc<Model>, opts: &RuntimeOptions) -> Result<Detector, InferError> {
        let (session, provider) = build_session(&model, opts)?;
        let (_, plan) = check_shapes(&model, &session)?;
        let (batch_cap, fixed_batch) = match model.manifest.input.batch {
            BatchSpec::Dynamic => (opts.max_batch.max(1), None),
            BatchSpec::Fixed(n) => (n, Some(n)),
        };
        let pre = Preprocessor::new(&model.manifest.input);
        let input = vec![0f32; batch_cap * pre.slot_len()];
        info!(
            model = model.name(),
            file = %model.onnx_path.display(),
            provider = %provider,
            batch = batch_cap,
            intra_threads = opts.intra_threads,
            "Model session ready."
        );
        Ok(Detector {
            model,
            session,
            provider,
            plan,
            pre,
            opts: opts.clone(),
            batch_cap,
            fixed_batch,
            input,
            transforms: Vec::with_capacity(batch_cap),
            candidates: Vec::new(),
            jobs: Vec::new(),
            regions: Vec::new(),
        })
    }

    /// The loaded model.
    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// The execution provider that registered (`cpu`, `cuda`, ...).
    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// Images per session run.
    pub fn batch_capacity(&self) -> usize {
        self.batch_cap
    }

    /// Detects objects in each image (whole frame; the manifest's default tiling is not
    /// applied — use [`Detector::detect_tiled`]). Returns one list per image, in frame
    /// pixels, after the score floor and class-wise NMS.
    pub fn detect(&mut self, images: &[ImageView<'_>]) -> Result<Vec<Vec<Detection>>, InferError> {
        self.detect_tiled(images, None)
    }

    /// Like [`Detector::detect`], with tiling (`None` = whole frame only). Tiles of all
    /// images are batched together and merged per image with class-wise NMS.
    pub fn detect_tiled(
        &mut self,
        images: &[ImageView<'_>],
        tile: Option<&TileConfig>,
    ) -> Result<Vec<Vec<Detection>>, InferError> {
        self.detect_zoned(images, tile, None)
    }

    /// Like [`Detector::detect_tiled`], plus zone crops at native resolution (see
    /// [`tiling::ZoneCrops::regions`]; `None` = no zone crops). Every region's boxes are
    /// merged per image with the same class-wise NMS.
    pub fn detect_zoned(
        &mut self,
        images: &[ImageView<'_>],
        tile: Option<&TileConfig>,
        zones: Option<&tiling::ZoneCrops>,
    ) -> Result<Vec<Vec<Detection>>, InferError> {
        let mut jobs = std::mem::take(&mut self.jobs);
        let mut regions = std::mem::take(&mut self.regions);
        jobs.clear();
        let (in_w, in_h) = (
            self.model.manifest.input.width,
            self.model.manifest.input.height,
        );
        for (i, img) in images.iter().enumerate() {
            img.check()?;
            match zones {
                Some(z) => z.regions(img.width, img.height, None, tile, in_w, in_h, &mut regions),
                None => tiling::regions(img.width, img.height, tile, &mut regions),
            }
            jobs.extend(regions.iter().map(|&region| Job { image: i, region }));
        }
        let mut out: Vec<Vec<Detection>> = images.iter().map(|_| Vec::new()).collect();
        let r = self.run_jobs(images, &jobs, &mut out);
        self.jobs = jobs;
        self.regions = regions;
        r?;
        Ok(out)
    }

    /// Runs `jobs` in batches of the model's capacity; appends detections (frame pixels) to
    /// `out[job.image]`, then applies class-wise NMS per image that received jobs.
    pub(crate) fn run_jobs<I: AsImageView>(
        &mut self,
        images: &[I],
        jobs: &[Job],
        out: &mut [Vec<Detection>],
    ) -> Result<(), InferError> {
        for chunk in jobs.chunks(self.batch_cap) {
            self.run_batch(images, chunk, out)?;
        }
        for (i, dets) in out.iter_mut().enumerate() {
            if jobs.iter().any(|j| j.image == i) {
                nms_classwise(dets, self.opts.nms_iou, self.opts.max_detections);
            }
        }
        Ok(())
    }

    fn run_batch<I: AsImageView>(
        &mut self,
        images: &[I],
        chunk: &[Job],
        out: &mut [Vec<Detection>],
    ) -> Result<(), InferError> {
        let slot = self.pre.slot_len();
        let n = self.fixed_batch.unwrap_or(chunk.len());
        self.transforms.clear();
        for (k, job) in chunk.iter().enumerate() {
            let img = images[job.image].image_view();
            let t = self
                .pre
                .fill(img, job.region, &mut self.input[k * slot..(k + 1) * slot])?;
            self.transforms.push(t);
        }
        if chunk.len() < n {
            self.input[chunk.len() * slot..n * slot].fill(0.0);
        }
        let m = &self.model.manifest;
        let name = m.name.as_str();
        let shape = [n, 3, m.input.height as usize, m.input.width as usize];
        let tensor =
            TensorRef::from_array_view((shape, &self.input[..n * slot])).map_err(rt(name))?;
        let outputs = self.session.run(ort::inputs![tensor]).map_err(rt(name))?;
        let nc = self.model.num_classes();
        let floor = self.opts.score_floor;
        let shape_err = |message: String| InferError::Shape {
            model: name.to_string(),
            message,
        };
        match &self.plan {
            OutputPlan::Yolo { index, shape } => {
                let (oshape, data) = outputs[*index]
                    .try_extract_tensor::<f32>()
                    .map_err(rt(name))?;
                let d: Vec<i64> = oshape.iter().copied().collect();
                let cols = shape.head() + nc;
                let anchors = if shape.channels_first {
                    d.get(2)
                } else {
                    d.get(1)
                };
                let anchors = anchors.copied().unwrap_or(0).max(0) as usize;
                if d.len() != 3 || d[0] as usize != n || anchors * cols * n != data.len() {
                    return Err(shape_err(format!("output has shape {d:?}, expected a batch of {n} with {cols} values per anchor")));
                }
                let per = anchors * cols;
                for (k, job) in chunk.iter().enumerate() {
                    self.candidates.clear();
                    decode_yolo(
                        &data[k * per..(k + 1) * per],
                        anchors,
                        nc,
                        *shape,
                        floor,
                        &mut self.candidates,
                    );
                    push_mapped(
                        &self.candidates,
                        &self.transforms[k],
                        &self.model.class_names,
                        &mut out[job.image],
                    );
                }
            }
            OutputPlan::Nanodet(levels) => {
                let bins = m.output.reg_max as usize + 1;
                for (k, job) in chunk.iter().enumerate() {
                    self.candidates.clear();
                    for (level, ci, ri) in levels {
                        let (_, cls) =
                            outputs[*ci].try_extract_tensor::<f32>().map_err(rt(name))?;
                        let (_, reg) =
                            outputs[*ri].try_extract_tensor::<f32>().map_err(rt(name))?;
                        let cells = level.cols * level.rows;
                        if cls.len() != n * cells * nc || reg.len() != n * cells * 4 * bins {
                            return Err(shape_err(format!(
                                "stride {} outputs have {} and {} values, expected {} and {}",
                                level.stride,
                                cls.len(),
                                reg.len(),
                                n * cells * nc,
                                n * cells * 4 * bins
                            )));
                        }
                        decode_nanodet(
                            &cls[k * cells * nc..(k + 1) * cells * nc],
                            &reg[k * cells * 4 * bins..(k + 1) * cells * 4 * bins],
                            *level,
                            nc,
                            bins - 1,
                            m.output.center_offset,
                            floor,
                            &mut self.candidates,
                        );
                    }
                    push_mapped(
                        &self.candidates,
                        &self.transforms[k],
                        &self.model.class_names,
                        &mut out[job.image],
                    );
                }
            }
        }
        Ok(())
    }
}

/// Maps candidates back to frame pixels and appends them as detections (empty boxes, e.g.
/// entirely in the letterbox padding, are dropped).
fn push_mapped(cands: &[Candidate], t: &Transform, names: &[Arc<str>], out: &mut Vec<Detection>) {
    for c in cands {
        let bbox = t.box_back(&c.bbox);
        if bbox.area() <= 0.0 {
            continue;
        }
        let class = names
            .get(c.class_id as usize)
            .cloned()
            .unwrap_or_else(|| Arc::from(c.class_id.to_string()));
        out.push(Detection {
            class,
            class_id: c.class_id,
            score: c.score,
            bbox,
            role: None,
        });
    }
}
