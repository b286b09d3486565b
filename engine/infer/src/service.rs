//! [`InferenceService`]: worker threads between the [`FrameHub`] and the rules channel.
//!
//! Each worker owns one [`Detector`] (one ONNX Runtime session) per configured model and
//! loops: take up to `max_batch` frames from the hub (round-robin across cameras, the
//! freshest frame per camera — the hub counts the stale ones it dropped), waiting at most
//! `max_wait_ms` for the batch to fill; skip frames taken while a PTZ camera moves
//! (counted); split every remaining frame into jobs (frame × each model its camera runs ×
//! tile or zone crop); run each model's jobs in batches (tiles of all cameras together; fixed-batch-1
//! models get them one after another); then send, per frame, one
//! `StageMsg::ImageStats` and one `StageMsg::Frame(FrameResult)` per model — empty results
//! included — with a blocking send: from inference on, nothing is dropped silently.
//!
//! With several workers, per-camera order is kept by a send lock: a result older than one
//! already sent for its camera is shed, counted (`reordered`) and logged at debug level.
//!
//! **Shadow and hot swap.** Each `[models.NAME]` is a slot holding the live model and, at
//! most, one shadow (a candidate). A [`ModelSwitch`] (cloneable) changes either at run
//! time: it loads and verifies the manifest and builds a session in the caller's thread
//! (so a bad model is refused before anything changes), then bumps a generation counter;
//! each worker compares it before its next frame group and rebuilds only the sessions whose
//! model changed. The shadow runs on the same jobs (frames, tiles, zone crops) right after
//! the live model, and its results go, with `try_send`, to a separate channel (a separate
//! rules stage in the binary), labelled with the live model's name so the same rules
//! apply. Shadow work is dropped first: a group's shadow run is skipped when the hub has
//! dropped a stale live frame since the worker's previous group (the worker is behind), and
//! a shadow result is dropped when its channel is full; both counted per model
//! ([`ShadowStats`]).
//!
//! The workers observe [`InferHistograms`] directly (relaxed atomics, nothing allocated):
//! per model the session time of a group's jobs and the size of every session run, and
//! per group the time from taking the frames to the last result sent.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use lookout_config::inference::TileConfig;
use lookout_config::Config;
use lookout_core::metrics::{Histogram, BATCH_BUCKETS};
use lookout_core::msg::ImageStats;
use lookout_core::{CameraId, Detection, Frame, FrameHub, FrameResult, StageMsg};
use serde::Serialize;
use tracing::{debug, error, info, warn};

use crate::detector::{Detector, Job, RuntimeOptions};
use crate::manifest::Model;
use crate::preprocess::Region;
use crate::roles::RolePalette;
use crate::{tiling, InferError};

/// A configured model, shared by all workers.
#[derive(Debug, Clone)]
struct ModelEntry {
    /// `[models.NAME]` key: what cameras list and what `FrameResult.model` carries.
    name: Arc<str>,
    model: Arc<Model>,
    /// `[models.NAME].tile`, else the manifest's `[tile]`.
    tile: Option<TileConfig>,
}

/// One model a camera runs.
#[derive(Debug, Clone)]
struct ModelPlan {
    /// Index into the model list.
    model: usize,
    /// The tiling to use.
    tile: Option<TileConfig>,
    /// The camera's zone crops, for a model that detects `rules.person_class`.
    zones: Option<Arc<tiling::ZoneCrops>>,
}

/// What each camera runs, resolved once at start.
#[derive(Debug, Clone, Default)]
struct CameraPlan {
    /// The models, in the camera's order.
    models: Vec<ModelPlan>,
}

/// The live model of a `[models.NAME]` and its shadow, as the workers should run them.
#[derive(Debug, Clone)]
struct Slot {
    live: Arc<Model>,
    shadow: Option<Arc<Model>>,
}

/// Shadow counters of one model.
#[derive(Debug, Default)]
struct ShadowCounters {
    frames: AtomicU64,
    dropped_saturated: AtomicU64,
    dropped_queue_full: AtomicU64,
}

/// What a model's shadow did (running totals since start).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ShadowStats {
    /// Frame results of the shadow sent to its rules stage.
    pub frames: u64,
    /// Frames the shadow did not analyse because the worker was behind (the hub had
    /// dropped a stale live frame since the worker's previous group).
    pub dropped_saturated: u64,
    /// Shadow results dropped because the shadow rules stage's queue was full.
    pub dropped_queue_full: u64,
}

/// Counters per camera.
#[derive(Debug, Default)]
struct CameraCounters {
    analysed: AtomicU64,
    skipped_moving: AtomicU64,
    reordered: AtomicU64,
}

/// The histograms the workers observe into, for `/metrics`.
#[derive(Debug, Clone)]
pub struct InferHistograms {
    /// Per model (`[models.NAME]` key, in config order): seconds the model's session spent
    /// on one frame group's jobs (every batch of them).
    pub model_latency: Vec<(Arc<str>, Arc<Histogram>)>,
    /// Per model: images per session run.
    pub batch_size: Vec<(Arc<str>, Arc<Histogram>)>,
    /// Seconds from a frame group taken from the hub to its last result sent.
    pub group_latency: Arc<Histogram>,
}

/// Size of the batch-latency ring used for the median.
const LATENCY_RING: usize = 1024;

#[derive(Debug)]
struct WorkerStats {
    /// `batch_hist[n]`: session runs with `n` images (index 0 unused).
    batch_hist: Vec<u64>,
    /// Recent per-frame-group latencies (take → results sent), milliseconds.
    latencies_ms: Vec<f32>,
    next: usize,
    groups: u64,
    busy: Duration,
}

struct Shared {
    hub: Arc<FrameHub>,
    out: Sender<StageMsg>,
    /// Whether shadow results have somewhere to go (each worker owns a sender, so the
    /// shadow channel closes when the workers exit).
    shadow_enabled: bool,
    models: Vec<ModelEntry>,
    /// What each model slot should run (index = model index); workers follow it when
    /// `generation` changes.
    slots: Mutex<Vec<Slot>>,
    generation: AtomicU64,
    shadow: Vec<ShadowCounters>,
    opts: RuntimeOptions,
    /// What each camera runs and its counters; changed when a camera starts or stops live
    /// ([`ModelSwitch::set_camera`]). Workers hold the read lock for one frame group.
    table: RwLock<CameraTable>,
    /// Last sequence number sent per camera; locked across the sends of one frame so that
    /// per-camera order holds with several workers.
    sent: Mutex<HashMap<CameraId, u64>>,
    stats: Mutex<WorkerStats>,
    max_batch: usize,
    max_wait: Duration,
    started: Instant,
    /// Observed by the workers; index `i` of the per-model lists is model `i`.
    hist: InferHistograms,
    /// `[[rules.roles]]`, measured on every `rules.person_class` detection.
    palette: Option<RolePalette>,
    /// `rules.person_class`.
    person_class: Arc<str>,
}

/// The cameras inference knows, with their plans and counters.
#[derive(Default)]
struct CameraTable {
    cameras: Vec<CameraId>,
    plans: HashMap<CameraId, Arc<CameraPlan>>,
    counters: HashMap<CameraId, Arc<CameraCounters>>,
}

impl CameraTable {
    fn set(&mut self, cam: &CameraId, plan: CameraPlan) {
        if !self.cameras.contains(cam) {
            self.cameras.push(cam.clone());
        }
        self.plans.insert(cam.clone(), Arc::new(plan));
        self.counters.entry(cam.clone()).or_default();
    }

    fn remove(&mut self, cam: &str) -> bool {
        self.cameras.retain(|c| c.as_ref() != cam);
        self.counters.remove(cam);
        self.plans.remove(cam).is_some()
    }
}

/// What camera `cam` runs under `cfg` (its `models`, tiles and zone crops).
fn camera_plan(
    cfg: &Config,
    cam: &CameraId,
    models: &[ModelEntry],
) -> Result<CameraPlan, InferError> {
    let mut plan = CameraPlan::default();
    let Some(cc) = cfg.camera(cam) else {
        warn!(camera = %cam, "Camera is in the frame hub but not in the configuration; it runs no model.");
        return Ok(plan);
    };
    for m in &cc.models {
        let Some(i) = models.iter().position(|e| e.name.as_ref() == m.as_str()) else {
            return Err(InferError::Config(format!(
                "camera {cam:?} lists model {m:?}, which is not a [models.NAME] entry"
            )));
        };
        let tile = cfg
            .inference
            .camera_tiles
            .get(cam.as_ref())
            .cloned()
            .or_else(|| models[i].tile.clone());
        let zones = cfg
            .inference
            .camera_zones
            .get(cam.as_ref())
            .filter(|_| {
                models[i]
                    .model
                    .class_index(&cfg.rules.person_class)
                    .is_some()
            })
            .map(|z| Arc::new(tiling::ZoneCrops::from_config(z, cam, &cfg.rules)));
        if let Some(z) = &zones {
            info!(camera = %cam, model = %models[i].name, zones = z.crops.len(), full_frame = z.full_frame, "Zone crops at native resolution.");
        }
        plan.models.push(ModelPlan {
            model: i,
            tile,
            zones,
        });
    }
    Ok(plan)
}

/// Per-camera statistics.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CameraInferStats {
    /// Frames analysed (results sent).
    pub analysed: u64,
    /// Frames skipped because the PTZ camera was moving.
    pub skipped_moving: u64,
    /// Frames dropped at the hub because a fresher one replaced them before inference.
    pub dropped_stale: u64,
    /// Results shed because a newer frame of the camera had already been sent (several
    /// workers only).
    pub reordered: u64,
    /// Zone crops run on each frame, over the camera's models (its current plan).
    pub zone_crops: u32,
}

/// A snapshot of the service's statistics (for metrics, the UI, tests and benches).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct InferStats {
    /// `batch_histogram[n]` = session runs with `n` images (index 0 unused).
    pub batch_histogram: Vec<u64>,
    /// Frame groups processed (one `take` from the hub each).
    pub groups: u64,
    /// Median latency of a group (take → results sent), milliseconds.
    pub latency_median_ms: f32,
    /// 95th percentile of the same.
    pub latency_p95_ms: f32,
    /// Share of wall time the workers spent processing (sum over workers).
    pub busy_fraction: f32,
    /// Frames analysed per second since start.
    pub frames_per_second: f32,
    /// Per camera.
    pub cameras: std::collections::BTreeMap<String, CameraInferStats>,
    /// Per model (`[models.NAME]` key) that runs or ran a shadow.
    pub shadow: std::collections::BTreeMap<String, ShadowStats>,
}

/// The running inference stage.
pub struct InferenceService {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    providers: Vec<String>,
}

impl std::fmt::Debug for InferenceService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InferenceService")
            .field("workers", &self.workers.len())
            .field("providers", &self.providers)
            .finish()
    }
}

impl InferenceService {
    /// Loads every `[models.NAME]` manifest (verifying files and shapes), builds one session
    /// per model in each of `inference.workers` threads, and starts them. Workers exit when
    /// the hub is closed and drained, or when the results channel is disconnected.
    pub fn start(
        cfg: &Config,
        hub: Arc<FrameHub>,
        out: Sender<StageMsg>,
    ) -> Result<InferenceService, InferError> {
        Self::start_with_shadow(cfg, hub, out, None)
    }

    /// [`InferenceService::start`] with a channel for shadow results: every
    /// `[models.NAME] shadow` manifest is loaded too (same classes as the live model), and
    /// [`ModelSwitch::set_shadow`] can start one at run time. Without the channel a
    /// configured shadow is an error.
    pub fn start_with_shadow(
        cfg: &Config,
        hub: Arc<FrameHub>,
        out: Sender<StageMsg>,
        shadow_out: Option<Sender<StageMsg>>,
    ) -> Result<InferenceService, InferError> {
        let opts = RuntimeOptions::from_config(&cfg.inference);
        let mut models = Vec::new();
        let mut slots = Vec::new();
        for (name, r) in &cfg.models {
            let path = cfg.resolve_path(r.manifest.value());
            let model = Model::load(&path)?;
            let shadow = match &r.shadow {
                Some(sp) => {
                    if shadow_out.is_none() {
                        return Err(InferError::Config(format!(
                            "[models.{name}] shadow: this process runs no shadow rules stage"
                        )));
                    }
                    let sm = Model::load(&cfg.resolve_path(sp.value()))?;
                    same_classes(&model, &sm)?;
                    info!(model = %name, shadow = %sm.manifest_path.display(), sha256 = %sm.manifest.sha256, "Shadow model configured.");
                    Some(sm)
                }
                None => None,
            };
            slots.push(Slot {
                live: model.clone(),
                shadow,
            });
            models.push(ModelEntry {
                name: Arc::from(name.as_str()),
                tile: r.tile.clone().or_else(|| model.manifest.tile.clone()),
                model,
            });
        }
        let mut table = CameraTable::default();
        for cam in hub.cameras() {
            let plan = camera_plan(cfg, &cam, &models)?;
            table.set(&cam, plan);
        }
        let workers_n = cfg.inference.workers.max(1);
        // Build all sessions before starting any thread, so a bad model fails `start`.
        let mut per_worker = Vec::with_capacity(workers_n);
        let mut providers = Vec::new();
        for _ in 0..workers_n {
            let mut dets = Vec::with_capacity(models.len());
            let mut shadows = Vec::with_capacity(models.len());
            for (m, slot) in models.iter().zip(&slots) {
                let d = Detector::from_model(m.model.clone(), &opts)?;
                providers.push(format!("{}:{}", m.name, d.provider()));
                dets.push(d);
                shadows.push(match &slot.shadow {
                    Some(sm) => Some(Detector::from_model(sm.clone(), &opts)?),
                    None => None,
                });
            }
            per_worker.push((dets, shadows));
        }
        providers.dedup();
        let max_batch = opts.max_batch.max(1);
        let hist = InferHistograms {
            model_latency: models
                .iter()
                .map(|m| (m.name.clone(), Arc::new(Histogram::latency())))
                .collect(),
            batch_size: models
                .iter()
                .map(|m| (m.name.clone(), Arc::new(Histogram::new(BATCH_BUCKETS))))
                .collect(),
            group_latency: Arc::new(Histogram::latency()),
        };
        let shared = Arc::new(Shared {
            table: RwLock::new(table),
            sent: Mutex::new(HashMap::new()),
            stats: Mutex::new(WorkerStats {
                batch_hist: vec![
                    0;
                    max_batch.max(per_worker.first().map_or(1, |(d, _)| {
                        d.iter().map(|x| x.batch_capacity()).max().unwrap_or(1)
                    })) + 1
                ],
                latencies_ms: Vec::with_capacity(LATENCY_RING),
                next: 0,
                groups: 0,
                busy: Duration::ZERO,
            }),
            hub,
            out,
            shadow_enabled: shadow_out.is_some(),
            shadow: models.iter().map(|_| ShadowCounters::default()).collect(),
            slots: Mutex::new(slots),
            generation: AtomicU64::new(0),
            opts,
            models,
            max_batch,
            max_wait: Duration::from_millis(cfg.inference.max_wait_ms),
            started: Instant::now(),
            hist,
            palette: RolePalette::from_config(&cfg.rules),
            person_class: Arc::from(cfg.rules.person_class.as_str()),
        });
        let mut workers = Vec::with_capacity(workers_n);
        for (w, (dets, shadows)) in per_worker.into_iter().enumerate() {
            let sh = shared.clone();
            let shadow_tx = shadow_out.clone();
            let h = std::thread::Builder::new()
                .name(format!("infer-{w}"))
                .spawn(move || worker(w, sh, dets, shadows, shadow_tx))
                .map_err(|e| InferError::Spawn(e.to_string()))?;
            workers.push(h);
        }
        info!(workers = workers_n, models = shared.models.len(), providers = ?providers, "Inference started.");
        Ok(InferenceService {
            shared,
            workers,
            providers,
        })
    }

    /// The handle that swaps live and shadow models at run time.
    pub fn switch(&self) -> ModelSwitch {
        ModelSwitch {
            shared: Arc::downgrade(&self.shared),
        }
    }

    /// `model:provider` pairs, the execution provider each session registered.
    pub fn providers(&self) -> &[String] {
        &self.providers
    }

    /// The histograms the workers observe into (register them with the metrics registry).
    pub fn histograms(&self) -> InferHistograms {
        self.shared.hist.clone()
    }

    /// A snapshot of the statistics.
    pub fn stats(&self) -> InferStats {
        let sh = &self.shared;
        let st = sh.stats.lock().unwrap_or_else(|e| e.into_inner());
        let mut lat = st.latencies_ms.clone();
        lat.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        let pct = |p: f32| -> f32 {
            if lat.is_empty() {
                0.0
            } else {
                lat[((lat.len() - 1) as f32 * p).round() as usize]
            }
        };
        let elapsed = sh.started.elapsed().as_secs_f32().max(1e-6);
        let mut cameras = std::collections::BTreeMap::new();
        let mut analysed = 0;
        let table = sh.table.read().unwrap_or_else(|e| e.into_inner());
        for cam in &table.cameras {
            let Some(c) = table.counters.get(cam) else {
                continue;
            };
            let hub = sh.hub.stats(cam).unwrap_or_default();
            let a = c.analysed.load(Ordering::Relaxed);
            analysed += a;
            cameras.insert(
                cam.to_string(),
                CameraInferStats {
                    analysed: a,
                    skipped_moving: c.skipped_moving.load(Ordering::Relaxed),
                    dropped_stale: hub.dropped,
                    reordered: c.reordered.load(Ordering::Relaxed),
                    zone_crops: table.plans.get(cam).map_or(0, |p| {
                        p.models
                            .iter()
                            .filter_map(|m| m.zones.as_ref())
                            .map(|z| z.crops.len() as u32)
                            .sum()
                    }),
                },
            );
        }
        let slots = sh.slots.lock().unwrap_or_else(|e| e.into_inner());
        let shadow = sh
            .models
            .iter()
            .zip(&sh.shadow)
            .zip(slots.iter())
            .filter_map(|((m, c), slot)| {
                let s = ShadowStats {
                    frames: c.frames.load(Ordering::Relaxed),
                    dropped_saturated: c.dropped_saturated.load(Ordering::Relaxed),
                    dropped_queue_full: c.dropped_queue_full.load(Ordering::Relaxed),
                };
                (slot.shadow.is_some() || s != ShadowStats::default())
                    .then(|| (m.name.to_string(), s))
            })
            .collect();
        drop(slots);
        InferStats {
            shadow,
            batch_histogram: st.batch_hist.clone(),
            groups: st.groups,
            latency_median_ms: pct(0.5),
            latency_p95_ms: pct(0.95),
            busy_fraction: st.busy.as_secs_f32() / elapsed,
            frames_per_second: analysed as f32 / elapsed,
            cameras,
        }
    }

    /// Waits for the workers to finish (close the hub first: they exit once it is closed
    /// and drained) and returns the final statistics. The results sender is dropped here,
    /// so the rules stage sees the channel close after the last result.
    pub fn join(mut self) -> InferStats {
        for h in self.workers.drain(..) {
            if h.join().is_err() {
                error!("An inference worker panicked.");
            }
        }
        let stats = self.stats();
        info!(
            frames_per_second = stats.frames_per_second,
            frames_analysed = stats.cameras.values().map(|c| c.analysed).sum::<u64>(),
            busy_fraction = stats.busy_fraction,
            "Inference stopped."
        );
        stats
    }
}

/// Reused per-worker buffers: nothing here is reallocated once warmed up, except the
/// detection lists that leave in `FrameResult`s.
struct Scratch {
    frames: Vec<Frame>,
    live: Vec<usize>,
    jobs: Vec<Job>,
    regions: Vec<Region>,
    /// `results[model][frame]`.
    results: Vec<Vec<Vec<Detection>>>,
    /// The shadows' results, same layout.
    shadow_results: Vec<Vec<Vec<Detection>>>,
    /// Whether model `i`'s shadow ran on this group.
    shadow_ran: Vec<bool>,
    /// The slots' generation this worker's sessions follow.
    generation: u64,
    /// The hub's stale drops (all cameras) at this worker's previous group.
    hub_dropped: u64,
    /// Where this worker sends shadow results.
    shadow_out: Option<Sender<StageMsg>>,
}

/// Rebuilds the sessions whose model a [`ModelSwitch`] changed since the worker last
/// looked. A session that fails to build keeps the previous one (logged); the switch built
/// one already, so this is rare (memory, a file removed meanwhile).
fn follow_slots(
    w: usize,
    sh: &Shared,
    dets: &mut [Detector],
    shadows: &mut [Option<Detector>],
    seen: &mut u64,
) {
    let g = sh.generation.load(Ordering::Acquire);
    if g == *seen {
        return;
    }
    *seen = g;
    let slots = sh.slots.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for (i, slot) in slots.iter().enumerate() {
        let name = &sh.models[i].name;
        if let Some(d) = dets.get_mut(i) {
            if !Arc::ptr_eq(d.model(), &slot.live) {
                match Detector::from_model(slot.live.clone(), &sh.opts) {
                    Ok(nd) => {
                        info!(worker = w, model = %name, sha256 = %slot.live.manifest.sha256, manifest = %slot.live.manifest_path.display(), "Live model swapped.");
                        *d = nd;
                    }
                    Err(e) => {
                        error!(worker = w, model = %name, error = %e, "Cannot build the new live model's session; keeping the previous one.")
                    }
                }
            }
        }
        let Some(cur) = shadows.get_mut(i) else {
            continue;
        };
        match (&slot.shadow, cur.as_ref()) {
            (None, Some(_)) => {
                info!(worker = w, model = %name, "Shadow model stopped.");
                *cur = None;
            }
            (Some(m), c) if c.is_none_or(|d| !Arc::ptr_eq(d.model(), m)) => {
                match Detector::from_model(m.clone(), &sh.opts) {
                    Ok(nd) => {
                        info!(worker = w, model = %name, sha256 = %m.manifest.sha256, manifest = %m.manifest_path.display(), "Shadow model running.");
                        *cur = Some(nd);
                    }
                    Err(e) => {
                        error!(worker = w, model = %name, error = %e, "Cannot build the shadow model's session.")
                    }
                }
            }
            _ => {}
        }
    }
}

/// The candidate must detect the same classes, in the same order, as the live model: the
/// rules name classes, and a shadow or promoted model is judged by the same rules.
fn same_classes(live: &Model, candidate: &Model) -> Result<(), InferError> {
    if live.class_names == candidate.class_names {
        Ok(())
    } else {
        Err(InferError::ManifestInvalid {
            path: candidate.manifest_path.clone(),
            message: format!(
                "classes {:?} differ from the live model's {:?} ({})",
                candidate.manifest.classes.names,
                live.manifest.classes.names,
                live.manifest_path.display()
            ),
        })
    }
}

/// One model slot as it runs: the live model and its shadow.
#[derive(Debug, Clone)]
pub struct SlotStatus {
    /// `[models.NAME]` key.
    pub name: String,
    /// The live model.
    pub live: Arc<Model>,
    /// The shadow, if one runs.
    pub shadow: Option<Arc<Model>>,
    /// What the slot's shadows did since start.
    pub shadow_stats: ShadowStats,
}

/// Swaps a model slot's live model or shadow at run time (cheap to clone, any thread).
///
/// It holds the service's state weakly: the state owns the results channel's sender, and
/// the switch lives in the shadow rules thread and the web server, so a strong reference
/// would keep the live results channel open after the workers stop and the rules stage
/// would never see its input close (shutdown would wait for its deadline). Once the
/// service has stopped, every change fails with "inference has stopped".
#[derive(Clone)]
pub struct ModelSwitch {
    shared: std::sync::Weak<Shared>,
}

impl std::fmt::Debug for ModelSwitch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelSwitch").finish_non_exhaustive()
    }
}

impl ModelSwitch {
    fn shared(&self) -> Result<Arc<Shared>, InferError> {
        self.shared
            .upgrade()
            .ok_or_else(|| InferError::Config("inference has stopped".into()))
    }

    /// Makes inference run camera `cam` as `cfg` says (a camera started or changed live;
    /// its frames use the new plan from the next frame group on). `restarted`: the camera's
    /// frame numbers start again, so its last-sent number is forgotten.
    pub fn set_camera(
        &self,
        cfg: &Config,
        cam: &CameraId,
        restarted: bool,
    ) -> Result<(), InferError> {
        let sh = self.shared()?;
        let plan = camera_plan(cfg, cam, &sh.models)?;
        sh.table
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .set(cam, plan);
        if restarted {
            sh.sent
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(cam);
        }
        Ok(())
    }

    /// Forgets camera `cam` (stopped live). Returns whether it was known.
    pub fn remove_camera(&self, cam: &str) -> Result<bool, InferError> {
        let sh = self.shared()?;
        sh.sent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(cam);
        let known = sh
            .table
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(cam);
        Ok(known)
    }

    fn index(sh: &Shared, name: &str) -> Result<usize, InferError> {
        sh.models
            .iter()
            .position(|m| m.name.as_ref() == name)
            .ok_or_else(|| InferError::Config(format!("no model slot [models.{name}]")))
    }

    /// Every slot, in config order.
    pub fn status(&self) -> Vec<SlotStatus> {
        let Ok(sh) = self.shared() else {
            return Vec::new();
        };
        let slots = sh.slots.lock().unwrap_or_else(|e| e.into_inner());
        sh.models
            .iter()
            .zip(slots.iter())
            .zip(&sh.shadow)
            .map(|((m, s), c)| SlotStatus {
                name: m.name.to_string(),
                live: s.live.clone(),
                shadow: s.shadow.clone(),
                shadow_stats: ShadowStats {
                    frames: c.frames.load(Ordering::Relaxed),
                    dropped_saturated: c.dropped_saturated.load(Ordering::Relaxed),
                    dropped_queue_full: c.dropped_queue_full.load(Ordering::Relaxed),
                },
            })
            .collect()
    }

    /// Loads `manifest` (its ONNX file's sha256 verified), checks it has slot `name`'s
    /// classes and builds one session with the engine's runtime options: what a model must
    /// pass before it may run in the slot. Slow (hashing, session build): call it off any
    /// async executor.
    pub fn check(&self, name: &str, manifest: &std::path::Path) -> Result<Arc<Model>, InferError> {
        let sh = self.shared()?;
        let i = Self::index(&sh, name)?;
        let live = sh.models[i].model.clone();
        let m = Model::load(manifest)?;
        same_classes(&live, &m)?;
        Detector::from_model(m.clone(), &sh.opts)?;
        Ok(m)
    }

    /// Makes `model` (from [`ModelSwitch::check`]) the live model of slot `name`; the
    /// workers swap their sessions before their next frame group. Returns the previous one.
    pub fn set_live(&self, name: &str, model: Arc<Model>) -> Result<Arc<Model>, InferError> {
        let sh = self.shared()?;
        let i = Self::index(&sh, name)?;
        let mut slots = sh.slots.lock().unwrap_or_else(|e| e.into_inner());
        let prev = std::mem::replace(&mut slots[i].live, model);
        sh.generation.fetch_add(1, Ordering::Release);
        Ok(prev)
    }

    /// Starts (`Some`, from [`ModelSwitch::check`]), replaces or stops (`None`) slot
    /// `name`'s shadow. Returns the previous one.
    pub fn set_shadow(
        &self,
        name: &str,
        model: Option<Arc<Model>>,
    ) -> Result<Option<Arc<Model>>, InferError> {
        let sh = self.shared()?;
        let i = Self::index(&sh, name)?;
        if model.is_some() && !sh.shadow_enabled {
            return Err(InferError::Config(
                "this process runs no shadow rules stage".into(),
            ));
        }
        let mut slots = sh.slots.lock().unwrap_or_else(|e| e.into_inner());
        let prev = std::mem::replace(&mut slots[i].shadow, model);
        sh.generation.fetch_add(1, Ordering::Release);
        Ok(prev)
    }
}

fn worker(
    w: usize,
    sh: Arc<Shared>,
    mut dets: Vec<Detector>,
    mut shadows: Vec<Option<Detector>>,
    shadow_out: Option<Sender<StageMsg>>,
) {
    let n_models = sh.models.len();
    let mut s = Scratch {
        frames: Vec::with_capacity(sh.max_batch),
        live: Vec::with_capacity(sh.max_batch),
        jobs: Vec::new(),
        regions: Vec::new(),
        results: (0..n_models).map(|_| Vec::new()).collect(),
        shadow_results: (0..n_models).map(|_| Vec::new()).collect(),
        shadow_ran: vec![false; n_models],
        generation: 0,
        hub_dropped: 0,
        shadow_out,
    };
    let idle = Duration::from_millis(200);
    loop {
        s.frames.clear();
        if !sh.hub.take(sh.max_batch, idle, &mut s.frames) {
            break;
        }
        if s.frames.is_empty() {
            continue;
        }
        // Let the batch fill up to max_batch for at most max_wait.
        let deadline = Instant::now() + sh.max_wait;
        while s.frames.len() < sh.max_batch {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let before = s.frames.len();
            if !sh
                .hub
                .take(sh.max_batch - before, deadline - now, &mut s.frames)
                || s.frames.len() == before
            {
                break;
            }
        }
        follow_slots(w, &sh, &mut dets, &mut shadows, &mut s.generation);
        let t0 = Instant::now();
        let mut hist = [0u64; 65];
        match process(&sh, &mut dets, &mut shadows, &mut s, &mut hist) {
            Ok(true) => {}
            Ok(false) => {
                info!(
                    worker = w,
                    "Results channel closed; inference worker stops."
                );
                return;
            }
            Err(e) => {
                error!(worker = w, error = %e, frames = s.frames.len(), "Inference failed for a batch; its frames are lost.");
            }
        }
        let dt = t0.elapsed();
        sh.hist.group_latency.observe_duration(dt);
        let mut st = sh.stats.lock().unwrap_or_else(|e| e.into_inner());
        for (n, c) in hist.iter().enumerate() {
            if *c > 0 {
                if n >= st.batch_hist.len() {
                    st.batch_hist.resize(n + 1, 0);
                }
                st.batch_hist[n] += c;
            }
        }
        let ms = dt.as_secs_f32() * 1000.0;
        if st.latencies_ms.len() < LATENCY_RING {
            st.latencies_ms.push(ms);
        } else {
            let i = st.next;
            st.latencies_ms[i] = ms;
        }
        st.next = (st.next + 1) % LATENCY_RING;
        st.groups += 1;
        st.busy += dt;
    }
    debug!(
        worker = w,
        "Frame hub closed and drained; inference worker stops."
    );
}

/// Processes one group of frames. Returns `Ok(false)` when the results channel is closed.
fn process(
    sh: &Shared,
    dets: &mut [Detector],
    shadows: &mut [Option<Detector>],
    s: &mut Scratch,
    hist: &mut [u64; 65],
) -> Result<bool, InferError> {
    // Behind: the hub replaced a live frame since this worker's previous group. Shadow
    // work is dropped first.
    let dropped = sh.hub.dropped_total();
    let behind = dropped > s.hub_dropped;
    s.hub_dropped = dropped;
    // The cameras' plans, for this group (a camera changed live takes effect next group).
    let table = sh.table.read().unwrap_or_else(|e| e.into_inner());
    // Skip moving PTZ frames.
    s.live.clear();
    for (i, f) in s.frames.iter().enumerate() {
        if f.is_moving() {
            if let Some(c) = table.counters.get(&f.camera) {
                c.skipped_moving.fetch_add(1, Ordering::Relaxed);
            }
            debug!(camera = %f.camera, seq = f.seq, "Frame skipped: PTZ camera moving.");
        } else {
            s.live.push(i);
        }
    }
    for (mi, det) in dets.iter_mut().enumerate() {
        let res = &mut s.results[mi];
        res.clear();
        res.resize_with(s.frames.len(), Vec::new);
        s.shadow_ran[mi] = false;
        s.jobs.clear();
        for &fi in &s.live {
            let f = &s.frames[fi];
            let Some(plan) = table.plans.get(&f.camera) else {
                continue;
            };
            let Some(mp) = plan.models.iter().find(|p| p.model == mi) else {
                continue;
            };
            match &mp.zones {
                Some(z) => {
                    let input = &det.model().manifest.input;
                    z.regions(
                        f.width,
                        f.height,
                        f.preset().map(|p| p.as_ref()),
                        mp.tile.as_ref(),
                        input.width,
                        input.height,
                        &mut s.regions,
                    )
                }
                None => tiling::regions(f.width, f.height, mp.tile.as_ref(), &mut s.regions),
            }
            s.jobs
                .extend(s.regions.iter().map(|&region| Job { image: fi, region }));
        }
        if s.jobs.is_empty() {
            continue;
        }
        let cap = det.batch_capacity();
        for chunk in s.jobs.chunks(cap) {
            let n = chunk.len().min(64);
            hist[n] += 1;
            sh.hist.batch_size[mi].1.observe(chunk.len() as f64);
        }
        let t = Instant::now();
        det.run_jobs(&s.frames, &s.jobs, res)?;
        sh.hist.model_latency[mi].1.observe_duration(t.elapsed());
        // The shadow: same jobs, right after the live model.
        if let Some(Some(shadow)) = shadows.get_mut(mi) {
            // Frames in this model's jobs (a frame's jobs are consecutive).
            let mut n = 0u64;
            let mut last = usize::MAX;
            for j in &s.jobs {
                if j.image != last {
                    n += 1;
                    last = j.image;
                }
            }
            if behind {
                sh.shadow[mi]
                    .dropped_saturated
                    .fetch_add(n, Ordering::Relaxed);
            } else {
                let sres = &mut s.shadow_results[mi];
                sres.clear();
                sres.resize_with(s.frames.len(), Vec::new);
                match shadow.run_jobs(&s.frames, &s.jobs, sres) {
                    Ok(()) => s.shadow_ran[mi] = true,
                    Err(e) => {
                        sh.shadow[mi]
                            .dropped_saturated
                            .fetch_add(n, Ordering::Relaxed);
                        warn!(model = %sh.models[mi].name, error = %e, "The shadow model failed on a group; its frames are not analysed.");
                    }
                }
            }
        }
    }
    // Send, per frame: image statistics, then one result per model the camera runs.
    for &fi in &s.live {
        let f = &s.frames[fi];
        let stats = ImageStats::compute(f);
        let plan = table.plans.get(&f.camera);
        let mut sent = sh.sent.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(&last) = sent.get(&f.camera) {
            if f.seq <= last {
                if let Some(c) = table.counters.get(&f.camera) {
                    c.reordered.fetch_add(1, Ordering::Relaxed);
                }
                debug!(camera = %f.camera, seq = f.seq, last, "Result shed: a newer frame of this camera was already sent.");
                continue;
            }
        }
        sent.insert(f.camera.clone(), f.seq);
        if sh.out.send(StageMsg::ImageStats(stats)).is_err() {
            return Ok(false);
        }
        if let Some(plan) = plan {
            for mp in &plan.models {
                let mi = &mp.model;
                let mut detections = std::mem::take(&mut s.results[*mi][fi]);
                if let Some(palette) = &sh.palette {
                    // Roles from the person's colours, on the frame's own pixels.
                    let px = f.pixels.as_slice();
                    for d in &mut detections {
                        if d.class == sh.person_class {
                            d.role = Some(palette.classify(px, f.width, f.height, &d.bbox));
                        }
                    }
                }
                let r = FrameResult {
                    camera: f.camera.clone(),
                    seq: f.seq,
                    captured_at: f.captured_at,
                    preset: f.preset().cloned(),
                    width: f.width,
                    height: f.height,
                    model: sh.models[*mi].name.clone(),
                    detections,
                };
                if sh.out.send(StageMsg::Frame(r)).is_err() {
                    return Ok(false);
                }
                // The shadow's result, labelled like the live one (same rules), never
                // waited for.
                if s.shadow_ran[*mi] {
                    if let Some(tx) = &s.shadow_out {
                        let r = FrameResult {
                            camera: f.camera.clone(),
                            seq: f.seq,
                            captured_at: f.captured_at,
                            preset: f.preset().cloned(),
                            width: f.width,
                            height: f.height,
                            model: sh.models[*mi].name.clone(),
                            detections: std::mem::take(&mut s.shadow_results[*mi][fi]),
                        };
                        let c = &sh.shadow[*mi];
                        match tx.try_send(StageMsg::Frame(r)) {
                            Ok(()) => c.frames.fetch_add(1, Ordering::Relaxed),
                            Err(_) => c.dropped_queue_full.fetch_add(1, Ordering::Relaxed),
                        };
                    }
                }
            }
        }
        drop(sent);
        if let Some(c) = table.counters.get(&f.camera) {
            c.analysed.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(true)
}
