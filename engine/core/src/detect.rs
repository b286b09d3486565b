//! Detections: what inference says about one frame.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{CameraId, UtcTime};

/// An axis-aligned box in original (analysis-frame) pixel coordinates, `x1 < x2`, `y1 < y2`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct BBox {
    /// Left edge.
    pub x1: f32,
    /// Top edge.
    pub y1: f32,
    /// Right edge.
    pub x2: f32,
    /// Bottom edge.
    pub y2: f32,
}

impl BBox {
    /// A box from its corners.
    pub fn new(x1: f32, y1: f32, x2: f32, y2: f32) -> Self {
        BBox { x1, y1, x2, y2 }
    }

    /// A box from centre and size.
    pub fn from_cxcywh(cx: f32, cy: f32, w: f32, h: f32) -> Self {
        BBox::new(cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0)
    }

    /// Width (0 for inverted boxes).
    pub fn width(&self) -> f32 {
        (self.x2 - self.x1).max(0.0)
    }

    /// Height (0 for inverted boxes).
    pub fn height(&self) -> f32 {
        (self.y2 - self.y1).max(0.0)
    }

    /// Area in square pixels.
    pub fn area(&self) -> f32 {
        self.width() * self.height()
    }

    /// Centre point.
    pub fn center(&self) -> (f32, f32) {
        ((self.x1 + self.x2) / 2.0, (self.y1 + self.y2) / 2.0)
    }

    /// Intersection over union, 0 when disjoint.
    pub fn iou(&self, other: &BBox) -> f32 {
        let iw = (self.x2.min(other.x2) - self.x1.max(other.x1)).max(0.0);
        let ih = (self.y2.min(other.y2) - self.y1.max(other.y1)).max(0.0);
        let inter = iw * ih;
        let union = self.area() + other.area() - inter;
        if union <= 0.0 {
            0.0
        } else {
            inter / union
        }
    }

    /// Clamps the box into a `width` × `height` image.
    pub fn clamp(&self, width: f32, height: f32) -> BBox {
        BBox::new(
            self.x1.clamp(0.0, width),
            self.y1.clamp(0.0, height),
            self.x2.clamp(0.0, width),
            self.y2.clamp(0.0, height),
        )
    }
}

/// One detected object in one frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// Class name from the model manifest (`smoke`, `fire`, `person`, ...).
    pub class: Arc<str>,
    /// Class index in the model's output.
    pub class_id: u16,
    /// Model score in 0..1 (only a low fixed floor was applied: thresholds live in rules).
    pub score: f32,
    /// Box in the frame's pixel coordinates.
    pub bbox: BBox,
    /// Role measured from the person's vest and helmet colours (`[[rules.roles]]`), by the
    /// inference worker on the frame's pixels. `None` when no role palette is configured or
    /// the detection is not of the person class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<RoleTag>,
}

/// The role name of a person whose colours match no configured role clearly enough.
pub const UNKNOWN_ROLE: &str = "unknown";

/// A person's role as measured on one frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleTag {
    /// A `[[rules.roles]]` name, or [`UNKNOWN_ROLE`] when unsure (too few pixels of any
    /// role's colours, or two roles about as likely).
    pub name: Arc<str>,
    /// Confidence in 0..1: the share of the measured head/torso pixels that have the best
    /// role's colours (the weaker of its helmet and vest shares when it has both).
    pub score: f32,
}

impl RoleTag {
    /// True for a named role (not [`UNKNOWN_ROLE`]).
    pub fn is_known(&self) -> bool {
        &*self.name != UNKNOWN_ROLE
    }
}

/// Everything one model said about one analysed frame — including nothing.
///
/// Emitted for every analysed frame, with an empty `detections` list when nothing was found,
/// so that downstream "no person at the duty post" is evidence, not silence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameResult {
    /// Camera that produced the frame.
    pub camera: CameraId,
    /// The frame's sequence number.
    pub seq: u64,
    /// The frame's capture time (UTC).
    pub captured_at: UtcTime,
    /// PTZ preset when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<Arc<str>>,
    /// Frame width in pixels (boxes are in this space).
    pub width: u32,
    /// Frame height in pixels.
    pub height: u32,
    /// Model (the `[models.NAME]` key of the config) that produced these detections.
    pub model: Arc<str>,
    /// Detections after class-wise NMS and the score floor.
    pub detections: Vec<Detection>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_basic() {
        let a = BBox::new(0.0, 0.0, 10.0, 10.0);
        let b = BBox::new(5.0, 0.0, 15.0, 10.0);
        assert!((a.iou(&b) - 50.0 / 150.0).abs() < 1e-6);
        assert_eq!(a.iou(&BBox::new(20.0, 20.0, 30.0, 30.0)), 0.0);
        assert!((a.iou(&a) - 1.0).abs() < 1e-6);
    }
}
