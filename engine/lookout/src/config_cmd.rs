//! `lookout config diff`: what the API overlays in the data directory change over the
//! config file (rules, model slots, cameras), resolved exactly as `lookout run` resolves
//! them at start.

use std::process::ExitCode;

use anyhow::Context;
use lookout_config::overlay::show;
use serde_json::json;

use crate::cli::ConfigDiffArgs;

/// Prints the overlay over the config file (text, or one JSON object with `--json`).
pub fn diff(args: &ConfigDiffArgs) -> anyhow::Result<ExitCode> {
    let mut cfg = crate::load_config(args.config.as_deref())?;
    let found = crate::data_database(&mut cfg, args.data_dir.as_deref())?;
    let db = cfg.data_dir().join(&cfg.alerts.database);
    let (rec, models, cams_rec) = if let Some(db) = &found {
        let store = lookout_alerts::store::Store::open(db, Vec::new(), cfg.alerts.escalate_after_s)
            .with_context(|| format!("cannot open {}", db.display()))?;
        (
            lookout_server::overlay::latest(&store)
                .with_context(|| format!("cannot read the config overlays of {}", db.display()))?,
            lookout_server::models::latest(&store)
                .with_context(|| format!("cannot read the model changes of {}", db.display()))?,
            lookout_server::camera_edit::latest(&store)
                .with_context(|| format!("cannot read the camera changes of {}", db.display()))?,
        )
    } else {
        (None, None, None)
    };
    // The cameras the API added, edited or disabled, resolved over the file's as at start;
    // the rules overlay is then resolved with those cameras (it may name an added one).
    let cams = cams_rec.as_ref().map(|r| {
        let (running, _, status) =
            lookout_server::camera_edit::resolve_record(&cfg.cameras, &cfg, r);
        (running, status)
    });
    let mut ctx = cfg.clone();
    if let Some((running, _)) = &cams {
        ctx.cameras = running.clone();
    }
    let cams = cams.map(|(_, s)| s);
    // The model slots the API changed (promotions, rollbacks, shadows), file → running.
    let model_lines: Vec<String> = models
        .iter()
        .flat_map(|(_, o)| &o.slots)
        .flat_map(|(name, slot)| {
            let file = cfg
                .models
                .get(name)
                .map(|m| m.manifest.value().to_string())
                .unwrap_or_else(|| "(not in the file)".into());
            let mut lines = Vec::new();
            if let Some(l) = &slot.live {
                lines.push(format!(
                    "  models.{name}.manifest: {file} → {} (sha256 {}; rollback returns to {})",
                    l.manifest,
                    l.sha256,
                    slot.previous.last().map_or("-", |p| p.manifest.as_str())
                ));
            }
            if slot.shadow_set {
                lines.push(format!(
                    "  models.{name}.shadow: {}",
                    slot.shadow
                        .as_ref()
                        .map_or("stopped".to_string(), |s| format!(
                            "{} (sha256 {})",
                            s.manifest, s.sha256
                        ))
                ));
            }
            lines
        })
        .collect();
    let resolved = rec
        .as_ref()
        .map(|r| lookout_server::overlay::resolve_record(&cfg.rules, &ctx, r).1);
    if args.json {
        let changes: Vec<serde_json::Value> = resolved
            .iter()
            .flat_map(|s| &s.changes)
            .map(|c| json!({"path": c.path, "file": c.from, "effective": c.to}))
            .collect();
        let out = json!({
            "config": cfg.origin,
            "database": db.display().to_string(),
            "overlay": resolved,
            "changes": changes,
            "models": models.as_ref().map(|(r, o)| json!({
                "version": r.version,
                "author": r.author,
                "at": r.at,
                "action": o.action,
                "model": o.model,
                "from": o.from,
                "to": o.to,
                "forced": o.forced,
                "slots": o.slots,
            })),
            "cameras": cams,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("config:   {}", cfg.origin);
    println!("database: {}", db.display());
    if let Some((r, o)) = &models {
        println!(
            "models v{} by {} at {}: last change {} of {}",
            r.version,
            r.author,
            r.at.format("%Y-%m-%d %H:%M:%S UTC"),
            o.action,
            o.model
        );
        if model_lines.is_empty() {
            println!("  every model slot runs the config file's model");
        }
        for l in &model_lines {
            println!("{l}");
        }
    }
    if let Some(c) = &cams {
        let comment = if c.comment.is_empty() {
            String::new()
        } else {
            format!(" \"{}\"", c.comment)
        };
        println!(
            "cameras v{} by {} at {}{}: {}",
            c.version,
            c.author,
            c.at.format("%Y-%m-%d %H:%M:%S UTC"),
            comment,
            if c.applied {
                "applied over the file's [[cameras]]"
            } else {
                "NOT APPLIED: it no longer validates over the file, the file's cameras run"
            }
        );
        for e in &c.errors {
            println!("  error: {}: {}", e.path, e.message);
        }
        if c.changes.is_empty() {
            println!("  every camera is the config file's");
        }
        for ch in &c.changes {
            println!(
                "  {}: {} → {}",
                ch.path,
                show(ch.from.as_ref()),
                show(ch.to.as_ref())
            );
        }
        for k in &c.conflicts {
            println!(
                "  conflict: {}: file was {} when v{} was made, is {} now; record {}",
                k.path,
                show(k.base.as_ref()),
                c.version,
                show(k.file.as_ref()),
                show(k.overlay.as_ref())
            );
        }
    }
    let Some(s) = resolved else {
        println!("No config overlay: the running rules are the config file's.");
        return Ok(ExitCode::SUCCESS);
    };
    let comment = if s.comment.is_empty() {
        String::new()
    } else {
        format!(" \"{}\"", s.comment)
    };
    println!(
        "overlay v{} by {} at {}{}: {}",
        s.version,
        s.author,
        s.at.format("%Y-%m-%d %H:%M:%S UTC"),
        comment,
        if s.applied {
            "applied over the file"
        } else {
            "NOT APPLIED: it no longer validates over the file, the file's rules run"
        }
    );
    for e in &s.errors {
        println!("  error: {}: {}", e.path, e.message);
    }
    if s.changes.is_empty() {
        println!("No key differs from the config file.");
    } else {
        println!(
            "{} key(s), file → {}:",
            s.changes.len(),
            if s.applied {
                "running"
            } else {
                "overlay (not running)"
            }
        );
        for c in &s.changes {
            println!(
                "  {}: {} → {}",
                c.path,
                show(c.from.as_ref()),
                show(c.to.as_ref())
            );
        }
    }
    if !s.conflicts.is_empty() {
        println!(
            "Conflicts: the file changed keys this overlay also sets (the overlay's value wins):"
        );
        for c in &s.conflicts {
            println!(
                "  {}: file was {} when v{} was made, is {} now; overlay {}",
                c.path,
                show(c.base.as_ref()),
                s.version,
                show(c.file.as_ref()),
                show(c.overlay.as_ref())
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
