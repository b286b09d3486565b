//! The sequence-directory format (SEQ dir) for event-level evaluation, and converters.
//!
//! ```text
//! SEQ/
//!   sequence.toml     interval_s = 60            # seconds between frames
//!                     first_positive = "0042.jpg" # optional: first frame showing the event
//!                     class = "smoke"             # optional: class of first_positive
//!                     classes = ["smoke", "fire"] # optional: YOLO class ids → names
//!   frames/           images; time order = file-name order
//!   labels/           optional YOLO boxes per frame: labels/<frame stem>.txt,
//!                     one `class cx cy w h` line per box, normalised 0..1
//! ```
//!
//! A frame without a label file (while `labels/` exists) is a verified negative.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use lookout_core::{BBox, UtcTime};
use serde::{Deserialize, Serialize};

use crate::eval::{LabelBox, Truth};
use crate::RulesError;

/// Image extensions recognised in `frames/`.
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "bmp", "webp"];

/// `sequence.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SequenceMeta {
    /// Seconds between consecutive frames (capture-time spacing).
    pub interval_s: f64,
    /// File name of the first frame that shows the event (sequences labelled by time only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_positive: Option<String>,
    /// Class of `first_positive` (`smoke`, `fire`, ...). Unset: any class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// Names of YOLO class ids in `labels/`. Default `["smoke", "fire"]`.
    #[serde(default = "default_classes")]
    pub classes: Vec<String>,
}

fn default_classes() -> Vec<String> {
    vec!["smoke".into(), "fire".into()]
}

/// One YOLO label line.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct YoloBox {
    /// Class id.
    pub class_id: u16,
    /// Centre x, 0..1.
    pub cx: f32,
    /// Centre y, 0..1.
    pub cy: f32,
    /// Width, 0..1.
    pub w: f32,
    /// Height, 0..1.
    pub h: f32,
}

impl YoloBox {
    /// The box in pixels of a `width` × `height` frame.
    pub fn to_bbox(&self, width: u32, height: u32) -> BBox {
        let (fw, fh) = (width as f32, height as f32);
        BBox::from_cxcywh(self.cx * fw, self.cy * fh, self.w * fw, self.h * fh)
    }

    /// A label from a pixel box `x y w h` (top-left and size) in a `width` × `height` frame.
    pub fn from_xywh(
        class_id: u16,
        x: f32,
        y: f32,
        w: f32,
        h: f32,
        width: u32,
        height: u32,
    ) -> Self {
        let (fw, fh) = (width.max(1) as f32, height.max(1) as f32);
        YoloBox {
            class_id,
            cx: ((x + w / 2.0) / fw).clamp(0.0, 1.0),
            cy: ((y + h / 2.0) / fh).clamp(0.0, 1.0),
            w: (w / fw).clamp(0.0, 1.0),
            h: (h / fh).clamp(0.0, 1.0),
        }
    }

    /// The label line.
    pub fn line(&self) -> String {
        format!(
            "{} {:.6} {:.6} {:.6} {:.6}",
            self.class_id, self.cx, self.cy, self.w, self.h
        )
    }
}

/// Parses a YOLO label file's text; `origin` names it in errors.
pub fn parse_yolo(text: &str, origin: &Path) -> Result<Vec<YoloBox>, RulesError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let err = |m: &str| RulesError::Parse {
            path: origin.to_path_buf(),
            line: i + 1,
            message: format!("{m}: expected `class cx cy w h`, got {line:?}"),
        };
        let parts: Vec<&str> = line.split_whitespace().collect();
        if parts.len() != 5 {
            return Err(err("wrong number of fields"));
        }
        let class_id = parts[0].parse::<u16>().map_err(|_| err("bad class id"))?;
        let mut v = [0f32; 4];
        for (k, p) in parts[1..].iter().enumerate() {
            v[k] = p.parse::<f32>().map_err(|_| err("bad number"))?;
            if !(0.0..=1.0).contains(&v[k]) {
                return Err(err("coordinates must be normalised to 0..1"));
            }
        }
        out.push(YoloBox {
            class_id,
            cx: v[0],
            cy: v[1],
            w: v[2],
            h: v[3],
        });
    }
    Ok(out)
}

/// A sequence directory, read.
#[derive(Debug, Clone, PartialEq)]
pub struct SeqDir {
    /// The directory.
    pub root: PathBuf,
    /// `sequence.toml`.
    pub meta: SequenceMeta,
    /// Frame file names in `frames/`, in time order.
    pub frames: Vec<String>,
    /// Labels per frame when `labels/` exists (a missing file is an empty list).
    pub labels: Option<Vec<Vec<YoloBox>>>,
    /// Index of `first_positive` in `frames`.
    pub first_positive: Option<usize>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RulesError + '_ {
    move |source| RulesError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn stem(name: &str) -> &str {
    match name.rfind('.') {
        Some(i) if i > 0 => &name[..i],
        _ => name,
    }
}

fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Image file names in a directory, sorted.
fn list_images(dir: &Path) -> Result<Vec<String>, RulesError> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let p = entry.path();
        if p.is_file() && is_image(&p) {
            if let Some(n) = p.file_name().and_then(|n| n.to_str()) {
                names.push(n.to_string());
            }
        }
    }
    names.sort();
    Ok(names)
}

impl SeqDir {
    /// Reads a sequence directory.
    pub fn read(dir: &Path) -> Result<SeqDir, RulesError> {
        let meta_path = dir.join("sequence.toml");
        let text = std::fs::read_to_string(&meta_path).map_err(io(&meta_path))?;
        let meta: SequenceMeta = toml::from_str(&text).map_err(|e| RulesError::Parse {
            path: meta_path.clone(),
            line: e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
                .unwrap_or(0),
            message: e.message().to_string(),
        })?;
        if !(meta.interval_s > 0.0 && meta.interval_s.is_finite()) {
            return Err(RulesError::Parse {
                path: meta_path,
                line: 0,
                message: format!("interval_s must be > 0, got {}", meta.interval_s),
            });
        }
        let frames = list_images(&dir.join("frames"))?;
        let first_positive =
            match &meta.first_positive {
                None => None,
                Some(name) => Some(frames.iter().position(|f| f == name).ok_or_else(|| {
                    RulesError::Parse {
                        path: meta_path.clone(),
                        line: 0,
                        message: format!("first_positive {name:?} is not a file in frames/"),
                    }
                })?),
            };
        let label_dir = dir.join("labels");
        let labels = if label_dir.is_dir() {
            let mut all = Vec::with_capacity(frames.len());
            for f in &frames {
                let p = label_dir.join(format!("{}.txt", stem(f)));
                if p.is_file() {
                    let text = std::fs::read_to_string(&p).map_err(io(&p))?;
                    all.push(parse_yolo(&text, &p)?);
                } else {
                    all.push(Vec::new());
                }
            }
            Some(all)
        } else {
            None
        };
        Ok(SeqDir {
            root: dir.to_path_buf(),
            meta,
            frames,
            labels,
            first_positive,
        })
    }

    /// Path of frame `i`.
    pub fn frame_path(&self, i: usize) -> PathBuf {
        self.root.join("frames").join(&self.frames[i])
    }

    /// Capture time to give frame `i` when the sequence starts at `start`.
    pub fn captured_at(&self, i: usize, start: UtcTime) -> UtcTime {
        start
            + chrono::Duration::milliseconds(
                (self.meta.interval_s * 1000.0 * i as f64).round() as i64
            )
    }

    /// The ground truth for evaluation, with label boxes in pixels of each frame's size
    /// (`sizes[i]` = (width, height) of frame `i` as analysed). Labels win over
    /// `first_positive` when both exist.
    pub fn truth(&self, sizes: &[(u32, u32)]) -> Truth {
        match &self.labels {
            Some(labels) => Truth::Boxes(
                labels
                    .iter()
                    .enumerate()
                    .map(|(i, boxes)| {
                        let (w, h) = sizes.get(i).copied().unwrap_or((1, 1));
                        boxes
                            .iter()
                            .map(|b| LabelBox {
                                class: self
                                    .meta
                                    .classes
                                    .get(b.class_id as usize)
                                    .cloned()
                                    .unwrap_or_else(|| b.class_id.to_string()),
                                bbox: b.to_bbox(w, h),
                            })
                            .collect()
                    })
                    .collect(),
            ),
            None => Truth::FirstPositive {
                index: self.first_positive,
                class: self.meta.class.clone(),
            },
        }
    }
}

/// Writes `sequence.toml` into `dest`.
pub fn write_meta(dest: &Path, meta: &SequenceMeta) -> Result<(), RulesError> {
    std::fs::create_dir_all(dest).map_err(io(dest))?;
    let text = toml::to_string(meta).map_err(|e| RulesError::Parse {
        path: dest.join("sequence.toml"),
        line: 0,
        message: e.to_string(),
    })?;
    let p = dest.join("sequence.toml");
    std::fs::write(&p, text).map_err(io(&p))
}

/// Builds a SEQ dir at `dest` from a folder of stills: images in `src/images/` (or `src/`
/// itself), YOLO labels from `src/labels/<stem>.txt` when that folder exists. Images are
/// copied in file-name order. `first_positive` names a source file.
pub fn seq_from_stills(
    src: &Path,
    dest: &Path,
    interval_s: f64,
    first_positive: Option<&str>,
    class: Option<&str>,
) -> Result<SeqDir, RulesError> {
    let img_dir = if src.join("images").is_dir() {
        src.join("images")
    } else {
        src.to_path_buf()
    };
    let names = list_images(&img_dir)?;
    let frames_dir = dest.join("frames");
    std::fs::create_dir_all(&frames_dir).map_err(io(&frames_dir))?;
    for n in &names {
        let to = frames_dir.join(n);
        std::fs::copy(img_dir.join(n), &to).map_err(io(&to))?;
    }
    let src_labels = src.join("labels");
    if src_labels.is_dir() {
        let labels_dir = dest.join("labels");
        std::fs::create_dir_all(&labels_dir).map_err(io(&labels_dir))?;
        for n in &names {
            let file = format!("{}.txt", stem(n));
            let from = src_labels.join(&file);
            if from.is_file() {
                // Validate while copying so a broken label fails here, named.
                let text = std::fs::read_to_string(&from).map_err(io(&from))?;
                parse_yolo(&text, &from)?;
                let to = labels_dir.join(&file);
                std::fs::write(&to, text).map_err(io(&to))?;
            }
        }
    }
    write_meta(
        dest,
        &SequenceMeta {
            interval_s,
            first_positive: first_positive.map(str::to_string),
            class: class.map(str::to_string),
            classes: default_classes(),
        },
    )?;
    SeqDir::read(dest)
}

/// Boxes of a FURG fire-video annotation file (OpenCV XML storage).
#[derive(Debug, Clone, PartialEq)]
pub struct FurgAnnotations {
    /// Video frame width.
    pub width: u32,
    /// Video frame height.
    pub height: u32,
    /// Frame rate as written.
    pub frame_rate: f64,
    /// Boxes `[x, y, w, h]` (pixels) per video frame number.
    pub frames: BTreeMap<u32, Vec<[f32; 4]>>,
}

fn tag<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let s = text.find(&open)? + open.len();
    let e = text[s..].find(&close)? + s;
    Some(text[s..e].trim())
}

/// Parses FURG OpenCV XML: `<frameWidth>`, `<frameHeight>`, `<frameRate>`, and `<frames>`
/// of `<_><frameNumber>N</frameNumber><annotations><_>x y w h</_>...</annotations></_>`.
pub fn parse_furg_xml(text: &str, origin: &Path) -> Result<FurgAnnotations, RulesError> {
    let line_of = |off: usize| text[..off.min(text.len())].matches('\n').count() + 1;
    let err = |line: usize, message: String| RulesError::Parse {
        path: origin.to_path_buf(),
        line,
        message,
    };
    let num = |name: &str| -> Result<f64, RulesError> {
        tag(text, name)
            .and_then(|v| v.parse::<f64>().ok())
            .ok_or_else(|| err(0, format!("missing or bad <{name}>")))
    };
    let width = num("frameWidth")? as u32;
    let height = num("frameHeight")? as u32;
    let frame_rate = num("frameRate")?;
    let mut frames = BTreeMap::new();
    let mut pos = 0;
    while let Some(i) = text[pos..].find("<frameNumber>") {
        let start = pos + i;
        let nstart = start + "<frameNumber>".len();
        let nend = text[nstart..]
            .find("</frameNumber>")
            .map(|e| nstart + e)
            .ok_or_else(|| err(line_of(start), "unclosed <frameNumber>".into()))?;
        let n: u32 = text[nstart..nend].trim().parse().map_err(|_| {
            err(
                line_of(start),
                format!("bad frame number {:?}", &text[nstart..nend]),
            )
        })?;
        let next = text[nend..]
            .find("<frameNumber>")
            .map_or(text.len(), |k| nend + k);
        let block = &text[nend..next];
        let mut boxes = Vec::new();
        if let Some(a) = block.find("<annotations>") {
            let a_end = block.find("</annotations>").unwrap_or(block.len());
            let inner = &block[a + "<annotations>".len()..a_end.max(a + "<annotations>".len())];
            for item in inner.split("</_>") {
                let item = item.trim().trim_start_matches("<_>").trim();
                if item.is_empty() {
                    continue;
                }
                let v: Vec<f32> = item
                    .split_whitespace()
                    .filter_map(|x| x.parse().ok())
                    .collect();
                if v.len() != 4 {
                    return Err(err(
                        line_of(nend + a),
                        format!("frame {n}: expected `x y w h`, got {item:?}"),
                    ));
                }
                boxes.push([v[0], v[1], v[2], v[3]]);
            }
        }
        frames.insert(n, boxes);
        pos = next;
    }
    if frames.is_empty() {
        return Err(err(0, "no <frameNumber> entries".into()));
    }
    Ok(FurgAnnotations {
        width,
        height,
        frame_rate,
        frames,
    })
}

/// Writes the `labels/` and `sequence.toml` of a SEQ dir for frames a caller extracted
/// from a FURG video: `frames` pairs each video frame number with its file name in
/// `dest/frames/` (in time order). Every listed frame gets a label file (empty when the
/// frame has no box); `first_positive` is the first listed frame with a box. Returns the
/// metadata written.
pub fn seq_labels_from_furg(
    ann: &FurgAnnotations,
    frames: &[(u32, String)],
    dest: &Path,
    interval_s: f64,
    class: &str,
) -> Result<SequenceMeta, RulesError> {
    let mut classes = default_classes();
    let class_id = match classes.iter().position(|c| c == class) {
        Some(i) => i,
        None => {
            classes.push(class.to_string());
            classes.len() - 1
        }
    } as u16;
    let labels_dir = dest.join("labels");
    std::fs::create_dir_all(&labels_dir).map_err(io(&labels_dir))?;
    let mut first_positive = None;
    for (n, name) in frames {
        let boxes = ann.frames.get(n).map(Vec::as_slice).unwrap_or(&[]);
        if !boxes.is_empty() && first_positive.is_none() {
            first_positive = Some(name.clone());
        }
        let mut text = String::new();
        for b in boxes {
            text.push_str(
                &YoloBox::from_xywh(class_id, b[0], b[1], b[2], b[3], ann.width, ann.height).line(),
            );
            text.push('\n');
        }
        let p = labels_dir.join(format!("{}.txt", stem(name)));
        std::fs::write(&p, text).map_err(io(&p))?;
    }
    let meta = SequenceMeta {
        interval_s,
        first_positive,
        class: Some(class.to_string()),
        classes,
    };
    write_meta(dest, &meta)?;
    Ok(meta)
}
