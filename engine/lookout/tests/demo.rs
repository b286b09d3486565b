//! The embedded default config (the README's demo) through the real binary: the two Rhodes
//! towers replay footage "as of" 2023-07-22 11:27 UTC beside live cameras, and the operator
//! must see one fire, located by the towers' bearings and corroborated by the real VIIRS
//! pass of 11:28 (a `camera+satellite` incident), within a minute or two. Then the operator's
//! desk in headless Chromium: the fire in the queue, acknowledged by the demo operator, drawn
//! on the map with its bearings and the pass's hotspots, and a threshold tuned on the house
//! camera's recorded detections (the count shown equals the replay API's; "apply" changes
//! /api/config). Screenshots go to tests/artifacts/demo-*.png.

mod common;
use common::{person_clip, repo, shared};

#[path = "../../server/tests/common/client.rs"]
mod client;
use client::{http, Driver};

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The demo operator's token in this test (the config reads `$LOOKOUT_TOKEN`).
const TOKEN: &str = "demo-test-token-0001";

/// Centroid of the 2023-07-22 11:28 UTC Suomi-NPP pass over Rhodes.
const PASS_LAT: f64 = 36.11511;
const PASS_LON: f64 = 27.97596;

/// The embedded default, made runnable from a temporary directory: an ephemeral UI port,
/// absolute model manifests, and the pedestrian clip the run script would build.
fn demo_config(dir: &Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(repo().join("configs/default.toml")).expect("default");
    let models = repo().join("models");
    let clip = person_clip(dir);
    let mut replaced = 0;
    let text: String = text
        .lines()
        .map(|l| {
            let out = if l.trim() == "port = 8080" {
                "port = 0".to_string()
            } else if l.contains("manifest = \"../models/") {
                l.replace("\"../models/", &format!("\"{}/", models.display()))
            } else if l.contains("../data/samples/plant-gate.mkv") {
                l.replace(
                    "../data/samples/plant-gate.mkv",
                    &clip.display().to_string(),
                )
            } else {
                return l.to_string();
            };
            replaced += 1;
            out
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(
        replaced, 4,
        "the default config changed shape; update this test"
    );
    let path = dir.join("demo.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

fn http_get(addr: &str, path: &str) -> std::io::Result<Value> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    serde_json::from_str(body)
        .map_err(|e| std::io::Error::other(format!("{path}: {e}: {body:.200}")))
}

fn incidents(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.clone(),
        _ => v["incidents"].as_array().cloned().unwrap_or_default(),
    }
}

fn is_tower_fire(i: &Value) -> bool {
    i["kind"] == "fire"
        && i["cameras"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c.as_str().is_some_and(|c| c.starts_with("tower-")))
        })
}

struct Engine(Child);
impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn embedded_demo_shows_one_satellite_corroborated_tower_fire() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = demo_config(dir.path());
    let data = dir.path().join("data");
    let mut child = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .arg("run")
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(&data)
        .env("LOOKOUT_SHARED", shared())
        .env("LOOKOUT_TOKEN", TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::from(
            std::fs::File::create(dir.path().join("lookout.log")).expect("log file"),
        ))
        .spawn()
        .expect("lookout starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut engine = Engine(child);

    // "Lookout is running: open http://127.0.0.1:PORT/"
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.split("http://").nth(1) {
                let _ = tx.send(url.trim_end_matches('/').to_string());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the engine prints its UI URL");

    // Poll the operator's API until the towers' fire is corroborated (bounded).
    let deadline = Instant::now() + Duration::from_secs(150);
    let mut seen_multi_camera = false;
    let fire = loop {
        assert!(
            engine.0.try_wait().expect("wait").is_none(),
            "the engine exited early; see {}",
            dir.path().join("lookout.log").display()
        );
        let list = http_get(&addr, "/api/incidents?kind=fire&limit=1000")
            .map(|v| incidents(&v))
            .unwrap_or_default();
        let found = list.iter().find(|i| {
            is_tower_fire(i)
                && i["confidence"] == "camera+satellite"
                && i["cameras"].as_array().is_some_and(|c| c.len() == 2)
        });
        if let Some(f) = found {
            break f.clone();
        }
        seen_multi_camera |= list
            .iter()
            .any(|i| is_tower_fire(i) && i["confidence"] == "multi-camera");
        assert!(
            Instant::now() < deadline,
            "no camera+satellite tower fire within 150 s; tower incidents: {:#}",
            Value::Array(list.into_iter().filter(is_tower_fire).collect())
        );
        std::thread::sleep(Duration::from_secs(2));
    };

    // The towers' bearings located the fire before the replay reached the 11:28 pass.
    assert!(seen_multi_camera, "a multi-camera incident came first");

    // The full incident: located by the towers' bearings, near the satellite pass.
    let id = fire["id"].as_str().expect("id").to_string();
    let full = http_get(&addr, &format!("/api/incidents/{id}")).expect("incident");
    let inc = if full.get("incident").is_some() {
        full["incident"].clone()
    } else {
        full
    };
    assert_eq!(inc["location"]["method"], "triangulated", "{inc:#}");
    let (lat, lon) = (
        inc["location"]["point"]["lat"].as_f64().expect("lat"),
        inc["location"]["point"]["lon"].as_f64().expect("lon"),
    );
    let dy = (lat - PASS_LAT) * 111_195.0;
    let dx = (lon - PASS_LON) * 111_195.0 * PASS_LAT.to_radians().cos();
    let off_m = (dx * dx + dy * dy).sqrt();
    assert!(off_m < 2_000.0, "triangulated {off_m:.0} m from the pass");
    assert!(
        inc["hotspots"].as_array().map_or(0, Vec::len) >= 100,
        "the pass's hotspots are attached"
    );

    // One fire, not fragments: no other open tower incident.
    let list = incidents(&http_get(&addr, "/api/incidents?kind=fire&limit=1000").expect("list"));
    let open: Vec<&Value> = list
        .iter()
        .filter(|i| is_tower_fire(i) && i["state"] != "closed")
        .collect();
    assert_eq!(
        open.len(),
        1,
        "one open tower fire: {:#}",
        Value::Array(open.into_iter().cloned().collect())
    );
    // Passes later than the replay are not known yet, older ones are closed: no open
    // satellite-only incident crowds the queue.
    let sat_only: Vec<&Value> = list
        .iter()
        .filter(|i| i["confidence"] == "satellite-only" && i["state"] != "closed")
        .collect();
    assert!(
        sat_only.is_empty(),
        "open satellite-only incidents: {sat_only:#?}"
    );
    // The live house camera's fire is there too, on its own clock, and still open.
    assert!(
        list.iter().any(|i| i["cameras"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c == "house6"))
            && i["state"] != "closed"),
        "the looped house fire is an open incident"
    );

    operators_desk(&addr, &id);

    let pid = engine.0.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let t0 = Instant::now();
    while engine.0.try_wait().expect("wait").is_none() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "clean stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The demo in the operator's browser.
fn operators_desk(addr: &str, id: &str) {
    let sock: SocketAddr = addr.parse().expect("UI address");
    let base = format!("http://{addr}");
    let d = Driver::start();
    d.goto(&format!("{base}/"));
    d.js(&format!(
        "localStorage.setItem('lookout.token', '{TOKEN}'); return true;"
    ));
    d.goto(&format!("{base}/"));
    d.wait(
        "the signed-in demo operator",
        "return document.querySelector('#who').textContent.includes('demo-operator');",
    );
    let row = format!("tr[data-id=\"{id}\"]");
    d.wait(
        "the corroborated fire in the queue",
        &format!(
            "const r = document.querySelector('{row}'); return r && r.textContent.includes('camera+satellite');"
        ),
    );
    d.click(&row);
    d.screenshot("demo-incidents.png");
    d.click(&format!("{row} .act-ack"));
    d.wait(
        "the acknowledged state",
        &format!("const r = document.querySelector('{row} .state'); return r && r.textContent === 'acknowledged';"),
    );
    let detail = http(sock, "GET", &format!("/api/incidents/{id}"), None, None).json();
    assert_eq!(
        detail["transitions"][0]["actor"], "demo-operator",
        "{detail:#}"
    );

    // The map: the towers' fields of view, their bearings, the fire and the pass's hotspots.
    d.click(".tab[data-view=\"map\"]");
    let hotspots = d.wait(
        "the fire, its bearings and the hotspots on the map",
        "const m = document.querySelector('#map'); return m.querySelectorAll('path.incident').length >= 1 && m.querySelectorAll('path.bearing').length >= 2 && m.querySelectorAll('path.hotspot').length;",
    );
    assert!(
        hotspots.as_u64().unwrap_or(0) >= 100,
        "hotspots drawn: {hotspots}"
    );
    d.screenshot("demo-map.png");

    // Tuning on the house camera's recorded fire detections.
    d.click(".tab[data-view=\"tuning\"]");
    d.wait(
        "the camera list",
        "return !!document.querySelector('#tune-camera option[value=\"house6\"]');",
    );
    d.js("const c = document.querySelector('#tune-camera'); c.value = 'house6'; document.querySelector('#tune-class').value = 'fire'; c.dispatchEvent(new Event('change')); return true;");
    let mut counts = Vec::new();
    for threshold in ["0.30", "0.95"] {
        d.js(&format!("const s = document.querySelector('#tune-threshold'); s.value = '{threshold}'; s.dispatchEvent(new Event('input')); return true;"));
        let shown = d.wait(
            "the replay count",
            &format!("const e = document.querySelector('#tune-alarms'); return e.dataset.threshold === '{threshold}' ? e.textContent : '';"),
        );
        let k = d.js("return +document.querySelector('#tune-k').value;");
        let n = d.js("return +document.querySelector('#tune-n').value;");
        let body = json!({"camera": "house6", "class": "fire", "threshold": threshold.parse::<f64>().unwrap_or(0.0), "persistence": {"k": k, "n": n}});
        let api = http(
            sock,
            "POST",
            "/api/tuning/replay",
            None,
            Some(&body.to_string()),
        )
        .json();
        assert!(
            api["frames"].as_u64().unwrap_or(0) > 0,
            "recorded frames: {api}"
        );
        assert_eq!(
            shown.as_str(),
            Some(api["alarms"].to_string().as_str()),
            "UI shows the replay result at {threshold}"
        );
        counts.push(api["alarms"].as_u64().unwrap_or(0));
    }
    assert!(
        counts[0] >= counts[1],
        "a higher threshold never raises more alarms: {counts:?}"
    );
    d.js(
        "document.querySelector('#tune-comment').value = 'demo: fewer house alarms'; return true;",
    );
    d.click("#tune-apply");
    d.wait(
        "the apply confirmation",
        "return document.querySelector('#tune-msg').textContent.includes('Applied');",
    );
    d.screenshot("demo-tuning.png");
    let cfg = http(sock, "GET", "/api/config", None, None).json();
    let t = cfg["rules"]["cameras"]["house6"]["classes"]["fire"]["threshold"]
        .as_f64()
        .unwrap_or(0.0);
    assert!(
        (t - 0.95).abs() < 1e-6,
        "applied threshold in /api/config: {t}"
    );
    assert_eq!(cfg["overlay"]["author"], "demo-operator");
}
