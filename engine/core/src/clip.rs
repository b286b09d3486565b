//! Incident clips: what the incidents stage asks of ingest when an incident opens.
//!
//! Ingest keeps a ring of each camera's **encoded** packets; when an incident opens, the
//! incidents stage hands a [`ClipRequest`] to a [`ClipSink`] (ingest's clip writer, wired by
//! the binary), which writes the packets around `at` to `path` on its own thread.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{CameraId, UtcTime};

/// A clip to write: the camera's video from `at - pre` to `at + post` (capture time).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClipRequest {
    /// The incident the clip belongs to.
    pub incident: String,
    /// Whose video.
    pub camera: CameraId,
    /// The trigger: capture time the clip is centred on (the incident's first sighting).
    pub at: UtcTime,
    /// Where the MP4 goes (a `.json` description is written beside it).
    pub path: PathBuf,
}

/// Takes clip requests without ever blocking the caller (a full queue drops and counts).
pub trait ClipSink: Send + Sync {
    /// Queues a request; false when it was dropped (queue full, writer stopped, camera
    /// without a packet ring).
    fn request(&self, req: ClipRequest) -> bool;
}

/// What is written beside a clip (`<clip>.json`): how its time maps to capture time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClipInfo {
    /// The incident.
    pub incident: String,
    /// The camera.
    pub camera: String,
    /// The trigger time the clip was asked around.
    pub at: UtcTime,
    /// Capture time of the clip's time 0: capture time = `start` + media time.
    pub start: UtcTime,
    /// Length in seconds (last packet's end minus time 0).
    pub duration_s: f64,
    /// The stream's codec as GStreamer names it (`video/x-h264`, ...).
    pub codec: String,
    /// True when the packets were muxed as they came (no re-encode); false when the
    /// codec cannot go into MP4 and the clip was re-encoded to H.264.
    pub remuxed: bool,
    /// Encoded packets in the clip.
    pub packets: u64,
    /// Bytes of encoded video in the clip.
    pub bytes: u64,
}
