//! [`InferError`]: everything that can go wrong in this crate, each variant naming the file,
//! model or input it concerns.

use std::path::PathBuf;

/// Errors of model loading, inference, detection and evaluation.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    /// A manifest could not be read.
    #[error("cannot read model manifest {path}: {message}")]
    ManifestRead {
        /// The manifest file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A manifest is not valid TOML of the manifest format, or its values are inconsistent.
    #[error("invalid model manifest {path}: {message}")]
    ManifestInvalid {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong, with the key.
        message: String,
    },
    /// The ONNX file named by a manifest was found nowhere.
    #[error("model file {file:?} (manifest {manifest}) not found; looked in: {}", looked.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    ModelMissing {
        /// The `file` of the manifest.
        file: String,
        /// The manifest.
        manifest: PathBuf,
        /// Every path that was tried, in order.
        looked: Vec<PathBuf>,
    },
    /// The ONNX file's sha256 differs from the manifest's.
    #[error("model file {path} has sha256 {actual}, but manifest {manifest} says {expected}: wrong or corrupted file")]
    Checksum {
        /// The ONNX file.
        path: PathBuf,
        /// The manifest.
        manifest: PathBuf,
        /// From the manifest.
        expected: String,
        /// Of the file.
        actual: String,
    },
    /// The model's inputs or outputs do not match what the manifest declares.
    #[error("model {model}: {message}")]
    Shape {
        /// The model (manifest name).
        model: String,
        /// What does not match.
        message: String,
    },
    /// ONNX Runtime failed (loading the library, building a session, running).
    #[error("ONNX Runtime, model {model}: {message}")]
    Runtime {
        /// The model (manifest name), or `-` for environment set-up.
        model: String,
        /// The runtime's message.
        message: String,
    },
    /// An input image or frame is unusable (wrong buffer size, zero size).
    #[error("bad input: {0}")]
    Input(String),
    /// Image loading, resizing or writing failed.
    #[error(transparent)]
    Image(#[from] lookout_imageops::ImageOpsError),
    /// The engine configuration cannot be used (unknown model, unreadable manifest path).
    #[error("configuration: {0}")]
    Config(String),
    /// A command-line argument is invalid.
    #[error("invalid argument {arg}: {message}")]
    Arg {
        /// The argument (`--tile`).
        arg: String,
        /// What is allowed.
        message: String,
    },
    /// Files of an evaluation data set or output directory could not be read or written.
    #[error("{path}: {message}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A worker thread could not be started.
    #[error("cannot start inference worker: {0}")]
    Spawn(String),
}

impl InferError {
    pub(crate) fn io(path: impl Into<PathBuf>, e: impl std::fmt::Display) -> Self {
        InferError::Io {
            path: path.into(),
            message: e.to_string(),
        }
    }
}
