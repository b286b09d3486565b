//! Durable delivery through a real crash: the engine raises incidents while its webhook
//! receiver is down, is killed with SIGKILL with a backlog in its outbox, and is started
//! again once the receiver is up: every queued revision is delivered, with its idempotency
//! key, and nothing is lost.

mod common;
use common::shared;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lookout_alerts::store::{SinkSpec, Store};

fn start(config: &Path, data: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(["run", "--config"])
        .arg(config)
        .arg("--data-dir")
        .arg(data)
        .env("LOOKOUT_SHARED", shared())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("lookout starts")
}

/// Accepts webhook POSTs and records their idempotency keys; answers 200.
fn receiver(listener: TcpListener, keys: Arc<Mutex<Vec<String>>>) {
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut len = 0usize;
            let mut key = None;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let l = line.trim_end();
                if l.is_empty() {
                    break;
                }
                if let Some((k, v)) = l.split_once(':') {
                    match k.trim().to_ascii_lowercase().as_str() {
                        "content-length" => len = v.trim().parse().unwrap_or(0),
                        "idempotency-key" => key = Some(v.trim().to_string()),
                        _ => {}
                    }
                }
            }
            let mut body = vec![0u8; len];
            let _ = reader.read_exact(&mut body);
            if let Some(k) = key {
                keys.lock().expect("keys").push(k);
            }
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
}

fn pending_keys(db: &Path) -> BTreeSet<String> {
    let store = Store::open(
        db,
        vec![SinkSpec {
            name: "hook".into(),
            kinds: vec![],
            min_severity: None,
            camera_status: false,
            events: false,
        }],
        600.0,
    )
    .expect("store opens");
    store
        .pending("hook", 10_000)
        .expect("pending")
        .into_iter()
        .map(|p| p.key)
        .collect()
}

#[test]
fn sigkill_with_a_backlog_then_restart_delivers_everything() {
    let tmp = tempfile::tempdir().expect("temp dir");
    // Reserve a port, then leave it closed: the receiver is "down".
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let config = tmp.path().join("crash.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[models.smoke-fire]
manifest = "{manifest}"

[[cameras]]
id = "house6"
source = {{ kind = "file", path = "{video}", loop = true }}
fps = 4
models = ["smoke-fire"]

[alerts]
snapshots = false

[[alerts.sinks]]
kind = "webhook"
name = "hook"
url = "http://127.0.0.1:{port}/hook"
timeout_s = 1
retry = {{ initial_s = 0.2, max_s = 0.5 }}

[server]
enabled = false

# Every fusion revision is a notification here, so that a backlog builds up quickly.
[fusion]
update_interval_s = 0
"#,
            manifest = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../models/smoke-fire.toml")
                .display(),
            video = shared()
                .join("datasets/furg-house6/furg_house6.mp4")
                .display(),
        ),
    )
    .expect("config");
    let data = tmp.path().join("data");
    let db = data.join("lookout.db");

    // Run 1: incidents pile up in the outbox; then SIGKILL.
    let mut engine = start(&config, &data);
    let t0 = Instant::now();
    while !data.join("incidents.jsonl").exists()
        || std::fs::read_to_string(data.join("incidents.jsonl"))
            .unwrap_or_default()
            .lines()
            .count()
            < 2
    {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no incident within 60 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(1));
    engine.kill().expect("SIGKILL");
    let _ = engine.wait();
    let backlog = pending_keys(&db);
    assert!(
        !backlog.is_empty(),
        "the killed engine should leave a backlog"
    );

    // Run 2: the receiver is up; the backlog must drain.
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("receiver binds its port");
    let keys = Arc::new(Mutex::new(Vec::new()));
    receiver(listener, keys.clone());
    let mut engine = start(&config, &data);
    let t1 = Instant::now();
    let delivered = loop {
        let got: BTreeSet<String> = keys.lock().expect("keys").iter().cloned().collect();
        if backlog.is_subset(&got) {
            break got;
        }
        assert!(
            t1.elapsed() < Duration::from_secs(60),
            "backlog not delivered: missing {:?}",
            backlog.difference(&got).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = Command::new("kill")
        .args(["-TERM", &engine.id().to_string()])
        .status();
    let _ = engine.wait();
    // Idempotency keys are `<incident id>:<revision>`.
    assert!(delivered.iter().all(|k| k
        .rsplit_once(':')
        .is_some_and(|(_, r)| r.parse::<u64>().is_ok())));
    eprintln!(
        "crash: {} queued at SIGKILL, all delivered after restart",
        backlog.len()
    );
}
