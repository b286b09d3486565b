//! MQTT over TLS through the real binary and a real mosquitto on 127.0.0.1: a test CA made
//! with openssl, a broker that requires client certificates, `mosquitto_sub` (Debian
//! package mosquitto-clients) watching `lookout/#`. The engine's availability topic says
//! `online` while it runs and the broker publishes its last will `offline` when it is
//! killed with -9; camera status arrives retained over the same TLS broker. A config that
//! names a missing CA file is refused with the key and the file.

mod common;
use common::{repo, shared};

#[path = "../../alerts/tests/certs/mod.rs"]
mod certs;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// mosquitto with one TLS listener on 127.0.0.1 that requires a client certificate. `user
/// root` keeps a broker started as root from switching to the `mosquitto` user, which could
/// not read the keys in the private temporary directory (ignored when not root).
fn tls_broker(dir: &Path, port: u16) -> Killed {
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\ncafile {d}/ca.pem\ncertfile {d}/server.pem\n\
             keyfile {d}/server.key\nrequire_certificate true\nallow_anonymous true\n\
             persistence false\nuser root\n",
            d = dir.display()
        ),
    )
    .expect("write mosquitto.conf");
    let bin = ["/usr/sbin/mosquitto", "mosquitto"]
        .into_iter()
        .find(|b| Path::new(b).exists())
        .unwrap_or("mosquitto");
    let child = Command::new(bin)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto (scripts/setup.sh installs it)");
    let end = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < end, "mosquitto did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Killed(child)
}

/// `mosquitto_sub -v` on `topic` over TLS with the client certificate; lines collected.
fn subscribe(dir: &Path, port: u16, topic: &str) -> (Killed, Arc<Mutex<Vec<String>>>) {
    let mut child = Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-q",
            "1",
            "-v",
            "-t",
            topic,
        ])
        .arg("--cafile")
        .arg(dir.join("ca.pem"))
        .arg("--cert")
        .arg(dir.join("client.pem"))
        .arg("--key")
        .arg(dir.join("client.key"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto_sub (Debian package mosquitto-clients, see scripts/setup.sh)");
    let out = child.stdout.take().expect("stdout");
    let lines = Arc::new(Mutex::new(Vec::new()));
    let l = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            l.lock().unwrap().push(line);
        }
    });
    (Killed(child), lines)
}

fn wait_for(
    what: &str,
    lines: &Mutex<Vec<String>>,
    limit: Duration,
    ok: impl Fn(&[String]) -> bool,
) {
    let start = Instant::now();
    loop {
        if ok(&lines.lock().unwrap()) {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "timed out waiting for {what}; mosquitto_sub saw: {:#?}",
            lines.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn config(dir: &Path, port: u16, ca: &str) -> std::path::PathBuf {
    let path = dir.join("mqtt.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[engine]
shutdown_deadline_s = 5

[server]
enabled = false

[models.person]
manifest = "{manifest}"

[[cameras]]
id = "gate"
source = {{ kind = "file", path = "{clip}", loop = true }}
fps = 1
models = ["person"]

[[alerts.sinks]]
kind = "mqtt"
name = "broker"
host = "127.0.0.1"
port = {port}
tls = {{ ca_file = "{ca}", client_cert = "client.pem", client_key = "client.key" }}
retry = {{ initial_s = 0.2, max_s = 1 }}
"#,
            manifest = repo().join("models/person-nanodet.toml").display(),
            clip = shared()
                .join("datasets/furg-house6/furg_house6.mp4")
                .display(),
        ),
    )
    .expect("write config");
    path
}

#[test]
fn availability_over_tls_is_online_then_offline_after_kill_9() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path();
    certs::make_certs(dir);
    certs::make_client_cert(dir, "lookout-engine");
    let port = free_port();
    let _broker = tls_broker(dir, port);
    let (_sub, lines) = subscribe(dir, port, "lookout/#");
    std::thread::sleep(Duration::from_millis(300));

    let cfg = config(dir, port, "ca.pem");
    let engine = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .arg("run")
        .arg("--config")
        .arg(&cfg)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env("LOOKOUT_SHARED", shared())
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(dir.join("lookout.log")).expect("log file"),
        ))
        .spawn()
        .expect("lookout starts");
    let mut engine = Killed(engine);
    let log = || std::fs::read_to_string(dir.join("lookout.log")).unwrap_or_default();

    // Online, and the camera's status delivered (retained) over the same TLS broker.
    let limit = Duration::from_secs(30);
    let start = Instant::now();
    while !lines
        .lock()
        .unwrap()
        .iter()
        .any(|l| l == "lookout/available online")
    {
        assert!(
            start.elapsed() < limit,
            "no `online` on lookout/available; mosquitto_sub saw {:#?}; engine log:\n{}",
            lines.lock().unwrap(),
            log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    wait_for("the camera status", &lines, limit, |l| {
        l.iter()
            .any(|l| l.starts_with("lookout/cameras/gate/status ") && l.contains("running"))
    });

    // kill -9: no clean disconnect, the broker publishes the last will.
    let _ = engine.0.kill();
    let _ = engine.0.wait();
    let killed = Instant::now();
    wait_for(
        "`offline` after kill -9",
        &lines,
        Duration::from_secs(10),
        |l| l.last().is_some_and(|l| l == "lookout/available offline"),
    );
    println!(
        "offline seen {:.2} s after kill -9",
        killed.elapsed().as_secs_f64()
    );

    // A subscriber that comes later finds the retained `offline`.
    let (_late, late) = subscribe(dir, port, "lookout/available");
    wait_for(
        "the retained `offline`",
        &late,
        Duration::from_secs(5),
        |l| l.iter().any(|l| l == "lookout/available offline"),
    );
}

#[test]
fn a_missing_broker_ca_file_is_a_located_config_error() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let cfg = config(tmp.path(), 8883, "no-such-ca.pem");
    let out = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .arg("check-config")
        .arg(&cfg)
        .env("LOOKOUT_SHARED", shared())
        .output()
        .expect("lookout runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for want in [
        "alerts.sinks[0].tls.ca_file",
        "no-such-ca.pem",
        "alerts.sinks[0].tls.client_cert",
        "client.pem",
        "mqtt.toml:",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
}
