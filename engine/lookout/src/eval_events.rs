//! `lookout eval-events`: run a model and the real rules over labelled sequence
//! directories and report event-level precision, missed sequences and time to detection —
//! how a watch centre compares settings before changing them.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use chrono::{TimeZone, Utc};
use lookout_core::{CameraId, FrameResult};
use lookout_infer::{Detector, ImageView, RuntimeOptions};
use lookout_rules::eval::{evaluate, EvalOptions, LabelledSequence};
use lookout_rules::seq::SeqDir;

/// `lookout eval-events`.
#[derive(Debug, clap::Args)]
pub struct EvalEventsArgs {
    /// Config whose `[rules]` and `[models]` to use (default: the embedded default).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Sequence directories (`frames/`, optional `labels/`, `sequence.toml`).
    #[arg(long = "data", required = true, num_args = 1..)]
    pub data: Vec<PathBuf>,
    /// Which `[models.NAME]` to run (default: `smoke-fire` if configured, else the first).
    #[arg(long)]
    pub model: Option<String>,
    /// Apply the rule overrides of this camera id (default: the sequence's directory name).
    #[arg(long)]
    pub camera: Option<String>,
    /// Classes to report. Default: smoke, fire.
    #[arg(long, value_delimiter = ',', default_values_t = vec!["smoke".to_string(), "fire".to_string()])]
    pub classes: Vec<String>,
    /// Least IoU between an event's box and a labelled box for the event to be true (0..=1).
    #[arg(long, default_value_t = 0.1, value_parser = lookout_infer::eval::parse_iou)]
    pub min_iou: f32,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs the evaluation. A sequence directory that cannot be read is reported and left
/// out; the others are evaluated (exit status 1 then).
pub fn run(args: &EvalEventsArgs) -> anyhow::Result<ExitCode> {
    let cfg = crate::load_config(args.config.as_deref())?;
    let name = match &args.model {
        Some(m) => m.clone(),
        None if cfg.models.contains_key("smoke-fire") => "smoke-fire".to_string(),
        None => match cfg.models.keys().next() {
            Some(m) => m.clone(),
            None => bail!("the config defines no [models.NAME] to run"),
        },
    };
    let Some(model_ref) = cfg.models.get(&name) else {
        bail!("model {name:?} is not defined in the config's [models]");
    };
    let manifest = cfg.resolve_path(model_ref.manifest.value());
    let key = format!("models.{name}.manifest");
    crate::verify_files(&cfg, |f| f.key == key || f.path == manifest)?;
    let opts = RuntimeOptions {
        intra_threads: cfg.inference.intra_threads,
        score_floor: cfg.inference.score_floor,
        nms_iou: cfg.inference.nms_iou,
        ..RuntimeOptions::default()
    };
    let mut detector = Detector::load(&manifest, &opts)
        .with_context(|| format!("cannot load the model {}", manifest.display()))?;
    let model_name: std::sync::Arc<str> = name.as_str().into();
    // The config's tiling for this model, else the manifest's default.
    let tile = model_ref
        .tile
        .clone()
        .or_else(|| detector.model().manifest.tile.clone());

    let mut seqs = Vec::new();
    let mut bad = 0;
    for dir in &args.data {
        let ctx = Sequence {
            args,
            detector: &mut detector,
            tile: tile.as_ref(),
            model_name: &model_name,
        };
        match ctx.read(dir) {
            Ok(Some(s)) => seqs.push(s),
            Ok(None) => {}
            Err(e) => {
                if !args.json {
                    eprintln!();
                }
                eprintln!("error: {}: {}", dir.display(), crate::report(&e));
                bad += 1;
            }
        }
    }
    if seqs.is_empty() {
        bail!("no sequence could be evaluated");
    }
    let report = evaluate(
        &seqs,
        &cfg.rules,
        &EvalOptions {
            min_iou: args.min_iou,
            classes: args.classes.clone(),
        },
    );
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "{:<8} {:>5} {:>6} {:>5} {:>6} {:>9} {:>7} {:>9} {:>12}",
            "class",
            "seqs",
            "events",
            "true",
            "false",
            "precision",
            "missed",
            "recall",
            "ttd median s"
        );
        for c in &report.classes {
            println!(
                "{:<8} {:>5} {:>6} {:>5} {:>6} {:>9} {:>7} {:>9} {:>12}",
                c.class,
                c.sequences,
                c.events,
                c.true_events,
                c.false_events,
                c.precision.map_or("-".into(), |p| format!("{p:.3}")),
                c.missed_sequences,
                c.sequence_recall.map_or("-".into(), |r| format!("{r:.3}")),
                c.ttd_s.map_or("-".into(), |s| format!("{:.1}", s.median)),
            );
        }
    }
    if !args.json {
        println!(
            "{} sequence(s) evaluated of {} given",
            seqs.len(),
            args.data.len()
        );
    }
    if bad > 0 {
        eprintln!(
            "error: {bad} of {} sequence directories could not be read (named above)",
            args.data.len()
        );
        return Ok(ExitCode::from(crate::EXIT_PARTIAL));
    }
    Ok(ExitCode::SUCCESS)
}

/// What reading and analysing one sequence directory needs.
struct Sequence<'a> {
    args: &'a EvalEventsArgs,
    detector: &'a mut Detector,
    tile: Option<&'a lookout_config::inference::TileConfig>,
    model_name: &'a std::sync::Arc<str>,
}

impl Sequence<'_> {
    /// Runs the model over one sequence's frames. `None` (with a warning) when its onset
    /// label is of a class this evaluation does not report.
    fn read(self, dir: &Path) -> anyhow::Result<Option<LabelledSequence>> {
        let args = self.args;
        let seq = SeqDir::read(dir)?;
        let seq_name = dir
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| dir.display().to_string());
        if let Some(c) = &seq.meta.class {
            if !args.classes.contains(c) {
                eprintln!(
                    "warning: {}: its onset is labelled {c:?}, not one of --classes {:?}: left out",
                    dir.display(),
                    args.classes
                );
                return Ok(None);
            }
        }
        let camera: CameraId = args.camera.as_deref().unwrap_or(&seq_name).into();
        let start = Utc.timestamp_opt(0, 0).single().unwrap_or_else(Utc::now);
        let mut frames = Vec::with_capacity(seq.frames.len());
        let mut sizes = Vec::with_capacity(seq.frames.len());
        // Count, rate and ETA of this sequence, redrawn at most 4 times a second.
        let mut line = lookout_core::progress::Progress::new(seq.frames.len(), "frames");
        for i in 0..seq.frames.len() {
            let path = seq.frame_path(i);
            let img = lookout_imageops::load_rgb8(&path)
                .with_context(|| format!("cannot read frame {}", path.display()))?;
            let view = ImageView {
                width: img.width,
                height: img.height,
                rgb: &img.data,
            };
            let dets = self
                .detector
                .detect_tiled(&[view], self.tile)
                .with_context(|| format!("inference failed on {}", path.display()))?
                .into_iter()
                .next()
                .unwrap_or_default();
            sizes.push((img.width, img.height));
            frames.push(FrameResult {
                camera: camera.clone(),
                seq: i as u64,
                captured_at: seq.captured_at(i, start),
                preset: None,
                width: img.width,
                height: img.height,
                model: self.model_name.clone(),
                detections: dets,
            });
            // On stderr also with --json (stdout holds only the report).
            if let Some(l) = line.tick(i + 1) {
                eprint!("\r{seq_name}: {l:<56}");
            }
        }
        eprintln!();
        Ok(Some(LabelledSequence {
            name: seq_name,
            frames,
            truth: seq.truth(&sizes),
        }))
    }
}
