//! Roles by vest colour through the real pipeline: the role test clip
//! (`scripts/make-vest-clip.py`: Penn-Fudan pedestrians with safety vests painted on,
//! composited into a continuous 40 s view) decoded by GStreamer, NanoDet in ONNX Runtime,
//! the vest colours measured by the inference worker, the role rules in the rules stage.
//!
//! Operator b (blue vest) stands on the right from the start; visitor c (orange vest)
//! walks in and stays beside him; visitor a (orange vest) walks in on the left and stays
//! alone there.

mod common;
use common::{repo, shared, spawn_engine};

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

fn read_json_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Builds the clip into `dir` with the project's .venv python (numpy, Pillow).
fn vest_clip(dir: &Path) -> std::path::PathBuf {
    let status = Command::new(repo().join(".venv/bin/python"))
        .arg(repo().join("scripts/make-vest-clip.py"))
        .arg(dir)
        .env("LOOKOUT_SHARED", shared())
        .status()
        .expect("the project's .venv python runs (scripts/setup.sh)");
    let clip = dir.join("vests.mkv");
    assert!(
        status.success() && clip.exists(),
        "scripts/make-vest-clip.py could not build the clip"
    );
    clip
}

#[test]
fn vest_colours_drive_forbidden_role_escort_vacant_post_and_lone_worker() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let clip = vest_clip(tmp.path());
    let data = tmp.path().join("data");
    let config = tmp.path().join("roles.toml");
    let left = "[[0, 0.6], [0.4, 0.6], [0.4, 1], [0, 1]]";
    let right = "[[0.45, 0.6], [1, 0.6], [1, 1], [0.45, 1]]";
    std::fs::write(
        &config,
        format!(
            r##"
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
id = "yard"
source = {{ kind = "file", path = "{clip}", loop = false, realtime = false }}
models = ["person"]

[rules]
[[rules.roles]]
name = "visitor"
vest = ["safety-orange"]
[[rules.roles]]
name = "operator"
vest = ["#1f4fd0"]

[rules.cameras.yard]
zones = [
  {{ name = "left", polygon = {left} }},
  {{ name = "left-any", polygon = {left} }},
  {{ name = "right", polygon = {right} }},
  {{ name = "right-unescorted", polygon = {right} }},
]

# Visitors only with an operator within 250 px.
[[rules.restricted]]
camera = "yard"
zone = "left"
forbid_roles = ["visitor"]
escort = {{ roles = ["operator"], within_px = 250 }}
[[rules.restricted]]
camera = "yard"
zone = "right"
forbid_roles = ["visitor"]
escort = {{ roles = ["operator"], within_px = 250 }}
# The same zone without the escort clause (shows the visitor there is seen as one).
[[rules.restricted]]
camera = "yard"
zone = "right-unescorted"
forbid_roles = ["visitor"]

# Posts that need an operator; and one that anybody staffs.
[[rules.duty_posts]]
camera = "yard"
zone = "left"
max_vacant_s = 10
require_role = "operator"
[[rules.duty_posts]]
camera = "yard"
zone = "right"
max_vacant_s = 10
require_role = "operator"
[[rules.duty_posts]]
camera = "yard"
zone = "left-any"
max_vacant_s = 10

[[rules.two_person]]
camera = "yard"
zone = "left"
max_alone_s = 10
[[rules.two_person]]
camera = "yard"
zone = "right"
max_alone_s = 10
"##,
            manifest = repo().join("models/person-nanodet.toml").display(),
            clip = clip.display(),
        ),
    )
    .expect("write config");

    let log = tmp.path().join("lookout.log");
    let mut child = spawn_engine(&config, &data, &log);

    // 40 s of clip at 2 fps: 80 frames. Wait until the last one is analysed (bounded).
    let frames = data.join("detections.jsonl");
    let deadline = Instant::now() + Duration::from_secs(180);
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
        if n >= 78 || (n > 60 && moved.elapsed() > Duration::from_secs(20)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {n} frames analysed in 180 s; see {}",
            log.display()
        );
        assert!(
            child.0.try_wait().expect("wait").is_none(),
            "the engine exited early; see {}",
            log.display()
        );
    }
    assert!(
        child.terminate(Duration::from_secs(20)),
        "no clean stop within 20 s of SIGTERM"
    );

    // The inference worker measured roles on the person detections.
    let frames = read_json_lines(&frames);
    let roles_seen = |role: &str| {
        frames
            .iter()
            .filter(|v| v["type"] == "frame")
            .filter(|v| {
                v["detections"]
                    .as_array()
                    .is_some_and(|d| d.iter().any(|d| d["role"]["name"] == role))
            })
            .count()
    };
    let (visitors, operators) = (roles_seen("visitor"), roles_seen("operator"));
    assert!(
        visitors >= 40 && operators >= 40,
        "frames with a visitor {visitors}, with an operator {operators} (of ~80)"
    );

    let events = read_json_lines(&data.join("events.jsonl"));
    let summary: Vec<String> = events
        .iter()
        .map(|e| format!("{} {} {} {}", e["kind"], e["phase"], e["zone"], e["detail"]))
        .collect();
    let zones = |kind: &str| -> BTreeSet<String> {
        events
            .iter()
            .filter(|e| e["kind"] == kind && e["phase"] == "start")
            .filter_map(|e| e["zone"].as_str().map(str::to_string))
            .collect()
    };
    // Per person (by where the box is): how the single frames measured.
    let mut tally: std::collections::BTreeMap<(String, String), u32> = Default::default();
    for d in frames
        .iter()
        .filter(|v| v["type"] == "frame")
        .flat_map(|v| v["detections"].as_array().cloned().unwrap_or_default())
        .filter(|d| d["score"].as_f64().is_some_and(|s| s >= 0.4))
    {
        let cx = (d["bbox"]["x1"].as_f64().unwrap_or(0.0)
            + d["bbox"]["x2"].as_f64().unwrap_or(0.0))
            / 2.0;
        let who = if cx < 256.0 {
            "a (visitor)"
        } else if cx < 470.0 {
            "c (visitor)"
        } else {
            "b (operator)"
        };
        let role = d["role"]["name"].as_str().unwrap_or("-").to_string();
        *tally.entry((who.to_string(), role)).or_default() += 1;
    }
    eprintln!("single-frame roles per person: {tally:?}");
    eprintln!(
        "frames with a visitor {visitors}, with an operator {operators}; events: {summary:#?}"
    );
    let set = |z: &[&str]| z.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    // A visitor alone on the left: forbidden. Beside the operator on the right: escorted,
    // nothing; the same zone without the escort clause: forbidden.
    assert_eq!(
        zones("forbidden_role"),
        set(&["left", "right-unescorted"]),
        "{summary:#?}"
    );
    // The left post has only a visitor in it: vacant; anybody staffs `left-any`; the
    // operator staffs the right post.
    assert_eq!(zones("post_vacant"), set(&["left"]), "{summary:#?}");
    // Alone on the left; two people on the right.
    assert_eq!(zones("lone_worker"), set(&["left"]), "{summary:#?}");
    assert!(
        zones("restricted").is_empty(),
        "role rules raise forbidden_role: {summary:#?}"
    );
}
