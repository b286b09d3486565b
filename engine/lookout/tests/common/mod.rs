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

/// Penn-Fudan pedestrian stills as a 2 fps H.264 clip (one still a frame, 640×480): many
/// clearly visible people at once, for tests that need the person model to find people in
/// the first seconds (the plant-gate clip shows one person at first).
pub fn pedestrian_slideshow(dir: &Path) -> PathBuf {
    let out = dir.join("pedestrians.mkv");
    let pattern = shared().join("datasets/pennfudan-person/images/FudanPed000*.jpg");
    let status = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-framerate", "2", "-pattern_type", "glob", "-i"])
        .arg(&pattern)
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
    assert!(
        status.success() && out.exists(),
        "ffmpeg could not build the pedestrian slideshow from {}",
        pattern.display()
    );
    out
}
