//! `lookout detect`: run a model on image files or folders, print detections as JSON and
//! write annotated copies. (Video files are not read here: only `ingest` knows GStreamer.
//! Extract frames first, e.g. `ffmpeg -i in.mp4 -vf fps=1 frames/%05d.jpg`.)

use std::path::{Path, PathBuf};

use lookout_core::{BBox, Detection};
use serde::Serialize;

use lookout_config::inference::TileConfig;
use lookout_config::validate::{SCORE, THREADS};

use crate::detector::{Detector, RuntimeOptions};
use crate::preprocess::ImageView;
use crate::{tiling, InferError};

/// Arguments of `lookout detect`.
#[derive(Debug, Clone, clap::Args)]
pub struct DetectArgs {
    /// Model manifest (`models/NAME.toml`).
    #[arg(long)]
    pub model: PathBuf,
    /// Image files (JPEG, PNG) or folders of them.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Folder for annotated images (created if missing).
    #[arg(long, default_value = "detections")]
    pub out: PathBuf,
    /// Do not write annotated images.
    #[arg(long)]
    pub no_images: bool,
    /// Report and draw only detections with at least this score (0..=1).
    #[arg(long, default_value_t = 0.25, value_parser = parse_score)]
    pub min_score: f32,
    /// Tiling `CxR[:overlap][+full|-full]`, e.g. `2x2`: the same as `tile = { grid = [2, 2] }`
    /// in a config (overlap 0.1, the full frame analysed too unless `-full`). Default: the
    /// manifest's.
    #[arg(long, value_parser = parse_tile_arg)]
    pub tile: Option<TileConfig>,
    /// ONNX Runtime intra-op threads (1..=256).
    #[arg(long, default_value_t = 2, value_parser = parse_threads)]
    pub threads: usize,
}

/// `--min-score`, `--score-floor`: a score in 0..=1 (as `inference.score_floor`).
pub fn parse_score(s: &str) -> Result<f32, String> {
    SCORE.parse_f32(s)
}

/// `--threads`: ONNX Runtime threads, 1..=256 (as `inference.intra_threads`).
pub fn parse_threads(s: &str) -> Result<usize, String> {
    THREADS.parse_usize(s)
}

/// `--tile`: see [`tiling::parse_tile`].
pub fn parse_tile_arg(s: &str) -> Result<TileConfig, String> {
    tiling::parse_tile(s).map_err(|e| e.to_string())
}

/// An input that could not be read or analysed; the others still were.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct InputError {
    /// The input file or folder.
    pub path: PathBuf,
    /// What went wrong.
    pub error: String,
}

/// Detections of one image.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ImageDetections {
    /// The input file.
    pub path: PathBuf,
    /// Its width.
    pub width: u32,
    /// Its height.
    pub height: u32,
    /// Detections with score ≥ `--min-score`, boxes in the image's pixels.
    pub detections: Vec<Detection>,
    /// The annotated copy, when written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotated: Option<PathBuf>,
}

/// What `lookout detect` reports (print it with `serde_json`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DetectReport {
    /// The model's manifest name.
    pub model: String,
    /// The execution provider used.
    pub provider: String,
    /// Per image read, in input order.
    pub images: Vec<ImageDetections>,
    /// Inputs that could not be read or analysed (the command exits non-zero when any).
    pub errors: Vec<InputError>,
}

/// Image files (jpg, jpeg, png) of a folder, sorted by name.
pub fn list_images(dir: &Path) -> Result<Vec<PathBuf>, InferError> {
    let rd = std::fs::read_dir(dir).map_err(|e| InferError::io(dir, e))?;
    let mut v: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png"))
        })
        .collect();
    v.sort();
    Ok(v)
}

/// Runs `lookout detect`.
pub fn run_detect(args: &DetectArgs) -> Result<DetectReport, InferError> {
    let opts = RuntimeOptions {
        intra_threads: args.threads.max(1),
        max_batch: 1,
        ..RuntimeOptions::default()
    };
    let mut det = Detector::load(&args.model, &opts)?;
    let tile = match &args.tile {
        Some(t) => Some(t.clone()),
        None => det.model().manifest.tile.clone(),
    };
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for p in &args.inputs {
        if p.is_dir() {
            match list_images(p) {
                Ok(v) if v.is_empty() => errors.push(InputError {
                    path: p.clone(),
                    error: "no .jpg, .jpeg or .png image in this folder".into(),
                }),
                Ok(v) => files.extend(v),
                Err(e) => errors.push(InputError {
                    path: p.clone(),
                    error: e.to_string(),
                }),
            }
        } else if p.is_file() {
            files.push(p.clone());
        } else {
            errors.push(InputError {
                path: p.clone(),
                error: "no such file or folder".into(),
            });
        }
    }
    if !args.no_images {
        std::fs::create_dir_all(&args.out).map_err(|e| InferError::io(&args.out, e))?;
    }
    let mut images = Vec::with_capacity(files.len());
    for f in files {
        match detect_one(&mut det, &f, tile.as_ref(), args) {
            Ok(d) => images.push(d),
            Err(e) => {
                tracing::warn!(file = %f.display(), error = %e, "Skipped an image.");
                errors.push(InputError {
                    path: f,
                    error: e.to_string(),
                });
            }
        }
    }
    Ok(DetectReport {
        model: det.model().name().to_string(),
        provider: det.provider().to_string(),
        images,
        errors,
    })
}

/// Detects on one image and writes its annotated copy.
fn detect_one(
    det: &mut Detector,
    f: &Path,
    tile: Option<&TileConfig>,
    args: &DetectArgs,
) -> Result<ImageDetections, InferError> {
    let mut img = lookout_imageops::load_rgb8(f)?;
    let mut dets = det
        .detect_tiled(&[ImageView::from_image(&img)], tile)?
        .pop()
        .unwrap_or_default();
    dets.retain(|d| d.score >= args.min_score);
    let annotated = if args.no_images {
        None
    } else {
        for d in &dets {
            draw_rect(
                &mut img.data,
                img.width,
                img.height,
                &d.bbox,
                class_colour(d.class_id),
                2,
            );
        }
        let name = f
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_else(|| "image".into());
        let out = unique(&args.out, &name);
        lookout_imageops::save_jpeg(&out, &img.data, img.width, img.height, 90)?;
        Some(out)
    };
    Ok(ImageDetections {
        path: f.to_path_buf(),
        width: img.width,
        height: img.height,
        detections: dets,
        annotated,
    })
}

fn unique(dir: &Path, stem: &str) -> PathBuf {
    let mut p = dir.join(format!("{stem}.det.jpg"));
    let mut k = 1;
    while p.exists() {
        p = dir.join(format!("{stem}.det-{k}.jpg"));
        k += 1;
    }
    p
}

/// A distinct colour per class id.
pub fn class_colour(class_id: u16) -> [u8; 3] {
    const C: [[u8; 3]; 6] = [
        [255, 60, 40],
        [255, 200, 0],
        [40, 220, 60],
        [40, 140, 255],
        [220, 60, 220],
        [0, 220, 220],
    ];
    C[class_id as usize % C.len()]
}

/// Draws a rectangle outline `thickness` pixels wide (inside the box) on packed RGB8.
pub fn draw_rect(img: &mut [u8], w: u32, h: u32, b: &BBox, colour: [u8; 3], thickness: u32) {
    if w == 0 || h == 0 {
        return;
    }
    let clampx = |v: f32| (v.max(0.0) as u32).min(w - 1);
    let clampy = |v: f32| (v.max(0.0) as u32).min(h - 1);
    let (x1, y1, x2, y2) = (clampx(b.x1), clampy(b.y1), clampx(b.x2), clampy(b.y2));
    let mut put = |x: u32, y: u32| {
        let i = ((y * w + x) * 3) as usize;
        if let Some(p) = img.get_mut(i..i + 3) {
            p.copy_from_slice(&colour);
        }
    };
    for t in 0..thickness {
        for x in x1..=x2 {
            put(x, (y1 + t).min(y2));
            put(x, y2.saturating_sub(t).max(y1));
        }
        for y in y1..=y2 {
            put((x1 + t).min(x2), y);
            put(x2.saturating_sub(t).max(x1), y);
        }
    }
}

/// Draws a one-pixel line (plots).
pub fn draw_line(img: &mut [u8], w: u32, h: u32, a: (f64, f64), b: (f64, f64), colour: [u8; 3]) {
    let steps = ((b.0 - a.0).abs().max((b.1 - a.1).abs()).ceil() as usize).max(1);
    for k in 0..=steps {
        let t = k as f64 / steps as f64;
        let x = (a.0 + (b.0 - a.0) * t).round();
        let y = (a.1 + (b.1 - a.1) * t).round();
        if x >= 0.0 && y >= 0.0 && (x as u32) < w && (y as u32) < h {
            let i = ((y as u32 * w + x as u32) * 3) as usize;
            img[i..i + 3].copy_from_slice(&colour);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rect_outline_only() {
        let (w, h) = (10u32, 10u32);
        let mut img = vec![0u8; 300];
        draw_rect(
            &mut img,
            w,
            h,
            &BBox::new(2.0, 2.0, 7.0, 7.0),
            [255, 0, 0],
            1,
        );
        let px = |x: u32, y: u32| img[((y * w + x) * 3) as usize];
        assert_eq!(px(2, 2), 255);
        assert_eq!(px(7, 5), 255);
        assert_eq!(px(4, 4), 0);
        assert_eq!(px(0, 0), 0);
        // Boxes outside the image are clamped, not a panic.
        draw_rect(
            &mut img,
            w,
            h,
            &BBox::new(-5.0, -5.0, 50.0, 50.0),
            [1, 2, 3],
            3,
        );
    }
}
