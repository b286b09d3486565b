//! Preprocessing: a region of an RGB8 frame → one NCHW float slot of the input tensor, and
//! the [`Transform`] that maps model-input pixels back to frame pixels exactly.

use lookout_core::BBox;
use lookout_imageops::{CropRect, Resizer};

use crate::manifest::{ChannelOrder, InputSpec, ResizeMode};
use crate::InferError;

/// A borrowed packed RGB8 image: a frame's pixels or a decoded file.
#[derive(Debug, Clone, Copy)]
pub struct ImageView<'a> {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width * height * 3` bytes.
    pub rgb: &'a [u8],
}

impl<'a> ImageView<'a> {
    /// A view of a frame's pixels.
    pub fn from_frame(f: &'a lookout_core::Frame) -> Self {
        ImageView {
            width: f.width,
            height: f.height,
            rgb: f.pixels.as_slice(),
        }
    }

    /// A view of a decoded image.
    pub fn from_image(i: &'a lookout_imageops::RgbImage) -> Self {
        ImageView {
            width: i.width,
            height: i.height,
            rgb: &i.data,
        }
    }

    pub(crate) fn check(&self) -> Result<(), InferError> {
        let need = self.width as usize * self.height as usize * 3;
        if self.width == 0 || self.height == 0 || self.rgb.len() != need {
            return Err(InferError::Input(format!(
                "a {}x{} RGB8 image needs {} bytes, got {}",
                self.width,
                self.height,
                need,
                self.rgb.len()
            )));
        }
        Ok(())
    }
}

/// Anything that can lend an [`ImageView`]: frames in the service, views in the CLI.
pub trait AsImageView {
    /// The view.
    fn image_view(&self) -> ImageView<'_>;
}

impl AsImageView for ImageView<'_> {
    fn image_view(&self) -> ImageView<'_> {
        *self
    }
}

impl AsImageView for lookout_core::Frame {
    fn image_view(&self) -> ImageView<'_> {
        ImageView::from_frame(self)
    }
}

/// A rectangle of the frame (a tile, or the whole frame), in frame pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Region {
    /// Left edge.
    pub x: f32,
    /// Top edge.
    pub y: f32,
    /// Width.
    pub width: f32,
    /// Height.
    pub height: f32,
}

impl Region {
    /// The whole of a `w` × `h` frame.
    pub fn full(w: u32, h: u32) -> Self {
        Region {
            x: 0.0,
            y: 0.0,
            width: w as f32,
            height: h as f32,
        }
    }
}

/// How a frame region was placed into the model input: input = (frame − region origin) ×
/// scale + pad. Recorded per frame (and tile) so boxes map back exactly.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transform {
    /// The frame region that was fed (tile or full frame).
    pub region: Region,
    /// Input pixels per frame pixel, horizontally (the actual resize ratio used).
    pub scale_x: f32,
    /// Input pixels per frame pixel, vertically.
    pub scale_y: f32,
    /// Left padding in input pixels (letterbox).
    pub pad_x: f32,
    /// Top padding in input pixels (letterbox).
    pub pad_y: f32,
    /// Size of the resized content in input pixels (inside the padding).
    pub content_w: u32,
    /// Height of the resized content in input pixels.
    pub content_h: u32,
}

impl Transform {
    /// Computes the placement of `region` into an `in_w` × `in_h` input.
    pub fn new(region: Region, in_w: u32, in_h: u32, mode: ResizeMode) -> Transform {
        match mode {
            ResizeMode::Stretch => Transform {
                region,
                scale_x: in_w as f32 / region.width,
                scale_y: in_h as f32 / region.height,
                pad_x: 0.0,
                pad_y: 0.0,
                content_w: in_w,
                content_h: in_h,
            },
            ResizeMode::Letterbox => {
                let r = (in_w as f32 / region.width).min(in_h as f32 / region.height);
                let cw = ((region.width * r).round() as u32).clamp(1, in_w);
                let ch = ((region.height * r).round() as u32).clamp(1, in_h);
                let pad_x = ((in_w - cw) / 2) as f32;
                let pad_y = ((in_h - ch) / 2) as f32;
                Transform {
                    region,
                    scale_x: cw as f32 / region.width,
                    scale_y: ch as f32 / region.height,
                    pad_x,
                    pad_y,
                    content_w: cw,
                    content_h: ch,
                }
            }
        }
    }

    /// Frame point → input point.
    pub fn forward(&self, x: f32, y: f32) -> (f32, f32) {
        (
            (x - self.region.x) * self.scale_x + self.pad_x,
            (y - self.region.y) * self.scale_y + self.pad_y,
        )
    }

    /// Input point → frame point.
    pub fn back(&self, u: f32, v: f32) -> (f32, f32) {
        (
            (u - self.pad_x) / self.scale_x + self.region.x,
            (v - self.pad_y) / self.scale_y + self.region.y,
        )
    }

    /// Input box → frame box, clamped to the region (a tile's box never leaks outside it).
    pub fn box_back(&self, b: &BBox) -> BBox {
        let (x1, y1) = self.back(b.x1, b.y1);
        let (x2, y2) = self.back(b.x2, b.y2);
        let r = self.region;
        BBox::new(
            x1.clamp(r.x, r.x + r.width),
            y1.clamp(r.y, r.y + r.height),
            x2.clamp(r.x, r.x + r.width),
            y2.clamp(r.y, r.y + r.height),
        )
    }
}

/// Fills input slots from frames. Owns the resizer and a scratch RGB buffer, both reused:
/// after the first frames no allocation happens here.
#[derive(Debug)]
pub struct Preprocessor {
    resizer: Resizer,
    scratch: Vec<u8>,
    /// `lut[c][v]`: normalised value of pixel value `v` in tensor channel `c`.
    lut: [[f32; 256]; 3],
    /// Source RGB index (0, 1, 2) of each tensor channel.
    src_channel: [usize; 3],
    pad: [f32; 3],
    spec_w: u32,
    spec_h: u32,
    mode: ResizeMode,
}

impl Preprocessor {
    /// A preprocessor for one input specification.
    pub fn new(spec: &InputSpec) -> Self {
        let src_channel = match spec.channels {
            ChannelOrder::Rgb => [0, 1, 2],
            ChannelOrder::Bgr => [2, 1, 0],
        };
        let mut lut = [[0f32; 256]; 3];
        for (c, row) in lut.iter_mut().enumerate() {
            for (v, out) in row.iter_mut().enumerate() {
                *out = (v as f32 * spec.scale - spec.mean[c]) / spec.std[c];
            }
        }
        let pad = [
            lut[0][spec.pad_value as usize],
            lut[1][spec.pad_value as usize],
            lut[2][spec.pad_value as usize],
        ];
        Preprocessor {
            resizer: Resizer::new(),
            scratch: Vec::new(),
            lut,
            src_channel,
            pad,
            spec_w: spec.width,
            spec_h: spec.height,
            mode: spec.resize,
        }
    }

    /// Elements of one input slot (3 × H × W).
    pub fn slot_len(&self) -> usize {
        3 * self.spec_w as usize * self.spec_h as usize
    }

    /// Writes `region` of `img` into `slot` (CHW, `slot_len()` floats) and returns its
    /// transform.
    pub fn fill(
        &mut self,
        img: ImageView<'_>,
        region: Region,
        slot: &mut [f32],
    ) -> Result<Transform, InferError> {
        img.check()?;
        if slot.len() != self.slot_len() {
            return Err(InferError::Input(format!(
                "input slot has {} floats, expected {}",
                slot.len(),
                self.slot_len()
            )));
        }
        let t = Transform::new(region, self.spec_w, self.spec_h, self.mode);
        let (cw, ch) = (t.content_w as usize, t.content_h as usize);
        self.scratch.resize(cw * ch * 3, 0);
        let full = region == Region::full(img.width, img.height);
        let crop = (!full).then_some(CropRect {
            x: region.x as f64,
            y: region.y as f64,
            width: region.width as f64,
            height: region.height as f64,
        });
        self.resizer.resize_rgb8(
            img.rgb,
            img.width,
            img.height,
            crop,
            &mut self.scratch,
            cw as u32,
            ch as u32,
        )?;
        let (w, h) = (self.spec_w as usize, self.spec_h as usize);
        let plane = w * h;
        let padded = cw != w || ch != h;
        let (px, py) = (t.pad_x as usize, t.pad_y as usize);
        for c in 0..3 {
            let out = &mut slot[c * plane..(c + 1) * plane];
            if padded {
                out.fill(self.pad[c]);
            }
            let lut = &self.lut[c];
            let sc = self.src_channel[c];
            for y in 0..ch {
                let row_out = &mut out[(y + py) * w + px..(y + py) * w + px + cw];
                let row_in = &self.scratch[y * cw * 3..(y + 1) * cw * 3];
                for (o, p) in row_out.iter_mut().zip(row_in.chunks_exact(3)) {
                    *o = lut[p[sc] as usize];
                }
            }
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn letterbox_round_trip(
            w in 16u32..4000, h in 16u32..4000,
            in_w in 2u32..40, in_h in 2u32..40,
            fx in 0f32..1.0, fy in 0f32..1.0,
            tile in proptest::bool::ANY,
        ) {
            let region = if tile {
                Region { x: w as f32 / 3.0, y: h as f32 / 4.0, width: w as f32 / 2.0, height: h as f32 / 2.0 }
            } else {
                Region::full(w, h)
            };
            for mode in [ResizeMode::Letterbox, ResizeMode::Stretch] {
                let t = Transform::new(region, in_w * 32, in_h * 32, mode);
                let x = region.x + fx * region.width;
                let y = region.y + fy * region.height;
                let (u, v) = t.forward(x, y);
                // Inside the input, inside the content (not in the padding).
                prop_assert!(u >= t.pad_x - 1e-2 && u <= t.pad_x + t.content_w as f32 + 1e-2);
                prop_assert!(v >= t.pad_y - 1e-2 && v <= t.pad_y + t.content_h as f32 + 1e-2);
                let (bx, by) = t.back(u, v);
                prop_assert!((bx - x).abs() <= 1e-3 * w as f32, "x {} -> {} -> {}", x, u, bx);
                prop_assert!((by - y).abs() <= 1e-3 * h as f32, "y {} -> {} -> {}", y, v, by);
                // Padding is centred and symmetric within one pixel.
                let right = (in_w * 32) as f32 - t.pad_x - t.content_w as f32;
                prop_assert!((right - t.pad_x).abs() <= 1.0);
            }
        }
    }

    #[test]
    fn fill_letterboxes_and_normalises() {
        let spec: InputSpec = toml::from_str(
            r#"tensor = "x"
width = 8
height = 8
batch = 1
channels = "bgr"
mean = [10.0, 20.0, 30.0]
std = [2.0, 2.0, 2.0]
resize = "letterbox"
pad_value = 0"#,
        )
        .unwrap();
        let mut p = Preprocessor::new(&spec);
        // 4 wide, 2 high, constant colour r=100 g=50 b=10.
        let img = [100u8, 50, 10].repeat(8);
        let mut slot = vec![9.0; p.slot_len()];
        let t = p
            .fill(
                ImageView {
                    width: 4,
                    height: 2,
                    rgb: &img,
                },
                Region::full(4, 2),
                &mut slot,
            )
            .unwrap();
        assert_eq!(
            (t.content_w, t.content_h, t.pad_x, t.pad_y),
            (8, 4, 0.0, 2.0)
        );
        // Channel 0 is blue: (10 - 10) / 2 = 0 inside; pad (0 - 10) / 2 = -5 outside.
        assert_eq!(slot[0], -5.0);
        assert_eq!(slot[2 * 8 + 3], 0.0);
        // Channel 2 is red: (100 - 30) / 2 = 35.
        assert_eq!(slot[2 * 64 + 3 * 8 + 5], 35.0);
        assert_eq!(slot[2 * 64 + 7 * 8], -15.0);
    }
}
