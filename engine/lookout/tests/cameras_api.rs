//! Cameras changed through the API of a running `lookout run` (two test-pattern cameras,
//! the real server and store): a file camera is disabled and a camera is added; after a
//! clean stop `lookout config diff` lists both changes with their version and author, and
//! a restart runs them from the start: the disabled camera delivers no frame, the added
//! one does.

mod common;
use common::{http, spawn_engine, Killed};

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const TOKEN: &str = "admin-token-0123456789";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn call(addr: &str, method: &str, path: &str, body: Option<Value>) -> Option<(u16, Value)> {
    let b = body.map(|b| b.to_string());
    let (st, raw) = http(addr, method, path, Some(TOKEN), b.as_deref()).ok()?;
    Some((st, serde_json::from_slice(&raw).unwrap_or(Value::Null)))
}

/// Waits until `GET /api/cameras` satisfies `ok` (bounded), returning the list.
fn wait_cameras(addr: &str, log: &Path, what: &str, ok: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let t0 = Instant::now();
    loop {
        if let Some((200, Value::Array(list))) = call(addr, "GET", "/api/cameras", None) {
            if ok(&list) {
                return list;
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}; engine log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn cam<'a>(list: &'a [Value], id: &str) -> Option<&'a Value> {
    list.iter().find(|c| c["id"] == id)
}

fn stop(mut engine: Killed, log: &Path) {
    assert!(
        engine.terminate(Duration::from_secs(30)),
        "lookout run did not stop on SIGTERM; log:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

#[test]
fn camera_changes_of_a_running_engine_are_in_config_diff_and_in_force_after_a_restart() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let config = dir.join("site.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[engine]
shutdown_deadline_s = 10

[server]
port = {port}
users = [{{ name = "root", role = "admin", token = "{TOKEN}" }}]

[[cameras]]
id = "north"
source = {{ kind = "test", pattern = "ball", width = 320, height = 240, framerate = 10 }}
fps = 2

[[cameras]]
id = "south"
source = {{ kind = "test", pattern = "smpte", width = 320, height = 240, framerate = 10 }}
fps = 2
"#
        ),
    )
    .unwrap();
    let data = dir.join("data");

    // Run: both file cameras deliver frames.
    let log1 = dir.join("run1.log");
    let engine = spawn_engine(&config, &data, &log1);
    wait_cameras(&addr, &log1, "both cameras' frames", |l| {
        l.len() == 2 && l.iter().all(|c| c["has_frame"] == true)
    });

    // Through the API: disable a file camera, add one; a bad one is refused by field.
    let (st, v) = call(
        &addr,
        "PATCH",
        "/api/cameras/south",
        Some(json!({"patch": {"enabled": false}, "comment": "mast repair"})),
    )
    .unwrap();
    assert_eq!(st, 200, "{v}");
    let (st, v) = call(
        &addr,
        "POST",
        "/api/cameras",
        Some(json!({"camera": {"id": "east", "source": {"kind": "test", "pattern": "ball", "width": 320, "height": 240, "framerate": 700}}})),
    )
    .unwrap();
    assert_eq!(st, 422, "{v}");
    assert_eq!(
        v["error"]["fields"][0]["path"], "cameras[2].source.framerate",
        "{v}"
    );
    let (st, v) = call(
        &addr,
        "POST",
        "/api/cameras",
        Some(json!({"camera": {"id": "east", "name": "East mast", "fps": 2,
            "source": {"kind": "test", "pattern": "snow", "width": 320, "height": 240, "framerate": 10}},
            "comment": "new mast"})),
    )
    .unwrap();
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["version"], 2, "{v}");
    let list = wait_cameras(&addr, &log1, "the changed list", |l| l.len() == 3);
    assert_eq!(cam(&list, "south").unwrap()["enabled"], false);
    assert_eq!(cam(&list, "east").unwrap()["origin"], "api");
    stop(engine, &log1);

    // config diff lists both changes, with the version and author.
    let out = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(["config", "diff", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("cameras v2 by root at "), "{text}");
    assert!(text.contains("\"new mast\""), "{text}");
    assert!(
        text.contains("applied over the file's [[cameras]]"),
        "{text}"
    );
    assert!(
        text.contains("cameras.south.enabled: true → false"),
        "{text}"
    );
    assert!(text.contains("cameras.east: (unset) → {"), "{text}");
    let out = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(["config", "diff", "--json", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    let js: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(js["cameras"]["version"], 2, "{js}");
    assert_eq!(js["cameras"]["applied"], true, "{js}");
    let paths: Vec<&str> = js["cameras"]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["cameras.south.enabled", "cameras.east"], "{js}");

    // Restart: the changes are in force from the start. The added camera and north deliver
    // frames; the disabled one never does.
    let log2 = dir.join("run2.log");
    let engine = spawn_engine(&config, &data, &log2);
    let list = wait_cameras(&addr, &log2, "north's frames after the restart", |l| {
        cam(l, "north").is_some_and(|c| c["has_frame"] == true)
    });
    assert_eq!(list.len(), 3, "{list:?}");
    assert_eq!(cam(&list, "south").unwrap()["enabled"], false);
    // Give the disabled camera time it would need to deliver (north needed less).
    std::thread::sleep(Duration::from_secs(3));
    let list = wait_cameras(&addr, &log2, "the list", |_| true);
    assert_eq!(
        cam(&list, "south").unwrap()["has_frame"],
        false,
        "the disabled camera runs: {list:?}"
    );
    let log = std::fs::read_to_string(&log2).unwrap_or_default();
    assert!(
        log.contains("Cameras record v2 applied over the config file's cameras"),
        "{log}"
    );
    // An added camera runs once the engine's hub knows it at start (east).
    let list = wait_cameras(&addr, &log2, "east's frames after the restart", |l| {
        cam(l, "east").is_some_and(|c| c["has_frame"] == true)
    });
    assert_eq!(cam(&list, "east").unwrap()["origin"], "api");
    stop(engine, &log2);
}
