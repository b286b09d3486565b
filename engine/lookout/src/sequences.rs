//! `lookout sequences ...`: build sequence directories for `lookout eval-events`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use lookout_config::validate::Range;

/// Seconds between frames of a sequence.
const INTERVAL_S: Range = Range {
    lo: 0.001,
    hi: 86_400.0,
};

fn parse_interval(s: &str) -> Result<f64, String> {
    INTERVAL_S.parse_f64(s)
}

/// The classes a sequence's labels may name (`sequence.toml` `classes`, what eval-events
/// reports).
const CLASSES: [&str; 2] = ["smoke", "fire"];

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
    /// Keep every Nth frame (N ≥ 1).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub every: u32,
    /// Class of the boxes.
    #[arg(long, default_value = "fire", value_parser = CLASSES)]
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
    /// Seconds between frames (0.001 ..= 86400).
    #[arg(long, default_value_t = 1.0, value_parser = parse_interval)]
    pub interval_s: f64,
    /// File name of the first frame showing the event (onset-labelled sequences).
    #[arg(long)]
    pub first_positive: Option<String>,
    /// Class of the onset label.
    #[arg(long, value_parser = CLASSES, requires = "first_positive")]
    pub class: Option<String>,
    /// Output sequence directory.
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs a `sequences` subcommand. Inputs are checked before anything is written; when
/// building fails, the output directory is removed again (if this command created it).
pub fn run(cmd: &SequencesCommand) -> anyhow::Result<()> {
    let out = match cmd {
        SequencesCommand::FromStills(a) => &a.out,
        SequencesCommand::FromFurg(a) => &a.out,
    };
    check_out(out)?;
    let res = match cmd {
        SequencesCommand::FromStills(a) => from_stills(a),
        SequencesCommand::FromFurg(a) => from_furg(a),
    };
    if res.is_err() && out.exists() {
        // Only a directory this command created gets here (check_out refused others).
        let _ = std::fs::remove_dir_all(out);
    }
    res
}

/// The output directory must not exist yet, or be empty: a sequence is never mixed into
/// another one's frames.
fn check_out(out: &Path) -> anyhow::Result<()> {
    if let Ok(mut rd) = std::fs::read_dir(out) {
        if rd.next().is_some() {
            bail!(
                "--out {}: the directory exists and is not empty; give a new directory",
                out.display()
            );
        }
    } else if out.exists() {
        bail!("--out {}: exists and is not a directory", out.display());
    }
    Ok(())
}

fn from_stills(a: &FromStillsArgs) -> anyhow::Result<()> {
    let img_dir = if a.src.join("images").is_dir() {
        a.src.join("images")
    } else {
        a.src.clone()
    };
    if !img_dir.is_dir() {
        bail!("--src {}: no such directory", a.src.display());
    }
    let names = lookout_infer::cli::list_images(&img_dir)?;
    if names.is_empty() {
        bail!(
            "--src {}: no .jpg, .jpeg or .png image in it (or in its images/)",
            a.src.display()
        );
    }
    if let Some(fp) = &a.first_positive {
        if !names
            .iter()
            .any(|n| n.file_name().is_some_and(|f| f == fp.as_str()))
        {
            bail!(
                "--first-positive {fp:?} is not an image of {}",
                img_dir.display()
            );
        }
    }
    let seq = lookout_rules::seq::seq_from_stills(
        &a.src,
        &a.out,
        a.interval_s,
        a.first_positive.as_deref(),
        a.class.as_deref(),
    )?;
    println!("{}: {} frames", a.out.display(), seq.frames.len());
    Ok(())
}

fn from_furg(a: &FromFurgArgs) -> anyhow::Result<()> {
    if !a.video.is_file() {
        bail!("--video {}: no such file", a.video.display());
    }
    let text = std::fs::read_to_string(&a.xml)
        .with_context(|| format!("--xml {}: cannot read", a.xml.display()))?;
    let ann = lookout_rules::seq::parse_furg_xml(&text, &a.xml)?;
    let last =
        a.to.unwrap_or_else(|| ann.frames.keys().copied().max().unwrap_or(0));
    if last < a.from {
        bail!(
            "--from {} is after --to {last}: the frame range is empty",
            a.from
        );
    }
    // The interval between kept frames comes from the video's own frame rate (29.97 for
    // NTSC footage), not the XML's rounded one.
    let fps = match video_fps(&a.video) {
        Some(f) => f,
        None if ann.frame_rate > 0.0 => {
            eprintln!(
                "warning: cannot read the frame rate of {} (ffprobe); using the XML's {}",
                a.video.display(),
                ann.frame_rate
            );
            ann.frame_rate
        }
        None => bail!(
            "cannot read the frame rate of {} (ffprobe) and the XML gives none",
            a.video.display()
        ),
    };
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
    if pairs.is_empty() {
        bail!(
            "no frame {}..={} in {}: the video is shorter",
            a.from,
            last,
            a.video.display()
        );
    }
    let interval = a.every as f64 / fps;
    lookout_rules::seq::seq_labels_from_furg(&ann, &pairs, &a.out, interval, &a.class)?;
    println!(
        "{}: {} frames ({}..={} every {}), {:.4} s apart ({:.3} fps)",
        a.out.display(),
        pairs.len(),
        a.from,
        last,
        a.every,
        interval,
        fps
    );
    Ok(())
}

/// The average frame rate of a video's first video stream, by ffprobe.
fn video_fps(video: &Path) -> Option<f64> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=avg_frame_rate",
            "-of",
            "csv=p=0",
        ])
        .arg(video)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let t = text.trim();
    let (n, d) = t.split_once('/').unwrap_or((t, "1"));
    let fps = n.parse::<f64>().ok()? / d.parse::<f64>().ok()?;
    (fps.is_finite() && fps > 0.0).then_some(fps)
}
