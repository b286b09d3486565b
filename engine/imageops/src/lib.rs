//! # lookout-imageops
//!
//! A small, typed wrapper over the `image` crate (PNG and JPEG only) and
//! `fast_image_resize`, exposing a few concrete functions on packed RGB8 buffers so that no
//! other crate instantiates their generic entry points (which cost minutes of compile time):
//!
//! * [`load_rgb8`] / [`decode_rgb8`]: an image file or encoded bytes → [`RgbImage`].
//! * [`Resizer`]: resizes (optionally a crop of) an RGB8 buffer into a caller-provided RGB8
//!   buffer; it keeps its scratch buffers, so a warmed-up resizer does not allocate.
//! * [`encode_jpeg`], [`save_jpeg`], [`save_png`]: RGB8 → files or bytes (snapshots,
//!   annotated images, plots).
//!
//! Buffers are always packed RGB8: `width * height * 3` bytes, no row padding, the layout of
//! `lookout_core::Frame`.

use std::io::Cursor;
use std::path::Path;

use fast_image_resize as fr;
use fr::pixels::U8x3;

/// What can go wrong with an image operation. Every variant names what it was working on.
#[derive(Debug, thiserror::Error)]
pub enum ImageOpsError {
    /// A file could not be read or decoded.
    #[error("cannot read image {path}: {message}")]
    Load {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// In-memory bytes could not be decoded.
    #[error("cannot decode image bytes: {0}")]
    Decode(String),
    /// A buffer does not have `width * height * 3` bytes, or a size is zero.
    #[error(
        "{what}: expected a {width}x{height} RGB8 buffer ({expected} bytes), got {actual} bytes"
    )]
    BadBuffer {
        /// Which buffer (source, destination).
        what: &'static str,
        /// Claimed width.
        width: u32,
        /// Claimed height.
        height: u32,
        /// Bytes needed.
        expected: usize,
        /// Bytes given.
        actual: usize,
    },
    /// The crop rectangle is empty or leaves the source image.
    #[error("crop {0:?} is empty or outside the {1}x{2} source")]
    BadCrop(CropRect, u32, u32),
    /// The resizer refused (should not happen once the buffers are checked).
    #[error("resize failed: {0}")]
    Resize(String),
    /// Encoding or writing failed.
    #[error("cannot write image {path}: {message}")]
    Save {
        /// The file (or `<memory>`).
        path: String,
        /// Why.
        message: String,
    },
}

/// A decoded image as packed RGB8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width * height * 3` bytes, row-major, no padding.
    pub data: Vec<u8>,
}

/// A source rectangle in pixels (fractional positions allowed), for resizing a crop (a tile).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CropRect {
    /// Left edge.
    pub x: f64,
    /// Top edge.
    pub y: f64,
    /// Width.
    pub width: f64,
    /// Height.
    pub height: f64,
}

fn check(what: &'static str, buf_len: usize, w: u32, h: u32) -> Result<(), ImageOpsError> {
    let expected = w as usize * h as usize * 3;
    if w == 0 || h == 0 || buf_len != expected {
        return Err(ImageOpsError::BadBuffer {
            what,
            width: w,
            height: h,
            expected,
            actual: buf_len,
        });
    }
    Ok(())
}

/// Loads a PNG or JPEG file as RGB8 (alpha dropped, grey expanded).
pub fn load_rgb8(path: &Path) -> Result<RgbImage, ImageOpsError> {
    let err = |m: String| ImageOpsError::Load {
        path: path.display().to_string(),
        message: m,
    };
    let reader = image::ImageReader::open(path)
        .map_err(|e| err(e.to_string()))?
        .with_guessed_format()
        .map_err(|e| err(e.to_string()))?;
    let img = reader.decode().map_err(|e| err(e.to_string()))?;
    let rgb = img.into_rgb8();
    Ok(RgbImage {
        width: rgb.width(),
        height: rgb.height(),
        data: rgb.into_raw(),
    })
}

/// Decodes PNG or JPEG bytes as RGB8.
pub fn decode_rgb8(bytes: &[u8]) -> Result<RgbImage, ImageOpsError> {
    let img = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ImageOpsError::Decode(e.to_string()))?
        .decode()
        .map_err(|e| ImageOpsError::Decode(e.to_string()))?;
    let rgb = img.into_rgb8();
    Ok(RgbImage {
        width: rgb.width(),
        height: rgb.height(),
        data: rgb.into_raw(),
    })
}

/// Encodes RGB8 as JPEG (`quality` 1..=100).
pub fn encode_jpeg(
    rgb: &[u8],
    width: u32,
    height: u32,
    quality: u8,
) -> Result<Vec<u8>, ImageOpsError> {
    check("jpeg source", rgb.len(), width, height)?;
    let mut out = Vec::new();
    let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality.clamp(1, 100));
    image::ImageEncoder::write_image(enc, rgb, width, height, image::ExtendedColorType::Rgb8)
        .map_err(|e| ImageOpsError::Save {
            path: "<memory>".into(),
            message: e.to_string(),
        })?;
    Ok(out)
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ImageOpsError> {
    std::fs::write(path, bytes).map_err(|e| ImageOpsError::Save {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// Writes RGB8 as a JPEG file.
pub fn save_jpeg(
    path: &Path,
    rgb: &[u8],
    width: u32,
    height: u32,
    quality: u8,
) -> Result<(), ImageOpsError> {
    let bytes = encode_jpeg(rgb, width, height, quality)?;
    write_file(path, &bytes)
}

/// Writes RGB8 as a PNG file (plots, where JPEG artefacts would blur thin lines).
pub fn save_png(path: &Path, rgb: &[u8], width: u32, height: u32) -> Result<(), ImageOpsError> {
    check("png source", rgb.len(), width, height)?;
    let mut out = Vec::new();
    let enc = image::codecs::png::PngEncoder::new(&mut out);
    image::ImageEncoder::write_image(enc, rgb, width, height, image::ExtendedColorType::Rgb8)
        .map_err(|e| ImageOpsError::Save {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
    write_file(path, &out)
}

/// A reusable RGB8 resizer (bilinear interpolation, like OpenCV's `INTER_LINEAR`, which is
/// what the published models were evaluated with).
///
/// Holds `fast_image_resize`'s scratch buffers: keep one per worker thread and it stops
/// allocating after the first frames.
pub struct Resizer {
    inner: fr::Resizer,
    options: fr::ResizeOptions,
}

impl std::fmt::Debug for Resizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resizer").finish_non_exhaustive()
    }
}

impl Default for Resizer {
    fn default() -> Self {
        Self::new()
    }
}

impl Resizer {
    /// A resizer with empty scratch buffers.
    pub fn new() -> Self {
        Resizer {
            inner: fr::Resizer::new(),
            options: fr::ResizeOptions::new()
                .resize_alg(fr::ResizeAlg::Interpolation(fr::FilterType::Bilinear)),
        }
    }

    /// Resizes `src` (`src_w` × `src_h`), or the `crop` of it, into `dst` (`dst_w` × `dst_h`).
    /// Both buffers are packed RGB8 of exactly the stated sizes.
    #[allow(clippy::too_many_arguments)]
    pub fn resize_rgb8(
        &mut self,
        src: &[u8],
        src_w: u32,
        src_h: u32,
        crop: Option<CropRect>,
        dst: &mut [u8],
        dst_w: u32,
        dst_h: u32,
    ) -> Result<(), ImageOpsError> {
        check("resize source", src.len(), src_w, src_h)?;
        check("resize destination", dst.len(), dst_w, dst_h)?;
        let src_img = fr::images::TypedImageRef::<U8x3>::from_buffer(src_w, src_h, src)
            .map_err(|e| ImageOpsError::Resize(e.to_string()))?;
        let mut dst_img = fr::images::TypedImage::<U8x3>::from_buffer(dst_w, dst_h, dst)
            .map_err(|e| ImageOpsError::Resize(e.to_string()))?;
        let opts = match crop {
            Some(c) => {
                let inside = c.width > 0.0
                    && c.height > 0.0
                    && c.x >= 0.0
                    && c.y >= 0.0
                    && c.x + c.width <= src_w as f64 + 1e-6
                    && c.y + c.height <= src_h as f64 + 1e-6;
                if !inside {
                    return Err(ImageOpsError::BadCrop(c, src_w, src_h));
                }
                self.options.crop(c.x, c.y, c.width, c.height)
            }
            None => self.options,
        };
        self.inner
            .resize_typed(&src_img, &mut dst_img, &opts)
            .map_err(|e| ImageOpsError::Resize(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(w: u32, h: u32) -> Vec<u8> {
        let mut v = Vec::with_capacity((w * h * 3) as usize);
        for y in 0..h {
            for x in 0..w {
                v.extend_from_slice(&[(x * 255 / w.max(1)) as u8, (y * 255 / h.max(1)) as u8, 77]);
            }
        }
        v
    }

    #[test]
    fn resize_keeps_constant_channel_and_gradient_direction() {
        let src = gradient(64, 32);
        let mut dst = vec![0u8; 16 * 8 * 3];
        let mut r = Resizer::new();
        r.resize_rgb8(&src, 64, 32, None, &mut dst, 16, 8).unwrap();
        assert!(dst.chunks(3).all(|p| p[2] == 77));
        // Red grows left to right, green top to bottom.
        assert!(dst[3 * 15] > dst[0] + 150);
        assert!(dst[(7 * 16) * 3 + 1] > dst[1] + 150);
    }

    #[test]
    fn crop_selects_the_right_region() {
        let src = gradient(100, 100);
        let mut dst = vec![0u8; 10 * 10 * 3];
        let mut r = Resizer::new();
        let crop = CropRect {
            x: 50.0,
            y: 0.0,
            width: 50.0,
            height: 50.0,
        };
        r.resize_rgb8(&src, 100, 100, Some(crop), &mut dst, 10, 10)
            .unwrap();
        // Right half: red is at least ~127 everywhere.
        assert!(dst.chunks(3).all(|p| p[0] >= 120));
        let bad = CropRect {
            x: 60.0,
            y: 0.0,
            width: 50.0,
            height: 50.0,
        };
        assert!(matches!(
            r.resize_rgb8(&src, 100, 100, Some(bad), &mut dst, 10, 10),
            Err(ImageOpsError::BadCrop(..))
        ));
    }

    #[test]
    fn wrong_buffer_sizes_are_errors() {
        let mut r = Resizer::new();
        let mut dst = vec![0u8; 12];
        let e = r
            .resize_rgb8(&[0u8; 10], 2, 2, None, &mut dst, 2, 2)
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("expected a 2x2 RGB8 buffer (12 bytes), got 10"),
            "{e}"
        );
    }

    #[test]
    fn jpeg_and_png_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let src = gradient(40, 30);
        let jpg = dir.path().join("a.jpg");
        save_jpeg(&jpg, &src, 40, 30, 95).unwrap();
        let back = load_rgb8(&jpg).unwrap();
        assert_eq!((back.width, back.height), (40, 30));
        let err: i32 = back
            .data
            .iter()
            .zip(&src)
            .map(|(a, b)| (*a as i32 - *b as i32).abs())
            .max()
            .unwrap();
        assert!(err < 40, "jpeg error {err}");
        let png = dir.path().join("a.png");
        save_png(&png, &src, 40, 30).unwrap();
        assert_eq!(load_rgb8(&png).unwrap().data, src);
        let missing = load_rgb8(&dir.path().join("nope.png")).unwrap_err();
        assert!(missing.to_string().contains("nope.png"));
    }
}
