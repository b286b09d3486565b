//! `lookout eval`: accuracy of a model on a labelled folder (YOLO labels) and on negative
//! folders, with the same pre- and post-processing as the engine.
//!
//! Matching: per image and class, detections in descending score order each take the
//! unmatched labelled box of that class with the highest IoU, if IoU ≥ `--iou` (0.5): true
//! positive; otherwise false positive. AP50 is the all-points (VOC 2010+) area under the
//! interpolated precision/recall curve. Every detection (of an evaluated class) on a
//! `--neg` image is a false positive. Precision with no detection above a threshold is
//! undefined: `null` in JSON, `-` in the table.
//!
//! One unreadable image or label file is reported and skipped; the others are evaluated.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use lookout_core::{BBox, Detection};
use serde::Serialize;

use clap::builder::TypedValueParser as _;
use lookout_config::inference::TileConfig;
use lookout_config::validate::IOU;

use crate::cli::InputError;
use crate::cli::{draw_line, draw_rect, list_images, parse_score, parse_threads, parse_tile_arg};
use crate::detector::{Detector, RuntimeOptions};
use crate::preprocess::ImageView;
use crate::InferError;

/// Arguments of `lookout eval`.
#[derive(Debug, Clone, clap::Args)]
pub struct EvalArgs {
    /// Model manifest (`models/NAME.toml`).
    #[arg(long)]
    pub model: PathBuf,
    /// Labelled folder with `images/` and YOLO `labels/` (`class cx cy w h`, normalised).
    #[arg(long)]
    pub data: PathBuf,
    /// Folders of images without objects (or with an `images/` subfolder): every detection
    /// on them is a false positive. Repeatable.
    #[arg(long = "neg")]
    pub neg: Vec<PathBuf>,
    /// Names of label ids (`--labels smoke,fire`): label id i is the model class with the
    /// i-th name. Default: label id = model class index.
    #[arg(long, value_delimiter = ',')]
    pub labels: Vec<String>,
    /// Tiling `CxR[:overlap][+full|-full]`, e.g. `2x2`: the same as `tile = { grid = [2, 2] }`
    /// in a config (overlap 0.1, the full frame analysed too unless `-full`). Default: the
    /// manifest's.
    #[arg(long, value_parser = parse_tile_arg)]
    pub tile: Option<TileConfig>,
    /// A zone `x1,y1,x2,y2` (relative, 0..1) also analysed as a crop at native resolution,
    /// as `[inference.camera_zones.ID]` does for a camera's personnel zones. Repeatable;
    /// the same zones on every image.
    #[arg(long = "zone", value_parser = parse_zone_arg)]
    pub zones: Vec<[f64; 4]>,
    /// Padding around each `--zone`, as a fraction of its larger side (0..=2).
    #[arg(long, default_value_t = 0.1, value_parser = parse_margin)]
    pub zone_margin: f32,
    /// With `--zone`: analyse only the zone crops, not the frame (`full_frame = false`).
    #[arg(long, requires = "zones")]
    pub zones_only: bool,
    /// Print exactly one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Write precision/recall curves to this PNG.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Evaluate only the first N labelled images (sorted by name), N ≥ 1.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..).map(|n| n as usize))]
    pub limit: Option<usize>,
    /// IoU for a match (0..=1).
    #[arg(long, default_value_t = 0.5, value_parser = parse_iou)]
    pub iou: f32,
    /// Score floor of post-processing (the engine's `inference.score_floor`, 0..=1).
    #[arg(long, default_value_t = 0.05, value_parser = parse_score)]
    pub score_floor: f32,
    /// ONNX Runtime intra-op threads (1..=256).
    #[arg(long, default_value_t = 2, value_parser = parse_threads)]
    pub threads: usize,
    /// No progress counter on stderr.
    #[arg(long)]
    pub quiet: bool,
}

/// `--zone`: see [`crate::tiling::parse_zone`].
fn parse_zone_arg(s: &str) -> Result<[f64; 4], String> {
    crate::tiling::parse_zone(s).map_err(|e| e.to_string())
}

/// `--zone-margin`: 0..=2.
fn parse_margin(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(v) if (0.0..=2.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "{s:?} is not a margin: give a number in 0..=2, e.g. 0.25"
        )),
    }
}

/// `--iou`: an IoU in 0..=1.
pub fn parse_iou(s: &str) -> Result<f32, String> {
    IOU.parse_f32(s)
}

impl EvalArgs {
    /// Arguments with defaults for a model and a data folder (tests, benches).
    pub fn new(model: impl Into<PathBuf>, data: impl Into<PathBuf>) -> Self {
        EvalArgs {
            model: model.into(),
            data: data.into(),
            neg: Vec::new(),
            labels: Vec::new(),
            tile: None,
            zones: Vec::new(),
            zone_margin: 0.1,
            zones_only: false,
            json: false,
            plot: None,
            limit: None,
            iou: 0.5,
            score_floor: 0.05,
            threads: 2,
            quiet: true,
        }
    }
}

/// Per-class results.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ClassReport {
    /// Average precision at IoU 0.5 (all points).
    pub ap50: f64,
    /// Labelled boxes.
    pub positives: usize,
    /// Precision of detections with score ≥ 0.5 (`None` without any such detection).
    #[serde(rename = "precision@0.5")]
    pub precision_50: Option<f64>,
    /// Recall at score ≥ 0.5.
    #[serde(rename = "recall@0.5")]
    pub recall_50: f64,
    /// Precision at score ≥ 0.25 (`None` without any such detection).
    #[serde(rename = "precision@0.25")]
    pub precision_25: Option<f64>,
    /// Recall at score ≥ 0.25.
    #[serde(rename = "recall@0.25")]
    pub recall_25: f64,
    /// Share of images labelled with this class that have a detection of it ≥ 0.5.
    #[serde(rename = "image_recall@0.5")]
    pub image_recall_50: f64,
    /// (recall, precision) points of the curve, for plots.
    #[serde(skip)]
    pub curve: Vec<(f64, f64)>,
}

/// Negative-image results (the `--neg` folders).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NegativesReport {
    /// Images of the `--neg` folders evaluated.
    pub images: usize,
    /// Of which with any detection ≥ 0.25.
    #[serde(rename = "hit@0.25")]
    pub hit_25: usize,
    /// Of which with any detection ≥ 0.5.
    #[serde(rename = "hit@0.5")]
    pub hit_50: usize,
}

/// What `lookout eval` reports.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EvalReport {
    /// By class name.
    pub classes: BTreeMap<String, ClassReport>,
    /// The `--neg` folders.
    pub negatives: NegativesReport,
    /// Images evaluated (labelled and negative).
    pub images: usize,
    /// Images of the labelled folder without a label file: evaluated as images without
    /// objects.
    pub unlabelled: usize,
    /// Images or label files that could not be read: skipped, each with its error.
    pub skipped: Vec<InputError>,
    /// Wall time per image (load, preprocess, inference, decode).
    pub seconds_per_image: f64,
}

impl EvalReport {
    /// The one JSON object of `--json`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self)
            .unwrap_or_else(|e| format!("{{\"error\": {:?}}}", e.to_string()))
    }

    /// A plain-text table.
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "{:<12} {:>6} {:>9} {:>7} {:>7} {:>7} {:>7} {:>9}\n",
            "class", "AP50", "positives", "P@.25", "R@.25", "P@.5", "R@.5", "imgR@.5"
        );
        let p = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{x:.3}"));
        for (name, c) in &self.classes {
            s.push_str(&format!(
                "{:<12} {:>6.3} {:>9} {:>7} {:>7.3} {:>7} {:>7.3} {:>9.3}\n",
                name,
                c.ap50,
                c.positives,
                p(c.precision_25),
                c.recall_25,
                p(c.precision_50),
                c.recall_50,
                c.image_recall_50
            ));
        }
        let labelled = self.images - self.negatives.images;
        s.push_str(&format!("labelled images: {labelled}"));
        if self.unlabelled > 0 {
            s.push_str(&format!(
                " ({} without a label file, evaluated as images without objects)",
                self.unlabelled
            ));
        }
        s.push_str(&format!(
            "\nnegative images (--neg): {}, {} with a detection >= 0.25, {} >= 0.5\n{} images, {:.3} s per image\n",
            self.negatives.images, self.negatives.hit_25, self.negatives.hit_50, self.images, self.seconds_per_image
        ));
        for e in &self.skipped {
            s.push_str(&format!("skipped {}: {}\n", e.path.display(), e.error));
        }
        s
    }
}

/// One labelled box: (label id, box in pixels).
/// `None` when the file does not exist (an image without objects).
fn read_labels(path: &Path, w: u32, h: u32) -> Result<Option<Vec<(usize, BBox)>>, InferError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(InferError::io(path, e)),
    };
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.is_empty() {
            continue;
        }
        let bad = || {
            InferError::io(
                format!("{}:{}", path.display(), i + 1),
                "expected `class cx cy w h` (normalised 0..1)",
            )
        };
        if f.len() < 5 {
            return Err(bad());
        }
        let id: usize = f[0].parse().map_err(|_| bad())?;
        let mut v = [0f32; 4];
        for (k, x) in v.iter_mut().enumerate() {
            *x = f[k + 1].parse().map_err(|_| bad())?;
        }
        let (w, h) = (w as f32, h as f32);
        out.push((
            id,
            BBox::from_cxcywh(v[0] * w, v[1] * h, v[2] * w, v[3] * h),
        ));
    }
    Ok(Some(out))
}

#[derive(Default)]
struct ClassAcc {
    /// (score, true positive) of every detection.
    dets: Vec<(f32, bool)>,
    positives: usize,
    images_with: usize,
    images_hit: usize,
}

/// Runs the evaluation. Progress goes to stderr unless `quiet`.
pub fn run_eval(args: &EvalArgs) -> Result<EvalReport, InferError> {
    let opts = RuntimeOptions {
        intra_threads: args.threads.max(1),
        score_floor: args.score_floor,
        max_batch: 1,
        ..RuntimeOptions::default()
    };
    let mut det = Detector::load(&args.model, &opts)?;
    let model = det.model().clone();
    let tile = match &args.tile {
        Some(t) => Some(t.clone()),
        None => model.manifest.tile.clone(),
    };
    let zones = (!args.zones.is_empty()).then(|| crate::tiling::ZoneCrops {
        margin: args.zone_margin,
        full_frame: !args.zones_only,
        crops: args
            .zones
            .iter()
            .enumerate()
            .map(|(i, b)| lookout_config::inference::ZoneCrop {
                name: format!("zone{i}"),
                preset: None,
                bbox: *b,
            })
            .collect(),
    });
    // Label id → model class index.
    let label_map: Option<Vec<usize>> = if args.labels.is_empty() {
        None
    } else {
        let mut v = Vec::new();
        for name in &args.labels {
            v.push(model.class_index(name).ok_or_else(|| InferError::Arg {
                arg: "--labels".into(),
                message: format!(
                    "{name:?} is not a class of {}; classes are {:?}",
                    model.name(),
                    model.manifest.classes.names
                ),
            })?);
        }
        Some(v)
    };
    let img_dir = args.data.join("images");
    let lbl_dir = args.data.join("labels");
    if !args.data.is_dir() {
        return Err(InferError::io(&args.data, "no such folder"));
    }
    if !lbl_dir.is_dir() {
        return Err(InferError::io(
            &lbl_dir,
            "no such folder: --data needs images/ and YOLO labels/ (give folders of images without objects with --neg)",
        ));
    }
    let mut images = list_images(&img_dir)?;
    if let Some(n) = args.limit {
        images.truncate(n);
    }
    let mut negs = Vec::new();
    for d in &args.neg {
        let dir = if d.join("images").is_dir() {
            d.join("images")
        } else {
            d.clone()
        };
        let found = list_images(&dir)?;
        if found.is_empty() {
            return Err(InferError::io(
                &dir,
                "no .jpg, .jpeg or .png image in this --neg folder",
            ));
        }
        negs.extend(found);
    }
    let total = images.len() + negs.len();
    let mut classes: BTreeMap<usize, ClassAcc> = BTreeMap::new();
    if let Some(m) = &label_map {
        for &c in m {
            classes.entry(c).or_default();
        }
    }
    let mut neg = NegativesReport {
        images: 0,
        hit_25: 0,
        hit_50: 0,
    };
    let started = Instant::now();
    // Count, rate and ETA, redrawn in place at most 4 times a second.
    let mut line = lookout_core::progress::Progress::new(total, "images");
    let mut progress = |done: usize| {
        if !args.quiet {
            let mut e = std::io::stderr().lock();
            if let Some(l) = line.tick(done) {
                let _ = write!(e, "\reval {l:<56}");
            }
            if done == total {
                let _ = writeln!(e);
            }
        }
    };
    // Labelled images: collect labels first so the evaluated class set is known.
    let mut labelled = Vec::with_capacity(images.len());
    let mut skipped = Vec::new();
    let mut unlabelled = 0;
    for (i, p) in images.iter().enumerate() {
        progress(i + 1);
        let stem = p
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        let lpath = lbl_dir.join(format!("{stem}.txt"));
        let one = (|| -> Result<_, InferError> {
            let img = lookout_imageops::load_rgb8(p)?;
            let raw = read_labels(&lpath, img.width, img.height)?;
            let has_file = raw.is_some();
            let mut gts = Vec::new();
            for (id, b) in raw.unwrap_or_default() {
                let class = match &label_map {
                    Some(m) => *m.get(id).ok_or_else(|| {
                        InferError::io(
                            &lpath,
                            format!("label id {id} has no name in --labels ({} names)", m.len()),
                        )
                    })?,
                    None => {
                        if id >= model.num_classes() {
                            return Err(InferError::io(
                                &lpath,
                                format!(
                                    "label id {id} is not a class of {} ({} classes); use --labels",
                                    model.name(),
                                    model.num_classes()
                                ),
                            ));
                        }
                        id
                    }
                };
                gts.push((class, b));
            }
            let dets = det
                .detect_zoned(
                    &[ImageView::from_image(&img)],
                    tile.as_ref(),
                    zones.as_ref(),
                )?
                .pop()
                .unwrap_or_default();
            Ok((gts, dets, has_file))
        })();
        match one {
            Ok((gts, dets, has_file)) => {
                if !has_file {
                    unlabelled += 1;
                }
                for (c, _) in &gts {
                    classes.entry(*c).or_default();
                }
                labelled.push((gts, dets));
            }
            Err(e) => {
                tracing::warn!(file = %p.display(), error = %e, "Skipped a labelled image.");
                skipped.push(InputError {
                    path: p.clone(),
                    error: e.to_string(),
                });
            }
        }
    }
    for (gts, dets) in &labelled {
        for (&c, acc) in classes.iter_mut() {
            let g: Vec<&BBox> = gts
                .iter()
                .filter(|(k, _)| *k == c)
                .map(|(_, b)| b)
                .collect();
            let d: Vec<&Detection> = dets.iter().filter(|d| d.class_id as usize == c).collect();
            acc.positives += g.len();
            if !g.is_empty() {
                acc.images_with += 1;
                if d.iter().any(|d| d.score >= 0.5) {
                    acc.images_hit += 1;
                }
            }
            let mut used = vec![false; g.len()];
            // `dets` is sorted by score (NMS output order).
            for dd in d {
                let mut best = None;
                let mut best_iou = args.iou;
                for (j, gb) in g.iter().enumerate() {
                    if used[j] {
                        continue;
                    }
                    let iou = dd.bbox.iou(gb);
                    if iou >= best_iou {
                        best_iou = iou;
                        best = Some(j);
                    }
                }
                if let Some(j) = best {
                    used[j] = true;
                }
                acc.dets.push((dd.score, best.is_some()));
            }
        }
    }
    for (i, p) in negs.iter().enumerate() {
        progress(images.len() + i + 1);
        let dets = match lookout_imageops::load_rgb8(p)
            .map_err(InferError::from)
            .and_then(|img| {
                det.detect_zoned(
                    &[ImageView::from_image(&img)],
                    tile.as_ref(),
                    zones.as_ref(),
                )
            }) {
            Ok(mut d) => d.pop().unwrap_or_default(),
            Err(e) => {
                tracing::warn!(file = %p.display(), error = %e, "Skipped a negative image.");
                skipped.push(InputError {
                    path: p.clone(),
                    error: e.to_string(),
                });
                continue;
            }
        };
        neg.images += 1;
        let mut best = 0f32;
        for d in &dets {
            if let Some(acc) = classes.get_mut(&(d.class_id as usize)) {
                acc.dets.push((d.score, false));
                best = best.max(d.score);
            }
        }
        if best >= 0.25 {
            neg.hit_25 += 1;
        }
        if best >= 0.5 {
            neg.hit_50 += 1;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut out = BTreeMap::new();
    for (c, mut acc) in classes {
        let name = model
            .class_names
            .get(c)
            .map(|n| n.to_string())
            .unwrap_or_else(|| c.to_string());
        acc.dets
            .sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap_or(std::cmp::Ordering::Equal));
        out.insert(name, class_report(&acc));
    }
    let evaluated = labelled.len() + neg.images;
    let report = EvalReport {
        classes: out,
        negatives: neg,
        images: evaluated,
        unlabelled,
        skipped,
        seconds_per_image: if evaluated > 0 {
            elapsed / evaluated as f64
        } else {
            0.0
        },
    };
    if let Some(p) = &args.plot {
        plot_pr(&report, p)?;
    }
    Ok(report)
}

fn class_report(acc: &ClassAcc) -> ClassReport {
    let npos = acc.positives as f64;
    let at = |t: f32| -> (Option<f64>, f64) {
        let (mut tp, mut fp) = (0usize, 0usize);
        for &(s, ok) in &acc.dets {
            if s < t {
                break;
            }
            if ok {
                tp += 1
            } else {
                fp += 1
            }
        }
        let p = if tp + fp == 0 {
            None
        } else {
            Some(tp as f64 / (tp + fp) as f64)
        };
        let r = if npos == 0.0 { 0.0 } else { tp as f64 / npos };
        (p, r)
    };
    let (p25, r25) = at(0.25);
    let (p50, r50) = at(0.5);
    let mut curve = Vec::with_capacity(acc.dets.len());
    let (mut tp, mut fp) = (0f64, 0f64);
    for &(_, ok) in &acc.dets {
        if ok {
            tp += 1.0
        } else {
            fp += 1.0
        }
        curve.push((if npos > 0.0 { tp / npos } else { 0.0 }, tp / (tp + fp)));
    }
    ClassReport {
        ap50: average_precision(&curve),
        positives: acc.positives,
        precision_50: p50,
        recall_50: r50,
        precision_25: p25,
        recall_25: r25,
        image_recall_50: if acc.images_with == 0 {
            0.0
        } else {
            acc.images_hit as f64 / acc.images_with as f64
        },
        curve,
    }
}

/// All-points interpolated AP (VOC 2010+) of (recall, precision) points in score order.
pub fn average_precision(curve: &[(f64, f64)]) -> f64 {
    let mut mrec = Vec::with_capacity(curve.len() + 2);
    let mut mpre = Vec::with_capacity(curve.len() + 2);
    mrec.push(0.0);
    mpre.push(0.0);
    for &(r, p) in curve {
        mrec.push(r);
        mpre.push(p);
    }
    mrec.push(1.0);
    mpre.push(0.0);
    for i in (0..mpre.len() - 1).rev() {
        mpre[i] = mpre[i].max(mpre[i + 1]);
    }
    let mut ap = 0.0;
    for i in 1..mrec.len() {
        if mrec[i] != mrec[i - 1] {
            ap += (mrec[i] - mrec[i - 1]) * mpre[i];
        }
    }
    ap
}

/// Size of the PR plot PNG.
pub const PLOT_W: u32 = 560;
/// Height of the PR plot PNG.
pub const PLOT_H: u32 = 420;
/// The plot area of the PR PNG: left, top, right, bottom pixel (recall 0 to 1 from left to
/// right, precision 0 to 1 from bottom to top).
pub const PLOT_AREA: (f64, f64, f64, f64) = (60.0, 44.0, 544.0, 364.0);
/// The score threshold of the operating point marked on the plot (the report's `@0.5`).
pub const OPERATING_SCORE: f64 = 0.5;
/// The colours of the classes, in name order.
pub const PLOT_COLOURS: [[u8; 3]; 6] = [
    [220, 40, 40],
    [40, 90, 220],
    [30, 160, 60],
    [200, 130, 0],
    [150, 40, 180],
    [0, 150, 160],
];
const AXIS: [u8; 3] = [40, 40, 40];
const GRID: [u8; 3] = [228, 228, 228];

/// The pixel of (recall, precision) on the PR plot.
pub fn plot_px(recall: f64, precision: f64) -> (f64, f64) {
    let (l, t, r, b) = PLOT_AREA;
    (l + recall * (r - l), b - precision * (b - t))
}

fn fill_disc(img: &mut [u8], c: (f64, f64), radius: f64, colour: [u8; 3]) {
    let r = radius.ceil() as i64;
    for dy in -r..=r {
        for dx in -r..=r {
            if ((dx * dx + dy * dy) as f64) <= radius * radius {
                let (x, y) = (c.0.round() as i64 + dx, c.1.round() as i64 + dy);
                if x >= 0 && y >= 0 && (x as u32) < PLOT_W && (y as u32) < PLOT_H {
                    let i = ((y as u32 * PLOT_W + x as u32) * 3) as usize;
                    img[i..i + 3].copy_from_slice(&colour);
                }
            }
        }
    }
}

/// Draws precision (y) against recall (x) per class on a white 560×420 canvas
/// ([`PLOT_AREA`]): axes with ticks every 0.1 and labels every 0.2 (5×7 bitmap font,
/// [`crate::font`]), axis titles `RECALL` and `PRECISION`, light gridlines, one colour per
/// class in name order ([`PLOT_COLOURS`]), each class's operating point at score
/// [`OPERATING_SCORE`] as a disc ringed in black, and a legend along the top (colour,
/// class name, AP50).
pub fn plot_pr(report: &EvalReport, path: &Path) -> Result<(), InferError> {
    use crate::font::{draw_text, draw_text_up, text_width};
    const W: u32 = PLOT_W;
    const H: u32 = PLOT_H;
    let mut img = vec![255u8; (W * H * 3) as usize];
    let (left, top, right, bottom) = PLOT_AREA;
    for k in 1..=10 {
        let f = k as f64 / 10.0;
        let (_, y) = plot_px(0.0, f);
        draw_line(&mut img, W, H, (left, y), (right, y), GRID);
        let (x, _) = plot_px(f, 0.0);
        draw_line(&mut img, W, H, (x, top), (x, bottom), GRID);
    }
    // Axes (two pixels wide) and ticks.
    for d in [0.0, 1.0] {
        draw_line(
            &mut img,
            W,
            H,
            (left, bottom + d),
            (right, bottom + d),
            AXIS,
        );
        draw_line(&mut img, W, H, (left - d, top), (left - d, bottom), AXIS);
    }
    for k in 0..=10 {
        let f = k as f64 / 10.0;
        let long = if k % 2 == 0 { 6.0 } else { 3.0 };
        let (x, _) = plot_px(f, 0.0);
        draw_line(&mut img, W, H, (x, bottom), (x, bottom + long), AXIS);
        let (_, y) = plot_px(0.0, f);
        draw_line(&mut img, W, H, (left - long, y), (left, y), AXIS);
        if k % 2 == 0 {
            let label = format!("{f:.1}");
            let tw = i64::from(text_width(&label, 1));
            draw_text(
                &mut img,
                W,
                H,
                x.round() as i64 - tw / 2,
                bottom as i64 + 10,
                &label,
                AXIS,
                1,
            );
            draw_text(
                &mut img,
                W,
                H,
                left as i64 - 10 - tw,
                y.round() as i64 - 3,
                &label,
                AXIS,
                1,
            );
        }
    }
    let title = "RECALL";
    let tw = i64::from(text_width(title, 2));
    let mid_x = ((left + right) / 2.0).round() as i64;
    draw_text(
        &mut img,
        W,
        H,
        mid_x - tw / 2,
        bottom as i64 + 26,
        title,
        AXIS,
        2,
    );
    let title = "PRECISION";
    let tw = i64::from(text_width(title, 2));
    let mid_y = ((top + bottom) / 2.0).round() as i64;
    draw_text_up(&mut img, W, H, 12, mid_y + tw / 2, title, AXIS, 2);

    let mut legend_x = left as i64;
    for (i, (name, c)) in report.classes.iter().enumerate() {
        let col = PLOT_COLOURS[i % PLOT_COLOURS.len()];
        let mut prev: Option<(f64, f64)> = None;
        for &(r, p) in &c.curve {
            let pt = plot_px(r, p);
            if let Some(q) = prev {
                draw_line(&mut img, W, H, q, pt, col);
                draw_line(&mut img, W, H, (q.0, q.1 + 1.0), (pt.0, pt.1 + 1.0), col);
            }
            prev = Some(pt);
        }
        if let Some(p) = c.precision_50 {
            let at = plot_px(c.recall_50, p);
            fill_disc(&mut img, at, 6.0, AXIS);
            fill_disc(&mut img, at, 4.0, col);
        }
        draw_rect(
            &mut img,
            W,
            H,
            &BBox::new(legend_x as f32, 12.0, legend_x as f32 + 9.0, 21.0),
            col,
            5,
        );
        let text = format!("{name} AP {:.2}", c.ap50);
        draw_text(&mut img, W, H, legend_x + 14, 13, &text, AXIS, 1);
        legend_x += 14 + i64::from(text_width(&text, 1)) + 16;
    }
    // What the discs are.
    let note = format!("DISC: SCORE {OPERATING_SCORE:.1}");
    let nw = i64::from(text_width(&note, 1));
    draw_text(&mut img, W, H, right as i64 - nw, 28, &note, AXIS, 1);
    lookout_imageops::save_png(path, &img, W, H)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ap_of_perfect_and_half_curves() {
        assert!((average_precision(&[(0.5, 1.0), (1.0, 1.0)]) - 1.0).abs() < 1e-12);
        // One TP (recall 0.5), then a FP, then the second TP: precision 2/3 at recall 1.
        let ap = average_precision(&[(0.5, 1.0), (0.5, 0.5), (1.0, 2.0 / 3.0)]);
        assert!((ap - (0.5 + 0.5 * 2.0 / 3.0)).abs() < 1e-12);
        assert_eq!(average_precision(&[]), 0.0);
    }

    #[test]
    fn class_report_thresholds() {
        let acc = ClassAcc {
            dets: vec![(0.9, true), (0.6, false), (0.3, true), (0.1, false)],
            positives: 4,
            images_with: 2,
            images_hit: 1,
        };
        let r = class_report(&acc);
        assert_eq!((r.precision_50, r.recall_50), (Some(0.5), 0.25));
        assert!((r.precision_25.unwrap() - 2.0 / 3.0).abs() < 1e-12);
        // No detection above a threshold: precision is undefined, not 1.
        let none = class_report(&ClassAcc {
            dets: vec![(0.1, false)],
            positives: 2,
            images_with: 1,
            images_hit: 0,
        });
        assert_eq!(none.precision_25, None);
        assert_eq!(r.recall_25, 0.5);
        assert_eq!(r.image_recall_50, 0.5);
    }

    #[test]
    fn pr_plot_has_axes_tick_labels_titles_and_operating_points() {
        use crate::font::{glyph, text_width, ADVANCE, GLYPH_H, GLYPH_W};
        let class = |ap50, curve: Vec<(f64, f64)>, p50, r50| ClassReport {
            ap50,
            positives: 10,
            precision_50: p50,
            recall_50: r50,
            precision_25: None,
            recall_25: 0.0,
            image_recall_50: 0.0,
            curve,
        };
        let mut classes = BTreeMap::new();
        classes.insert(
            "fire".to_string(),
            class(
                0.7,
                vec![(0.0, 1.0), (0.4, 0.9), (0.8, 0.6)],
                Some(0.9),
                0.4,
            ),
        );
        classes.insert(
            "smoke".to_string(),
            class(0.5, vec![(0.0, 1.0), (0.6, 0.5)], Some(0.5), 0.6),
        );
        let report = EvalReport {
            classes,
            negatives: NegativesReport {
                images: 0,
                hit_25: 0,
                hit_50: 0,
            },
            images: 10,
            unlabelled: 0,
            skipped: Vec::new(),
            seconds_per_image: 0.01,
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pr.png");
        plot_pr(&report, &path).unwrap();
        let img = lookout_imageops::load_rgb8(&path).unwrap();
        assert_eq!((img.width, img.height), (PLOT_W, PLOT_H));
        let at = |x: u32, y: u32| -> [u8; 3] {
            let i = ((y * img.width + x) * 3) as usize;
            [img.data[i], img.data[i + 1], img.data[i + 2]]
        };
        let px = |x: f64, y: f64| at(x.round() as u32, y.round() as u32);
        let (left, top, right, bottom) = PLOT_AREA;
        // Axes: dark lines along the bottom and the left of the plot area.
        for x in (left as u32 + 3..right as u32 - 3).step_by(7) {
            assert_eq!(px(x as f64, bottom), AXIS, "x axis at {x}");
        }
        for y in (top as u32 + 3..bottom as u32 - 3).step_by(7) {
            assert_eq!(px(left, y as f64), AXIS, "y axis at {y}");
        }
        // Ticks: long at 0.2 steps, short at the others; gridlines light.
        let (x04, _) = plot_px(0.4, 0.0);
        let (x05, _) = plot_px(0.5, 0.0);
        assert_eq!(px(x04, bottom + 5.0), AXIS);
        assert_eq!(px(x05, bottom + 2.0), AXIS);
        assert_eq!(px(x05, bottom + 5.0), [255, 255, 255]);
        assert_eq!(px(x05, (top + bottom) / 2.0 + 1.0), GRID);
        // Text exactly as the font draws it, where it belongs.
        let text_at = |text: &str, x0: i64, y0: i64, scale: u32| {
            for (i, c) in text.chars().enumerate() {
                for (gy, row) in glyph(c).iter().enumerate() {
                    for gx in 0..GLYPH_W {
                        let on = row & (1 << (GLYPH_W - 1 - gx)) != 0;
                        let x = x0 + ((i as u32 * ADVANCE + gx) * scale) as i64;
                        let y = y0 + (gy as u32 * scale) as i64;
                        let got = at(x as u32, y as u32);
                        assert_eq!(
                            got == AXIS,
                            on,
                            "{text:?}: {c:?} pixel ({gx}, {gy}) at ({x}, {y}) is {got:?}"
                        );
                    }
                }
            }
        };
        let tw = i64::from(text_width("1.0", 1));
        let (x10, _) = plot_px(1.0, 0.0);
        text_at("1.0", x10.round() as i64 - tw / 2, bottom as i64 + 10, 1);
        let (_, y06) = plot_px(0.0, 0.6);
        text_at("0.6", left as i64 - 10 - tw, y06.round() as i64 - 3, 1);
        let tw = i64::from(text_width("RECALL", 2));
        text_at(
            "RECALL",
            ((left + right) / 2.0).round() as i64 - tw / 2,
            bottom as i64 + 26,
            2,
        );
        // The y title reads bottom to top: its first letter's left column is its lowest row.
        let tw = i64::from(text_width("PRECISION", 2));
        let base_y = ((top + bottom) / 2.0).round() as i64 + tw / 2;
        let p_rows = glyph('P');
        for gy in 0..GLYPH_H {
            let on = p_rows[gy as usize] & (1 << (GLYPH_W - 1)) != 0;
            let got = at(12 + gy * 2, base_y as u32);
            assert_eq!(got == AXIS, on, "PRECISION's P, row {gy}");
        }
        text_at("fire AP 0.70", left as i64 + 14, 13, 1);
        // Operating points: the class colour ringed in black at (recall@0.5, precision@0.5).
        let (fx, fy) = plot_px(0.4, 0.9);
        assert_eq!(px(fx, fy), PLOT_COLOURS[0]);
        assert_eq!(px(fx + 5.0, fy), AXIS);
        let (sx, sy) = plot_px(0.6, 0.5);
        assert_eq!(px(sx, sy), PLOT_COLOURS[1]);
        assert_eq!(px(sx, sy - 5.0), AXIS);
        // The curves are drawn in their colours.
        let (mx, my) = plot_px(0.3, 0.75);
        assert_eq!(px(mx, my), PLOT_COLOURS[1], "smoke's curve");
    }
}
