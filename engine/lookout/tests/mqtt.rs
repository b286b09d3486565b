//! MQTT over TLS through the real binary and a real mosquitto on 127.0.0.1: a test CA made
//! with openssl, a broker that requires client certificates, `mosquitto_sub` (Debian
//! package mosquitto-clients) watching `lookout/#`. The engine's availability topic says
//! `online` while it runs and the broker publishes its last will `offline` when it is
//! killed with -9; camera status arrives retained over the same TLS broker. A config that
//! names a missing CA file is refused with the key and the file. On the FURG fire clip with
//! the shipped smoke/fire model, the Frigate-style tree: `lookout/events` new and end with
//! `before`/`after`, the retained count per camera and label, and the retained incident
//! state, cleared once the incident closes.

mod common;
use common::{repo, shared, spawn_engine, Killed};

#[path = "../../alerts/tests/certs/mod.rs"]
mod certs;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    let mut engine = spawn_engine(&cfg, &dir.join("data"), &dir.join("lookout.log"));
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

/// The events test's config: events end 2 s after the last sighting; an operator (token
/// [`TOKEN`]) may close incidents through the API on port `http`; with `masked`, a mask over
/// the whole frame (hot-reloaded) hides every detection.
fn fire_config(dir: &Path, port: u16, http: u16, masked: bool) -> std::path::PathBuf {
    let path = dir.join("fire.toml");
    let mask = if masked {
        "\n[rules.cameras.house]\nmasks = [{ polygon = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]] }]\n"
    } else {
        ""
    };
    let text = format!(
        r#"
[engine]
shutdown_deadline_s = 5

[ingest]
analysis_max_side = 640

[inference]
workers = 1
intra_threads = 1

[server]
port = {http}
users = [{{ name = "op", role = "operator", token = "{TOKEN}" }}]

[models.smoke-fire]
manifest = "{manifest}"

[[cameras]]
id = "house"
source = {{ kind = "file", path = "{clip}", loop = true }}
fps = 2
models = ["smoke-fire"]

[rules]
quiet_s = 2
{mask}
[alerts]
snapshots = false
event_update_interval_s = 1

[[alerts.sinks]]
kind = "mqtt"
name = "broker"
host = "127.0.0.1"
port = {port}
tls = {{ ca_file = "ca.pem", client_cert = "client.pem", client_key = "client.key" }}
retry = {{ initial_s = 0.2, max_s = 1 }}
"#,
        manifest = repo().join("models/smoke-fire.toml").display(),
        clip = shared()
            .join("datasets/furg-house6/furg_house6.mp4")
            .display(),
    );
    // Written whole and renamed, so the config watcher never reads half a file.
    let tmp = dir.join(".fire.toml.tmp");
    std::fs::write(&tmp, text).expect("write config");
    std::fs::rename(&tmp, &path).expect("rename config");
    path
}

const TOKEN: &str = "operator-token-0123456789";

/// `POST path` with the operator's token and a JSON body on 127.0.0.1:`port`; the status.
fn post(port: u16, path: &str, body: &str) -> u16 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to the API");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {answer:?}"))
}

/// The JSON payloads of `lookout/events` seen so far.
fn events(lines: &[String]) -> Vec<serde_json::Value> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("lookout/events "))
        .filter_map(|p| serde_json::from_str(p).ok())
        .collect()
}

#[test]
fn fire_events_counts_and_incident_state_follow_the_frigate_tree() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path();
    certs::make_certs(dir);
    certs::make_client_cert(dir, "lookout-engine");
    let port = free_port();
    let _broker = tls_broker(dir, port);
    let (_sub, lines) = subscribe(dir, port, "lookout/#");
    std::thread::sleep(Duration::from_millis(300));

    let http = free_port();
    let cfg = fire_config(dir, port, http, false);
    let _engine = spawn_engine(&cfg, &dir.join("data"), &dir.join("lookout.log"));
    let log = || std::fs::read_to_string(dir.join("lookout.log")).unwrap_or_default();
    let started = Instant::now();

    // A fire or smoke event starts: `new`, no `before`, an `after` naming camera and label.
    let limit = Duration::from_secs(60);
    let first = loop {
        if let Some(e) = events(&lines.lock().unwrap())
            .into_iter()
            .find(|e| e["type"] == "new")
        {
            break e;
        }
        assert!(
            started.elapsed() < limit,
            "no new event on lookout/events; mosquitto_sub saw {:#?}; engine log:\n{}",
            lines.lock().unwrap(),
            log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    println!(
        "first event after {:.1} s: {first}",
        started.elapsed().as_secs_f64()
    );
    assert!(first["before"].is_null(), "{first}");
    let after = &first["after"];
    let (id, label) = (
        after["id"].as_str().expect("id").to_string(),
        after["label"].as_str().expect("label").to_string(),
    );
    assert!(label == "fire" || label == "smoke", "{first}");
    assert_eq!(after["camera"], "house");
    assert!(
        after["top_score"].as_f64().is_some_and(|s| s > 0.0),
        "{first}"
    );
    assert!(
        after["box"].as_array().is_some_and(|b| b.len() == 4),
        "{first}"
    );
    assert!(after["start_time"].as_f64().is_some() && after["end_time"].is_null());
    let count_topic = format!("lookout/house/{label}");
    wait_for("the retained count", &lines, limit, |l| {
        l.iter().any(|l| {
            l.strip_prefix(&count_topic)
                .and_then(|r| r.trim().parse::<u32>().ok())
                .is_some_and(|n| n >= 1)
        })
    });
    wait_for("an incident's state", &lines, limit, |l| {
        l.iter()
            .any(|l| l.starts_with("lookout/incidents/") && l.contains("/state {"))
    });
    // A later subscriber finds the count and the incident's state retained.
    let (late, retained) = subscribe(dir, port, "lookout/+/+");
    wait_for("the retained count (late)", &retained, limit, |l| {
        l.iter().any(|l| l.starts_with(&format!("{count_topic} ")))
    });
    drop(late);
    let (late, retained) = subscribe(dir, port, "lookout/incidents/+/state");
    wait_for(
        "the retained incident state (late)",
        &retained,
        limit,
        |l| l.iter().any(|l| l.contains("\"state\":\"new\"")),
    );
    let (state_topic, incident) = retained
        .lock()
        .unwrap()
        .iter()
        .find(|l| l.contains("\"state\":\"new\""))
        .and_then(|l| l.split_once(' '))
        .map(|(t, p)| {
            let v: serde_json::Value = serde_json::from_str(p).expect("state JSON");
            (t.to_string(), v["id"].as_str().expect("id").to_string())
        })
        .expect("topic and payload");
    drop(late);

    // Hide everything (hot-reloaded mask): the events end and the counts drop to 0.
    fire_config(dir, port, http, true);
    let masked = Instant::now();
    wait_for("the event's end", &lines, limit, |l| {
        events(l)
            .iter()
            .any(|e| e["type"] == "end" && e["after"]["id"] == id.as_str())
    });
    println!("end {:.1} s after the mask", masked.elapsed().as_secs_f64());
    let all = events(&lines.lock().unwrap());
    let end = all
        .iter()
        .find(|e| e["type"] == "end" && e["after"]["id"] == id.as_str())
        .expect("end");
    assert_eq!(end["before"]["id"], id.as_str(), "{end}");
    assert!(end["before"]["end_time"].is_null(), "{end}");
    assert!(end["after"]["end_time"].as_f64().is_some(), "{end}");
    for e in all.iter().filter(|e| e["type"] == "update") {
        assert!(e["before"].is_object() && e["after"].is_object(), "{e}");
    }
    wait_for("the count back to 0", &lines, limit, |l| {
        l.iter().any(|l| l == &format!("{count_topic} 0"))
    });
    // An operator closes the incident: its retained state is cleared.
    assert_eq!(
        post(
            http,
            &format!("/api/incidents/{incident}/transition"),
            r#"{"to": "closed", "comment": "test"}"#
        ),
        200
    );
    wait_for("the incident closed", &lines, limit, |l| {
        l.iter()
            .any(|l| l.starts_with(&format!("{state_topic} ")) && l.contains("\"closed\""))
    });
    // The closed state is not kept: a subscriber that comes now gets no retained state.
    std::thread::sleep(Duration::from_millis(500));
    let (_late, retained) = subscribe(dir, port, &state_topic);
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        retained.lock().unwrap().is_empty(),
        "a closed incident's state is still retained: {:?}",
        retained.lock().unwrap()
    );
    println!("test took {:.1} s", started.elapsed().as_secs_f64());
}
