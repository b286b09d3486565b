//! The site-learning loop's first half on real parts: the live engine watches a real fire
//! video (FURG house 6) on two cameras and raises fire incidents with snapshots; through the
//! HTTP API an operator confirms one, marks the other a false alarm and corrects a box; then
//! `lookout dataset export` turns those verdicts into a YOLO-format set.

mod common;
use common::{http, repo, shared, spawn_engine};

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

const TOKEN: &str = "dataset-test-operator-token";

fn json(addr: &str, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    let (code, body) = http(addr, method, path, Some(TOKEN), body).expect("HTTP request");
    (code, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

fn lookout(args: &[&str], config: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env("LOOKOUT_SHARED", shared())
        .output()
        .expect("lookout runs")
}

#[test]
fn verdicts_and_corrected_boxes_become_a_yolo_set() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let video = shared().join("datasets/furg-house6/furg_house6.mp4");
    let config = tmp.path().join("site.toml");
    let mut cameras = String::new();
    for id in ["cam-a", "cam-b"] {
        cameras.push_str(&format!(
            r#"
[[cameras]]
id = "{id}"
source = {{ kind = "file", path = "{video}", loop = true }}
fps = 2
models = ["smoke-fire"]
"#,
            video = video.display()
        ));
    }
    std::fs::write(
        &config,
        format!(
            r#"
[models.smoke-fire]
manifest = "{manifest}"
{cameras}
[rules]
quiet_s = 5

[server]
port = {port}

[[server.users]]
name = "night-shift"
role = "operator"
token = "{TOKEN}"
"#,
            manifest = repo().join("models/smoke-fire.toml").display(),
        ),
    )
    .expect("config");
    let data = tmp.path().join("data");
    let log = tmp.path().join("lookout.log");
    let mut engine = spawn_engine(&config, &data, &log);

    // A fire incident with a snapshot on each camera (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(90);
    let snapshot_of = |cam: &str, list: &Value| -> Option<(String, i64)> {
        list.as_array()?.iter().find_map(|i| {
            let on_cam = i["cameras"]
                .as_array()
                .is_some_and(|c| c.len() == 1 && c[0] == cam);
            (on_cam && i["kind"] == "fire")
                .then(|| Some((i["id"].as_str()?.to_string(), i["snapshot_id"].as_i64()?)))
                .flatten()
        })
    };
    let (a, b) = loop {
        assert!(
            Instant::now() < deadline,
            "no fire incident with a snapshot on both cameras within 90 s; see {}",
            log.display()
        );
        assert!(
            engine.0.try_wait().expect("wait").is_none(),
            "the engine exited early; see {}",
            log.display()
        );
        std::thread::sleep(Duration::from_secs(1));
        let Ok((200, body)) = http(&addr, "GET", "/api/incidents", None, None) else {
            continue;
        };
        let list: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let list = if list.is_array() {
            list
        } else {
            list["incidents"].clone()
        };
        if let (Some(a), Some(b)) = (snapshot_of("cam-a", &list), snapshot_of("cam-b", &list)) {
            break (a, b);
        }
    };

    // The training frame: the snapshot's frame without drawing, the detector's boxes.
    let (code, frame) = http(
        &addr,
        "GET",
        &format!("/api/snapshots/{}/frame", a.1),
        None,
        None,
    )
    .expect("frame");
    assert_eq!(code, 200);
    let img = image::load_from_memory(&frame).expect("the training frame is a picture");
    assert_eq!((img.width(), img.height()), (426, 240), "FURG's frame size");
    let (code, boxes) = json(&addr, "GET", &format!("/api/snapshots/{}/boxes", a.1), None);
    assert_eq!(code, 200, "{boxes}");
    assert_eq!(boxes["training_frame"], true);
    let detected = boxes["detected"].as_array().cloned().unwrap_or_default();
    assert!(
        detected.iter().any(|b| b["class"] == "fire"),
        "the detector's fire box is kept: {boxes}"
    );

    // The operator's verdicts and a correction (one box kept, one missed box drawn).
    let (code, v) = json(
        &addr,
        "POST",
        &format!("/api/incidents/{}/transition", a.0),
        Some(r#"{"to": "confirmed", "comment": "flames in the house"}"#),
    );
    assert_eq!(code, 200, "{v}");
    let (code, v) = json(
        &addr,
        "POST",
        &format!("/api/incidents/{}/transition", b.0),
        Some(r#"{"to": "false_alarm"}"#),
    );
    assert_eq!(code, 200, "{v}");
    let kept = detected
        .iter()
        .find(|b| b["class"] == "fire")
        .map(|b| b["box"].clone())
        .expect("a fire box");
    let correction = serde_json::json!({"boxes": [
        {"class": "fire", "box": kept},
        {"class": "smoke", "box": [0.05, 0.05, 0.25, 0.30]},
    ]});
    let (code, v) = json(
        &addr,
        "PUT",
        &format!("/api/snapshots/{}/boxes", a.1),
        Some(&correction.to_string()),
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["corrected"]["by"], "night-shift");
    // Bad boxes and a reader without a token are refused.
    let (code, v) = json(
        &addr,
        "PUT",
        &format!("/api/snapshots/{}/boxes", a.1),
        Some(r#"{"boxes": [{"class": "fire", "box": [0.5, 0.5, 0.4, 0.9]}]}"#),
    );
    assert_eq!(code, 422, "{v}");
    let (code, _) = http(
        &addr,
        "PUT",
        &format!("/api/snapshots/{}/boxes", a.1),
        None,
        Some(&correction.to_string()),
    )
    .expect("request");
    assert_eq!(code, 401);

    assert!(
        engine.terminate(Duration::from_secs(20)),
        "no clean stop within 20 s of SIGTERM"
    );

    let out_dir = tmp.path().join("site-set");
    let out = lookout(
        &[
            "dataset",
            "export",
            "--json",
            "--data-dir",
            data.to_str().expect("utf-8"),
            "--out",
            out_dir.to_str().expect("utf-8"),
        ],
        &config,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).expect("JSON summary");
    assert!(summary["positives"].as_u64() >= Some(1), "{summary}");
    assert!(summary["negatives"].as_u64() >= Some(1), "{summary}");
    assert_eq!(summary["cameras"], 2, "{summary}");
    // One scene moment per camera: nothing to hold out without sharing a moment.
    assert_eq!(summary["val"], 0, "{summary}");

    let meta: Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("export.json")).expect("export.json"))
            .expect("export.json parses");
    let rows = meta["images"].as_array().cloned().unwrap_or_default();
    assert_eq!(rows.len() as u64, summary["images"].as_u64().unwrap_or(0));
    for r in &rows {
        let file = out_dir.join(r["file"].as_str().expect("file"));
        image::open(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let label = file
            .to_str()
            .expect("utf-8")
            .replace("/images/", "/labels/")
            .replace(".jpg", ".txt");
        let text = std::fs::read_to_string(&label).expect("label file");
        let lines: Vec<Vec<f64>> = text
            .lines()
            .map(|l| l.split(' ').map(|x| x.parse().expect("number")).collect())
            .collect();
        for l in &lines {
            assert_eq!(l.len(), 5, "{label}: {text}");
            assert!(l[0] == 0.0 || l[0] == 1.0, "class ids 0 = smoke, 1 = fire");
            assert!(l[1..].iter().all(|v| (0.0..=1.0).contains(v)), "{text}");
        }
        match (r["camera"].as_str(), r["labels"].as_str()) {
            (Some("cam-b"), _) => {
                assert_eq!(r["labels"], "false_alarm");
                assert!(lines.is_empty(), "a false alarm is a verified negative");
            }
            (Some("cam-a"), Some("corrected")) => {
                assert_eq!(r["snapshot"], a.1);
                assert_eq!(lines.len(), 2, "{text}");
                let smoke = lines.iter().find(|l| l[0] == 0.0).expect("drawn smoke box");
                assert!((smoke[1] - 0.15).abs() < 1e-4 && (smoke[4] - 0.25).abs() < 1e-4);
            }
            (Some("cam-a"), Some("confirmed")) => assert!(!lines.is_empty()),
            other => panic!("unexpected row {other:?}: {r}"),
        }
    }
    assert!(
        rows.iter().any(|r| r["labels"] == "corrected"),
        "the corrected snapshot is exported: {meta}"
    );

    // Never into a directory that already holds a set.
    let again = lookout(
        &[
            "dataset",
            "export",
            "--data-dir",
            data.to_str().expect("utf-8"),
            "--out",
            out_dir.to_str().expect("utf-8"),
        ],
        &config,
    );
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));
}
