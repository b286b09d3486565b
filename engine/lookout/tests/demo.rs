//! The embedded default config (the README's demo) through the real binary: the two Rhodes
//! towers replay footage "as of" 2023-07-22 11:27 UTC beside live cameras, and the operator
//! must see one fire, located by the towers' bearings and corroborated by the real VIIRS
//! pass of 11:28 (a `camera+satellite` incident), within a minute or two. Then the operator's
//! desk in headless Chromium: the fire in the queue, acknowledged by the demo operator, drawn
//! on the map with its bearings and the pass's hotspots, and a threshold tuned on the house
//! camera's recorded detections (the count shown equals the replay API's; "apply" changes
//! /api/config). Screenshots go to tests/artifacts/demo-*.png. Incident clips are on in the
//! demo: the fire (one incident of both towers) has a clip per tower, served by the API,
//! and ffprobe finds each a valid MP4 of the towers' H.264 as it came (no re-encode: the
//! source's own packets), as long as its description says; the clip counters moved.

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

    let cameras: Vec<String> = fire["cameras"]
        .as_array()
        .expect("cameras")
        .iter()
        .filter_map(|c| c.as_str().map(String::from))
        .collect();
    incident_clips(&addr, &id, dir.path(), &cameras);
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

fn ffprobe(path: &Path, what: &[&str]) -> Value {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-of", "json"])
        .args(what)
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(
        out.status.success(),
        "ffprobe {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("ffprobe writes JSON")
}

/// Sizes of the video packets, in decode order.
fn packet_sizes(path: &Path) -> Vec<u64> {
    ffprobe(
        path,
        &["-select_streams", "v:0", "-show_entries", "packet=size"],
    )["packets"]
        .as_array()
        .expect("packets")
        .iter()
        .filter_map(|p| p["size"].as_str().and_then(|s| s.parse().ok()))
        .collect()
}

/// The fire's clips through the API, one per tower camera (fusion joined both towers'
/// events into this incident): each checked with ffprobe against the source and its
/// description; the old URL serves the first camera's; the clip counters in /metrics.
fn incident_clips(addr: &str, id: &str, dir: &Path, cameras: &[String]) {
    let sock: SocketAddr = addr.parse().expect("UI address");
    let (first, bytes) = incident_clip(addr, id, dir, None);
    let deadline = Instant::now() + Duration::from_secs(60);
    let listed = loop {
        let list = http(
            sock,
            "GET",
            &format!("/api/incidents/{id}/clips"),
            None,
            None,
        )
        .json();
        let listed: Vec<String> = list["clips"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| c["camera"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        if listed.len() >= cameras.len() {
            break listed;
        }
        assert!(
            Instant::now() < deadline,
            "one clip per camera of {cameras:?} within 60 s: {list:#}"
        );
        std::thread::sleep(Duration::from_secs(1));
    };
    assert_eq!(listed[0], first, "the first camera's clip is listed first");
    let mut sorted = listed.clone();
    sorted.sort();
    let mut want = cameras.to_vec();
    want.sort();
    assert_eq!(sorted, want, "one clip per camera");
    let mut total = bytes;
    for cam in &listed[1..] {
        let (c, n) = incident_clip(addr, id, dir, Some(cam));
        assert_eq!(&c, cam);
        total += n;
    }
    let by_camera = http(
        sock,
        "GET",
        &format!("/api/incidents/{id}/clip?camera={first}"),
        None,
        None,
    );
    let old = http(
        sock,
        "GET",
        &format!("/api/incidents/{id}/clip"),
        None,
        None,
    );
    assert_eq!(
        (old.status, &old.body),
        (200, &by_camera.body),
        "the old URL serves the first camera's clip"
    );

    // The counters moved.
    let m = http(sock, "GET", "/metrics", None, None).text();
    let value = |k: &str| -> f64 {
        m.lines()
            .find_map(|l| l.strip_prefix(k)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(-1.0)
    };
    let n = cameras.len() as f64;
    assert!(value("lookout_clips_written_total") >= n, "{m}");
    assert!(value("lookout_clips_requested_total") >= n, "{m}");
    assert_eq!(value("lookout_clips_reencoded_total"), 0.0, "{m}");
    assert_eq!(value("lookout_clips_failed_total"), 0.0, "{m}");
    assert!(
        value("lookout_clips_written_bytes_total") >= total as f64,
        "{m}"
    );
}

/// One clip of the fire (`camera`, else the first camera's) through the API, checked with
/// ffprobe against the source file and its description: (camera, bytes).
fn incident_clip(addr: &str, id: &str, dir: &Path, camera: Option<&str>) -> (String, usize) {
    let sock: SocketAddr = addr.parse().expect("UI address");
    let q = camera.map(|c| format!("?camera={c}")).unwrap_or_default();
    // Written `post_s` (10 s) of replay after the first sighting: long before the pass
    // corroborated the fire, but wait (bounded) rather than assume.
    let deadline = Instant::now() + Duration::from_secs(60);
    let boxes = loop {
        let r = http(
            sock,
            "GET",
            &format!("/api/incidents/{id}/clip/boxes{q}"),
            None,
            None,
        );
        if r.status == 200 {
            break r.json();
        }
        assert!(
            Instant::now() < deadline,
            "no clip for {id} within 60 s: {} {}",
            r.status,
            r.text()
        );
        std::thread::sleep(Duration::from_secs(1));
    };
    let info = &boxes["clip"];
    assert!(
        info["camera"]
            .as_str()
            .is_some_and(|c| c.starts_with("tower-")),
        "{info:#}"
    );
    assert_eq!(info["codec"], "video/x-h264", "{info:#}");
    assert_eq!(info["remuxed"], true, "H.264 is not re-encoded: {info:#}");
    assert!(
        boxes["frames"].as_array().is_some_and(|f| !f.is_empty()),
        "the detector's boxes during the clip: {boxes:#}"
    );
    let r = http(
        sock,
        "GET",
        &format!("/api/incidents/{id}/clip{q}"),
        None,
        None,
    );
    assert_eq!(r.status, 200);
    assert!(
        r.headers
            .to_ascii_lowercase()
            .contains("content-type: video/mp4"),
        "{}",
        r.headers
    );
    let camera = info["camera"].as_str().unwrap_or_default().to_string();
    if let Some(c) = camera_asked(&q) {
        assert_eq!(camera, c, "the camera asked for");
    }
    let clip = dir.join(format!("fire-clip-{camera}.mp4"));
    std::fs::write(&clip, &r.body).expect("write the clip");

    // A valid MP4 of H.264 as long as its description says.
    let probe = ffprobe(&clip, &["-show_streams", "-show_format"]);
    assert!(
        probe["format"]["format_name"]
            .as_str()
            .is_some_and(|f| f.contains("mp4")),
        "{probe:#}"
    );
    let streams = probe["streams"].as_array().expect("streams");
    assert_eq!(streams.len(), 1, "video only: {probe:#}");
    assert_eq!(streams[0]["codec_name"], "h264", "{probe:#}");
    let duration: f64 = probe["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .expect("duration");
    let said = info["duration_s"].as_f64().expect("duration_s");
    assert!(
        (duration - said).abs() < 0.2,
        "ffprobe {duration} s, the description {said} s"
    );
    // From the key frame at or before first sighting - 5 s (or the video's first) to
    // first sighting + 10 s, or to the end of the file's pass when the replay looped first.
    let at: chrono::DateTime<chrono::Utc> = info["at"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("at");
    let start: chrono::DateTime<chrono::Utc> = info["start"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("start");
    let lead = (at - start).num_milliseconds() as f64 / 1000.0;
    assert!(
        (0.0..=5.0 + 3.1).contains(&lead),
        "the clip starts {lead} s before the first sighting (pre_s 5, a key frame every 3 s)"
    );
    assert!(
        duration > lead && duration <= lead + 10.2,
        "{duration} s for a clip starting {lead} s before the first sighting"
    );
    assert!(duration >= 5.0, "a clip worth watching: {duration} s");

    // Not re-encoded: the clip's packets are the source file's, byte counts in order, and
    // its profile and size are the source's.
    let source = shared().join("datasets/furg-house6/furg_house6.mp4");
    let src = ffprobe(&source, &["-show_streams", "-select_streams", "v:0"]);
    for k in ["profile", "width", "height"] {
        assert_eq!(streams[0][k], src["streams"][0][k], "{k}");
    }
    let theirs = packet_sizes(&source);
    let ours = packet_sizes(&clip);
    assert!(ours.len() >= 100, "{} packets", ours.len());
    // The first key frame may carry the stream's parameter sets in band (a few dozen bytes
    // more); every later packet is the source's own.
    let head = &ours[1..61];
    let pos = theirs
        .windows(head.len())
        .position(|w| w == head)
        .unwrap_or_else(|| {
            panic!(
                "the clip's packets after its first are a run of the source's: {:?} in {:?}",
                &ours[..20],
                &theirs[..200]
            )
        });
    assert!(
        pos >= 1 && ours[0] >= theirs[pos - 1] && ours[0] - theirs[pos - 1] <= 64,
        "the first packet is the source's key frame ({} vs {} bytes)",
        ours[0],
        theirs[pos.saturating_sub(1)]
    );

    (camera, r.body.len())
}

fn camera_asked(q: &str) -> Option<&str> {
    q.strip_prefix("?camera=")
}
