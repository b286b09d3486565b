//! `lookout outbox list|retry` as a real process over a real data directory: a dead
//! letter recorded in the SQLite store is listed with its status and answer, re-driven back
//! into the outbox, and gone from the list afterwards.

use std::path::Path;
use std::process::Command;

use lookout_alerts::store::{SinkSpec, Store};
use lookout_core::{CameraId, Incident, IncidentConfidence, IncidentKind, IncidentState, Severity};

const CONFIG: &str = r#"
[engine]
data_dir = "state"

[[alerts.sinks]]
kind = "webhook"
name = "hook"
url = "http://127.0.0.1:9/in"
"#;

fn outbox(config: &Path, args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .arg("outbox")
        .args(args)
        .arg("--config")
        .arg(config)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "lookout outbox {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn outbox_list_and_retry_redrive_a_dead_letter() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("site.toml");
    std::fs::write(&path, CONFIG).unwrap();
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    let db = dir.path().join("state/lookout.db");
    let spec = SinkSpec {
        name: "hook".into(),
        kinds: vec![],
        min_severity: None,
        camera_status: false,
        events: false,
    };
    let store = Store::open(&db, vec![spec], 3600.0).unwrap();
    let now = chrono::Utc::now();
    let cam: CameraId = "tower".into();
    let inc = Incident {
        id: "f1".into(),
        kind: IncidentKind::Fire,
        confidence: IncidentConfidence::Camera,
        severity: Severity::High,
        state: IncidentState::New,
        location: None,
        cameras: vec![cam],
        sectors: vec![],
        events: vec![],
        hotspots: vec![],
        evidence: Default::default(),
        first_seen: now,
        last_seen: now,
        revision: 1,
        notes: vec![],
        changes: vec![],
    };
    store.apply_incident(&inc, None, now).unwrap();
    let p = store.pending("hook", 10).unwrap();
    assert_eq!(p.len(), 1);
    store
        .dead_letter(
            "hook",
            p[0].id,
            Some(422),
            "HTTP status 422",
            "{\"error\":\"bad\"}",
            now,
        )
        .unwrap();
    assert!(store.pending("hook", 10).unwrap().is_empty());

    let list = outbox(&path, &["list"]);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["key"], "f1:1");
    assert_eq!(list[0]["status"], 422);
    assert_eq!(list[0]["body"], "{\"error\":\"bad\"}");

    // A sink that is not configured is an error naming it.
    let out = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(["outbox", "retry", "--sink", "nope", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"nope\""));

    let r = outbox(&path, &["retry", "--sink", "hook"]);
    assert_eq!(r["redriven"], 1);
    assert_eq!(outbox(&path, &["list"]).as_array().unwrap().len(), 0);
    // Back in the outbox, to be sent at once with its attempts reset.
    let p = store.pending("hook", 10).unwrap();
    assert_eq!(p.len(), 1);
    assert_eq!(
        (p[0].key.as_str(), p[0].attempts, p[0].not_before),
        ("f1:1", 0, None)
    );
}
