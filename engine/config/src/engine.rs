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
    /// Write every frame result (detections before thresholds) to
    /// `<data_dir>/detections.jsonl`. Default true.
    pub detections_log: bool,
    /// Stop by itself after this many seconds (demos, tests, benchmarks). Default: run
    /// until signalled.
    pub run_for_s: Option<f64>,
    /// `[engine.retention]`: JSONL rotation, days to keep, the data directory's quota.
    pub retention: RetentionConfig,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            data_dir: EnvString::literal("data"),
            shutdown_deadline_s: 10.0,
            detections_log: true,
            run_for_s: None,
            retention: RetentionConfig::default(),
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
            v.range("engine.run_for_s", r, 0.1, 1e9);
        }
    }
}
