//! # lookout-config
//!
//! Lookout's configuration goes **raw → validated → resolved**:
//!
//! 1. *raw*: the TOML text parsed into plain serde structs, one section at a time, so one
//!    broken camera does not hide the errors in the next. Unknown keys are errors.
//! 2. *validated*: every section checks ranges and cross-references ([`Validator`]) and
//!    reports problems by key path; the loader turns each path into file:line:column.
//! 3. *resolved*: `${ENV}` references expanded ([`env`]), relative paths made absolute
//!    against the config file's directory ([`Config::resolve_path`]).
//!
//! Every field is documented on its struct; `configs/README.md` is the reference operators
//! read. Secrets ([`env::Secret`], URL passwords) are redacted in `Debug`, `Serialize` and so
//! in every dump.
//!
//! Sections: [`engine::EngineConfig`] `[engine]` (with
//! [`retention::RetentionConfig`] `[engine.retention]`), [`cameras::IngestConfig`] `[ingest]`,
//! [`cameras::CameraConfig`] `[[cameras]]`, [`inference::InferenceConfig`] `[inference]`,
//! [`inference::ModelRef`] `[models.NAME]`, [`rules::RulesConfig`] `[rules]`,
//! [`fusion::FusionConfig`] `[fusion]`, [`alerts::AlertsConfig`] `[alerts]`,
//! [`server::ServerConfig`] `[server]`.

pub mod alerts;
pub mod cameras;
pub mod engine;
pub mod env;
pub mod error;
pub mod fusion;
pub mod inference;
mod locate;
pub mod overlay;
pub mod retention;
pub mod rules;
pub mod server;
pub mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use error::{ConfigError, ConfigErrors};
pub use validate::{ValidationContext, Validator};

/// The embedded default configuration (`configs/default.toml`): sample streams, sample
/// hotspots, SQLite, web UI.
pub const DEFAULT_CONFIG: &str = include_str!("../../../configs/default.toml");

/// Name used in error messages for the embedded default.
pub const DEFAULT_CONFIG_NAME: &str = "configs/default.toml (embedded)";

/// A whole, validated, resolved configuration.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Config {
    /// `[engine]`.
    pub engine: engine::EngineConfig,
    /// `[ingest]`.
    pub ingest: cameras::IngestConfig,
    /// `[[cameras]]`.
    pub cameras: Vec<cameras::CameraConfig>,
    /// `[inference]`.
    pub inference: inference::InferenceConfig,
    /// `[models.NAME]`.
    pub models: BTreeMap<String, inference::ModelRef>,
    /// `[rules]`.
    pub rules: rules::RulesConfig,
    /// `[fusion]`.
    pub fusion: fusion::FusionConfig,
    /// `[alerts]`.
    pub alerts: alerts::AlertsConfig,
    /// `[server]`.
    pub server: server::ServerConfig,
    /// Directory that relative paths are resolved against.
    #[serde(skip)]
    pub base_dir: PathBuf,
    /// Where the config came from (a path, or the embedded default's name).
    #[serde(skip)]
    pub origin: String,
}

const SECTIONS: &[&str] = &[
    "engine",
    "ingest",
    "cameras",
    "inference",
    "models",
    "rules",
    "fusion",
    "alerts",
    "server",
];

impl Config {
    /// Resolves a path from the config against its directory (absolute paths unchanged).
    pub fn resolve_path(&self, p: impl AsRef<Path>) -> PathBuf {
        let p = p.as_ref();
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    /// The data directory, resolved.
    pub fn data_dir(&self) -> PathBuf {
        self.resolve_path(self.engine.data_dir.value())
    }

    /// A camera by id.
    pub fn camera(&self, id: &str) -> Option<&cameras::CameraConfig> {
        self.cameras.iter().find(|c| c.id == id)
    }

    /// The enabled cameras.
    pub fn enabled_cameras(&self) -> impl Iterator<Item = &cameras::CameraConfig> {
        self.cameras.iter().filter(|c| c.enabled)
    }

    /// One line for `lookout check-config`.
    pub fn summary(&self) -> String {
        let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
        for c in self.enabled_cameras() {
            *kinds.entry(c.source.kind()).or_default() += 1;
        }
        let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
        format!(
            "{}: OK — {} camera(s) enabled ({}), {} model(s) ({})",
            self.origin,
            self.enabled_cameras().count(),
            if kinds.is_empty() {
                "none".to_string()
            } else {
                kinds.join(", ")
            },
            self.models.len(),
            self.models.keys().cloned().collect::<Vec<_>>().join(", "),
        )
    }

    /// The configuration as TOML with secrets redacted.
    pub fn redacted_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

/// Loads and validates a config file. Relative paths resolve against its directory.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let origin = path.display().to_string();
    let src = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
        errors: vec![ConfigError {
            file: origin.clone(),
            line: None,
            column: None,
            key: String::new(),
            message: format!("cannot read the file: {e}"),
        }],
    })?;
    let base = path
        .parent()
        .map(|p| {
            if p.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                p.to_path_buf()
            }
        })
        .unwrap_or_else(|| PathBuf::from("."));
    parse(&src, &origin, &base)
}

/// Loads the embedded default; relative paths resolve against the current directory.
pub fn load_default() -> Result<Config, ConfigErrors> {
    parse(DEFAULT_CONFIG, DEFAULT_CONFIG_NAME, Path::new("."))
}

/// Parses and validates config text. `origin` names the file in errors.
pub fn parse(src: &str, origin: &str, base_dir: &Path) -> Result<Config, ConfigErrors> {
    let mut problems: Vec<(String, String, Option<usize>)> = Vec::new();
    let table: toml::Table = match src.parse::<toml::Table>() {
        Ok(t) => t,
        Err(e) => {
            let offset = e.span().map(|s| s.start);
            let msg = e.message().to_string();
            return Err(finish(src, origin, vec![(String::new(), msg, offset)]));
        }
    };
    let mut cfg = Config {
        base_dir: base_dir.to_path_buf(),
        origin: origin.to_string(),
        ..Config::default()
    };
    for (key, value) in table {
        match key.as_str() {
            "engine" => section(&key, value, &mut problems, &mut cfg.engine),
            "ingest" => section(&key, value, &mut problems, &mut cfg.ingest),
            "inference" => section(&key, value, &mut problems, &mut cfg.inference),
            "rules" => section(&key, value, &mut problems, &mut cfg.rules),
            "fusion" => section(&key, value, &mut problems, &mut cfg.fusion),
            "alerts" => section(&key, value, &mut problems, &mut cfg.alerts),
            "server" => section(&key, value, &mut problems, &mut cfg.server),
            "models" => match value {
                toml::Value::Table(t) => {
                    for (name, v) in t {
                        let path = format!("models.{}", quote_key(&name));
                        if let Some(m) = de_value::<inference::ModelRef>(&path, v, &mut problems) {
                            cfg.models.insert(name, m);
                        }
                    }
                }
                _ => problems.push((
                    key.clone(),
                    "must be a table of models: [models.NAME] manifest = \"models/NAME.toml\""
                        .into(),
                    None,
                )),
            },
            "cameras" => match value {
                toml::Value::Array(items) => {
                    for (i, v) in items.into_iter().enumerate() {
                        if let Some(c) = de_value(&format!("cameras[{i}]"), v, &mut problems) {
                            cfg.cameras.push(c);
                        }
                    }
                }
                _ => problems.push((
                    key.clone(),
                    "must be an array of tables: write each camera as [[cameras]]".into(),
                    None,
                )),
            },
            other => problems.push((
                other.to_string(),
                format!("unknown section; allowed: {}", SECTIONS.join(", ")),
                None,
            )),
        }
    }

    let mut v = Validator::new();
    cfg.engine.validate(&mut v);
    cfg.ingest.validate(&mut v);
    let model_names: Vec<&str> = cfg.models.keys().map(String::as_str).collect();
    let mut ids = BTreeMap::new();
    for (i, c) in cfg.cameras.iter().enumerate() {
        c.validate(&format!("cameras[{i}]"), &mut v, &model_names);
        if let Some(prev) = ids.insert(c.id.as_str(), i) {
            v.error(
                format!("cameras[{i}].id"),
                format!("camera id {:?} is already used by cameras[{prev}]", c.id),
            );
        }
    }
    let max_side = cfg
        .cameras
        .iter()
        .map(|c| c.effective_max_side(&cfg.ingest))
        .max()
        .unwrap_or(cfg.ingest.analysis_max_side);
    cfg.engine.retention.validate(&mut v, max_side);
    for (name, m) in &cfg.models {
        if let Some(t) = &m.tile {
            t.validate(&format!("models.{}.tile", quote_key(name)), &mut v);
        }
    }
    let ctx = ValidationContext {
        cameras: &cfg.cameras,
        models: model_names.clone(),
    };
    cfg.inference.validate(&mut v, &ctx);
    cfg.rules.validate(&mut v, &ctx);
    cfg.fusion.validate(&mut v, &ctx);
    cfg.alerts.validate(&mut v, &ctx);
    cfg.alerts.validate_files(&cfg.base_dir, &mut v);
    cfg.server.validate(&mut v, &ctx);
    problems.extend(v.problems.into_iter().map(|(p, m)| (p, m, None)));

    if problems.is_empty() {
        Ok(cfg)
    } else {
        Err(finish(src, origin, problems))
    }
}

fn quote_key(k: &str) -> String {
    if k.chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        k.to_string()
    } else {
        format!("\"{k}\"")
    }
}

fn section<T: DeserializeOwned>(
    key: &str,
    value: toml::Value,
    problems: &mut Vec<(String, String, Option<usize>)>,
    out: &mut T,
) {
    if let Some(v) = de_value(key, value, problems) {
        *out = v;
    }
}

/// Deserializes one value, recording a located problem on failure.
pub(crate) fn de_value<T: DeserializeOwned>(
    prefix: &str,
    value: toml::Value,
    problems: &mut Vec<(String, String, Option<usize>)>,
) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(v) => Some(v),
        Err(e) => {
            let inner = e.path().to_string();
            let mut path: String = if inner == "." || inner.is_empty() {
                prefix.to_string()
            } else {
                format!("{prefix}.{inner}")
            };
            // toml appends "in `key`" lines that repeat the path we already print.
            let full = e.inner().to_string();
            let msg = full
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with("in `"))
                .collect::<Vec<_>>()
                .join(" ");
            // Make sure unknown fields point at the field itself.
            if let Some(rest) = msg.strip_prefix("unknown field `") {
                if let Some(name) = rest.split('`').next() {
                    if !path.ends_with(&format!(".{name}")) {
                        path = format!("{path}.{name}");
                    }
                }
            }
            problems.push((path, msg, None));
            None
        }
    }
}

fn finish(src: &str, origin: &str, problems: Vec<(String, String, Option<usize>)>) -> ConfigErrors {
    let doc = toml_edit::ImDocument::parse(src).ok();
    let mut errors: Vec<ConfigError> = problems
        .into_iter()
        .map(|(key, message, offset)| {
            let offset = offset.or_else(|| doc.as_ref().and_then(|d| locate::locate(d, &key)));
            let (line, column) = match offset {
                Some(o) => {
                    let (l, c) = locate::line_col(src, o);
                    (Some(l), Some(c))
                }
                None => (None, None),
            };
            ConfigError {
                file: origin.to_string(),
                line,
                column,
                key,
                message,
            }
        })
        .collect();
    errors.sort_by_key(|e| (e.line.unwrap_or(usize::MAX), e.column.unwrap_or(0)));
    ConfigErrors { errors }
}

/// Parses a TOML fragment of one section (used by hot reload and the HTTP API to validate
/// a change to, e.g., `[rules]` before applying it).
pub fn parse_section<T: DeserializeOwned>(key: &str, src: &str) -> Result<T, ConfigErrors> {
    let value: toml::Value = match src.parse::<toml::Table>() {
        Ok(t) => toml::Value::Table(t),
        Err(e) => {
            return Err(finish(
                src,
                key,
                vec![(
                    String::new(),
                    e.message().to_string(),
                    e.span().map(|s| s.start),
                )],
            ))
        }
    };
    let mut problems = Vec::new();
    match de_value::<T>(key, value, &mut problems) {
        Some(v) => Ok(v),
        None => Err(finish(src, key, problems)),
    }
}

/// A JSON value of a whole config (secrets redacted), for the API and `config diff`.
pub fn to_json(cfg: &Config) -> serde_json::Value {
    serde_json::to_value(cfg).unwrap_or(serde_json::Value::Null)
}
