//! Helpers shared by the binary's integration tests (each test binary uses a subset).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

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

/// The demo's plant-gate clip (`scripts/make-samples.sh`): a continuous two-minute view of
/// a building entrance where real pedestrians (Penn-Fudan) come and go.
pub fn person_clip(dir: &Path) -> PathBuf {
    let out = dir.join("plant-gate.mkv");
    let status = Command::new("bash")
        .arg(repo().join("scripts/make-samples.sh"))
        .arg(&out)
        .env("LOOKOUT_SHARED", shared())
        .status()
        .expect("bash runs");
    assert!(
        status.success() && out.exists(),
        "scripts/make-samples.sh could not build the plant-gate clip"
    );
    out
}
