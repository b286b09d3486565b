//! # lookout-rules
//!
//! The rules stage: raw detections in, events an operator trusts out.
//!
//! ```text
//! StageMsg ──▶ RulesEngine::handle ──▶ Event (start / update / end)
//!   Frame(FrameResult)   filters + masks ─▶ Tracker ─▶ thresholds (median, hysteresis,
//!                        persistence) ─▶ zones (inertia) ─▶ object events, head counts
//!                        ─▶ duty posts, occupancy, restricted areas, patrols
//!   Health               camera_offline (and personnel rules pause)
//!   ImageStats           view_blocked / view_defocused / view_moved vs. a running baseline
//!   Watermark            event time advances: quiet times end events
//! ```
//!
//! * [`RulesEngine`]: the deterministic state machine. No wall clock: time is the capture
//!   time of analysed frames (and `at` of health messages and watermarks), event ids are
//!   derived from camera, kind, track or zone and first-seen time.
//!   [`RulesEngine::apply_config`] swaps the configuration at run time.
//! * [`tracker`]: [`Tracker`] and [`Track`], IoU / ByteTrack-style association with stable
//!   ids per camera through short occlusions.
//! * [`geom`]: relative polygons and the anchor point of a box.
//! * [`record`]: [`Recorder`] (JSONL of every message), [`read_recording`] and the pure
//!   [`replay`], which reproduces the live events.
//! * [`watch`]: [`watch_config_file`], hot reload of the `[rules]` section.
//! * [`eval`]: event-level evaluation against labelled sequences ([`eval::evaluate`]).
//! * [`seq`]: the sequence-directory format ([`seq::SeqDir`]) and converters that build one
//!   from a folder of stills or from FURG OpenCV XML boxes.
//!
//! The configuration is `lookout_config::rules::RulesConfig` (`[rules]`); its module docs
//! describe how thresholds are layered.

mod compiled;
mod engine;
pub mod eval;
pub mod geom;
pub mod record;
pub mod seq;
pub mod stage;
pub mod tracker;
pub mod verify;
pub mod watch;

use std::path::PathBuf;

pub use engine::{RulesEngine, TubeInfo};
pub use lookout_config::rules::RulesConfig;
pub use record::{read_recording, replay, replay_explained, Recorder, TubeSummary};
pub use tracker::{Track, Tracker};
pub use watch::{watch_config_file, ConfigWatcher};

/// What can go wrong in the rules crate.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// The configuration failed validation: (key path, message) pairs.
    #[error("invalid rules configuration: {}", join(.0))]
    Invalid(Vec<(String, String)>),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file's content is malformed.
    #[error("{}:{line}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line (0 when unknown).
        line: usize,
        /// What is wrong.
        message: String,
    },
}

fn join(problems: &[(String, String)]) -> String {
    problems
        .iter()
        .map(|(k, m)| format!("`{k}`: {m}"))
        .collect::<Vec<_>>()
        .join("; ")
}
