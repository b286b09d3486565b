//! Output decoders for the layout families of [`crate::manifest::Layout`], and class-wise
//! non-maximum suppression.
//!
//! The YOLO families differ only in data — which axis holds the anchors and whether an
//! objectness column precedes the class scores — so one decoder reads both, driven by a
//! [`YoloShape`]. NanoDet's GFL heads have their own decoder. Decoders produce boxes in
//! model-input pixels; [`crate::preprocess::Transform`] maps them back to the frame.

use lookout_core::BBox;

/// A candidate box in model-input pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// Class index.
    pub class_id: u16,
    /// Score 0..1.
    pub score: f32,
    /// Box in input pixels.
    pub bbox: BBox,
}

/// How a YOLO output tensor is laid out, as data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct YoloShape {
    /// `[4 + nc, N]` per image (YOLOv8) rather than `[N, 5 + nc]` (YOLOv5).
    pub channels_first: bool,
    /// An objectness column follows the box (YOLOv5), multiplied into class scores.
    pub objectness: bool,
}

impl YoloShape {
    /// YOLOv8 / v11: `[4 + nc, N]`, no objectness.
    pub const V8: YoloShape = YoloShape {
        channels_first: true,
        objectness: false,
    };
    /// YOLOv5 / v7: `[N, 5 + nc]` with objectness.
    pub const V5: YoloShape = YoloShape {
        channels_first: false,
        objectness: true,
    };

    /// Values per anchor before the class scores.
    pub fn head(&self) -> usize {
        if self.objectness {
            5
        } else {
            4
        }
    }
}

/// Decodes one image's YOLO output (`data` = that image's slice, `n` anchors, `nc`
/// classes), keeping every class score ≥ `floor` (multi-label, as YOLO evaluation does).
pub fn decode_yolo(
    data: &[f32],
    n: usize,
    nc: usize,
    shape: YoloShape,
    floor: f32,
    out: &mut Vec<Candidate>,
) {
    let cols = shape.head() + nc;
    debug_assert_eq!(data.len(), n * cols);
    let at = |c: usize, i: usize| -> f32 {
        if shape.channels_first {
            data[c * n + i]
        } else {
            data[i * cols + c]
        }
    };
    for i in 0..n {
        let obj = if shape.objectness { at(4, i) } else { 1.0 };
        if obj < floor {
            continue;
        }
        for k in 0..nc {
            let s = at(shape.head() + k, i) * obj;
            if s >= floor && s.is_finite() {
                out.push(Candidate {
                    class_id: k as u16,
                    score: s.min(1.0),
                    bbox: BBox::from_cxcywh(at(0, i), at(1, i), at(2, i), at(3, i)),
                });
            }
        }
    }
}

/// NanoDet-Plus decoding parameters for one stride level.
#[derive(Debug, Clone, Copy)]
pub struct NanodetLevel {
    /// Stride in input pixels.
    pub stride: u32,
    /// Grid columns (`ceil(width / stride)`).
    pub cols: usize,
    /// Grid rows.
    pub rows: usize,
}

/// Decodes one stride level of one image: `cls` is `[N, nc]` (sigmoid scores), `reg` is
/// `[N, 4 × (reg_max + 1)]` (distance distributions for left, top, right, bottom). Anchor
/// centre = grid · stride + `center_offset` · (stride − 1); each distance is the expectation
/// of the softmax over bins, times the stride.
#[allow(clippy::too_many_arguments)]
pub fn decode_nanodet(
    cls: &[f32],
    reg: &[f32],
    level: NanodetLevel,
    nc: usize,
    reg_max: usize,
    center_offset: f32,
    floor: f32,
    out: &mut Vec<Candidate>,
) {
    let bins = reg_max + 1;
    let n = level.cols * level.rows;
    let s = level.stride as f32;
    for i in 0..n {
        let scores = &cls[i * nc..(i + 1) * nc];
        if !scores.iter().any(|&v| v >= floor) {
            continue;
        }
        let gx = (i % level.cols) as f32;
        let gy = (i / level.cols) as f32;
        let cx = gx * s + center_offset * (s - 1.0);
        let cy = gy * s + center_offset * (s - 1.0);
        let mut d = [0f32; 4];
        for (side, dist) in d.iter_mut().enumerate() {
            let logits = &reg[i * 4 * bins + side * bins..i * 4 * bins + (side + 1) * bins];
            let m = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0f32;
            let mut acc = 0f32;
            for (b, &l) in logits.iter().enumerate() {
                let e = (l - m).exp();
                sum += e;
                acc += e * b as f32;
            }
            *dist = acc / sum * s;
        }
        let bbox = BBox::new(cx - d[0], cy - d[1], cx + d[2], cy + d[3]);
        for (k, &v) in scores.iter().enumerate() {
            if v >= floor && v.is_finite() {
                out.push(Candidate {
                    class_id: k as u16,
                    score: v.min(1.0),
                    bbox,
                });
            }
        }
    }
}

/// Anything NMS can sort and compare.
pub trait Scored {
    /// Class index.
    fn class_id(&self) -> u16;
    /// Score.
    fn score(&self) -> f32;
    /// Box.
    fn bbox(&self) -> &BBox;
}

impl Scored for Candidate {
    fn class_id(&self) -> u16 {
        self.class_id
    }
    fn score(&self) -> f32 {
        self.score
    }
    fn bbox(&self) -> &BBox {
        &self.bbox
    }
}

impl Scored for lookout_core::Detection {
    fn class_id(&self) -> u16 {
        self.class_id
    }
    fn score(&self) -> f32 {
        self.score
    }
    fn bbox(&self) -> &BBox {
        &self.bbox
    }
}

/// Class-wise greedy NMS in place: sorts by score (descending) and removes every box whose
/// IoU with a kept box of the same class is above `iou`. Keeps at most `max_keep` boxes.
pub fn nms_classwise<T: Scored>(dets: &mut Vec<T>, iou: f32, max_keep: usize) {
    dets.sort_by(|a, b| {
        b.score()
            .partial_cmp(&a.score())
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.class_id().cmp(&b.class_id()))
    });
    let mut kept = 0usize;
    let mut i = 0usize;
    while i < dets.len() && kept < max_keep {
        // dets[..kept] are kept; decide on dets[i].
        let suppressed = dets[..kept]
            .iter()
            .any(|k| k.class_id() == dets[i].class_id() && k.bbox().iou(dets[i].bbox()) > iou);
        if !suppressed {
            dets.swap(kept, i);
            kept += 1;
        }
        i += 1;
    }
    dets.truncate(kept);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yolo_v8_and_v5_read_the_same_boxes() {
        // Two anchors, two classes. Anchor 0: box (10,10,4,4), scores (0.9, 0.01).
        // Anchor 1: box (50,40,10,20), scores (0.02, 0.6).
        let v8 = vec![
            10.0, 50.0, // cx
            10.0, 40.0, // cy
            4.0, 10.0, // w
            4.0, 20.0, // h
            0.9, 0.02, // class 0
            0.01, 0.6, // class 1
        ];
        let mut out = Vec::new();
        decode_yolo(&v8, 2, 2, YoloShape::V8, 0.05, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].class_id, 0);
        assert_eq!(out[0].bbox, BBox::new(8.0, 8.0, 12.0, 12.0));
        assert_eq!(out[1].class_id, 1);
        assert_eq!(out[1].bbox, BBox::new(45.0, 30.0, 55.0, 50.0));
        let v5 = vec![
            10.0, 10.0, 4.0, 4.0, 0.5, 0.9, 0.01, //
            50.0, 40.0, 10.0, 20.0, 1.0, 0.02, 0.6,
        ];
        let mut out5 = Vec::new();
        decode_yolo(&v5, 2, 2, YoloShape::V5, 0.05, &mut out5);
        assert_eq!(out5.len(), 2);
        assert!((out5[0].score - 0.45).abs() < 1e-6);
        assert_eq!(out5[1].bbox, out[1].bbox);
    }

    #[test]
    fn nanodet_centre_offset_and_distances() {
        // One level, stride 8, 2x1 grid, one class, reg_max 1 (2 bins).
        let cls = vec![0.1, 0.8];
        // Anchor 1: all sides put all mass on bin 1 → distance 1 × stride = 8.
        let big = 50.0;
        let reg = vec![
            0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, // anchor 0 (below floor 0.5)
            0.0, big, 0.0, big, 0.0, big, big, 0.0, // anchor 1: bottom distance 0
        ];
        let mut out = Vec::new();
        let level = NanodetLevel {
            stride: 8,
            cols: 2,
            rows: 1,
        };
        decode_nanodet(&cls, &reg, level, 1, 1, 0.5, 0.5, &mut out);
        assert_eq!(out.len(), 1);
        let b = out[0].bbox;
        // Centre x = 1 * 8 + 0.5 * 7 = 11.5, centre y = 3.5.
        assert!(
            (b.x1 - 3.5).abs() < 1e-4 && (b.x2 - 19.5).abs() < 1e-4,
            "{b:?}"
        );
        assert!(
            (b.y1 + 4.5).abs() < 1e-4 && (b.y2 - 3.5).abs() < 1e-4,
            "{b:?}"
        );
    }

    #[test]
    fn nms_is_per_class() {
        let c = |class_id, score, x| Candidate {
            class_id,
            score,
            bbox: BBox::new(x, 0.0, x + 10.0, 10.0),
        };
        let mut v = vec![
            c(0, 0.5, 1.0),
            c(0, 0.9, 0.0),
            c(1, 0.8, 0.0),
            c(0, 0.3, 50.0),
        ];
        nms_classwise(&mut v, 0.5, 100);
        let got: Vec<(u16, f32)> = v.iter().map(|d| (d.class_id, d.score)).collect();
        assert_eq!(got, vec![(0, 0.9), (1, 0.8), (0, 0.3)]);
        nms_classwise(&mut v, 0.5, 1);
        assert_eq!(v.len(), 1);
    }
}
