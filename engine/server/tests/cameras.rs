//! Cameras from the API against real parts: the real server on 127.0.0.1:0, the real
//! SQLite store on disk, the config loader's validation, and a camera control that
//! records every running list the server hands it (the engine side is the binary's).
//! Adds, edits, disables and removes are validated (422 naming the field as a config
//! file's error would), stored in the audit trail with their author, reflected by
//! `GET /api/cameras`, applied with the right list, and re-applied by a new server over
//! the same store.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use lookout_config::cameras::CameraConfig;
use lookout_server::cameras::{CameraApply, CameraControl};
use lookout_server::{RunningServer, ServerState};
use serde_json::{json, Value};

/// Every list the server applied, and which cameras run (it answers what started and
/// stopped, as the engine would).
struct Recording {
    lists: Mutex<Vec<Vec<CameraConfig>>>,
    running: Mutex<Vec<String>>,
}

impl Recording {
    /// The engine running these cameras.
    fn running(ids: &[&str]) -> Arc<Recording> {
        Arc::new(Recording {
            lists: Mutex::new(Vec::new()),
            running: Mutex::new(ids.iter().map(|s| s.to_string()).collect()),
        })
    }
}

impl CameraControl for Recording {
    fn apply(&self, cameras: &[CameraConfig]) -> Result<CameraApply, String> {
        let mut running = self.running.lock().unwrap();
        let after: Vec<String> = cameras
            .iter()
            .filter(|c| c.enabled)
            .map(|c| c.id.clone())
            .collect();
        let out = CameraApply {
            started: after
                .iter()
                .filter(|c| !running.contains(c))
                .cloned()
                .collect(),
            stopped: running
                .iter()
                .filter(|c| !after.contains(c))
                .cloned()
                .collect(),
            restarted: Vec::new(),
        };
        *running = after;
        self.lists.lock().unwrap().push(cameras.to_vec());
        Ok(out)
    }
}

const MODELS: &str = r#"
[models.firesmoke]
manifest = "firesmoke.toml"
"#;

struct Server {
    rt: tokio::runtime::Runtime,
    server: Option<RunningServer>,
    state: ServerState,
    _rules: Applied,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            self.rt.block_on(s.stop());
        }
    }
}

fn start(dir: &std::path::Path, control: Option<Arc<Recording>>) -> Server {
    let cfg = lookout_config::parse(&format!("{CONFIG}{MODELS}"), "test.toml", dir).unwrap();
    let (rt, alerts) = open_alerts(&cfg);
    let mut state = ServerState::new(alerts, cfg);
    state.load_overlay().unwrap();
    let (rules, applied) = Applied::control();
    state.rules = Some(rules);
    state.cameras = control.map(|c| c as Arc<dyn CameraControl>);
    let server = rt
        .block_on(lookout_server::start(
            state.clone(),
            "127.0.0.1:0".parse().unwrap(),
        ))
        .unwrap();
    Server {
        rt,
        server: Some(server),
        state,
        _rules: applied,
    }
}

impl Server {
    fn addr(&self) -> std::net::SocketAddr {
        self.server.as_ref().unwrap().addr
    }
    fn call(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
        let b = body.map(|b| b.to_string());
        let r = http(self.addr(), method, path, Some(token), b.as_deref());
        let v = if r.body.is_empty() {
            Value::Null
        } else {
            r.json()
        };
        (r.status, v)
    }
    fn cameras(&self) -> Vec<Value> {
        let (st, v) = self.call("GET", "/api/cameras", VIEWER, None);
        assert_eq!(st, 200, "{v}");
        v.as_array().unwrap().clone()
    }
}

fn field_paths(v: &Value) -> Vec<String> {
    v["error"]["fields"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|f| f["path"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn cameras_are_added_edited_disabled_and_removed_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recording::running(&["tower1", "tower2"]);
    let srv = start(dir.path(), Some(rec.clone()));

    // Only an admin changes cameras.
    let drone = json!({
        "id": "drone1",
        "name": "Drone 1",
        "source": {"kind": "rtsp", "url": "rtsp://pilot:s3cret@10.1.2.3:554/live"},
        "fps": 1.0,
        "models": ["firesmoke"],
        "geo": {"lat": 45.1, "lon": 7.1, "heading_deg": 90, "hfov_deg": 70, "range_m": 8000},
    });
    let add = json!({"camera": drone, "comment": "patrol drone"});
    let (st, _) = srv.call("POST", "/api/cameras", OPERATOR, Some(add.clone()));
    assert_eq!(st, 403);

    // Bad values are refused naming the field as the config loader would (the new camera
    // is cameras[2], after the file's two).
    let mut bad = drone.clone();
    bad["source"]["url"] = json!("http://10.1.2.3/live");
    let (st, v) = srv.call("POST", "/api/cameras", ADMIN, Some(json!({"camera": bad})));
    assert_eq!(st, 422, "{v}");
    assert_eq!(field_paths(&v), ["cameras[2].source.url"], "{v}");
    let mut dup = drone.clone();
    dup["id"] = json!("tower2");
    let (st, v) = srv.call("POST", "/api/cameras", ADMIN, Some(json!({"camera": dup})));
    assert_eq!(st, 422, "{v}");
    assert_eq!(field_paths(&v), ["cameras[2].id"], "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("already used by cameras[1]"));
    let mut unknown = drone.clone();
    unknown["models"] = json!(["firesmoke", "person"]);
    let (st, v) = srv.call(
        "POST",
        "/api/cameras",
        ADMIN,
        Some(json!({"camera": unknown})),
    );
    assert_eq!(st, 422, "{v}");
    assert_eq!(field_paths(&v), ["cameras[2].models[1]"], "{v}");
    let mut typo = drone.clone();
    typo["fsp"] = json!(2);
    let (st, v) = srv.call("POST", "/api/cameras", ADMIN, Some(json!({"camera": typo})));
    assert_eq!(st, 422, "{v}");
    assert_eq!(field_paths(&v), ["cameras[2].fsp"], "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("fsp"),
        "{v}"
    );
    // Nothing refused was stored or applied.
    assert!(rec.lists.lock().unwrap().is_empty());
    assert_eq!(srv.cameras().len(), 2);

    // A good camera: stored, applied with the whole list, listed as the API's.
    let (st, v) = srv.call("POST", "/api/cameras", ADMIN, Some(add));
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["live"]["applied"], true, "{v}");
    assert_eq!(v["live"]["started"], json!(["drone1"]), "{v}");
    let v1 = v["version"].as_i64().unwrap();
    {
        let lists = rec.lists.lock().unwrap();
        assert_eq!(lists.len(), 1);
        let ids: Vec<&str> = lists[0].iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["tower1", "tower2", "drone1"]);
        assert_eq!(lists[0][2].fps, Some(1.0));
        // The engine gets the real URL; nothing shown does.
        match &lists[0][2].source {
            lookout_config::cameras::SourceConfig::Rtsp { url, .. } => {
                assert_eq!(url.value(), "rtsp://pilot:s3cret@10.1.2.3:554/live")
            }
            other => panic!("{other:?}"),
        }
    }
    let cams = srv.cameras();
    let d = cams.iter().find(|c| c["id"] == "drone1").unwrap();
    assert_eq!(d["origin"], "api");
    assert_eq!(d["name"], "Drone 1");
    assert_eq!(
        d["config"]["source"]["url"],
        "rtsp://pilot:***@10.1.2.3:554/live"
    );
    assert_eq!(cams[0]["origin"], "file");
    assert_eq!(cams[0]["overlay"], Value::Null);

    // A file camera: edited (fps) and disabled; the patch is relative to the file.
    let (st, v) = srv.call(
        "PATCH",
        "/api/cameras/tower2",
        ADMIN,
        Some(json!({"patch": {"fps": 0.5}, "comment": "slower"})),
    );
    assert_eq!(st, 200, "{v}");
    let (st, v) = srv.call(
        "PATCH",
        "/api/cameras/tower2",
        ADMIN,
        Some(json!({"patch": {"enabled": false}, "comment": "lens broken"})),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["live"]["stopped"], json!(["tower2"]), "{v}");
    assert_eq!(v["origin"], "file");
    let last = rec.lists.lock().unwrap().last().cloned().unwrap();
    let t2 = last.iter().find(|c| c.id == "tower2").unwrap();
    assert!(!t2.enabled);
    assert_eq!(t2.fps, Some(0.5));
    let cams = srv.cameras();
    let t2 = cams.iter().find(|c| c["id"] == "tower2").unwrap();
    assert_eq!(t2["enabled"], false);
    assert_eq!(t2["overlay"], json!({"enabled": false, "fps": 0.5}));
    // A bad edit names the file camera's index.
    let (st, v) = srv.call(
        "PATCH",
        "/api/cameras/tower2",
        ADMIN,
        Some(json!({"patch": {"geo": {"lat": 91}}})),
    );
    assert_eq!(st, 422, "{v}");
    assert_eq!(field_paths(&v), ["cameras[1].geo.lat"], "{v}");
    let (st, _) = srv.call(
        "PATCH",
        "/api/cameras/ghost",
        ADMIN,
        Some(json!({"patch": {"fps": 1}})),
    );
    assert_eq!(st, 404);

    // A zone drawn on the API camera (through the rules API) makes it impossible to remove
    // without breaking the rules; a file camera is never removed.
    let (st, v) = srv.call(
        "PATCH",
        "/api/config/rules",
        ADMIN,
        Some(json!({"patch": {"cameras": {"drone1": {"zones": [
            {"name": "pad", "polygon": [[0.1, 0.1], [0.4, 0.1], [0.4, 0.4]]}
        ]}}}})),
    );
    assert_eq!(st, 200, "{v}");
    let (st, v) = srv.call("DELETE", "/api/cameras/drone1", ADMIN, None);
    assert_eq!(st, 422, "{v}");
    assert!(
        field_paths(&v)
            .iter()
            .any(|p| p.starts_with("rules.cameras")),
        "{v}"
    );
    let (st, v) = srv.call("DELETE", "/api/cameras/tower1", ADMIN, None);
    assert_eq!(st, 409, "{v}");

    // The audit trail: each change with its author, comment and action; no password.
    let (st, hist) = srv.call("GET", "/api/config/history", VIEWER, None);
    assert_eq!(st, 200);
    let cams_hist: Vec<&Value> = hist
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["section"] == "cameras")
        .collect();
    assert_eq!(cams_hist.len(), 3, "{hist}");
    assert_eq!(cams_hist[0]["author"], "root");
    assert_eq!(cams_hist[0]["comment"], "lens broken");
    assert_eq!(cams_hist[0]["body"]["change"]["action"], "disable");
    assert_eq!(cams_hist[2]["version"].as_i64(), Some(v1));
    assert_eq!(cams_hist[2]["body"]["change"]["action"], "add");
    assert!(!hist.to_string().contains("s3cret"), "{hist}");
    let (_, cfg) = srv.call("GET", "/api/config", VIEWER, None);
    assert_eq!(cfg["cameras_overlay"]["applied"], true, "{cfg}");
    let changed: Vec<&str> = cfg["cameras_overlay"]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        changed,
        [
            "cameras.tower2.enabled",
            "cameras.tower2.fps",
            "cameras.drone1"
        ]
    );

    // Without the zone the API camera can be removed.
    let (st, v) = srv.call(
        "PATCH",
        "/api/config/rules",
        ADMIN,
        Some(json!({"patch": {"cameras": {"drone1": null}}})),
    );
    assert_eq!(st, 200, "{v}");
    let (st, v) = srv.call("DELETE", "/api/cameras/drone1", ADMIN, None);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["live"]["stopped"], json!(["drone1"]), "{v}");
    assert_eq!(srv.cameras().len(), 2);
    drop(srv);

    // A new server over the same store (no camera control: changes apply at the next
    // start) runs the stored cameras from the start.
    let srv = start(dir.path(), None);
    let running: Vec<(String, bool)> = srv
        .state
        .config()
        .cameras
        .iter()
        .map(|c| (c.id.clone(), c.enabled))
        .collect();
    assert_eq!(
        running,
        [("tower1".to_string(), true), ("tower2".to_string(), false)]
    );
    let (st, v) = srv.call(
        "PATCH",
        "/api/cameras/tower2",
        ADMIN,
        Some(json!({"patch": {"enabled": true}})),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["live"]["applied"], false, "{v}");
    assert!(v["live"]["message"]
        .as_str()
        .unwrap()
        .contains("next start"));
    assert!(srv.state.config().cameras[1].enabled);
}
