//! Helpers shared by the binary's integration tests (each test binary uses a subset).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The shared third-party data directory (`$LOOKOUT_SHARED`, default `../shared`).
pub fn shared() -> PathBuf {
    std::env::var("LOOKOUT_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
}

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}
