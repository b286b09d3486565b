//! `lookout models`: the installed model manifests, whether their ONNX file is there and
//! verifies, which `[models.NAME]` of the config uses each, their licence and what it
//! allows, and the accuracy their manifests record (from their model cards).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use lookout_infer::manifest::Manifest;
use lookout_infer::{InferError, Model};
use serde::Serialize;

/// `lookout models`.
#[derive(Debug, Args)]
pub struct ModelsArgs {
    /// Config file whose `[models]` say which manifests are in use (default: the embedded
    /// default).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Folders to list manifests (`*.toml`) from. Default: the folders of the config's
    /// model manifests (for the embedded default, the checkout's `models/`).
    #[arg(long = "dir")]
    pub dirs: Vec<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct Listed {
    name: String,
    manifest: String,
    /// `ok`, `missing` (ONNX file not found), `sha256_mismatch`, `invalid`.
    status: &'static str,
    detail: Option<String>,
    onnx: Option<String>,
    licence: String,
    licence_note: &'static str,
    input: String,
    classes: Vec<String>,
    in_use_as: Vec<String>,
    card: Option<String>,
    measured: Vec<String>,
}

/// What a licence lets a site do with a model, in one line. Unknown ids say so.
pub fn licence_note(spdx: &str) -> &'static str {
    let s = spdx.trim().to_ascii_uppercase();
    if s.starts_with("AGPL") {
        "copyleft over the network: running it in a service others use obliges you to offer them the source of the whole program (Lookout included, with your changes); check with your counsel before production use"
    } else if s.starts_with("GPL") || s.starts_with("LGPL") {
        "copyleft: distributing it obliges you to license what you combine it with alike"
    } else if s.contains("-NC") {
        "non-commercial only: no use in a paid service or by a company for its business"
    } else if s.starts_with("APACHE-2.0")
        || s.starts_with("MIT")
        || s.starts_with("BSD")
        || s.starts_with("CC0")
        || s.starts_with("CC-BY-4.0")
    {
        "permissive: may be used, modified and shipped commercially, keeping its notices (NOTICE)"
    } else {
        "not a licence Lookout knows: read it before use"
    }
}

fn flatten_accuracy(t: &toml::Table) -> Vec<String> {
    t.iter()
        .map(|(set, v)| match v {
            toml::Value::Table(m) => {
                let mut parts = Vec::new();
                let mut source = None;
                for (k, x) in m {
                    let x = match x {
                        toml::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    if k == "source" {
                        source = Some(x);
                    } else {
                        parts.push(format!("{k} {x}"));
                    }
                }
                match source {
                    Some(s) => format!("{set}: {} ({s})", parts.join(", ")),
                    None => format!("{set}: {}", parts.join(", ")),
                }
            }
            other => format!("{set}: {other}"),
        })
        .collect()
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Runs `lookout models`.
pub fn run(args: &ModelsArgs) -> anyhow::Result<ExitCode> {
    let cfg = crate::load_config(args.config.as_deref())?;
    let in_use: Vec<(String, PathBuf)> = cfg
        .models
        .iter()
        .map(|(name, m)| (name.clone(), cfg.resolve_path(m.manifest.value())))
        .collect();
    let mut dirs: Vec<PathBuf> = if args.dirs.is_empty() {
        in_use
            .iter()
            .filter_map(|(_, p)| p.parent().map(Path::to_path_buf))
            .collect()
    } else {
        args.dirs.clone()
    };
    dirs.dedup_by(|a, b| same_file(a, b));
    let mut listed = Vec::new();
    let mut errors = Vec::new();
    for dir in &dirs {
        let rd = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) => {
                errors.push(format!("{}: {e}", dir.display()));
                continue;
            }
        };
        let mut files: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        for path in files {
            if listed
                .iter()
                .any(|l: &Listed| same_file(Path::new(&l.manifest), &path))
            {
                continue;
            }
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) => {
                    errors.push(format!("{}: {e}", path.display()));
                    continue;
                }
            };
            // Not every TOML file in a folder is a manifest: only those that parse as one.
            let Ok(m) = toml::from_str::<Manifest>(&text) else {
                continue;
            };
            let (status, detail, onnx) = match Model::load(&path) {
                Ok(model) => ("ok", None, Some(model.onnx_path.display().to_string())),
                Err(e @ InferError::ModelMissing { .. }) => ("missing", Some(e.to_string()), None),
                Err(e @ InferError::Checksum { .. }) => {
                    ("sha256_mismatch", Some(e.to_string()), None)
                }
                Err(e) => ("invalid", Some(e.to_string()), None),
            };
            let card = path.with_extension("md");
            listed.push(Listed {
                name: m.name.clone(),
                manifest: path.display().to_string(),
                status,
                detail,
                onnx,
                licence_note: licence_note(&m.licence),
                licence: m.licence.clone(),
                input: format!("{}x{}", m.input.width, m.input.height),
                classes: m.classes.names.clone(),
                in_use_as: in_use
                    .iter()
                    .filter(|(_, p)| same_file(p, &path))
                    .map(|(n, _)| n.clone())
                    .collect(),
                card: card.is_file().then(|| card.display().to_string()),
                measured: m
                    .accuracy
                    .as_ref()
                    .map(flatten_accuracy)
                    .unwrap_or_default(),
            });
        }
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({ "models": listed, "errors": errors })
            )?
        );
    } else {
        for l in &listed {
            let used = if l.in_use_as.is_empty() {
                String::new()
            } else {
                format!(
                    "  in use as {}",
                    l.in_use_as
                        .iter()
                        .map(|n| format!("[models.{n}]"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            println!("{}  {}  {}{used}", l.name, l.status, l.manifest);
            if let Some(d) = &l.detail {
                println!("  problem   {d}");
            }
            println!("  licence   {} - {}", l.licence, l.licence_note);
            let classes = if l.classes.len() > 6 {
                format!(
                    "{} classes ({}, ...)",
                    l.classes.len(),
                    l.classes[..3].join(", ")
                )
            } else {
                l.classes.join(", ")
            };
            println!("  input     {}; classes {classes}", l.input);
            if let Some(c) = &l.card {
                println!("  card      {c}");
            }
            for m in &l.measured {
                println!("  measured  {m}");
            }
        }
        if listed.is_empty() {
            println!(
                "No model manifest found in {}.",
                dirs.iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        for e in &errors {
            eprintln!("error: {e}");
        }
    }
    Ok(if errors.is_empty() && !listed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
