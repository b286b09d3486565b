//! The demo's plant camera through the real pipeline: the plant-gate clip
//! (`scripts/make-samples.sh`) decoded by GStreamer, NanoDet in ONNX Runtime, the rules of
//! `configs/default.toml`. The guard leaves his post at ~20–30 s and the post is vacant
//! for longer than its 20 s; two visitors join him in the yard at ~72–100 s, three people
//! where two are allowed. Both personnel events must come, at those times and not before.

mod common;
use common::{person_clip, repo, shared};

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::Value;

fn read_json_lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn time(v: &Value, key: &str) -> DateTime<Utc> {
    v[key]
        .as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("{key} in {v}"))
}

#[test]
fn the_plant_gate_clip_raises_post_vacant_then_over_occupancy() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let clip = person_clip(tmp.path());
    let data = tmp.path().join("data");
    let config = tmp.path().join("plant.toml");
    // The default config's plant camera and its rules; the clip read once, as fast as
    // the model goes (every frame analysed: `realtime = false` waits for inference).
    let default = std::fs::read_to_string(repo().join("configs/default.toml")).expect("default");
    let rules = &default
        [default.find("[rules]").expect("[rules]")..default.find("[fusion]").expect("[fusion]")];
    std::fs::write(
        &config,
        format!(
            r#"
[engine]
detections_log = true
shutdown_deadline_s = 10

[server]
enabled = false

[ingest]
fps = 2

[models.person]
manifest = "{manifest}"

[[cameras]]
id = "plant-gate"
source = {{ kind = "file", path = "{clip}", loop = false, realtime = false }}
models = ["person"]

{rules}
"#,
            manifest = repo().join("models/person-nanodet.toml").display(),
            clip = clip.display(),
        ),
    )
    .expect("write config");

    let mut child = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .arg("run")
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(&data)
        .env("LOOKOUT_SHARED", shared())
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(tmp.path().join("lookout.log")).expect("log file"),
        ))
        .spawn()
        .expect("lookout starts");

    // 120 s of clip at 2 fps: 240 frames. Wait until the last one is analysed (bounded).
    let frames = data.join("detections.jsonl");
    let deadline = Instant::now() + Duration::from_secs(240);
    let (mut last, mut moved) = (0, Instant::now());
    loop {
        std::thread::sleep(Duration::from_secs(2));
        let n = read_json_lines(&frames)
            .iter()
            .filter(|v| v["type"] == "frame")
            .count();
        if n != last {
            (last, moved) = (n, Instant::now());
        }
        // All of it, or the clip ended a few frames short (no new frame for 20 s).
        if n >= 236 || (n > 200 && moved.elapsed() > Duration::from_secs(20)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {n} frames analysed in 240 s; see {}",
            tmp.path().join("lookout.log").display()
        );
        assert!(
            child.try_wait().expect("wait").is_none(),
            "the engine exited early; see {}",
            tmp.path().join("lookout.log").display()
        );
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let t0 = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if t0.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("no clean stop within 20 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(200));
    }

    let frames = read_json_lines(&frames);
    let first = frames
        .iter()
        .filter(|v| v["type"] == "frame")
        .map(|v| time(v, "captured_at"))
        .min()
        .expect("frames were analysed");
    let at = |v: &Value| (time(v, "first_seen") - first).num_milliseconds() as f64 / 1000.0;
    let events = read_json_lines(&data.join("events.jsonl"));
    let starts = |kind: &str| -> Vec<&Value> {
        events
            .iter()
            .filter(|e| e["kind"] == kind && e["phase"] == "start")
            .collect()
    };
    let vacant = starts("post_vacant");
    let crowd = starts("over_occupancy");
    let summary: Vec<String> = events
        .iter()
        .map(|e| format!("{} {} first_seen +{:.1}s", e["kind"], e["phase"], at(e)))
        .collect();
    // The guard is at his post from the first frame: the post is vacant once, after he left.
    assert_eq!(vacant.len(), 1, "one post_vacant: {summary:#?}");
    let t = at(vacant[0]);
    assert!(
        (18.0..=35.0).contains(&t),
        "vacant from when the guard left (~20-30 s), not from the start: +{t:.1} s; {summary:#?}"
    );
    assert_eq!(vacant[0]["zone"], "gate-post");
    // Three people in the yard while the visitors stay.
    assert_eq!(crowd.len(), 1, "one over_occupancy: {summary:#?}");
    let t = at(crowd[0]);
    assert!(
        (64.0..=100.0).contains(&t),
        "over occupancy while the visitors are in (~72-100 s): +{t:.1} s; {summary:#?}"
    );
    assert_eq!(crowd[0]["zone"], "yard");
    assert!(
        crowd[0]["count"].as_u64().is_some_and(|c| c >= 3),
        "{}",
        crowd[0]
    );
}
