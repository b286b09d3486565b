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
mod config_cmd;
mod eval_events;
mod run;
mod sequences;

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    init_tracing(cli.log_json);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn init_tracing(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("LOOKOUT_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn run(cli: cli::Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        cli::Command::CheckConfig(args) => Ok(check_config(&args.file, args.dump)),
        cli::Command::Config(cli::ConfigCommand::Diff(args)) => config_cmd::diff(&args),
        cli::Command::Detect(args) => {
            let report = lookout_infer::cli::run_detect(&args)?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(ExitCode::SUCCESS)
        }
        cli::Command::Eval(args) => {
            let report = lookout_infer::eval::run_eval(&args)?;
            if args.json {
                println!("{}", report.to_json());
            } else {
                print!("{}", report.to_text());
            }
            Ok(ExitCode::SUCCESS)
        }
        cli::Command::Hotspots(cli::HotspotsCommand::Parse(args)) => {
            let s = lookout_fusion::firms::parse_summary(&args.file)?;
            if args.json {
                println!("{}", serde_json::to_string(&s)?);
            } else {
                println!(
                    "{}: {} rows ({} skipped), {} .. {}",
                    s.format,
                    s.rows,
                    s.skipped,
                    s.first.clone().unwrap_or_default(),
                    s.last.clone().unwrap_or_default()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        cli::Command::EvalEvents(args) => {
            eval_events::run(&args)?;
            Ok(ExitCode::SUCCESS)
        }
        cli::Command::Sequences(cmd) => {
            sequences::run(&cmd)?;
            Ok(ExitCode::SUCCESS)
        }
        cli::Command::Replay(args) => {
            let cfg = load_config(args.config.as_deref())?;
            let recorded = lookout_rules::read_recording(&args.recording)?;
            let frames = recorded.len();
            let events = lookout_rules::replay(recorded, &cfg.rules);
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
            }
            Ok(ExitCode::SUCCESS)
        }
        cli::Command::Geojson(args) => {
            let cfg = load_config(args.config.as_deref())?;
            let mut hotspots = Vec::new();
            for f in &args.hotspots {
                hotspots.extend(lookout_fusion::firms::parse_file(f)?.hotspots);
            }
            println!(
                "{}",
                serde_json::to_string_pretty(&lookout_fusion::geojson(&cfg, &[], &hotspots))?
            );
            Ok(ExitCode::SUCCESS)
        }
        cli::Command::Run(args) => {
            let mut cfg = load_config(args.config.as_deref())?;
            if let Some(r) = args.run_for {
                cfg.engine.run_for_s = Some(r);
            }
            set_data_dir(&mut cfg, args.data_dir.as_deref());
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

/// Loads a config file, or the embedded default.
pub(crate) fn load_config(path: Option<&Path>) -> anyhow::Result<lookout_config::Config> {
    match path {
        Some(p) => lookout_config::load(p),
        None => lookout_config::load_default(),
    }
    .map_err(|e| anyhow::anyhow!("{e}"))
}

/// `--data-dir DIR` overrides `engine.data_dir`.
pub(crate) fn set_data_dir(cfg: &mut lookout_config::Config, dir: Option<&Path>) {
    if let Some(d) = dir {
        cfg.engine.data_dir = lookout_config::env::EnvString::literal(d.display().to_string());
    }
}

/// `lookout check-config FILE`: exit 0 with a one-line summary, or 2 with every error.
fn check_config(file: &Path, dump: bool) -> ExitCode {
    match lookout_config::load(file) {
        Ok(cfg) => {
            println!("{}", cfg.summary());
            if dump {
                print!("{}", cfg.redacted_toml());
            }
            ExitCode::SUCCESS
        }
        Err(errs) => {
            eprint!("{errs}");
            ExitCode::from(2)
        }
    }
}
