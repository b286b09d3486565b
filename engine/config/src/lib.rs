//! # lookout-config
//!
//! Lookout's configuration goes **raw → validated → resolved**:
//!
//! 1. *raw*: the TOML text parsed into plain serde structs, one section at a time, so one
//!    broken camera does not hide the errors in the next. Unknown keys are errors.
//! 2. *validated*: every section checks ranges and cross-references ([`Validator`]) and
//!    reports problems by key path; the loader turns each path into file:line:column.
//! 3. *resolved*: `${ENV}` references expanded ([`env`]), every path key made absolute by
//!    one rule ([`resolve_config_path`]): against the config file's directory (the embedded
//!    default behaves as the file `configs/default.toml` under the working directory); a
//!    relative value that came from an environment variable, against the working directory.
//! 4. *checked* (optional, [`Config::check_files`]): every file and directory the config
//!    names exists and is readable (`lookout check-config` and `lookout run` do this).
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
//! [`server::ServerConfig`] `[server]`, [`cluster::ClusterConfig`] `[cluster]`.

pub mod alerts;
pub mod camera_overlay;
pub mod cameras;
pub mod cluster;
pub mod engine;
pub mod env;
pub mod error;
pub mod fusion;
pub mod inference;
mod locate;
pub mod overlay;
pub mod retention;
pub mod roles;
pub mod rules;
pub mod schedule;
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
    /// `[cluster]`.
    pub cluster: cluster::ClusterConfig,
    /// Directory that relative paths are resolved against.
    #[serde(skip)]
    pub base_dir: PathBuf,
    /// Where the config came from (a path, or the embedded default's name).
    #[serde(skip)]
    pub origin: String,
    /// The TOML text it was read from, to locate later problems (missing files) by
    /// line and column. Never shown: it may hold literal secrets.
    #[serde(skip)]
    pub source: SourceText,
}

/// A config's TOML text, kept to locate problems found after loading; its `Debug` shows
/// only its length (the text may hold literal passwords).
#[derive(Clone, Default)]
pub struct SourceText(pub std::sync::Arc<str>);

impl std::fmt::Debug for SourceText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<{} bytes of TOML>", self.0.len())
    }
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
    "cluster",
];

/// The one rule for relative paths in a config, used for every path key of every command:
///
/// * a value written in the file resolves against `base_dir`, the config file's directory
///   (the embedded default's is `configs/` under the working directory, so it behaves as the
///   file `configs/default.toml` of a checkout you run from);
/// * a value that starts with an environment variable (`${LOOKOUT_SHARED:-../../shared}/x`)
///   whose value is set and relative resolves against the working directory, where that
///   value was written (`LOOKOUT_SHARED=../shared lookout run`); a `:-default` used because
///   the variable is unset is part of the file and resolves against `base_dir`;
/// * absolute paths are kept; `.` and `..` are removed lexically.
pub fn resolve_config_path(base_dir: &Path, value: &env::EnvString) -> PathBuf {
    let p = Path::new(value.value());
    if p.is_absolute() {
        return normalize(p);
    }
    let base = match value.leading_env_value() {
        Some(v) if Path::new(&v).is_relative() => current_dir(),
        _ => base_dir.to_path_buf(),
    };
    normalize(&base.join(p))
}

/// The working directory (`.` if it cannot be read).
fn current_dir() -> PathBuf {
    std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."))
}

/// Makes `p` absolute against the working directory and removes `.` and `..` lexically.
pub fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        normalize(p)
    } else {
        normalize(&current_dir().join(p))
    }
}

/// Removes `.` and `..` components without touching the file system.
fn normalize(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

impl Config {
    /// Resolves a path against the config's directory (absolute paths unchanged). Path keys
    /// are already resolved when the config is loaded ([`resolve_config_path`]); this is
    /// for paths given later, relative to the config.
    pub fn resolve_path(&self, p: impl AsRef<Path>) -> PathBuf {
        let p = p.as_ref();
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            normalize(&self.base_dir.join(p))
        }
    }

    /// Overrides `engine.data_dir` with a directory given on the command line (relative to
    /// the working directory, like every command-line path).
    pub fn set_data_dir(&mut self, dir: &Path) {
        self.engine.data_dir = env::EnvString::literal(absolute(dir).display().to_string());
    }

    /// Every file and directory this config names, with the key that names it; disabled
    /// cameras are left out (they are not opened).
    pub fn referenced_files(&self) -> Vec<FileRef> {
        let mut out = Vec::new();
        for (name, m) in &self.models {
            out.push(FileRef {
                key: format!("models.{}.manifest", quote_key(name)),
                path: self.resolve_path(m.manifest.value()),
                kind: FileKind::ModelManifest,
            });
            if let Some(sh) = &m.shadow {
                out.push(FileRef {
                    key: format!("models.{}.shadow", quote_key(name)),
                    path: self.resolve_path(sh.value()),
                    kind: FileKind::ModelManifest,
                });
            }
        }
        for (i, c) in self.cameras.iter().enumerate() {
            if let (true, cameras::SourceConfig::File { path, .. }) = (c.enabled, &c.source) {
                out.push(FileRef {
                    key: format!("cameras[{i}].source.path"),
                    path: self.resolve_path(path.value()),
                    kind: FileKind::File,
                });
            }
        }
        for (i, h) in self.fusion.hotspots.iter().enumerate() {
            let (path, kind) = match h {
                fusion::HotspotSourceConfig::File { path } => (path, FileKind::File),
                fusion::HotspotSourceConfig::Dir { path, .. } => (path, FileKind::Dir),
                _ => continue,
            };
            out.push(FileRef {
                key: format!("fusion.hotspots[{i}].path"),
                path: self.resolve_path(path.value()),
                kind,
            });
        }
        for (i, s) in self.alerts.sinks.iter().enumerate() {
            if let alerts::SinkConfig::Webhook {
                url,
                ca_file: Some(f),
                ..
            } = s
            {
                if !f.trim().is_empty() && url.value().starts_with("https://") {
                    out.push(FileRef {
                        key: format!("alerts.sinks[{i}].ca_file"),
                        path: self.resolve_path(f.as_str()),
                        kind: FileKind::File,
                    });
                }
            }
        }
        out
    }

    /// Checks that the referenced files ([`Config::referenced_files`]) that `select` picks
    /// exist and can be read (a directory: listed). `deep` checks more of a file (a model
    /// manifest: the files it names and their sha256) and returns what is wrong with it.
    /// Every problem is a located error naming the key and the resolved path.
    pub fn check_files(
        &self,
        select: impl Fn(&FileRef) -> bool,
        deep: impl Fn(&FileRef) -> Result<(), String>,
    ) -> Result<(), ConfigErrors> {
        let mut problems = Vec::new();
        for f in self.referenced_files().into_iter().filter(|f| select(f)) {
            if let Err(m) = f.check().and_then(|()| deep(&f)) {
                problems.push((f.key.clone(), m, None));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(self.locate(problems))
        }
    }

    /// Locates `(key, message)` problems found after loading in this config's text.
    pub fn locate(&self, problems: Vec<(String, String, Option<usize>)>) -> ConfigErrors {
        finish(&self.source.0, &self.origin, problems)
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

/// What a referenced path must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A readable file.
    File,
    /// A readable directory.
    Dir,
    /// A model manifest (a file; the caller checks the files it names).
    ModelManifest,
}

/// A file or directory a config names: the key that names it and its resolved path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRef {
    /// The key path, e.g. `cameras[2].source.path`.
    pub key: String,
    /// The resolved, absolute path.
    pub path: PathBuf,
    /// What it must be.
    pub kind: FileKind,
}

impl FileRef {
    /// Exists, is of the right kind and can be opened; the error names the path.
    pub fn check(&self) -> Result<(), String> {
        let shown = self.path.display();
        let meta = std::fs::metadata(&self.path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                format!("{shown}: no such file or directory")
            } else {
                format!("{shown}: {e}")
            }
        })?;
        match self.kind {
            FileKind::Dir => {
                if !meta.is_dir() {
                    return Err(format!("{shown}: not a directory"));
                }
                std::fs::read_dir(&self.path).map_err(|e| format!("{shown}: cannot list: {e}"))?;
            }
            FileKind::File | FileKind::ModelManifest => {
                if !meta.is_file() {
                    return Err(format!("{shown}: not a file"));
                }
                std::fs::File::open(&self.path)
                    .map_err(|e| format!("{shown}: cannot read: {e}"))?;
            }
        }
        Ok(())
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
    let base = absolute(path)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(current_dir);
    parse(&src, &origin, &base)
}

/// Loads the embedded default. It behaves as the file `configs/default.toml` under the
/// working directory: its relative paths resolve against `<working dir>/configs`.
pub fn load_default() -> Result<Config, ConfigErrors> {
    parse(
        DEFAULT_CONFIG,
        DEFAULT_CONFIG_NAME,
        &current_dir().join("configs"),
    )
}

/// Parses and validates config text. `origin` names the file in errors; relative paths
/// resolve against `base_dir` (made absolute against the working directory).
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
        base_dir: absolute(base_dir),
        origin: origin.to_string(),
        source: SourceText(src.into()),
        ..Config::default()
    };
    // Cameras whose table does not deserialize still count as configured (by their raw id
    // and preset names), so rules naming them report no second, false error.
    let mut unread_cameras: Vec<validate::CameraNames> = Vec::new();
    for (key, value) in table {
        match key.as_str() {
            "engine" => section(&key, value, &mut problems, &mut cfg.engine),
            "ingest" => section(&key, value, &mut problems, &mut cfg.ingest),
            "inference" => section(&key, value, &mut problems, &mut cfg.inference),
            "rules" => section(&key, value, &mut problems, &mut cfg.rules),
            "fusion" => section(&key, value, &mut problems, &mut cfg.fusion),
            "alerts" => section(&key, value, &mut problems, &mut cfg.alerts),
            "server" => section(&key, value, &mut problems, &mut cfg.server),
            "cluster" => section(&key, value, &mut problems, &mut cfg.cluster),
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
                        let raw = raw_camera_names(&v);
                        match de_value(&format!("cameras[{i}]"), v, &mut problems) {
                            Some(c) => cfg.cameras.push(c),
                            None => unread_cameras.extend(raw),
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
    validate_sections(&cfg, unread_cameras, &mut v);
    cfg.alerts.validate_files(&cfg.base_dir, &mut v);
    cfg.server.validate(&mut v, &ValidationContext::default());
    cfg.server.validate_files(&cfg.base_dir, &mut v);
    problems.extend(v.problems.into_iter().map(|(p, m)| (p, m, None)));

    if problems.is_empty() {
        resolve_paths(&mut cfg);
        cfg.server.seal();
        Ok(cfg)
    } else {
        Err(finish(src, origin, problems))
    }
}

/// The loader's checks of a whole configuration: ranges, camera ids (unique), camera and
/// model references of every section. `unread_cameras` are cameras whose table did not
/// deserialize (they still count as configured). The server's users and TLS and the files
/// the config names are checked by the loader only (a loaded config has sealed its tokens).
fn validate_sections(cfg: &Config, unread_cameras: Vec<validate::CameraNames>, v: &mut Validator) {
    cfg.engine.validate(v);
    cfg.ingest.validate(v);
    let model_names: Vec<&str> = cfg.models.keys().map(String::as_str).collect();
    let mut ids = BTreeMap::new();
    for (i, c) in cfg.cameras.iter().enumerate() {
        c.validate(&format!("cameras[{i}]"), v, &model_names);
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
    cfg.engine.retention.validate(v, max_side);
    for (name, m) in &cfg.models {
        if let Some(t) = &m.tile {
            t.validate(&format!("models.{}.tile", quote_key(name)), v);
        }
    }
    let ctx = ValidationContext {
        cameras: cfg
            .cameras
            .iter()
            .map(cameras::CameraConfig::names)
            .chain(unread_cameras)
            .collect(),
        models: model_names.clone(),
    };
    cfg.inference.validate(v, &ctx);
    cfg.rules.validate(v, &ctx);
    for (cam, z) in &cfg.inference.camera_zones {
        z.validate_zones(cam, &cfg.rules, v);
    }
    cfg.fusion.validate(v, &ctx);
    cfg.alerts.validate(v, &ctx);
    cfg.cluster.validate(v);
}

/// Validates a loaded configuration whose sections were changed in memory (cameras
/// changed through the API): the same checks [`parse`] runs on a file, with the same key
/// paths (`cameras[3].source.url`), except the server's users and TLS and the files it
/// names, which no such change touches. Returns `(key path, message)` problems.
pub fn validate_loaded(cfg: &Config) -> Vec<(String, String)> {
    let mut v = Validator::new();
    validate_sections(cfg, Vec::new(), &mut v);
    v.problems
}

/// Rewrites every path key to its resolved, absolute form ([`resolve_config_path`]), so
/// every stage and `check-config --dump` see the same files.
fn resolve_paths(cfg: &mut Config) {
    let base = cfg.base_dir.clone();
    let fix = |s: &mut env::EnvString| {
        *s = env::EnvString::literal(resolve_config_path(&base, s).display().to_string());
    };
    fix(&mut cfg.engine.data_dir);
    for m in cfg.models.values_mut() {
        fix(&mut m.manifest);
        if let Some(sh) = &mut m.shadow {
            fix(sh);
        }
        if let Some(p) = m.pr_plot.as_mut() {
            fix(p);
        }
    }
    for c in &mut cfg.cameras {
        resolve_camera_paths(&base, c);
    }
    for h in &mut cfg.fusion.hotspots {
        match h {
            fusion::HotspotSourceConfig::File { path }
            | fusion::HotspotSourceConfig::Dir { path, .. } => fix(path),
            _ => {}
        }
    }
    for s in &mut cfg.alerts.sinks {
        if let alerts::SinkConfig::Webhook {
            ca_file: Some(f), ..
        } = s
        {
            if !f.trim().is_empty() {
                *f = normalize(&base.join(f.as_str())).display().to_string();
            }
        }
    }
}

/// Makes a camera's path keys (a file source's `path`) absolute, as the loader does for the
/// file's cameras ([`resolve_config_path`] against `base_dir`).
pub fn resolve_camera_paths(base_dir: &Path, c: &mut cameras::CameraConfig) {
    if let cameras::SourceConfig::File { path, .. } = &mut c.source {
        *path = env::EnvString::literal(resolve_config_path(base_dir, path).display().to_string());
    }
}

/// The id and preset names of a raw `[[cameras]]` table, as far as they are strings.
fn raw_camera_names(v: &toml::Value) -> Option<validate::CameraNames> {
    let id = v.get("id")?.as_str()?.to_string();
    let presets = v
        .get("ptz")
        .and_then(|p| p.get("presets"))
        .and_then(toml::Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|p| p.get("name")?.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    Some(validate::CameraNames { id, presets })
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

/// Locates `(key path, message)` problems found in any TOML text (a data manifest, say) by
/// line and column, as config errors are: `file:line:column: key: message`.
pub fn located(src: &str, origin: &str, problems: Vec<(String, String)>) -> ConfigErrors {
    finish(
        src,
        origin,
        problems.into_iter().map(|(k, m)| (k, m, None)).collect(),
    )
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
