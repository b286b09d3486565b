//! Cameras changed through the API of a running `lookout run` take effect live: a camera
//! enabled from the API delivers frames, runs its model and raises an incident; an edit
//! restarts only that camera; a disabled camera stops while the other one keeps running;
//! a camera added from the API runs; a zone drawn through the rules API changes the zone
//! crops inference runs; the engine still shuts down cleanly.

mod common;

use std::time::Duration;

use common::{api_call, http, repo, shared, spawn_engine, wait_for};
use serde_json::Value;

const ADMIN: &str = "cameras-live-admin-token-42";

fn call(addr: &str, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    api_call(addr, ADMIN, method, path, body)
}

/// The camera's entry in `GET /api/cameras`.
fn camera(addr: &str, id: &str) -> Option<Value> {
    let (code, list) = call(addr, "GET", "/api/cameras", None);
    (code == 200).then_some(())?;
    list.as_array()?.iter().find(|c| c["id"] == id).cloned()
}

fn frames_delivered(addr: &str, cam: &str) -> Option<u64> {
    let (code, body) = http(addr, "GET", "/metrics", None, None).ok()?;
    (code == 200).then_some(())?;
    let text = String::from_utf8_lossy(&body).to_string();
    let key = format!("lookout_camera_frames_in_total{{camera=\"{cam}\"}}");
    text.lines()
        .find(|l| l.starts_with(&key))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map(|v| v as u64)
}

fn metric(addr: &str, name: &str, cam: &str) -> Option<f64> {
    let (code, body) = http(addr, "GET", "/metrics", None, None).ok()?;
    (code == 200).then_some(())?;
    let key = format!("{name}{{camera=\"{cam}\"}} ");
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|l| l.strip_prefix(&key)?.trim().parse().ok())
}

fn newest_frame_ok(addr: &str, cam: &str) -> bool {
    http(
        addr,
        "GET",
        &format!("/api/cameras/{cam}/frame.jpg"),
        None,
        None,
    )
    .is_ok_and(|(code, body)| code == 200 && body.starts_with(&[0xff, 0xd8]))
}

#[test]
fn cameras_enabled_edited_disabled_and_added_through_the_api_change_the_running_engine() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let video = shared().join("datasets/furg-house6/furg_house6.mp4");
    let config = tmp.path().join("site.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[engine]
shutdown_deadline_s = 10

[inference]
workers = 1
intra_threads = 1

[models.smoke-fire]
manifest = "{manifest}"

[models.person]
manifest = "{person}"

[inference.camera_zones.steady]
margin = 0.1

[[cameras]]
id = "steady"
source = {{ kind = "test", width = 320, height = 240, framerate = 10 }}
fps = 2
models = ["person"]

[[cameras]]
id = "house"
enabled = false
source = {{ kind = "file", path = "{video}", loop = true }}
fps = 2
models = ["smoke-fire"]

[rules]
quiet_s = 5

[rules.cameras.steady]
zones = [{{ name = "door", polygon = [[0.1, 0.1], [0.3, 0.1], [0.3, 0.4], [0.1, 0.4]] }}]

[[rules.restricted]]
camera = "steady"
zone = "door"

[server]
port = {port}

[[server.users]]
name = "site-admin"
role = "admin"
token = "{ADMIN}"
"#,
            manifest = repo().join("models/smoke-fire.toml").display(),
            person = repo().join("models/person-nanodet.toml").display(),
            video = video.display(),
        ),
    )
    .expect("config");
    let data = tmp.path().join("data");
    let log = tmp.path().join("lookout.log");
    let mut engine = spawn_engine(&config, &data, &log);

    wait_for("the steady camera's frames", 60, &mut engine, &log, |_| {
        newest_frame_ok(&addr, "steady").then_some(())
    });
    let (code, _) = call(&addr, "GET", "/api/cameras/house/frame.jpg", None);
    assert_eq!(code, 404, "the disabled camera has no live view");

    // 1. Enabled from the API: started live, frames, its model runs, a fire incident.
    let (code, v) = call(
        &addr,
        "PATCH",
        "/api/cameras/house",
        Some(r#"{"patch": {"enabled": true}, "comment": "back from maintenance"}"#),
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["live"]["applied"], true, "{v}");
    assert_eq!(v["live"]["started"], serde_json::json!(["house"]), "{v}");
    wait_for("the enabled camera's frames", 60, &mut engine, &log, |_| {
        newest_frame_ok(&addr, "house").then_some(())
    });
    let incident = wait_for(
        "a fire incident on the enabled camera",
        120,
        &mut engine,
        &log,
        |_| {
            let (code, list) = call(&addr, "GET", "/api/incidents", None);
            (code == 200).then_some(())?;
            let list = if list.is_array() {
                list
            } else {
                list["incidents"].clone()
            };
            list.as_array()?.iter().find_map(|i| {
                (i["kind"] == "fire" && i["cameras"].as_array()?.iter().any(|c| c == "house"))
                    .then(|| i["id"].as_str().map(String::from))
                    .flatten()
            })
        },
    );
    assert!(!incident.is_empty());

    // 2. Edited (fps): only that camera restarts; the other is not touched.
    let steady_before = frames_delivered(&addr, "steady").unwrap_or(0);
    let (code, v) = call(
        &addr,
        "PATCH",
        "/api/cameras/house",
        Some(r#"{"patch": {"fps": 1}}"#),
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["live"]["restarted"], serde_json::json!(["house"]), "{v}");
    assert_eq!(v["live"]["stopped"], serde_json::json!([]), "{v}");
    wait_for(
        "the steady camera to keep delivering",
        30,
        &mut engine,
        &log,
        |_| (frames_delivered(&addr, "steady")? > steady_before).then_some(()),
    );

    // 3. Added from the API: a second test pattern runs.
    let (code, v) = call(
        &addr,
        "POST",
        "/api/cameras",
        Some(
            r#"{"camera": {"id": "gate", "source": {"kind": "test", "width": 160, "height": 120, "framerate": 5}, "fps": 2}}"#,
        ),
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["live"]["started"], serde_json::json!(["gate"]), "{v}");
    wait_for("the added camera's frames", 60, &mut engine, &log, |_| {
        (newest_frame_ok(&addr, "gate") && camera(&addr, "gate")?["has_frame"] == true)
            .then_some(())
    });

    // 4. Disabled: it stops (no live view, no frames), the others keep running.
    let (code, v) = call(
        &addr,
        "PATCH",
        "/api/cameras/house",
        Some(r#"{"patch": {"enabled": false}}"#),
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["live"]["stopped"], serde_json::json!(["house"]), "{v}");
    let (code, _) = call(&addr, "GET", "/api/cameras/house/frame.jpg", None);
    assert_eq!(code, 404, "the disabled camera's live view is gone");
    let house = frames_delivered(&addr, "house");
    let steady = frames_delivered(&addr, "steady").unwrap_or(0);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        frames_delivered(&addr, "house"),
        house,
        "no frame of the disabled camera"
    );
    assert!(frames_delivered(&addr, "steady").unwrap_or(0) > steady);
    assert_eq!(metric(&addr, "lookout_camera_up", "house"), Some(0.0));
    assert_eq!(metric(&addr, "lookout_camera_up", "steady"), Some(1.0));

    // 5. A zone drawn (a rules change): inference crops it from the next frame group on.
    wait_for(
        "one zone crop on the steady camera",
        30,
        &mut engine,
        &log,
        |_| (metric(&addr, "lookout_camera_zone_crops", "steady")? == 1.0).then_some(()),
    );
    let (code, v) = call(
        &addr,
        "PATCH",
        "/api/config/rules",
        Some(
            r#"{"patch": {"cameras": {"steady": {"zones": [
                {"name": "door", "polygon": [[0.1, 0.1], [0.3, 0.1], [0.3, 0.4], [0.1, 0.4]]},
                {"name": "tank", "polygon": [[0.6, 0.5], [0.9, 0.5], [0.9, 0.9], [0.6, 0.9]]}]}},
              "restricted": [{"camera": "steady", "zone": "door"}, {"camera": "steady", "zone": "tank"}]},
              "comment": "tank farm zone"}"#,
        ),
    );
    assert_eq!(code, 200, "{v}");
    wait_for(
        "two zone crops after the rules change",
        30,
        &mut engine,
        &log,
        |_| (metric(&addr, "lookout_camera_zone_crops", "steady")? == 2.0).then_some(()),
    );

    // The engine still stops cleanly (every stage sees its input close).
    assert!(
        engine.terminate(Duration::from_secs(20)),
        "the engine did not stop; log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let status = engine.0.wait().expect("exit status");
    assert!(
        status.success(),
        "exit {status}; log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}
