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

/// Builds a short H.264 clip of real pedestrians from the Penn-Fudan stills (2 images/s).
pub fn person_clip(dir: &Path) -> PathBuf {
    let out = dir.join("people.mkv");
    let images = shared().join("datasets/pennfudan-person/images");
    let status = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-framerate", "2", "-pattern_type", "glob", "-i"])
        .arg(images.join("FudanPed000*.jpg"))
        .args([
            "-vf",
            "scale=640:480:force_original_aspect_ratio=decrease,pad=640:480:(ow-iw)/2:(oh-ih)/2,setsar=1,format=yuv420p",
            "-c:v",
            "libx264",
            "-g",
            "10",
        ])
        .arg(&out)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success(), "ffmpeg could not build the person clip");
    out
}
