//! # lookout — the engine binary
//!
//! Parses the command line, loads configuration, wires the stages together and owns
//! signals and shutdown. This is the only crate that uses `anyhow`.
//!
//! Layout:
//! * [`cli`]: the `clap` command tree.
//! * `check_config`: `lookout check-config FILE`.
//! * [`config_cmd`]: `lookout config diff`.

mod cli;
mod cluster_edge;
mod cluster_hub;
mod config_cmd;
mod data;
mod dataset;
mod eval_events;
mod models_cmd;
mod outbox_cmd;
mod run;
mod sequences;

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use lookout_config::{Config, ConfigErrors, FileKind, FileRef};

/// Exit status of a command that ran but found bad items (it reported each, went on past
/// them, and printed its output for the good ones).
pub(crate) const EXIT_PARTIAL: u8 = 1;

/// An error already reported on stderr: only its exit status is left to give.
#[derive(Debug)]
pub(crate) struct Reported(pub u8);

impl std::fmt::Display for Reported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit status {}", self.0)
    }
}

impl std::error::Error for Reported {}

fn main() -> ExitCode {
    // A closed pipe (`lookout geojson | head`) ends the process quietly, as it does any
    // Unix filter, instead of a panic in `println!`.
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = cli::Cli::parse();
    init_tracing(cli.log_json);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            if let Some(Reported(code)) = e.downcast_ref::<Reported>() {
                return ExitCode::from(*code);
            }
            if let Some(errs) = e.downcast_ref::<ConfigErrors>() {
                eprint!("{errs}");
                return ExitCode::from(2);
            }
            eprintln!("error: {}", report(&e));
            ExitCode::from(1)
        }
    }
}

/// The error and its causes on one line, each text once: a cause whose text an outer
/// message already contains (an OS error quoted by its wrapper) is not repeated.
pub(crate) fn report(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let t = cause.to_string();
        if t.is_empty() || out.contains(&t) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&t);
    }
    out
}

fn init_tracing(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("LOOKOUT_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal, never in a log file or a pipe.
        .with_ansi(std::io::stderr().is_terminal());
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn run(cli: cli::Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        cli::Command::CheckConfig(args) => check_config(&args.file, args.dump),
        cli::Command::Config(cli::ConfigCommand::Diff(args)) => config_cmd::diff(&args),
        cli::Command::Data(cmd) => data::run(&cmd),
        cli::Command::Outbox(cmd) => outbox_cmd::run(&cmd),
        cli::Command::Dataset(cmd) => dataset::run(&cmd),
        cli::Command::Models(args) => models_cmd::run(&args),
        cli::Command::Detect(args) => {
            let report = lookout_infer::cli::run_detect(&args)?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            for e in &report.errors {
                eprintln!("error: {}: {}", e.path.display(), e.error);
            }
            Ok(partial(
                report.errors.len(),
                report.images.len() + report.errors.len(),
                "inputs",
            ))
        }
        cli::Command::Eval(args) => {
            let report = lookout_infer::eval::run_eval(&args)?;
            if args.json {
                println!("{}", report.to_json());
            } else {
                print!("{}", report.to_text());
            }
            Ok(partial(
                report.skipped.len(),
                report.images + report.skipped.len(),
                "images",
            ))
        }
        cli::Command::Hotspots(cli::HotspotsCommand::Parse(args)) => {
            let mut bad = 0;
            for f in &args.files {
                let s = match lookout_fusion::firms::parse_summary(f) {
                    Ok(s) => s,
                    Err(e) => {
                        eprintln!("error: {}", report(&e.into()));
                        bad += 1;
                        continue;
                    }
                };
                if args.json {
                    let mut v = serde_json::to_value(&s)?;
                    if let Some(o) = v.as_object_mut() {
                        o.insert("file".into(), f.display().to_string().into());
                    }
                    println!("{}", serde_json::to_string(&v)?);
                } else {
                    println!(
                        "{}: {}: {} rows ({} skipped), {} .. {}",
                        f.display(),
                        s.format,
                        s.rows,
                        s.skipped,
                        s.first.clone().unwrap_or_default(),
                        s.last.clone().unwrap_or_default()
                    );
                }
            }
            Ok(partial(bad, args.files.len(), "files"))
        }
        cli::Command::EvalEvents(args) => eval_events::run(&args),
        cli::Command::Sequences(cmd) => {
            sequences::run(&cmd)?;
            Ok(ExitCode::SUCCESS)
        }
        cli::Command::Replay(args) => {
            let mut cfg = load_config(args.config.as_deref())?;
            let recorded = if args.recording.is_dir() {
                let Some(db) = data_database(&mut cfg, Some(&args.recording))? else {
                    anyhow::bail!(
                        "{}: no database to replay (give the data directory `lookout run` wrote, or a .jsonl recording)",
                        args.recording.display()
                    );
                };
                let store = lookout_alerts::store::Store::open(
                    &db,
                    Vec::new(),
                    cfg.alerts.escalate_after_s,
                )
                .with_context(|| format!("cannot open {}", db.display()))?;
                store
                    .all_frame_results()
                    .with_context(|| format!("cannot read the frame results of {}", db.display()))?
                    .into_iter()
                    .map(lookout_core::StageMsg::Frame)
                    .collect()
            } else {
                lookout_rules::read_recording(&args.recording)?
            };
            let frames = recorded.len();
            // Count, rate and ETA on stderr (also with --json: stdout holds only the
            // events), redrawn at most 4 times a second.
            let mut line = lookout_core::progress::Progress::new(frames, "messages");
            let show = frames > 0;
            let msgs = recorded.into_iter().enumerate().map(|(i, m)| {
                if show {
                    if let Some(l) = line.tick(i + 1) {
                        eprint!("\rreplay {l:<56}");
                    }
                }
                m
            });
            let (events, tubes) = lookout_rules::replay_explained(msgs, &cfg.rules);
            if show {
                eprintln!();
            }
            if args.json {
                for e in &events {
                    println!("{}", serde_json::to_string(e)?);
                }
            } else {
                let mut by_kind: std::collections::BTreeMap<(String, String), usize> =
                    Default::default();
                for e in events
                    .iter()
                    .filter(|e| e.phase == lookout_core::EventPhase::Start)
                {
                    *by_kind
                        .entry((e.camera.to_string(), e.kind.to_string()))
                        .or_default() += 1;
                }
                println!("{frames} recorded messages, {} events:", events.len());
                for ((cam, kind), n) in by_kind {
                    println!("  {cam:<24} {kind:<16} {n} started");
                }
                if !tubes.is_empty() {
                    println!("temporal verification ([rules.verify]), tracks:");
                }
                for ((cam, class), t) in tubes {
                    let held: Vec<String> = t
                        .held_back
                        .iter()
                        .map(|(r, n)| format!("{r} {n}"))
                        .collect();
                    println!(
                        "  {cam:<24} {class:<16} {} verified, held back: {}",
                        t.verified,
                        if held.is_empty() {
                            "none".to_string()
                        } else {
                            held.join(", ")
                        }
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        cli::Command::Geojson(args) => {
            let mut cfg = load_config(args.config.as_deref())?;
            let db = data_database(&mut cfg, args.data_dir.as_deref())?;
            let incidents: Vec<lookout_core::Incident> = match &db {
                Some(db) => {
                    let store = lookout_alerts::store::Store::open(
                        db,
                        Vec::new(),
                        cfg.alerts.escalate_after_s,
                    )
                    .with_context(|| format!("cannot open {}", db.display()))?;
                    store
                        .list_incidents(&lookout_alerts::store::IncidentFilter {
                            limit: Some(1000),
                            ..Default::default()
                        })
                        .with_context(|| format!("cannot read the incidents of {}", db.display()))?
                        .into_iter()
                        .map(|s| s.incident)
                        .collect()
                }
                None => Vec::new(),
            };
            let mut hotspots = Vec::new();
            for f in &args.hotspots {
                hotspots.extend(lookout_fusion::firms::parse_file(f)?.hotspots);
            }
            println!(
                "{}",
                serde_json::to_string_pretty(&lookout_fusion::geojson(
                    &cfg, &incidents, &hotspots
                ))?
            );
            Ok(ExitCode::SUCCESS)
        }
        cli::Command::Run(args) => {
            let mut cfg = load_config(args.config.as_deref())?;
            if let Some(r) = args.run_for {
                cfg.engine.run_for_s = Some(r);
            }
            if let Some(d) = &args.data_dir {
                cfg.set_data_dir(d);
            }
            if let Some(role) = args.role {
                cfg.cluster.role = role;
                // `cluster.nats` is checked for edge and hub when the file is read; a role
                // given on the command line is checked here.
                if role != lookout_config::cluster::Role::All && cfg.cluster.nats.is_empty() {
                    anyhow::bail!(
                        "--role {}: cluster.nats names no NATS server",
                        role.as_str()
                    );
                }
            }
            for w in skip_missing(&mut cfg) {
                tracing::warn!("{w}");
            }
            verify_files(&cfg, |_| true)?;
            run::run(
                cfg,
                run::RunOptions {
                    config_path: args.config.clone(),
                },
            )?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Success when no item was bad; otherwise says how many of how many and gives
/// [`EXIT_PARTIAL`].
fn partial(bad: usize, total: usize, what: &str) -> ExitCode {
    if bad == 0 {
        ExitCode::SUCCESS
    } else {
        eprintln!("error: {bad} of {total} {what} could not be processed (named above)");
        ExitCode::from(EXIT_PARTIAL)
    }
}

/// Loads a config file, or the embedded default. Errors are [`ConfigErrors`] (exit 2).
pub(crate) fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    Ok(match path {
        Some(p) => lookout_config::load(p),
        None => lookout_config::load_default(),
    }?)
}

/// Verifies that the files the config names (those `select` picks) exist and can be read;
/// a model manifest also has its ONNX file found and its sha256 checked. Every problem is
/// a located error naming the key and the resolved path ([`ConfigErrors`], exit 2).
pub(crate) fn verify_files(cfg: &Config, select: impl Fn(&FileRef) -> bool) -> anyhow::Result<()> {
    cfg.check_files(select, |f| match f.kind {
        FileKind::ModelManifest => lookout_infer::Model::load(&f.path)
            .map(|_| ())
            .map_err(|e| e.to_string()),
        _ => Ok(()),
    })?;
    Ok(())
}

/// With `engine.missing_files = "skip"`: turns off what needs a missing file (file cameras
/// whose video is missing, models whose manifest or ONNX file is missing and the cameras
/// left without a model, hotspot sources whose path is missing) and says what, one line
/// each. Nothing with the default, `error`.
pub(crate) fn skip_missing(cfg: &mut Config) -> Vec<String> {
    use lookout_config::cameras::SourceConfig;
    use lookout_config::engine::MissingFiles;
    use lookout_config::fusion::HotspotSourceConfig;
    let mut said = Vec::new();
    if cfg.engine.missing_files != MissingFiles::Skip {
        return said;
    }
    let mut off_models = Vec::new();
    for (name, m) in &cfg.models {
        let path = cfg.resolve_path(m.manifest.value());
        if let Err(e) = lookout_infer::Model::load(&path) {
            said.push(format!("Model {name} is off: {e}"));
            off_models.push(name.clone());
        }
    }
    for name in &off_models {
        cfg.models.remove(name);
    }
    let models = &cfg.models;
    for c in cfg.cameras.iter_mut().filter(|c| c.enabled) {
        if let SourceConfig::File { path, .. } = &c.source {
            let p = Path::new(path.value());
            if !p.is_file() {
                said.push(format!(
                    "Camera {} is off: its video {} is missing (`lookout data status` says where to get it).",
                    c.id,
                    p.display()
                ));
                c.enabled = false;
                continue;
            }
        }
        let before = c.models.len();
        c.models.retain(|m| models.contains_key(m));
        if before > 0 && c.models.is_empty() {
            said.push(format!("Camera {} is off: its models are off.", c.id));
            c.enabled = false;
        }
    }
    cfg.fusion.hotspots.retain(|h| {
        let (HotspotSourceConfig::File { path } | HotspotSourceConfig::Dir { path, .. }) = h else {
            return true;
        };
        let there = Path::new(path.value()).exists();
        if !there {
            said.push(format!(
                "Hotspot source {} is off: it is missing.",
                path.value()
            ));
        }
        there
    });
    said
}

/// The database of the data directory (`--data-dir DIR`, else `engine.data_dir`), when
/// there is one. A `--data-dir` that does not exist is an error; a configured data
/// directory that does not exist yet (`lookout run` creates it) is said on stderr.
pub(crate) fn data_database(
    cfg: &mut Config,
    dir: Option<&Path>,
) -> anyhow::Result<Option<std::path::PathBuf>> {
    if let Some(d) = dir {
        if !d.is_dir() {
            anyhow::bail!(
                "--data-dir {}: no such directory (give the directory `lookout run` uses)",
                d.display()
            );
        }
        cfg.set_data_dir(d);
    }
    let data = cfg.data_dir();
    if !data.is_dir() {
        eprintln!(
            "note: the data directory {} does not exist yet (`lookout run` creates it): nothing is stored",
            data.display()
        );
        return Ok(None);
    }
    let db = data.join(&cfg.alerts.database);
    if !db.is_file() {
        eprintln!("note: no database in {}: nothing is stored", data.display());
        return Ok(None);
    }
    Ok(Some(db))
}

/// Opens the alerts database of the data directory (`--data-dir`, else `engine.data_dir`)
/// for a command that needs one: a clear error when `lookout run` never used it.
pub(crate) fn open_data_store(
    cfg: &mut Config,
    dir: Option<&Path>,
) -> anyhow::Result<lookout_alerts::store::Store> {
    if let Some(d) = dir {
        cfg.set_data_dir(d);
    }
    let db = cfg.data_dir().join(&cfg.alerts.database);
    if !db.is_file() {
        anyhow::bail!(
            "no alerts database at {} (has `lookout run` used this data directory?)",
            db.display()
        );
    }
    lookout_alerts::store::Store::open(&db, Vec::new(), cfg.alerts.escalate_after_s)
        .with_context(|| format!("cannot open {}", db.display()))
}

/// `lookout check-config FILE`: exit 0 with a one-line summary, or 2 with every error
/// (values first, then the files the config names).
fn check_config(file: &Path, dump: bool) -> anyhow::Result<ExitCode> {
    let mut cfg = lookout_config::load(file)?;
    for w in skip_missing(&mut cfg) {
        eprintln!("warning: {w}");
    }
    verify_files(&cfg, |_| true)?;
    println!("{}", cfg.summary());
    if dump {
        print!("{}", cfg.redacted_toml());
    }
    Ok(ExitCode::SUCCESS)
}
