//! `lookout detect`: run a model on image files or folders, print detections as JSON and
//! write annotated copies. (Video files are not read here: only `ingest` knows GStreamer.
//! Extract frames first, e.g. `ffmpeg -i in.mp4 -vf fps=1 frames/%05d.jpg`.)

use std::path::{Path, PathBuf};

use lookout_core::{BBox, Detection};
use serde::Serialize;

use crate::detector::{Detector, RuntimeOptions};
use crate::eval::list_images;
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
    /// Report and draw only detections with at least this score.
    #[arg(long, default_value_t = 0.25)]
    pub min_score: f32,
    /// Tiling `CxR[:overlap][+full]`. Default: the manifest's.
    #[arg(long)]
    pub tile: Option<String>,
    /// ONNX Runtime intra-op threads.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
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
    /// Per image, in input order.
    pub images: Vec<ImageDetections>,
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
        Some(t) => Some(tiling::parse_tile(t)?),
        None => det.model().manifest.tile.clone(),
    };
    let mut files = Vec::new();
    for p in &args.inputs {
        if p.is_dir() {
            files.extend(list_images(p)?);
        } else if p.is_file() {
            files.push(p.clone());
        } else {
            return Err(InferError::io(p, "no such file or folder"));
        }
    }
    if !args.no_images {
        std::fs::create_dir_all(&args.out).map_err(|e| InferError::io(&args.out, e))?;
    }
    let mut images = Vec::with_capacity(files.len());
    for f in files {
        let mut img = lookout_imageops::load_rgb8(&f)?;
        let mut dets = det
            .detect_tiled(&[ImageView::from_image(&img)], tile.as_ref())?
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
        images.push(ImageDetections {
            path: f,
            width: img.width,
            height: img.height,
            detections: dets,
            annotated,
        });
    }
    Ok(DetectReport {
        model: det.model().name().to_string(),
        provider: det.provider().to_string(),
        images,
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
