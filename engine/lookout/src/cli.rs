//! The command tree.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Lookout: fire, smoke and people on camera and drone video, fused with satellite hotspots.
#[derive(Debug, Parser)]
#[command(name = "lookout", version, about, long_about = None)]
pub struct Cli {
    /// Log as JSON lines instead of text (set the level with LOOKOUT_LOG, e.g. `debug`).
    #[arg(long, global = true)]
    pub log_json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the engine (default: the embedded configs/default.toml).
    Run(RunArgs),
    /// Run a model on images and print detections as JSON (annotated images written too).
    Detect(lookout_infer::cli::DetectArgs),
    /// Measure a model on a labelled dataset: AP50, precision/recall, negatives hit.
    Eval(lookout_infer::eval::EvalArgs),
    /// Satellite hotspot files (NASA FIRMS CSV).
    #[command(subcommand)]
    Hotspots(HotspotsCommand),
    /// Event-level evaluation: run a model and the rules over labelled sequence directories
    /// (events raised, true/false events, missed sequences, precision, time to detection).
    EvalEvents(crate::eval_events::EvalEventsArgs),
    /// Build sequence directories for eval-events (from FURG-annotated video or stills).
    #[command(subcommand)]
    Sequences(crate::sequences::SequencesCommand),
    /// Re-run recorded frame results (`detections.jsonl`) through the rules of a config and
    /// print the events they produce — what a threshold change would have done.
    Replay(ReplayArgs),
    /// Print cameras, fields of view, the stored incidents (from the data directory's
    /// database, when there is one) and the hotspots of FIRMS files as a GeoJSON
    /// FeatureCollection.
    Geojson(GeojsonArgs),
    /// Validate a config file: a one-line summary, or every error with file:line:column.
    CheckConfig(CheckConfigArgs),
    /// Configuration changes made through the API (the overlay over the config file).
    #[command(subcommand)]
    Config(ConfigCommand),
    /// The third-party files the demo, tests and benches read (`samples/data.toml`): what
    /// is present, missing or corrupt, and fetching what is missing.
    #[command(subcommand)]
    Data(crate::data::DataCommand),
    /// The outbox's dead letters (deliveries a sink refused): list, re-drive.
    #[command(subcommand)]
    Outbox(crate::outbox_cmd::OutboxCommand),
    /// The site's own training set: frames of incidents operators confirmed or marked false
    /// alarms (and boxes they corrected), exported in YOLO format, split by camera and time.
    #[command(subcommand)]
    Dataset(crate::dataset::DatasetCommand),
    /// The installed model manifests: file present and verified, which `[models.NAME]` uses
    /// each, licence and what it allows, accuracy measured on their cards.
    Models(crate::models_cmd::ModelsArgs),
}

/// `--run-for`: seconds, in the range of `engine.run_for_s`.
pub fn parse_run_for(s: &str) -> Result<f64, String> {
    lookout_config::validate::RUN_FOR_S.parse_f64(s)
}

/// `lookout config ...`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Show what the API overlay stored in the data directory changes over the config
    /// file: per key, the file's value and the running value, with the overlay's version,
    /// author, time and comment (and whether it still applies over the file).
    Diff(ConfigDiffArgs),
}

/// `lookout config diff`.
#[derive(Debug, Args)]
pub struct ConfigDiffArgs {
    /// Config file, as given to `lookout run` (default: the embedded default).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Data directory, as given to `lookout run` (default: `engine.data_dir`). It must
    /// exist when given.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `lookout check-config`.
#[derive(Debug, Args)]
pub struct CheckConfigArgs {
    /// The config file. Besides syntax and values, every file it names must exist and be
    /// readable (model manifests and their ONNX files with their sha256, file cameras'
    /// videos, hotspot files and directories, CA certificates).
    pub file: PathBuf,
    /// Also print the resolved config (every path absolute, secrets redacted).
    #[arg(long)]
    pub dump: bool,
}

/// `lookout run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Config file (default: the embedded `configs/default.toml`). The file is watched:
    /// changes to `[rules]` apply within a second without restarting streams.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Stop by itself after this many seconds, 0.1 ..= 1e9 (overrides `engine.run_for_s`).
    #[arg(long, value_parser = parse_run_for, allow_negative_numbers = true)]
    pub run_for: Option<f64>,
    /// Data directory (overrides `engine.data_dir`; relative to the working directory;
    /// created if missing).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// What this process runs (overrides `cluster.role`): `all` (everything, the default),
    /// `edge` (ingest, inference, rules; events to NATS) or `hub` (fusion, alerts, server;
    /// fed from NATS).
    #[arg(long, value_parser = lookout_config::cluster::Role::parse)]
    pub role: Option<lookout_config::cluster::Role>,
}

/// `lookout hotspots ...`.
#[derive(Debug, Subcommand)]
pub enum HotspotsCommand {
    /// Parse FIRMS CSV files (MODIS, VIIRS NRT or archive) and summarise each; a file that
    /// cannot be read is reported and the others are still parsed.
    Parse(HotspotsParseArgs),
}

/// `lookout hotspots parse`.
#[derive(Debug, Args)]
pub struct HotspotsParseArgs {
    /// The CSV files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Print `{"file", "format", "rows", "skipped", "first", "last"}` as one JSON object
    /// per file and line.
    #[arg(long)]
    pub json: bool,
}

/// `lookout geojson`.
#[derive(Debug, Args)]
pub struct GeojsonArgs {
    /// Config file (default: the embedded default).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Data directory whose incidents to include (default: `engine.data_dir`). It must
    /// exist when given.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Also include the hotspots of these FIRMS CSV files.
    #[arg(long)]
    pub hotspots: Vec<PathBuf>,
}

/// `lookout replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Config whose `[rules]` to apply (default: the embedded default).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// What `lookout run` recorded: a data directory (the frame results in its database,
    /// what the tuning view replays), or a JSON-lines recording (`detections.jsonl` with
    /// `engine.detections_log = true`, or the `[rules.record]` file).
    pub recording: PathBuf,
    /// Print events as JSON lines instead of a summary.
    #[arg(long)]
    pub json: bool,
}
