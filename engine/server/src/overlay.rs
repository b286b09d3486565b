//! The rules overlay at run time: the running `[rules]` are the TOML file's rules plus the
//! latest API overlay (a JSON merge patch, see [`lookout_config::overlay`]).
//!
//! * At start the engine calls [`ServerState::load_overlay`]: the latest overlay in SQLite
//!   is resolved over the file's rules before the rules stage starts.
//! * When the file reloads the engine calls [`ServerState::file_rules_changed`]: the same
//!   overlay is re-applied over the new file rules and the result hot-reloaded.
//! * An API change ([`ServerState::change_rules`]) stores a new overlay version whose patch
//!   is the whole difference between the file's rules and the new running rules.
//!
//! An overlay that no longer validates over the file is never applied and never dropped:
//! the file's rules run, the error names the overlay version, and `/api/config` and
//! `lookout config diff` show it.

use lookout_alerts::store::{OverlayRecord, Store};
use lookout_alerts::{LiveUpdate, StoreError};
use lookout_config::overlay::{self, Change, Conflict, FieldError, RulesOverlay};
use lookout_config::rules::RulesConfig;
use lookout_config::Config;
use lookout_core::UtcTime;
use serde::Serialize;
use serde_json::Value;

use crate::ServerState;

/// The store section overlays of `[rules]` are written under.
pub const SECTION: &str = "rules";

/// The file's rules and the overlay in force (guarded by one mutex in [`ServerState`], so
/// file reloads and API changes are applied one at a time).
#[derive(Debug, Clone)]
pub struct Layers {
    /// The TOML file's `[rules]` as last loaded.
    pub file: RulesConfig,
    /// The latest overlay record.
    pub record: Option<OverlayRecord>,
    /// How it resolved over `file`.
    pub status: Option<OverlayStatus>,
}

impl Layers {
    /// Layers with the file's rules and no overlay.
    pub fn new(file: RulesConfig) -> Layers {
        Layers {
            file,
            record: None,
            status: None,
        }
    }
}

/// How the latest overlay resolved over the file.
#[derive(Debug, Clone, Serialize)]
pub struct OverlayStatus {
    /// Overlay version.
    pub version: i64,
    /// Who made it.
    pub author: String,
    /// When.
    pub at: UtcTime,
    /// Why.
    pub comment: String,
    /// What the operator asked for in this version.
    pub change: Value,
    /// Whether it is in force (false: the file's rules run, see `errors`).
    pub applied: bool,
    /// Why it is not in force.
    pub errors: Vec<FieldError>,
    /// Keys the file changed since the overlay was made that the overlay also sets (the
    /// overlay wins).
    pub conflicts: Vec<Conflict>,
    /// File value → overlay value for every key the overlay changes.
    pub changes: Vec<Change>,
}

/// The newest overlay of `[rules]` in the store.
pub fn latest(store: &Store) -> Result<Option<OverlayRecord>, StoreError> {
    store.latest_overlay(SECTION)
}

/// Resolves a stored overlay over the file's rules, validated against `ctx`'s cameras and
/// models. Returns the rules that run and the status to show.
pub fn resolve_record(
    file: &RulesConfig,
    ctx: &Config,
    rec: &OverlayRecord,
) -> (RulesConfig, OverlayStatus) {
    let mut status = OverlayStatus {
        version: rec.version,
        author: rec.author.clone(),
        at: rec.at,
        comment: rec.comment.clone(),
        change: rec.body.get("change").cloned().unwrap_or(Value::Null),
        applied: false,
        errors: Vec::new(),
        conflicts: Vec::new(),
        changes: Vec::new(),
    };
    match RulesOverlay::from_body(&rec.body, file) {
        Err(message) => {
            status.errors.push(FieldError {
                path: String::new(),
                message,
            });
            (file.clone(), status)
        }
        Ok(ov) => {
            let r = overlay::resolve(file, &ov, ctx);
            status.applied = r.applied;
            status.errors = r.errors;
            status.conflicts = r.conflicts;
            status.changes = r.changes;
            (r.rules, status)
        }
    }
}

fn log_status(s: &OverlayStatus, when: &str) {
    if !s.applied {
        let errors: Vec<String> = s
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.path, e.message))
            .collect();
        tracing::error!(
            version = s.version,
            author = %s.author,
            errors = %errors.join("; "),
            "Config overlay v{} no longer applies over the config file ({when}); running the file's rules. `lookout config diff` shows it.",
            s.version
        );
    }
    for c in &s.conflicts {
        tracing::warn!(
            version = s.version,
            key = %c.path,
            base = %overlay::show(c.base.as_ref()),
            file = %overlay::show(c.file.as_ref()),
            overlay = %overlay::show(c.overlay.as_ref()),
            "The config file changed a key that overlay v{} also sets; the overlay's value stays in force.",
            s.version
        );
    }
}

impl ServerState {
    fn layers(&self) -> std::sync::MutexGuard<'_, Layers> {
        self.layers.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_running_rules(&self, rules: RulesConfig) {
        self.config.write().unwrap_or_else(|e| e.into_inner()).rules = rules;
    }

    /// At start: reads the latest overlay from the store and resolves it over the file's
    /// rules (the config this state was made with). The running config's rules become the
    /// result; nothing is hot-reloaded (the rules stage starts with
    /// [`ServerState::config`]'s rules).
    ///
    /// The cameras record is applied first ([`ServerState::load_cameras`]), so rules that
    /// name a camera the API added validate.
    pub fn load_overlay(&self) -> Result<Option<OverlayStatus>, StoreError> {
        self.load_cameras()?;
        let rec = latest(self.alerts.store())?;
        let mut l = self.layers();
        let ctx = self.config();
        l.record = rec;
        let Some(rec) = l.record.clone() else {
            l.status = None;
            return Ok(None);
        };
        let (rules, status) = resolve_record(&l.file, &ctx, &rec);
        log_status(&status, "at start");
        if status.applied {
            tracing::info!(
                version = status.version,
                author = %status.author,
                keys = status.changes.len(),
                "Config overlay v{} applied over the config file.",
                status.version
            );
        }
        self.set_running_rules(rules);
        l.status = Some(status.clone());
        Ok(Some(status))
    }

    /// The config file's `[rules]` changed: re-applies the overlay over them and
    /// hot-reloads the result (through the rules stage's [`crate::RulesControl`]) when it
    /// differs from what runs.
    pub fn file_rules_changed(&self, file: RulesConfig) {
        let mut l = self.layers();
        let ctx = self.config();
        l.file = file;
        let (mut rules, mut status) = match &l.record {
            Some(rec) => {
                let (r, s) = resolve_record(&l.file, &ctx, rec);
                (r, Some(s))
            }
            None => (l.file.clone(), None),
        };
        if let Some(s) = &status {
            log_status(s, "after the file changed");
        }
        if rules != ctx.rules {
            if let Some(control) = &self.rules {
                let apply = |r: &RulesConfig| control.apply(r).map_err(|e| e.to_string());
                if let Err(m) = apply(&rules) {
                    match status.as_mut().filter(|s| s.applied) {
                        Some(s) => {
                            tracing::error!(version = s.version, error = %m, "The rules engine refused overlay v{} over the changed file; trying the file's rules alone.", s.version);
                            s.applied = false;
                            s.errors.push(FieldError {
                                path: "rules".into(),
                                message: m,
                            });
                            rules = l.file.clone();
                            if rules != ctx.rules {
                                if let Err(m) = apply(&rules) {
                                    tracing::error!(error = %m, "The rules engine refused the changed file's rules; keeping the running ones.");
                                    rules = ctx.rules.clone();
                                }
                            }
                        }
                        None => {
                            tracing::error!(error = %m, "The rules engine refused the changed file's rules; keeping the running ones.");
                            rules = ctx.rules.clone();
                        }
                    }
                }
            }
            self.set_running_rules(rules);
        }
        let version = status.as_ref().map_or(0, |s| s.version);
        l.status = status;
        self.alerts.publish(LiveUpdate::Config { version });
    }

    /// How the latest overlay resolved (None: no overlay, the file's rules run).
    pub fn overlay_status(&self) -> Option<OverlayStatus> {
        self.layers().status.clone()
    }

    /// The file's `[rules]` as last loaded.
    pub fn file_rules(&self) -> RulesConfig {
        self.layers().file.clone()
    }

    /// An API change: `edit(running rules, file rules)` becomes the running rules (computed
    /// under the same lock as file reloads, so neither loses the other). Validates,
    /// hot-reloads, stores the overlay version (patch relative to the file's rules) and
    /// returns it.
    pub fn change_rules(
        &self,
        author: &str,
        edit: impl FnOnce(&RulesConfig, &RulesConfig) -> RulesConfig,
        comment: &str,
        change: Value,
    ) -> Result<i64, ChangeError> {
        self.try_change_rules(author, |r, f| Ok(edit(r, f)), comment, change)
    }

    /// [`Self::change_rules`] with an edit that can fail (e.g. a merge patch whose result
    /// does not deserialize): its `(path, message)` errors become [`ChangeError::Invalid`].
    pub fn try_change_rules(
        &self,
        author: &str,
        edit: impl FnOnce(&RulesConfig, &RulesConfig) -> Result<RulesConfig, Vec<(String, String)>>,
        comment: &str,
        change: Value,
    ) -> Result<i64, ChangeError> {
        let mut l = self.layers();
        let ctx = self.config();
        let new = edit(&ctx.rules, &l.file).map_err(ChangeError::Invalid)?;
        overlay::validate_rules(&new, &ctx).map_err(ChangeError::Invalid)?;
        let ov = overlay::make_overlay(&l.file, &new, change).map_err(ChangeError::Apply)?;
        let Some(control) = &self.rules else {
            return Err(ChangeError::Unavailable);
        };
        control
            .apply(&new)
            .map_err(|e| ChangeError::Apply(e.to_string()))?;
        let body = serde_json::to_value(&ov).map_err(|e| ChangeError::Apply(e.to_string()))?;
        let at = chrono::Utc::now();
        let version = self
            .alerts
            .store()
            .add_overlay(SECTION, author, comment, &body, at)
            .map_err(ChangeError::Store)?;
        let rec = OverlayRecord {
            version,
            section: SECTION.into(),
            at,
            author: author.into(),
            comment: comment.into(),
            body,
        };
        let (rules, status) = resolve_record(&l.file, &ctx, &rec);
        l.record = Some(rec);
        l.status = Some(status);
        self.set_running_rules(rules);
        drop(l);
        self.alerts.publish(LiveUpdate::Config { version });
        tracing::info!(version, author = %author, "Rules changed through the API (overlay v{version}).");
        Ok(version)
    }
}

/// Why an API change was refused.
#[derive(Debug)]
pub enum ChangeError {
    /// The rules do not validate: `(path, message)`.
    Invalid(Vec<(String, String)>),
    /// The engine cannot hot-reload.
    Unavailable,
    /// The rules engine (or the patch encoding) refused it.
    Apply(String),
    /// The store failed.
    Store(StoreError),
}
