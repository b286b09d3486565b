//! # lookout-infer
//!
//! Inference: the only crate that knows ONNX Runtime.
//!
//! ```text
//! FrameHub ──take (round-robin, freshest frame per camera)──▶ InferenceService worker
//!    worker: frames → jobs (frame × model × tile) → Preprocessor (reused NCHW buffer)
//!            → Detector (one ORT session per model per worker) → decoder → NMS
//!            ──StageMsg::ImageStats + StageMsg::Frame(FrameResult)──▶ rules (blocking send)
//! ```
//!
//! Principal types:
//! * [`Model`] / [`manifest::Manifest`]: a model manifest (`models/NAME.toml`), its ONNX file
//!   located and sha256-verified. The output layout family ([`manifest::Layout`]) is data.
//! * [`Detector`]: one model's session with pre- and post-processing, owned by one thread;
//!   `detect(&[ImageView])` works alone (CLI, tests) as well as inside the service.
//! * [`preprocess::Transform`]: how each frame or tile was placed into the input, so boxes
//!   map back to frame pixels exactly.
//! * [`decode`]: YOLO (v8 / v5 as data) and NanoDet GFL decoders, class-wise NMS.
//! * [`tiling`]: grid + overlap (+ full frame) regions.
//! * [`InferenceService`]: worker threads between `lookout_core::FrameHub` and the rules
//!   channel, with [`InferStats`].
//! * [`eval`] ([`EvalArgs`], [`run_eval`]) and [`cli`] ([`DetectArgs`], [`run_detect`]): the
//!   `lookout eval` and `lookout detect` commands.

pub mod cli;
pub mod decode;
pub mod detector;
mod error;
pub mod eval;
pub mod font;
pub mod manifest;
pub mod preprocess;
pub mod roles;
pub mod service;
pub mod tiling;

pub use cli::{run_detect, DetectArgs, DetectReport};
pub use eval::{run_eval, EvalArgs, EvalReport};
pub use service::{InferStats, InferenceService};

pub use detector::{Detector, RuntimeOptions};
pub use error::InferError;

pub use manifest::Model;
pub use preprocess::ImageView;
