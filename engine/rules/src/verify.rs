//! Temporal verification of a track (`[rules.verify]`): is its tube of recent boxes
//! shaped like a plume?
//!
//! Over the last `window` analysed frames a plume is seen in most frames, its base (the
//! box's bottom edge) stays where the fire is while its top rises, it drifts sideways
//! slowly, and it neither shrinks away nor balloons. The checks use the boxes only, so a
//! recording replays them exactly; each verdict says which check failed, for the tuning
//! view and the logs.

use lookout_config::rules::VerifyConfig;
use serde::Serialize;

use crate::tracker::Track;

/// Why a tube is or is not verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TubeReason {
    /// Every check passed.
    Verified,
    /// Seen in fewer than `min_frames` of the window's frames.
    TooFewFrames,
    /// The base moved more than `max_base_shift` box heights (something falling or
    /// passing, not a plume rising from one place).
    BaseMoved,
    /// The box moved sideways more than `max_drift` box widths (a cloud racing across).
    Drifting,
    /// The box shrank below `min_growth` of its first area.
    Shrinking,
    /// The box grew beyond `max_growth` of its first area.
    Ballooning,
}

impl TubeReason {
    /// The reason's name as serialised (`too_few_frames`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            TubeReason::Verified => "verified",
            TubeReason::TooFewFrames => "too_few_frames",
            TubeReason::BaseMoved => "base_moved",
            TubeReason::Drifting => "drifting",
            TubeReason::Shrinking => "shrinking",
            TubeReason::Ballooning => "ballooning",
        }
    }
}

/// The measurements of one tube and the verdict.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TubeVerdict {
    /// Outcome.
    pub reason: TubeReason,
    /// Frames of the window the track was seen in.
    pub frames: u32,
    /// Bottom-edge movement over the window (a shorter tube's movement projected at its
    /// pace), in mean box heights.
    pub base_shift: f32,
    /// Centre movement sideways over the window (projected likewise), in mean box widths.
    pub drift: f32,
    /// Newest box area over the oldest's (projected over the window likewise).
    pub growth: f32,
}

impl TubeVerdict {
    /// True when every check passed.
    pub fn verified(&self) -> bool {
        self.reason == TubeReason::Verified
    }
}

/// Scores `track`'s tube under `cfg`.
pub fn verify(track: &Track, cfg: &VerifyConfig) -> TubeVerdict {
    let window = cfg.window.max(2);
    let frames = track.seen_in(window);
    let n = track.tube_len().min(frames).max(1);
    let (Some(new), Some(old)) = (track.tube_box(0), track.tube_box(n - 1)) else {
        return TubeVerdict {
            reason: TubeReason::TooFewFrames,
            frames,
            base_shift: 0.0,
            drift: 0.0,
            growth: 1.0,
        };
    };
    let (mut w, mut h) = (0.0f32, 0.0f32);
    for i in 0..n {
        if let Some(b) = track.tube_box(i) {
            w += b.width();
            h += b.height();
        }
    }
    let (w, h) = ((w / n as f32).max(1.0), (h / n as f32).max(1.0));
    // A tube shorter than the window is judged by its pace: what it moved (and grew) over
    // its frames, projected over the whole window at the same rate. A cloud racing half its
    // width a frame fails after 3 frames as it would after 8, and a plume need not wait for
    // the window to fill (time to detection is `min_frames`, not `window`).
    let pace = if n >= 2 {
        (window - 1) as f32 / (n - 1) as f32
    } else {
        1.0
    };
    let base_shift = (new.y2 - old.y2).abs() / h * pace;
    let drift = (new.center().0 - old.center().0).abs() / w * pace;
    let area = |b: &lookout_core::BBox| (b.width() * b.height()).max(1.0);
    let growth = (area(&new) / area(&old)).powf(pace);
    let reason = if frames < cfg.min_frames {
        TubeReason::TooFewFrames
    } else if base_shift > cfg.max_base_shift {
        TubeReason::BaseMoved
    } else if drift > cfg.max_drift {
        TubeReason::Drifting
    } else if growth < cfg.min_growth {
        TubeReason::Shrinking
    } else if growth > cfg.max_growth {
        TubeReason::Ballooning
    } else {
        TubeReason::Verified
    };
    TubeVerdict {
        reason,
        frames,
        base_shift,
        drift,
        growth,
    }
}
