//! Stream health as data (after gst-plugins-rs `fallbacksrc`).

use serde::{Deserialize, Serialize};

use crate::{CameraId, UtcTime};

/// Why a stream is being retried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum RetryReason {
    /// The pipeline posted an error (message included).
    Error(String),
    /// The stream ended (a live source should not).
    Eos,
    /// No frame for longer than the stall timeout.
    Timeout,
    /// The decoder rejected the stream.
    Decoder(String),
    /// The source could not be reached or refused the connection.
    Unreachable(String),
}

impl std::fmt::Display for RetryReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RetryReason::Error(m) => write!(f, "error: {m}"),
            RetryReason::Eos => write!(f, "end of stream"),
            RetryReason::Timeout => write!(f, "no frame within the stall timeout"),
            RetryReason::Decoder(m) => write!(f, "decoder: {m}"),
            RetryReason::Unreachable(m) => write!(f, "unreachable: {m}"),
        }
    }
}

/// Why a stream stopped for good.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum StopReason {
    /// The engine is shutting down.
    Shutdown,
    /// A finite file source reached its end and does not loop.
    Finished,
    /// The camera is misconfigured or its input can never work (message included).
    Fatal(String),
}

/// A camera's stream status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum CameraStatus {
    /// The pipeline is being built or is prerolling.
    Starting,
    /// Frames are flowing.
    Running,
    /// The stream failed and will be retried after a backoff.
    Retrying {
        /// 1 for the first retry after a failure.
        attempt: u32,
        /// What failed.
        reason: RetryReason,
    },
    /// The stream will not be retried.
    Stopped {
        /// Why.
        reason: StopReason,
    },
}

impl CameraStatus {
    /// True when frames are flowing.
    pub fn is_running(&self) -> bool {
        matches!(self, CameraStatus::Running)
    }

    /// Short lowercase name (`starting`, `running`, `retrying`, `stopped`).
    pub fn name(&self) -> &'static str {
        match self {
            CameraStatus::Starting => "starting",
            CameraStatus::Running => "running",
            CameraStatus::Retrying { .. } => "retrying",
            CameraStatus::Stopped { .. } => "stopped",
        }
    }
}

/// A change of a camera's status, sent in-band with frame results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CameraHealth {
    /// The camera.
    pub camera: CameraId,
    /// When the change was observed (engine wall clock, UTC).
    pub at: UtcTime,
    /// The new status.
    pub status: CameraStatus,
}
