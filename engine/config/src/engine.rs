//! `[engine]`: process-wide settings.

use serde::{Deserialize, Serialize};

use crate::env::EnvString;
use crate::retention::RetentionConfig;
use crate::validate::Validator;

/// `[engine]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Directory for the SQLite database, snapshots, recordings and logs (relative to the
    /// config file's directory). Default `data`.
    pub data_dir: EnvString,
    /// Seconds allowed for a clean shutdown after Ctrl-C/SIGTERM before the process exits
    /// anyway. Default 10.
    pub shutdown_deadline_s: f64,
    /// Also write every frame result (the detections the rules can use, see
    /// `[rules.record]`) to `<data_dir>/detections.jsonl`. The database keeps them anyway
    /// (the tuning view and `lookout replay DATA_DIR` read them there). Default false.
    pub detections_log: bool,
    /// Stop by itself after this many seconds (demos, tests, benchmarks). Default: run
    /// until signalled.
    pub run_for_s: Option<f64>,
    /// `[engine.retention]`: JSONL rotation, days to keep, the data directory's quota.
    pub retention: RetentionConfig,
    /// What a missing file the config names does at start (and in `check-config`):
    /// `error` (default) stops with a located error; `skip` turns off what needs it (a file
    /// camera whose video is missing, a model whose manifest or ONNX file is missing and
    /// the cameras left without a model, a hotspot source whose file is missing) with a
    /// warning naming it, and runs the rest. The embedded demo uses `skip`.
    pub missing_files: MissingFiles,
}

/// `engine.missing_files`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingFiles {
    /// A missing file is an error.
    #[default]
    Error,
    /// What needs a missing file is turned off, with a warning.
    Skip,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            data_dir: EnvString::literal("data"),
            shutdown_deadline_s: 10.0,
            detections_log: false,
            run_for_s: None,
            retention: RetentionConfig::default(),
            missing_files: MissingFiles::Error,
        }
    }
}

impl EngineConfig {
    /// Checks value ranges (`[engine.retention]` is checked with the cameras, see
    /// [`RetentionConfig::validate`]).
    pub fn validate(&self, v: &mut Validator) {
        v.range(
            "engine.shutdown_deadline_s",
            self.shutdown_deadline_s,
            0.1,
            600.0,
        );
        if let Some(r) = self.run_for_s {
            let ok = crate::validate::RUN_FOR_S;
            v.range("engine.run_for_s", r, ok.lo, ok.hi);
        }
    }
}
