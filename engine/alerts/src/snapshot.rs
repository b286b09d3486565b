//! Snapshots: the triggering frame as JPEG with boxes, class, score, camera and time drawn
//! (rectangles and a built-in 5×7 bitmap font, no font files).

use image::codecs::jpeg::JpegEncoder;
use image::{ExtendedColorType, ImageEncoder};
use lookout_core::{BBox, CameraId, EventKind, Frame, Incident, UtcTime};

/// Errors while rendering a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The frame's pixel buffer does not match its size.
    #[error("frame of camera {camera} has {got} bytes, expected {want} for {w}x{h} RGB")]
    BadFrame {
        /// Camera.
        camera: String,
        /// Bytes present.
        got: usize,
        /// Bytes expected.
        want: usize,
        /// Width.
        w: u32,
        /// Height.
        h: u32,
    },
    /// JPEG encoding failed.
    #[error("JPEG encoding: {0}")]
    Encode(#[from] image::ImageError),
}

/// An RGB canvas we draw on.
pub struct Canvas {
    /// Width.
    pub w: u32,
    /// Height.
    pub h: u32,
    /// Packed RGB8.
    pub px: Vec<u8>,
}

const GLYPHS: &[(char, [u8; 7])] = &[
    (' ', [0, 0, 0, 0, 0, 0, 0]),
    ('0', [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E]),
    ('1', [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E]),
    ('2', [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F]),
    ('3', [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E]),
    ('4', [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02]),
    ('5', [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E]),
    ('6', [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E]),
    ('7', [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08]),
    ('8', [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E]),
    ('9', [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C]),
    ('A', [0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11]),
    ('B', [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E]),
    ('C', [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E]),
    ('D', [0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C]),
    ('E', [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F]),
    ('F', [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10]),
    ('G', [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F]),
    ('H', [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11]),
    ('I', [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E]),
    ('J', [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C]),
    ('K', [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11]),
    ('L', [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F]),
    ('M', [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11]),
    ('N', [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11]),
    ('O', [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E]),
    ('P', [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10]),
    ('Q', [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D]),
    ('R', [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11]),
    ('S', [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E]),
    ('T', [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04]),
    ('U', [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E]),
    ('V', [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04]),
    ('W', [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A]),
    ('X', [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11]),
    ('Y', [0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04]),
    ('Z', [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F]),
    (':', [0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00]),
    ('.', [0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C]),
    ('-', [0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00]),
    ('/', [0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00]),
    ('_', [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F]),
    ('%', [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03]),
    ('(', [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02]),
    (')', [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08]),
    ('+', [0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00]),
    (',', [0x00, 0x00, 0x00, 0x00, 0x0C, 0x04, 0x08]),
    ('#', [0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A]),
    ('?', [0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04]),
];

fn glyph(c: char) -> &'static [u8; 7] {
    let c = c.to_ascii_uppercase();
    GLYPHS
        .iter()
        .find(|(g, _)| *g == c)
        .or_else(|| GLYPHS.iter().find(|(g, _)| *g == '?'))
        .map(|(_, b)| b)
        .unwrap_or(&GLYPHS[0].1)
}

impl Canvas {
    /// A canvas holding a copy of the frame's pixels.
    pub fn from_frame(f: &Frame) -> Result<Canvas, SnapshotError> {
        let want = f.width as usize * f.height as usize * 3;
        let px = f.pixels.as_slice();
        if px.len() < want || want == 0 {
            return Err(SnapshotError::BadFrame {
                camera: f.camera.to_string(),
                got: px.len(),
                want,
                w: f.width,
                h: f.height,
            });
        }
        Ok(Canvas {
            w: f.width,
            h: f.height,
            px: px[..want].to_vec(),
        })
    }

    /// Fills a rectangle (clipped).
    pub fn fill(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, c: [u8; 3]) {
        let (x0, x1) = (x0.max(0), x1.min(self.w as i64));
        let (y0, y1) = (y0.max(0), y1.min(self.h as i64));
        for y in y0..y1 {
            for x in x0..x1 {
                let i = (y as usize * self.w as usize + x as usize) * 3;
                self.px[i..i + 3].copy_from_slice(&c);
            }
        }
    }

    /// Draws a rectangle outline `t` pixels thick.
    pub fn rect(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, t: i64, c: [u8; 3]) {
        self.fill(x0, y0, x1, y0 + t, c);
        self.fill(x0, y1 - t, x1, y1, c);
        self.fill(x0, y0, x0 + t, y1, c);
        self.fill(x1 - t, y0, x1, y1, c);
    }

    /// Pixel width of `text` at `scale`.
    pub fn text_width(text: &str, scale: i64) -> i64 {
        text.chars().count() as i64 * 6 * scale
    }

    /// Draws text with the built-in 5×7 font (upper case) at `scale`.
    pub fn text(&mut self, x: i64, y: i64, text: &str, scale: i64, c: [u8; 3]) {
        for (i, ch) in text.chars().enumerate() {
            let g = glyph(ch);
            let gx = x + i as i64 * 6 * scale;
            for (row, bits) in g.iter().enumerate() {
                for col in 0..5 {
                    if bits & (0x10 >> col) != 0 {
                        let px = gx + col * scale;
                        let py = y + row as i64 * scale;
                        self.fill(px, py, px + scale, py + scale, c);
                    }
                }
            }
        }
    }

    /// Encodes as JPEG.
    pub fn jpeg(&self, quality: u8) -> Result<Vec<u8>, SnapshotError> {
        let mut out = Vec::with_capacity(self.px.len() / 8);
        JpegEncoder::new_with_quality(&mut out, quality.clamp(1, 100)).write_image(
            &self.px,
            self.w,
            self.h,
            ExtendedColorType::Rgb8,
        )?;
        Ok(out)
    }
}

fn color(kind: EventKind) -> [u8; 3] {
    match kind {
        EventKind::Fire => [255, 40, 20],
        EventKind::Smoke => [255, 160, 0],
        EventKind::Restricted
        | EventKind::OverOccupancy
        | EventKind::ForbiddenRole
        | EventKind::LoneWorker => [255, 0, 200],
        _ => [255, 230, 0],
    }
}

/// A box in the frame's pixels from a box in another frame size.
fn scale_box(b: &BBox, from: Option<(u32, u32)>, w: u32, h: u32) -> BBox {
    match from {
        Some((fw, fh)) if fw > 0 && fh > 0 && (fw != w || fh != h) => {
            let sx = w as f32 / fw as f32;
            let sy = h as f32 / fh as f32;
            BBox::new(b.x1 * sx, b.y1 * sy, b.x2 * sx, b.y2 * sy)
        }
        _ => *b,
    }
}

/// Renders the snapshot of `frame` for `inc`: the boxes of the incident's events on this
/// camera with kind and score, and a header with camera, capture time and incident kind.
pub fn render(frame: &Frame, inc: &Incident, quality: u8) -> Result<Vec<u8>, SnapshotError> {
    let mut c = Canvas::from_frame(frame)?;
    let scale = ((frame.width as i64) / 480).clamp(1, 4);
    let thick = scale.max(2);
    for e in inc.events.iter().filter(|e| e.camera == frame.camera) {
        let Some(b) = e.bbox else { continue };
        let b = scale_box(&b, e.frame_size, frame.width, frame.height)
            .clamp(frame.width as f32, frame.height as f32);
        let col = color(e.kind);
        let (x0, y0, x1, y1) = (b.x1 as i64, b.y1 as i64, b.x2 as i64, b.y2 as i64);
        c.rect(
            x0,
            y0,
            x1.max(x0 + 2 * thick),
            y1.max(y0 + 2 * thick),
            thick,
            col,
        );
        let label = format!("{} {:.2}", e.kind.as_str(), e.best_score);
        let lh = 9 * scale;
        let ly = if y0 - lh >= 0 { y0 - lh } else { y1 };
        c.fill(
            x0,
            ly,
            x0 + Canvas::text_width(&label, scale) + 2 * scale,
            ly + lh,
            col,
        );
        c.text(x0 + scale, ly + scale, &label, scale, [0, 0, 0]);
    }
    let header = format!(
        "{}  {}  {} #{}",
        frame.camera,
        frame.captured_at.format("%Y-%m-%d %H:%M:%SZ"),
        inc.kind.as_str(),
        inc.revision
    );
    let hh = 11 * scale;
    c.fill(
        0,
        0,
        Canvas::text_width(&header, scale) + 4 * scale,
        hh,
        [0, 0, 0],
    );
    c.text(2 * scale, 2 * scale, &header, scale, [255, 255, 255]);
    c.jpeg(quality)
}

/// One box on a training frame, in coordinates normalised to the frame (0..=1): what the
/// detector raised on a snapshot, or what an operator corrected it to.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainingBox {
    /// Class name (`smoke`, `fire`, `person`, ...).
    pub class: String,
    /// Detector score; absent on a box an operator drew.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f32>,
    /// `[x1, y1, x2, y2]`, normalised, `x1 < x2`, `y1 < y2`.
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
}

impl TrainingBox {
    /// Checks the class and the box: a clear message for the API's 400.
    pub fn validate(&self) -> Result<(), String> {
        if self.class.is_empty()
            || self.class.len() > 64
            || !self
                .class
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ' '))
        {
            return Err(format!(
                "class {:?}: 1-64 of A-Z a-z 0-9 _ - and space",
                self.class
            ));
        }
        let [x1, y1, x2, y2] = self.bbox;
        if !self
            .bbox
            .iter()
            .all(|v| v.is_finite() && (0.0..=1.0).contains(v))
        {
            return Err(format!(
                "box {:?}: coordinates are fractions of the frame, 0..=1",
                self.bbox
            ));
        }
        if x1 >= x2 || y1 >= y2 {
            return Err(format!("box {:?}: needs x1 < x2 and y1 < y2", self.bbox));
        }
        Ok(())
    }
}

/// The boxes [`render`] draws on `frame` for `inc` (its events on this camera), normalised
/// to the frame: the detector's labels of a training frame.
pub fn training_boxes(frame: &Frame, inc: &Incident) -> Vec<TrainingBox> {
    let (w, h) = (frame.width.max(1) as f32, frame.height.max(1) as f32);
    inc.events
        .iter()
        .filter(|e| e.camera == frame.camera)
        .filter_map(|e| {
            let b = scale_box(&e.bbox?, e.frame_size, frame.width, frame.height)
                .clamp(frame.width as f32, frame.height as f32);
            let bbox = [b.x1 / w, b.y1 / h, b.x2 / w, b.y2 / h];
            (bbox[0] < bbox[2] && bbox[1] < bbox[3]).then(|| TrainingBox {
                class: e.kind.as_str().to_string(),
                score: Some(e.best_score),
                bbox,
            })
        })
        .collect()
}

/// Encodes a frame as JPEG without drawing (live view).
pub fn frame_jpeg(frame: &Frame, quality: u8) -> Result<Vec<u8>, SnapshotError> {
    Canvas::from_frame(frame)?.jpeg(quality)
}

/// Decodes a JPEG (an edge's snapshot from the cluster's object store) into the frame
/// `seq` of `camera`, captured at `captured_at`.
pub fn decode_jpeg(
    jpeg: &[u8],
    camera: CameraId,
    seq: u64,
    captured_at: UtcTime,
) -> Result<Frame, SnapshotError> {
    let img = image::load_from_memory_with_format(jpeg, image::ImageFormat::Jpeg)?.to_rgb8();
    let (w, h) = img.dimensions();
    Ok(Frame::from_rgb(
        camera,
        seq,
        captured_at,
        w,
        h,
        img.into_raw(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_text_and_boxes() {
        let mut c = Canvas {
            w: 40,
            h: 20,
            px: vec![0; 40 * 20 * 3],
        };
        c.text(1, 1, "1", 1, [255, 255, 255]);
        // '1' row 0 = 0x04: only the middle column lit.
        let at = |c: &Canvas, x: usize, y: usize| c.px[(y * 40 + x) * 3];
        assert_eq!(at(&c, 3, 1), 255);
        assert_eq!(at(&c, 1, 1), 0);
        c.rect(10, 5, 20, 15, 1, [9, 9, 9]);
        assert_eq!(at(&c, 10, 10), 9);
        assert_eq!(at(&c, 15, 10), 0);
        // Clipping: no panic outside the canvas.
        c.fill(-5, -5, 100, 100, [1, 1, 1]);
        let jpg = c.jpeg(80).unwrap();
        assert_eq!(&jpg[..2], &[0xFF, 0xD8]);
    }
}
