//! Errors of the fusion crate.

use std::path::PathBuf;

/// What can go wrong in fusion: reading hotspot files, talking to FIRMS, camera geometry.
#[derive(Debug, thiserror::Error)]
pub enum FusionError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The text is not a FIRMS CSV (no header, or required columns missing).
    #[error("{origin}: not a FIRMS CSV: {message}")]
    Header {
        /// File name or URL (redacted) the text came from.
        origin: String,
        /// What is wrong with the header.
        message: String,
    },
    /// An HTTP request to a hotspot API failed.
    #[error("{url}: {message}")]
    Http {
        /// The URL with the MAP_KEY redacted.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// A camera's geometry in config is unusable.
    #[error("camera {camera:?}: {message}")]
    Camera {
        /// Camera id.
        camera: String,
        /// What is wrong.
        message: String,
    },
}
