//! End to end through the real binary: real files, a real UDP MPEG-TS stream from ffmpeg,
//! real GStreamer decoding, real ONNX Runtime with the NanoDet person model, rules and
//! fusion, and a clean shutdown on SIGTERM.

mod common;
use common::{pedestrian_slideshow, repo, shared};

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free UDP port")
}

fn start_engine(config: &Path, data: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_lookout"))
        .arg("run")
        .arg("--config")
        .arg(config)
        .arg("--data-dir")
        .arg(data)
        .env("LOOKOUT_SHARED", shared())
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(data.with_extension("log")).expect("log file"),
        ))
        .spawn()
        .expect("lookout starts")
}

#[derive(Default, Debug)]
struct PerCamera {
    frames: usize,
    with_detections: usize,
    last_capture: Option<chrono::DateTime<chrono::Utc>>,
    statuses: Vec<String>,
}

fn read_log(path: &Path) -> BTreeMap<String, PerCamera> {
    let mut map: BTreeMap<String, PerCamera> = BTreeMap::new();
    let text = std::fs::read_to_string(path).unwrap_or_default();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let cam = v["camera"].as_str().unwrap_or_default().to_string();
        let e = map.entry(cam).or_default();
        match v["type"].as_str() {
            Some("frame") => {
                e.frames += 1;
                let confident = |d: &serde_json::Value| {
                    d["class"] == "person" && d["score"].as_f64().is_some_and(|s| s >= 0.5)
                };
                if v["detections"]
                    .as_array()
                    .is_some_and(|d| d.iter().any(confident))
                {
                    e.with_detections += 1;
                }
                if let Some(t) = v["captured_at"].as_str().and_then(|t| t.parse().ok()) {
                    e.last_capture =
                        Some(e.last_capture.map_or(t, |l: chrono::DateTime<_>| l.max(t)));
                }
            }
            Some("health") => e.statuses.push(
                v["status"]["state"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            ),
            _ => {}
        }
    }
    map
}

#[test]
fn four_cameras_end_to_end_and_one_source_dies() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let clip = pedestrian_slideshow(tmp.path());
    let house = shared().join("datasets/furg-house6/furg_house6.mp4");
    let port = free_udp_port();
    let config = tmp.path().join("e2e.toml");
    let manifest = repo().join("models/person-nanodet.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[engine]
detections_log = true
shutdown_deadline_s = 10

[server]
port = 0

[ingest]
fps = 2
stall_timeout_s = 3
backoff_initial_s = 0.5
backoff_max_s = 2

[models.person]
manifest = "{manifest}"

[[cameras]]
id = "people"
source = {{ kind = "file", path = "{clip}", loop = true }}
models = ["person"]

[[cameras]]
id = "house-a"
source = {{ kind = "file", path = "{house}", loop = true }}
models = ["person"]

[[cameras]]
id = "house-b"
source = {{ kind = "file", path = "{house}", loop = true }}
models = ["person"]

[[cameras]]
id = "drone"
source = {{ kind = "udp_ts", port = {port}, address = "127.0.0.1" }}
models = ["person"]
"#,
            manifest = manifest.display(),
            clip = clip.display(),
            house = house.display(),
        ),
    )
    .expect("write config");

    let data = tmp.path().join("data");
    let mut engine = start_engine(&config, &data);

    // A drone streams H.264 in MPEG-TS over UDP for a while, then its link dies.
    let mut drone = Command::new("ffmpeg")
        .args([
            "-loglevel",
            "error",
            "-re",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=640x360:rate=25",
            "-t",
            "30",
            "-c:v",
            "libx264",
            "-g",
            "25",
            "-tune",
            "zerolatency",
            "-f",
            "mpegts",
        ])
        .arg(format!("udp://127.0.0.1:{port}?pkt_size=1316"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ffmpeg sender starts");

    let log = data.join("detections.jsonl");
    let t0 = Instant::now();
    let wait_for = |pred: &dyn Fn(&BTreeMap<String, PerCamera>) -> bool, limit: Duration| -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if pred(&read_log(&log)) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        false
    };
    let all_four = wait_for(
        &|m| {
            ["people", "house-a", "house-b", "drone"]
                .iter()
                .all(|c| m.get(*c).is_some_and(|p| p.frames >= 3))
        },
        Duration::from_secs(60),
    );
    let before = read_log(&log);
    assert!(
        all_four,
        "every camera should deliver analysed frames: {before:?}"
    );

    // Kill the drone's stream.
    let _ = drone.kill();
    let _ = drone.wait();
    let killed_at = chrono::Utc::now();
    let frames_at_kill: BTreeMap<String, usize> =
        before.iter().map(|(k, v)| (k.clone(), v.frames)).collect();

    // The others keep going while the drone camera is retried.
    let ok = wait_for(
        &|m| {
            ["people", "house-a", "house-b"].iter().all(|c| {
                m.get(*c).is_some_and(|p| {
                    p.frames >= frames_at_kill.get(*c).copied().unwrap_or(0) + 8
                        && p.last_capture
                            .is_some_and(|t| t > killed_at + chrono::Duration::seconds(3))
                })
            }) && m
                .get("drone")
                .is_some_and(|p| p.statuses.iter().any(|s| s == "retrying"))
        },
        Duration::from_secs(45),
    );
    let after = read_log(&log);
    assert!(
        ok,
        "healthy cameras must keep delivering while the drone is retried: {after:?}"
    );

    // Real people were detected on the people clip.
    assert!(
        after["people"].with_detections >= 3,
        "the person model should find people: {:?}",
        after["people"]
    );

    // SIGTERM: a clean shutdown within the deadline.
    let pid = engine.id().to_string();
    let stop_at = Instant::now();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let status = loop {
        if let Some(s) = engine.try_wait().expect("wait") {
            break s;
        }
        assert!(
            stop_at.elapsed() < Duration::from_secs(15),
            "shutdown took too long"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "clean exit after SIGTERM, got {status:?}");
    eprintln!(
        "e2e: {:.1} s total, shutdown in {:.2} s",
        t0.elapsed().as_secs_f64(),
        stop_at.elapsed().as_secs_f64()
    );
}
