//! `lookout sequences ...`: build sequence directories for `lookout eval-events`.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context};

/// `lookout sequences`.
#[derive(Debug, clap::Subcommand)]
pub enum SequencesCommand {
    /// From a video annotated with FURG OpenCV XML boxes: extracts every Nth frame of a
    /// frame range (with ffmpeg) and writes `frames/`, `labels/` and `sequence.toml`.
    FromFurg(FromFurgArgs),
    /// From a folder of stills (`images/` and optional YOLO `labels/`, or images alone).
    FromStills(FromStillsArgs),
}

/// `lookout sequences from-furg`.
#[derive(Debug, clap::Args)]
pub struct FromFurgArgs {
    /// The video (e.g. `furg_house6.mp4`).
    #[arg(long)]
    pub video: PathBuf,
    /// Its FURG XML annotations.
    #[arg(long)]
    pub xml: PathBuf,
    /// First frame number (inclusive).
    #[arg(long, default_value_t = 0)]
    pub from: u32,
    /// Last frame number (inclusive).
    #[arg(long)]
    pub to: Option<u32>,
    /// Keep every Nth frame.
    #[arg(long, default_value_t = 1)]
    pub every: u32,
    /// Class of the boxes.
    #[arg(long, default_value = "fire")]
    pub class: String,
    /// Output sequence directory.
    #[arg(long)]
    pub out: PathBuf,
}

/// `lookout sequences from-stills`.
#[derive(Debug, clap::Args)]
pub struct FromStillsArgs {
    /// Folder of stills.
    #[arg(long)]
    pub src: PathBuf,
    /// Seconds between frames.
    #[arg(long, default_value_t = 1.0)]
    pub interval_s: f64,
    /// File name of the first frame showing the event (onset-labelled sequences).
    #[arg(long)]
    pub first_positive: Option<String>,
    /// Class of the onset label.
    #[arg(long)]
    pub class: Option<String>,
    /// Output sequence directory.
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs a `sequences` subcommand.
pub fn run(cmd: &SequencesCommand) -> anyhow::Result<()> {
    match cmd {
        SequencesCommand::FromStills(a) => {
            let seq = lookout_rules::seq::seq_from_stills(
                &a.src,
                &a.out,
                a.interval_s,
                a.first_positive.as_deref(),
                a.class.as_deref(),
            )?;
            println!("{}: {} frames", a.out.display(), seq.frames.len());
        }
        SequencesCommand::FromFurg(a) => {
            if a.every == 0 {
                bail!("--every must be at least 1");
            }
            let text = std::fs::read_to_string(&a.xml)
                .with_context(|| format!("cannot read {}", a.xml.display()))?;
            let ann = lookout_rules::seq::parse_furg_xml(&text, &a.xml)?;
            let last =
                a.to.unwrap_or_else(|| ann.frames.keys().copied().max().unwrap_or(0));
            let frames_dir = a.out.join("frames");
            std::fs::create_dir_all(&frames_dir)
                .with_context(|| format!("cannot create {}", frames_dir.display()))?;
            // ffmpeg numbers its outputs 1, 2, ... in selection order.
            let select = format!(
                "select=between(n\\,{}\\,{})*not(mod(n-{}\\,{}))",
                a.from, last, a.from, a.every
            );
            let status = Command::new("ffmpeg")
                .args(["-loglevel", "error", "-y", "-i"])
                .arg(&a.video)
                .args(["-vf", &select, "-vsync", "0", "-q:v", "2"])
                .arg(frames_dir.join("%06d.jpg"))
                .status()
                .context("cannot run ffmpeg (installed by scripts/setup.sh)")?;
            if !status.success() {
                bail!("ffmpeg failed to extract frames from {}", a.video.display());
            }
            let mut pairs = Vec::new();
            let mut n = a.from;
            let mut k = 1;
            while n <= last {
                let name = format!("{k:06}.jpg");
                if !frames_dir.join(&name).exists() {
                    break;
                }
                pairs.push((n, name));
                n += a.every;
                k += 1;
            }
            let fps = if ann.frame_rate > 0.0 {
                ann.frame_rate
            } else {
                30.0
            };
            let interval = a.every as f64 / fps;
            lookout_rules::seq::seq_labels_from_furg(&ann, &pairs, &a.out, interval, &a.class)?;
            println!(
                "{}: {} frames ({}..={} every {}), {:.3} s apart",
                a.out.display(),
                pairs.len(),
                a.from,
                last,
                a.every,
                interval
            );
        }
    }
    Ok(())
}
