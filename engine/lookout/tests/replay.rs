//! Real video through the live engine with recording on, then `lookout replay` of the
//! recording with the same config: the events must be identical. Uses the half of the FURG
//! house-6 video that no model trains on (frames 450–898) and Lookout's smoke/fire model.

mod common;
use common::repo;
use common::shared;

use std::path::Path;
use std::process::Command;

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[test]
fn held_out_fire_video_raises_a_fire_event_and_replay_equals_live() {
    let tmp = tempfile::tempdir().expect("temp dir");
    // Frames 450..=898 only, re-encoded once.
    let clip = tmp.path().join("house6-heldout.mkv");
    let status = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-i"])
        .arg(shared().join("datasets/furg-house6/furg_house6.mp4"))
        .args([
            "-vf",
            "select=gte(n\\,450),setpts=PTS-STARTPTS",
            "-an",
            "-c:v",
            "libx264",
            "-g",
            "15",
        ])
        .arg(&clip)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success());

    let config = tmp.path().join("replay.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[engine]
detections_log = true
run_for_s = 20

[models.smoke-fire]
manifest = "{manifest}"

[[cameras]]
id = "house6"
source = {{ kind = "file", path = "{clip}" }}
fps = 5
models = ["smoke-fire"]

[rules]
quiet_s = 5

[server]
enabled = false
"#,
            manifest = repo().join("models/smoke-fire.toml").display(),
            clip = clip.display(),
        ),
    )
    .expect("config");
    let data = tmp.path().join("data");
    let out = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(["run", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(&data)
        .env("LOOKOUT_SHARED", shared())
        .output()
        .expect("lookout runs");
    assert!(
        out.status.success(),
        "lookout run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let live = lines(&data.join("events.jsonl"));
    let frames = lines(&data.join("detections.jsonl"))
        .iter()
        .filter(|m| m["type"] == "frame")
        .count();
    assert!(
        frames >= 20,
        "expected the held-out clip to be analysed, got {frames} frames"
    );
    assert!(
        live.iter()
            .any(|e| e["kind"] == "fire" && e["phase"] == "start"),
        "a fire event is expected on the held-out FURG frames; live events: {live:?}"
    );

    let replayed = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(["replay", "--json", "--config"])
        .arg(&config)
        .arg(data.join("detections.jsonl"))
        .env("LOOKOUT_SHARED", shared())
        .output()
        .expect("lookout replay runs");
    assert!(
        replayed.status.success(),
        "{}",
        String::from_utf8_lossy(&replayed.stderr)
    );
    // Progress with rate and ETA on stderr; stdout holds only the events.
    let progress = String::from_utf8_lossy(&replayed.stderr);
    assert!(
        progress.contains(" messages/s, ETA "),
        "no rate and ETA: {progress}"
    );
    let replayed: Vec<serde_json::Value> = String::from_utf8_lossy(&replayed.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_eq!(
        replayed, live,
        "replay must reproduce the live events exactly"
    );

    // The data directory's database holds the same frame results (what the tuning view
    // replays): replaying it gives the same object events (camera-health changes are not
    // frame results, so health events are left out of the comparison).
    let from_db = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(["replay", "--json", "--config"])
        .arg(&config)
        .arg(&data)
        .env("LOOKOUT_SHARED", shared())
        .output()
        .expect("lookout replay runs");
    assert!(
        from_db.status.success(),
        "{}",
        String::from_utf8_lossy(&from_db.stderr)
    );
    let objects = |v: &[serde_json::Value]| -> Vec<serde_json::Value> {
        v.iter()
            .filter(|e| e["kind"] == "fire" || e["kind"] == "smoke")
            .cloned()
            .collect()
    };
    let from_db: Vec<serde_json::Value> = String::from_utf8_lossy(&from_db.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(!objects(&live).is_empty());
    assert_eq!(
        objects(&from_db),
        objects(&live),
        "replaying the data directory must reproduce the live fire/smoke events"
    );
}
