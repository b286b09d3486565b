//! `lookout dataset export`: the site's own training set, from what its operators said.
//!
//! Every snapshot keeps its frame without drawing and the detector's boxes
//! (`alerts.training_frames`). An operator's verdict on the incident (confirmed / false
//! alarm) and, where given, corrected boxes turn those frames into labels:
//! corrected boxes win; a confirmed incident's frame is labelled with the detector's boxes;
//! a false alarm's frame is a verified negative (an empty label file). Frames of incidents
//! without a verdict are left out. The split is by camera and time: a camera's frames are
//! grouped into scene moments (no gap longer than `--moment-gap-s`), and the newest moments
//! of each camera go to validation, so validation never shares a moment with training and
//! always lies after it.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use lookout_alerts::snapshot::TrainingBox;
use lookout_alerts::store::{TrainingSnapshot, Verdict};
use serde::Serialize;

/// `lookout dataset ...`.
#[derive(Debug, Subcommand)]
pub enum DatasetCommand {
    /// Write a YOLO-format set (`train/` and `val/`, each `images/` + `labels/`) from the
    /// data directory's verdicts and corrected boxes, split by camera and time.
    Export(ExportArgs),
}

/// `lookout dataset export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Config file, as given to `lookout run` (default: the embedded default).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Data directory, as given to `lookout run` (default: `engine.data_dir`).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Output directory (created; must not exist or be empty).
    #[arg(long)]
    pub out: PathBuf,
    /// Only frames captured at or after this time (RFC 3339, or a date `YYYY-MM-DD`, UTC).
    #[arg(long, value_parser = parse_since)]
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Class names in class-id order (the label files' first column). Default: the smoke/fire
    /// model's map, `smoke,fire` (as in the reference datasets).
    #[arg(long, value_delimiter = ',', default_value = "smoke,fire")]
    pub classes: Vec<String>,
    /// Share of each camera's scene moments (newest first) held out for validation.
    #[arg(long, default_value_t = 0.2, value_parser = parse_fraction)]
    pub val_fraction: f64,
    /// Frames of a camera closer in time than this belong to the same scene moment.
    #[arg(long, default_value_t = 600.0, value_parser = parse_gap)]
    pub moment_gap_s: f64,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

fn parse_since(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| {
            format!("{s:?} is neither RFC 3339 (2026-07-01T00:00:00Z) nor a date (2026-07-01)")
        })
}

fn parse_fraction(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..1.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?}: a fraction in [0, 1)")),
    }
}

fn parse_gap(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (1.0..=31_536_000.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?}: seconds in [1, 31536000]")),
    }
}

/// Train or validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// Training.
    Train,
    /// Validation.
    Val,
}

impl Split {
    fn dir(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
        }
    }
}

/// Splits frames `(camera, capture time ms)` by camera and time: per camera, frames no
/// further apart than `gap_ms` form one scene moment; of a camera with at least two moments,
/// the newest `round(n × val_fraction)` (at least one, never all) go to validation.
/// Returns the split of each frame, in input order, and the number of moments.
pub fn split_by_moment(
    frames: &[(&str, i64)],
    gap_ms: i64,
    val_fraction: f64,
) -> (Vec<Split>, usize) {
    let mut by_camera: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, (cam, _)) in frames.iter().enumerate() {
        by_camera.entry(cam).or_default().push(i);
    }
    let mut out = vec![Split::Train; frames.len()];
    let mut moments_total = 0;
    for idx in by_camera.values_mut() {
        idx.sort_by_key(|&i| frames[i].1);
        // moment[k] = the moment number of idx[k].
        let mut moment = Vec::with_capacity(idx.len());
        let mut m = 0usize;
        for (k, &i) in idx.iter().enumerate() {
            if k > 0 && frames[i].1 - frames[idx[k - 1]].1 > gap_ms {
                m += 1;
            }
            moment.push(m);
        }
        let n = m + 1;
        moments_total += n;
        if n < 2 || val_fraction <= 0.0 {
            continue;
        }
        let n_val = ((n as f64 * val_fraction).round() as usize).clamp(1, n - 1);
        let first_val = n - n_val;
        for (k, &i) in idx.iter().enumerate() {
            if moment[k] >= first_val {
                out[i] = Split::Val;
            }
        }
    }
    (out, moments_total)
}

/// Where a frame's labels come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelSource {
    /// An operator's corrected boxes.
    Corrected,
    /// A confirmed incident: the detector's boxes.
    Confirmed,
    /// A false alarm: a verified negative.
    FalseAlarm,
}

/// The labels of a training frame, or why it is left out.
pub fn labels_of(
    t: &TrainingSnapshot,
    classes: &[String],
) -> Result<(LabelSource, Vec<TrainingBox>), &'static str> {
    let ours = |b: &&TrainingBox| classes.contains(&b.class);
    if let Some(c) = &t.corrected {
        return Ok((
            LabelSource::Corrected,
            c.boxes.iter().filter(ours).cloned().collect(),
        ));
    }
    let detected: Vec<TrainingBox> = t.detected.iter().filter(ours).cloned().collect();
    if detected.is_empty() {
        return Err("other_classes");
    }
    match t.verdict {
        Verdict::Confirmed => Ok((LabelSource::Confirmed, detected)),
        Verdict::FalseAlarm => Ok((LabelSource::FalseAlarm, Vec::new())),
        Verdict::None => Err("no_verdict"),
    }
}

/// A YOLO label line per box: `class cx cy w h`, normalised.
fn yolo_lines(boxes: &[TrainingBox], classes: &[String]) -> String {
    let mut s = String::new();
    for b in boxes {
        let Some(c) = classes.iter().position(|c| *c == b.class) else {
            continue;
        };
        let [x1, y1, x2, y2] = b.bbox;
        s.push_str(&format!(
            "{c} {:.6} {:.6} {:.6} {:.6}\n",
            (x1 + x2) / 2.0,
            (y1 + y2) / 2.0,
            x2 - x1,
            y2 - y1
        ));
    }
    s
}

#[derive(Debug, Serialize)]
struct Row {
    file: String,
    split: Split,
    camera: String,
    captured_at: String,
    incident: String,
    snapshot: i64,
    labels: LabelSource,
    boxes: usize,
}

#[derive(Debug, Default, Serialize)]
struct Summary {
    images: usize,
    train: usize,
    val: usize,
    positives: usize,
    negatives: usize,
    boxes: usize,
    cameras: usize,
    moments: usize,
    skipped: BTreeMap<&'static str, usize>,
    failed: Vec<String>,
    classes: Vec<String>,
}

fn file_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Runs `lookout dataset export`.
pub fn run(cmd: &DatasetCommand) -> anyhow::Result<ExitCode> {
    let DatasetCommand::Export(args) = cmd;
    if args.classes.iter().any(|c| c.trim().is_empty()) {
        anyhow::bail!("--classes: a class name is empty");
    }
    let mut cfg = crate::load_config(args.config.as_deref())?;
    if args.out.exists()
        && std::fs::read_dir(&args.out)
            .with_context(|| format!("cannot read {}", args.out.display()))?
            .next()
            .is_some()
    {
        anyhow::bail!(
            "{} is not empty: export into a new directory",
            args.out.display()
        );
    }
    let store = crate::open_data_store(&mut cfg, args.data_dir.as_deref())?;
    let all = store.training_snapshots(args.since)?;

    let mut summary = Summary {
        classes: args.classes.clone(),
        ..Summary::default()
    };
    // One frame per (camera, seq): later snapshots of the same frame (other revisions)
    // replace earlier ones, a corrected one is never replaced by an uncorrected one.
    let mut chosen: HashMap<(String, u64), (TrainingSnapshot, LabelSource, Vec<TrainingBox>)> =
        HashMap::new();
    for t in all {
        match labels_of(&t, &args.classes) {
            Ok((src, boxes)) => {
                let key = (t.camera.clone(), t.seq);
                let keep_old = chosen.get(&key).is_some_and(|(_, s, _)| {
                    *s == LabelSource::Corrected && src != LabelSource::Corrected
                });
                if !keep_old {
                    chosen.insert(key, (t, src, boxes));
                }
            }
            Err(why) => *summary.skipped.entry(why).or_default() += 1,
        }
    }
    let mut items: Vec<_> = chosen.into_values().collect();
    items.sort_by(|a, b| {
        (a.0.captured_at, &a.0.camera, a.0.seq).cmp(&(b.0.captured_at, &b.0.camera, b.0.seq))
    });
    let keys: Vec<(&str, i64)> = items
        .iter()
        .map(|(t, _, _)| (t.camera.as_str(), t.captured_at.timestamp_millis()))
        .collect();
    let (splits, moments) = split_by_moment(
        &keys,
        (args.moment_gap_s * 1000.0) as i64,
        args.val_fraction,
    );
    summary.moments = moments;
    summary.cameras = items
        .iter()
        .map(|(t, _, _)| t.camera.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .len();

    for split in [Split::Train, Split::Val] {
        for sub in ["images", "labels"] {
            let d = args.out.join(split.dir()).join(sub);
            std::fs::create_dir_all(&d)
                .with_context(|| format!("cannot create {}", d.display()))?;
        }
    }
    let mut rows = Vec::new();
    for ((t, src, boxes), split) in items.iter().zip(&splits) {
        let name = format!("{}-{}-s{}", file_safe(&t.camera), t.seq, t.snapshot);
        let img = args
            .out
            .join(split.dir())
            .join("images")
            .join(format!("{name}.jpg"));
        let lbl = args
            .out
            .join(split.dir())
            .join("labels")
            .join(format!("{name}.txt"));
        if let Err(e) = std::fs::copy(&t.frame_path, &img) {
            summary
                .failed
                .push(format!("{}: snapshot {}: {e}", t.frame_path, t.snapshot));
            continue;
        }
        std::fs::write(&lbl, yolo_lines(boxes, &args.classes))
            .with_context(|| format!("cannot write {}", lbl.display()))?;
        summary.images += 1;
        match split {
            Split::Train => summary.train += 1,
            Split::Val => summary.val += 1,
        }
        if boxes.is_empty() {
            summary.negatives += 1;
        } else {
            summary.positives += 1;
        }
        summary.boxes += boxes.len();
        rows.push(Row {
            file: format!("{}/images/{name}.jpg", split.dir()),
            split: *split,
            camera: t.camera.clone(),
            captured_at: t.captured_at.to_rfc3339(),
            incident: t.incident_id.clone(),
            snapshot: t.snapshot,
            labels: *src,
            boxes: boxes.len(),
        });
    }
    write_meta(&args.out, &args.classes, &summary, &rows)?;

    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!(
            "{} images ({} train, {} val; {} with boxes, {} negatives; {} boxes) from {} camera(s), {} scene moment(s) -> {}",
            summary.images,
            summary.train,
            summary.val,
            summary.positives,
            summary.negatives,
            summary.boxes,
            summary.cameras,
            summary.moments,
            args.out.display()
        );
        for (why, n) in &summary.skipped {
            let text = match *why {
                "no_verdict" => {
                    "no verdict yet (neither confirmed nor a false alarm, no corrected boxes)"
                }
                _ => "none of the exported classes among the boxes",
            };
            println!("skipped {n}: {text}");
        }
        for f in &summary.failed {
            eprintln!("error: {f}");
        }
    }
    Ok(if summary.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn write_meta(
    out: &Path,
    classes: &[String],
    summary: &Summary,
    rows: &[Row],
) -> anyhow::Result<()> {
    let mut yaml = String::from("# Written by `lookout dataset export`.\npath: .\ntrain: train/images\nval: val/images\nnames:\n");
    for (i, c) in classes.iter().enumerate() {
        yaml.push_str(&format!("  {i}: {}\n", serde_json::to_string(c)?));
    }
    let p = out.join("data.yaml");
    std::fs::write(&p, yaml).with_context(|| format!("cannot write {}", p.display()))?;
    let p = out.join("export.json");
    let doc = serde_json::json!({ "summary": summary, "images": rows });
    std::fs::write(&p, serde_json::to_string_pretty(&doc)?)
        .with_context(|| format!("cannot write {}", p.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_split_by_camera_and_time() {
        let min = 60_000;
        // Camera a: moments at 0-2 min, 60 min, 120-121 min; camera b: one moment.
        let frames = [
            ("a", 0),
            ("a", 2 * min),
            ("b", 5 * min),
            ("a", 60 * min),
            ("a", 120 * min),
            ("a", 121 * min),
            ("b", 6 * min),
        ];
        let (s, n) = split_by_moment(&frames, 10 * min, 0.2);
        assert_eq!(n, 4);
        // 3 moments × 0.2 rounds to 1 (at least one): the newest moment of a is val.
        assert_eq!(
            s,
            vec![
                Split::Train,
                Split::Train,
                Split::Train,
                Split::Train,
                Split::Val,
                Split::Val,
                Split::Train
            ]
        );
        // No validation asked: everything trains.
        let (s, _) = split_by_moment(&frames, 10 * min, 0.0);
        assert!(s.iter().all(|x| *x == Split::Train));
        // A large fraction never takes a camera's every moment.
        let (s, _) = split_by_moment(&frames, 10 * min, 0.99);
        assert_eq!(s[0], Split::Train);
        assert_eq!(s[3], Split::Val);
    }

    fn snap(verdict: Verdict, detected: &[(&str, [f32; 4])]) -> TrainingSnapshot {
        TrainingSnapshot {
            snapshot: 1,
            incident_id: "i".into(),
            incident_kind: "fire".into(),
            verdict,
            camera: "a".into(),
            seq: 1,
            captured_at: chrono::Utc::now(),
            frame_path: "f.jpg".into(),
            detected: detected
                .iter()
                .map(|(c, b)| TrainingBox {
                    class: c.to_string(),
                    score: Some(0.5),
                    bbox: *b,
                })
                .collect(),
            corrected: None,
        }
    }

    #[test]
    fn labels_follow_verdicts_and_corrections() {
        let classes = vec!["smoke".to_string(), "fire".to_string()];
        let b = [0.1, 0.2, 0.3, 0.6];
        let t = snap(Verdict::Confirmed, &[("fire", b), ("person", b)]);
        let (src, boxes) = labels_of(&t, &classes).unwrap();
        assert_eq!(src, LabelSource::Confirmed);
        assert_eq!(boxes.len(), 1);
        assert_eq!(
            yolo_lines(&boxes, &classes),
            "1 0.200000 0.400000 0.200000 0.400000\n"
        );
        let t = snap(Verdict::FalseAlarm, &[("smoke", b)]);
        assert_eq!(
            labels_of(&t, &classes).unwrap(),
            (LabelSource::FalseAlarm, vec![])
        );
        assert_eq!(
            labels_of(&snap(Verdict::None, &[("smoke", b)]), &classes),
            Err("no_verdict")
        );
        assert_eq!(
            labels_of(&snap(Verdict::Confirmed, &[("person", b)]), &classes),
            Err("other_classes")
        );
        let mut t = snap(Verdict::None, &[("smoke", b)]);
        t.corrected = Some(lookout_alerts::store::BoxCorrection {
            by: "op".into(),
            at: chrono::Utc::now(),
            boxes: vec![TrainingBox {
                class: "smoke".into(),
                score: None,
                bbox: [0.5, 0.5, 0.7, 0.9],
            }],
        });
        let (src, boxes) = labels_of(&t, &classes).unwrap();
        assert_eq!(src, LabelSource::Corrected);
        assert_eq!(
            yolo_lines(&boxes, &classes),
            "0 0.600000 0.700000 0.200000 0.400000\n"
        );
    }
}
