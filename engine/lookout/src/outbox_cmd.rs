//! `lookout outbox ...`: the dead letters of the outbox (deliveries a sink refused), listed
//! and re-driven straight in the database of the data directory. A running engine picks
//! re-driven deliveries up within a second (its sink workers poll the outbox).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

/// `lookout outbox ...`.
#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// List dead letters: sink, key, when, attempts, HTTP status, error, receiver's answer.
    List(OutboxArgs),
    /// Put dead letters back into the outbox (all, or those of `--sink` / `--key`).
    Retry(OutboxArgs),
}

/// Which database and which dead letters.
#[derive(Debug, Args)]
pub struct OutboxArgs {
    /// Config file, as given to `lookout run` (default: the embedded default).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Data directory, as given to `lookout run` (default: `engine.data_dir`).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Only this sink's dead letters.
    #[arg(long)]
    pub sink: Option<String>,
    /// Only these idempotency keys (`<incident id>:<revision>`; repeatable).
    #[arg(long = "key")]
    pub keys: Vec<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs `lookout outbox list|retry`.
pub fn run(cmd: &OutboxCommand) -> anyhow::Result<ExitCode> {
    let (OutboxCommand::List(args) | OutboxCommand::Retry(args)) = cmd;
    let mut cfg = crate::load_config(args.config.as_deref())?;
    if let Some(s) = &args.sink {
        if !cfg.alerts.sinks.iter().any(|x| x.name() == s) {
            anyhow::bail!("no sink named {s:?} in {}", cfg.origin);
        }
    }
    let store = crate::open_data_store(&mut cfg, args.data_dir.as_deref())?;
    match cmd {
        OutboxCommand::List(_) => {
            let list: Vec<_> = store
                .dead_letters(args.sink.as_deref(), 10_000)?
                .into_iter()
                .filter(|d| args.keys.is_empty() || args.keys.contains(&d.key))
                .collect();
            if args.json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                println!("No dead letters.");
            } else {
                for d in &list {
                    println!(
                        "{}  {}  {}  attempts {}  status {}  {}  {:?}",
                        d.sink,
                        d.key,
                        d.at.to_rfc3339(),
                        d.attempts,
                        d.status.map_or("-".to_string(), |s| s.to_string()),
                        d.error,
                        d.body
                    );
                }
            }
        }
        OutboxCommand::Retry(_) => {
            let n = store.redrive(args.sink.as_deref(), &args.keys)?;
            if args.json {
                println!("{}", serde_json::json!({ "redriven": n }));
            } else {
                println!(
                    "{n} dead letter(s) back in the outbox of {}; a running engine sends them within a second, otherwise the next `lookout run` does.",
                    cfg.data_dir().join(&cfg.alerts.database).display()
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
