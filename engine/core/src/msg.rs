//! Messages on the inference → rules channel (the others between stages are in
//! [`crate::wire`]).

use serde::{Deserialize, Serialize};

use crate::{CameraHealth, FrameResult, UtcTime};

/// What the rules stage receives, in order per camera.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StageMsg {
    /// One analysed frame's detections from one model (possibly none).
    Frame(FrameResult),
    /// A camera changed status.
    Health(CameraHealth),
    /// Frame-level image statistics for camera-health rules (blocked / defocused / moved).
    ImageStats(ImageStats),
    /// Event time has advanced to this point for every source (drives timers when idle).
    /// `lookout run` does not send it (time comes from each analysed frame's capture time
    /// and health changes); a recording or a test may carry it to end quiet events.
    Watermark {
        /// The watermark.
        at: UtcTime,
    },
}

/// Cheap statistics of one analysed frame, computed once by inference from the pixels it
/// already touches, used by the camera-health rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageStats {
    /// Camera.
    pub camera: crate::CameraId,
    /// Frame sequence number.
    pub seq: u64,
    /// Capture time.
    pub captured_at: UtcTime,
    /// PTZ preset when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<std::sync::Arc<str>>,
    /// Mean luma 0..255.
    pub brightness: f32,
    /// Luma standard deviation (a lens covered by a hand or tarp has almost none).
    pub contrast: f32,
    /// Variance of a Laplacian on a small grey thumbnail (focus measure).
    pub sharpness: f32,
    /// A 16×16 grey thumbnail (256 bytes) for view-moved checks against a reference.
    pub thumb: Vec<u8>,
}

impl ImageStats {
    /// Side of the grey thumbnail kept for view-moved checks.
    pub const THUMB: usize = 16;

    /// Computes the statistics of a frame on a sparse grid of samples (cost: a few
    /// thousand pixel reads, whatever the resolution).
    pub fn compute(frame: &crate::Frame) -> ImageStats {
        const GRID: usize = 64;
        let (w, h) = (frame.width as usize, frame.height as usize);
        let px = frame.pixels.as_slice();
        let luma = |x: usize, y: usize| -> f32 {
            let i = (y * w + x) * 3;
            match px.get(i..i + 3) {
                Some(p) => 0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32,
                None => 0.0,
            }
        };
        let mut grid = [[0f32; GRID]; GRID];
        if w > 0 && h > 0 {
            for (gy, row) in grid.iter_mut().enumerate() {
                let y = (gy * 2 + 1) * h / (2 * GRID);
                for (gx, v) in row.iter_mut().enumerate() {
                    let x = (gx * 2 + 1) * w / (2 * GRID);
                    *v = luma(x.min(w - 1), y.min(h - 1));
                }
            }
        }
        let n = (GRID * GRID) as f32;
        let mean = grid.iter().flatten().sum::<f32>() / n;
        let var = grid
            .iter()
            .flatten()
            .map(|v| (v - mean).powi(2))
            .sum::<f32>()
            / n;
        let mut lap_sum = 0f32;
        let mut lap_sq = 0f32;
        let mut count = 0f32;
        for y in 1..GRID - 1 {
            for x in 1..GRID - 1 {
                let l = grid[y - 1][x] + grid[y + 1][x] + grid[y][x - 1] + grid[y][x + 1]
                    - 4.0 * grid[y][x];
                lap_sum += l;
                lap_sq += l * l;
                count += 1.0;
            }
        }
        let lap_mean = lap_sum / count;
        let sharpness = lap_sq / count - lap_mean * lap_mean;
        let step = GRID / Self::THUMB;
        let mut thumb = Vec::with_capacity(Self::THUMB * Self::THUMB);
        for ty in 0..Self::THUMB {
            for tx in 0..Self::THUMB {
                let mut s = 0f32;
                for y in 0..step {
                    for x in 0..step {
                        s += grid[ty * step + y][tx * step + x];
                    }
                }
                thumb.push((s / (step * step) as f32).round().clamp(0.0, 255.0) as u8);
            }
        }
        ImageStats {
            camera: frame.camera.clone(),
            seq: frame.seq,
            captured_at: frame.captured_at,
            preset: frame.preset().cloned(),
            brightness: mean,
            contrast: var.sqrt(),
            sharpness,
            thumb,
        }
    }
}
