//! `/metrics` of the real binary after a short real run, checked by Prometheus's own linter
//! (`promtool check metrics`, Debian package `prometheus`): a looped file camera through the
//! real person model, a UDP camera nobody sends to (down), a FIRMS API feed answered by a
//! local server and one whose server refuses connections, and two file sinks. Every
//! registered histogram must have observations, the camera `up` gauges must tell the live
//! camera from the silent one, and the FIRMS counters must count the good and the failed
//! polls per feed. Incident clips are on, so the clip writer's counters are exported.

mod common;
use common::{repo, shared};

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Engine(Child);
impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Answers every GET on 127.0.0.1 with the Rhodes FIRMS archive (a bounded number of times).
fn firms_server() -> String {
    let body = std::fs::read(shared().join("hotspots/firms_viirs_snpp_archive_rhodes_2023-07.csv"))
        .expect("the Rhodes FIRMS archive in the shared data");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming().take(60) {
            let Ok(mut s) = stream else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&body);
        }
    });
    format!("http://{addr}")
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free UDP port")
}

fn get_metrics(addr: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    match text.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.1 200") => Ok(body.to_string()),
        _ => Err(std::io::Error::other(format!("/metrics: {text:.300}"))),
    }
}

/// `name{labels}` → value, for every sample line.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// Every histogram family with its `_count` series.
fn histogram_counts(text: &str) -> BTreeMap<String, Vec<(String, f64)>> {
    let s = samples(text);
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" histogram"))
        .map(|name| {
            let prefix = format!("{name}_count");
            let series = s
                .iter()
                .filter(|(k, _)| {
                    k.strip_prefix(&prefix)
                        .is_some_and(|rest| rest.is_empty() || rest.starts_with('{'))
                })
                .map(|(k, v)| (k.clone(), *v))
                .collect();
            (name.to_string(), series)
        })
        .collect()
}

#[test]
fn metrics_of_a_real_run_pass_promtool_and_every_histogram_is_fed() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let house = shared().join("datasets/furg-house6/furg_house6.mp4");
    let config = tmp.path().join("metrics.toml");
    let firms = firms_server();
    let dead = closed_port();
    std::fs::write(
        &config,
        format!(
            r#"
[engine]
shutdown_deadline_s = 10

[server]
port = 0

[ingest]
fps = 4
stall_timeout_s = 2

[inference]
workers = 1
intra_threads = 1
max_batch = 2
max_wait_ms = 20

[models.person]
manifest = "{manifest}"

[[cameras]]
id = "house"
source = {{ kind = "file", path = "{house}", loop = true }}
models = ["person"]

[[cameras]]
id = "silent"
source = {{ kind = "udp_ts", port = {udp}, address = "127.0.0.1" }}
models = ["person"]

[fusion]
hotspots = [
    {{ kind = "firms_api", base_url = "{firms}", map_key = "testkey0123", source = "VIIRS_SNPP_NRT", bbox = [27.6, 35.8, 28.3, 36.5], days = 2, interval_s = 1, timeout_s = 2 }},
    {{ kind = "firms_api", base_url = "http://127.0.0.1:{dead}", map_key = "testkey0123", source = "MODIS_NRT", bbox = [27.6, 35.8, 28.3, 36.5], interval_s = 1, timeout_s = 2 }},
]

[alerts.clips]
enabled = true
ring_mb = 8

[[alerts.sinks]]
kind = "jsonl"
name = "file"
path = "alerts.jsonl"

[[alerts.sinks]]
kind = "cap"
name = "cap"
dir = "cap"
"#,
            manifest = repo().join("models/person-nanodet.toml").display(),
            house = house.display(),
            udp = free_udp_port(),
        ),
    )
    .expect("write config");

    let mut child = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .arg("run")
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(tmp.path().join("data"))
        .env("LOOKOUT_SHARED", shared())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(
            std::fs::File::create(tmp.path().join("lookout.log")).expect("log file"),
        ))
        .spawn()
        .expect("lookout starts");
    let stdout = child.stdout.take().expect("stdout");
    let _engine = Engine(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.split("http://").nth(1) {
                let _ = tx.send(url.trim_end_matches('/').to_string());
            }
        }
    });
    let log = tmp.path().join("lookout.log");
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|e| {
            panic!(
                "the engine prints its UI URL ({e}); its log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });

    // Scrape until the run has fed everything this test expects (bounded).
    let ready = |t: &str| {
        let s = samples(t);
        let v = |k: &str| s.get(k).copied().unwrap_or(-1.0);
        histogram_counts(t)
            .values()
            .all(|series| !series.is_empty() && series.iter().all(|(_, n)| *n > 0.0))
            && v("lookout_camera_up{camera=\"house\"}") == 1.0
            && v("lookout_camera_frames_analysed_total{camera=\"house\"}") >= 4.0
            && v("lookout_firms_poll_successes_total{feed=\"fusion.hotspots[0]\",source=\"VIIRS_SNPP_NRT\"}") >= 1.0
            && v("lookout_firms_poll_failures_total{feed=\"fusion.hotspots[1]\",source=\"MODIS_NRT\"}") >= 1.0
    };
    let start = Instant::now();
    let mut text = String::new();
    while start.elapsed() < Duration::from_secs(45) {
        if let Ok(t) = get_metrics(&addr) {
            text = t;
            if ready(&text) {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(ready(&text), "the run did not feed every metric:\n{text}");

    // Prometheus's own parser and linter accept the exposition as it is served.
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs (Debian package prometheus; scripts/setup.sh installs it)");
    promtool
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = promtool.wait_with_output().expect("promtool finishes");
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n--- metrics:\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // The histograms this run must have registered and fed, in seconds where they time.
    let hists = histogram_counts(&text);
    for family in [
        "lookout_inference_latency_seconds",
        "lookout_inference_batch_size",
        "lookout_inference_group_latency_seconds",
    ] {
        assert!(hists.contains_key(family), "{family} missing:\n{text}");
    }
    assert!(
        hists.keys().all(|k| !k.ends_with("_ms")),
        "latency is exported in seconds: {:?}",
        hists.keys()
    );
    let s = samples(&text);
    assert!(
        s.get("lookout_inference_latency_seconds_count{model=\"person\"}")
            .is_some_and(|n| *n > 0.0),
        "{text}"
    );
    // The silent camera is down; the live one up.
    assert_eq!(s.get("lookout_camera_up{camera=\"silent\"}"), Some(&0.0));
    // Drops are split by reason, every reason listed per camera.
    for reason in ["fps_cap", "stale", "ptz_moving", "reordered", "hub_closed"] {
        assert!(
            s.contains_key(&format!(
                "lookout_camera_frames_dropped_total{{camera=\"house\",reason=\"{reason}\"}}"
            )),
            "{reason}: {text}"
        );
    }
    // The clip writer's counters, drops split by reason.
    for k in [
        "lookout_clips_requested_total",
        "lookout_clips_written_total",
        "lookout_clips_reencoded_total",
        "lookout_clips_failed_total",
        "lookout_clips_written_bytes_total",
        "lookout_clips_dropped_total{reason=\"queue_full\"}",
        "lookout_clips_dropped_total{reason=\"no_ring\"}",
        "lookout_clips_dropped_total{reason=\"stopping\"}",
    ] {
        assert!(s.contains_key(k), "{k}: {text}");
    }
    // The build is identified; the sinks' outbox gauges are there.
    assert!(
        s.keys()
            .any(|k| k.starts_with("lookout_build_info{version=\"") && s[k] == 1.0),
        "{text}"
    );
    for sink in ["file", "cap"] {
        for g in ["lookout_outbox_backlog", "lookout_outbox_dead_letters"] {
            assert!(
                s.contains_key(&format!("{g}{{sink=\"{sink}\"}}")),
                "{g} {sink}: {text}"
            );
        }
    }
}
