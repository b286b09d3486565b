//! Alerts against real parts: SQLite on disk, a real HTTP receiver on 127.0.0.1, a real
//! mosquitto broker, files on disk.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lookout_alerts::store::IncidentFilter;
use lookout_alerts::{Alerts, ApplyOutcome};
use lookout_config::alerts::{AlertsConfig, RetryConfig, SinkConfig, SinkFilter};
use lookout_config::env::EnvString;
use lookout_core::{
    CameraId, CameraStatus, Frame, GeoPoint, Incident, IncidentConfidence, IncidentKind,
    IncidentState, Location, LocationMethod, RetryReason, Severity,
};
mod common;

use common::{incident, t0};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn cfg(sinks: Vec<SinkConfig>) -> AlertsConfig {
    AlertsConfig {
        sinks,
        cooldown_s: 600.0,
        escalate_after_s: 3600.0,
        ..AlertsConfig::default()
    }
}

fn webhook(name: &str, port: u16) -> SinkConfig {
    SinkConfig::Webhook {
        name: name.into(),
        url: EnvString::literal(format!("http://127.0.0.1:{port}/hook")),
        token: None,
        timeout_s: 2.0,
        ca_file: None,
        max_payload_bytes: 1 << 20,
        retry: RetryConfig {
            initial_s: 0.02,
            max_s: 0.2,
            ..RetryConfig::default()
        },
        filter: SinkFilter::default(),
    }
}

/// What the test webhook receiver saw: (Idempotency-Key header, body JSON).
type Seen = Arc<Mutex<Vec<(String, serde_json::Value)>>>;

/// A webhook receiver that answers 503 to the first `fail_first` requests, then 200.
async fn receiver(listener: TcpListener, fail_first: usize) -> (Seen, Arc<Mutex<usize>>) {
    let seen: Seen = Arc::default();
    let count = Arc::new(Mutex::new(0usize));
    let (s2, c2) = (seen.clone(), count.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let (s3, c3) = (s2.clone(), c2.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let (head_end, len) = loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..i]).to_string();
                        let len = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap())
                            })
                            .unwrap_or(0);
                        break (i + 4, len);
                    }
                };
                while buf.len() < head_end + len {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let key = head
                    .lines()
                    .find_map(|l| l.strip_prefix("Idempotency-Key: ").map(str::to_string))
                    .unwrap_or_default();
                let n = {
                    let mut c = c3.lock().unwrap();
                    *c += 1;
                    *c
                };
                let ok = n > fail_first;
                if ok {
                    let body: serde_json::Value =
                        serde_json::from_slice(&buf[head_end..head_end + len]).unwrap();
                    s3.lock().unwrap().push((key, body));
                }
                let resp: &[u8] = if ok {
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                } else {
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                };
                let _ = sock.write_all(resp).await;
            });
        }
    });
    (seen, count)
}

async fn wait_backlog_empty(a: &Alerts, within: Duration) {
    let end = Instant::now() + within;
    loop {
        let b = a.backlog().unwrap();
        if b.iter().all(|(_, n)| *n == 0) {
            return;
        }
        assert!(Instant::now() < end, "backlog not drained: {b:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every stored revision's idempotency key, from the store itself.
fn all_keys(a: &Alerts) -> BTreeSet<String> {
    let list = a
        .store()
        .list_incidents(&IncidentFilter {
            limit: Some(1000),
            ..Default::default()
        })
        .unwrap();
    let mut keys = BTreeSet::new();
    for s in list {
        for r in 1..=s.incident.revision {
            keys.insert(format!("{}:{r}", s.incident.id));
        }
    }
    keys
}

fn check_delivered(seen: &Seen, expected: &BTreeSet<String>) {
    let seen = seen.lock().unwrap();
    let mut by_key: BTreeMap<&str, Vec<&serde_json::Value>> = BTreeMap::new();
    for (k, body) in seen.iter() {
        assert_eq!(
            body["key"].as_str(),
            Some(k.as_str()),
            "header and body keys agree"
        );
        let inc = &body["incident"];
        assert_eq!(
            format!("{}:{}", inc["id"].as_str().unwrap(), inc["revision"]),
            *k,
            "the key names the revision carried"
        );
        by_key.entry(k).or_default().push(body);
    }
    for k in expected {
        assert!(
            by_key.contains_key(k.as_str()),
            "revision {k} never delivered"
        );
    }
    for (k, bodies) in by_key {
        assert!(expected.contains(k), "unexpected key {k}");
        // Duplicates are allowed (at-least-once), but only as the same revision.
        assert!(bodies
            .windows(2)
            .all(|w| w[0]["incident"] == w[1]["incident"]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_down_then_up_delivers_every_revision_once_keyed() {
    let dir = tempfile::tempdir().unwrap();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let (seen, count) = receiver(l, 5).await;
    let mut c = cfg(vec![
        webhook("hook", port),
        SinkConfig::Jsonl {
            name: "log".into(),
            path: "out/incidents.jsonl".into(),
            filter: SinkFilter::default(),
        },
    ]);
    c.cooldown_s = 0.0;
    let a = Alerts::open_in(&c, dir.path(), &tokio::runtime::Handle::current()).unwrap();
    for i in 0..10 {
        for rev in 1..=3 {
            let o = a
                .record_incident(
                    &incident(&format!("f{i}"), &format!("cam{i}"), rev, rev as i64 * 10),
                    None,
                )
                .unwrap();
            assert!(!matches!(o, ApplyOutcome::Duplicate { .. }), "{o:?}");
        }
        // The same fusion revision again is suppressed.
        let o = a
            .record_incident(&incident(&format!("f{i}"), &format!("cam{i}"), 3, 30), None)
            .unwrap();
        assert!(matches!(o, ApplyOutcome::Duplicate { .. }), "{o:?}");
    }
    wait_backlog_empty(&a, Duration::from_secs(20)).await;
    let expected = all_keys(&a);
    assert_eq!(expected.len(), 30);
    check_delivered(&seen, &expected);
    assert!(
        *count.lock().unwrap() >= 35,
        "the first 5 attempts failed and were retried"
    );
    let stats = a.sink_stats();
    assert!(
        stats.iter().any(|(n, _, f)| n == "hook" && *f >= 5),
        "{stats:?}"
    );
    let lines = std::fs::read_to_string(dir.path().join("out/incidents.jsonl")).unwrap();
    assert_eq!(
        lines.lines().count(),
        30,
        "the JSONL sink was not delayed or duplicated by the webhook outage"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backlog_survives_a_crash_and_drains_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    // Reserve a port, then free it: nothing listens while the engine "runs".
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let c = cfg(vec![webhook("hook", port)]);
    {
        let a = Alerts::open_in(&c, dir.path(), &tokio::runtime::Handle::current()).unwrap();
        for i in 0..25 {
            a.record_incident(&incident(&format!("x{i}"), &format!("c{i}"), 1, 0), None)
                .unwrap();
        }
        a.transition("x3", IncidentState::Acknowledged, "ana", "looking")
            .unwrap();
        let b = a.backlog().unwrap();
        assert_eq!(b, vec![("hook".to_string(), 26)]);
        // Crash: no flush, no shutdown; the store and workers just go away.
        drop(a);
    }
    let l = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let (seen, _) = receiver(l, 0).await;
    let a = Alerts::open_in(&c, dir.path(), &tokio::runtime::Handle::current()).unwrap();
    wait_backlog_empty(&a, Duration::from_secs(20)).await;
    let expected = all_keys(&a);
    assert_eq!(expected.len(), 26);
    check_delivered(&seen, &expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_cooldown_escalation_and_camera_health() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(vec![]);
    c.escalate_after_s = 1.0;
    c.max_escalations = 1;
    let a = Alerts::open_in(&c, dir.path(), &tokio::runtime::Handle::current()).unwrap();
    let mut live = a.subscribe();
    // Identity is fusion's: a second fusion incident on the same camera and kind is its own
    // stored incident (fusion would have joined it to "a" had it been the same fire).
    a.record_incident(&incident("a", "hill", 1, 0), None)
        .unwrap();
    let o = a
        .record_incident(&incident("b", "hill", 1, 120), None)
        .unwrap();
    assert_eq!(o.id(), "b", "stored under fusion's id: {o:?}");
    // A later revision of "a" lands in "a", and takes fusion's evidence as it is.
    let o = a
        .record_incident(&incident("a", "hill", 2, 130), None)
        .unwrap();
    assert_eq!(o.id(), "a");
    let s = a.store().incident("a").unwrap().unwrap();
    assert_eq!(s.incident.revision, 2);
    assert_eq!(s.incident.events.len(), 1);
    assert_eq!(s.incident.last_seen, t0() + chrono::Duration::seconds(130));
    // Another camera is another incident.
    assert_eq!(
        a.record_incident(&incident("c", "valley", 1, 0), None)
            .unwrap()
            .id(),
        "c"
    );

    // Lifecycle with who/when/why; invalid transitions are errors naming what is allowed.
    a.transition("a", IncidentState::Acknowledged, "ana", "")
        .unwrap();
    let e = a
        .transition("a", IncidentState::New, "ana", "")
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot go from acknowledged to new"), "{e}");
    a.transition("a", IncidentState::Confirmed, "ana", "visible flames")
        .unwrap();
    a.transition("a", IncidentState::Closed, "bo", "extinguished")
        .unwrap();
    a.transition("a", IncidentState::Acknowledged, "bo", "flare-up")
        .unwrap();
    let d = a.store().incident_detail("a").unwrap().unwrap();
    let path: Vec<(&str, &str, &str)> = d
        .transitions
        .iter()
        .map(|t| (t.from.as_str(), t.to.as_str(), t.actor.as_str()))
        .collect();
    assert_eq!(
        path,
        vec![
            ("new", "acknowledged", "ana"),
            ("acknowledged", "confirmed", "ana"),
            ("confirmed", "closed", "bo"),
            ("closed", "acknowledged", "bo")
        ]
    );
    assert_eq!(d.transitions[1].comment, "visible flames");
    assert_eq!(
        d.stored.incident.severity,
        Severity::Critical,
        "confirming raises severity"
    );
    // Every revision is kept.
    assert_eq!(d.revisions.len() as u64, d.stored.incident.revision);
    assert!(a.store().revision("a", 1).unwrap().unwrap().events.len() == 1);

    // Escalation: "c" is still new after 1 s (the timer or this call escalates it).
    tokio::time::sleep(Duration::from_millis(1300)).await;
    a.escalate_now().unwrap();
    let c_inc = a.store().incident("c").unwrap().unwrap();
    assert_eq!(c_inc.incident.severity, Severity::Critical);
    assert_eq!(c_inc.escalations, 1);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(a.escalate_now().unwrap(), 0, "max_escalations = 1");
    assert_eq!(a.store().incident("c").unwrap().unwrap().escalations, 1);
    assert!(c_inc
        .incident
        .notes
        .iter()
        .any(|n| n.starts_with("Escalated to critical")));

    // Camera health: failing opens one incident, recovering closes it.
    let cam: CameraId = "gate".into();
    let fail = CameraStatus::Retrying {
        attempt: 1,
        reason: RetryReason::Timeout,
    };
    a.record_camera_status(&cam, &CameraStatus::Running, t0())
        .unwrap();
    a.record_camera_status(&cam, &fail, t0()).unwrap();
    a.record_camera_status(
        &cam,
        &CameraStatus::Retrying {
            attempt: 2,
            reason: RetryReason::Timeout,
        },
        t0(),
    )
    .unwrap();
    let open = a
        .store()
        .open_incident_for("gate", IncidentKind::CameraHealth)
        .unwrap()
        .unwrap();
    assert!(open.incident.notes[0].contains("no frame within the stall timeout"));
    a.record_camera_status(&cam, &CameraStatus::Running, t0())
        .unwrap();
    assert!(a
        .store()
        .open_incident_for("gate", IncidentKind::CameraHealth)
        .unwrap()
        .is_none());
    let all = a
        .store()
        .list_incidents(&IncidentFilter {
            kind: Some("camera_health".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].incident.state, IncidentState::Closed);

    // Live updates were broadcast.
    let mut n = 0;
    while let Ok(u) = live.try_recv() {
        let _ = serde_json::to_string(&u).unwrap();
        n += 1;
    }
    assert!(n >= 8, "{n} live updates");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_cap_and_geojson_files() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(vec![
        SinkConfig::Cap {
            name: "cap".into(),
            dir: "cap".into(),
            status: "Actual".into(),
            scope: "Public".into(),
            restriction: None,
            addresses: None,
            filter: SinkFilter::default(),
        },
        SinkConfig::Geojson {
            name: "geo".into(),
            dir: "geo".into(),
            filter: SinkFilter::default(),
        },
    ]);
    let a = Alerts::open_in(&c, dir.path(), &tokio::runtime::Handle::current()).unwrap();
    // A real frame: a gradient at 640x360.
    let (w, h) = (640u32, 360u32);
    let mut rgb = vec![0u8; (w * h * 3) as usize];
    for (i, p) in rgb.chunks_mut(3).enumerate() {
        p[0] = (i % w as usize * 255 / w as usize) as u8;
        p[1] = 90;
        p[2] = (i / w as usize * 255 / h as usize) as u8;
    }
    let frame = Frame::from_rgb("ridge".into(), 7, t0(), w, h, rgb);
    let mut inc = incident("fire-1", "ridge", 1, 0);
    a.record_incident(&inc, Some(&frame)).unwrap();
    inc.revision = 2;
    inc.confidence = IncidentConfidence::MultiCamera;
    inc.location = Some(Location {
        point: GeoPoint::new(45.05, 7.08),
        method: LocationMethod::Triangulated,
        ellipse: None,
    });
    a.record_incident(&inc, None).unwrap();
    a.transition("fire-1", IncidentState::FalseAlarm, "ana", "dust")
        .unwrap();
    wait_backlog_empty(&a, Duration::from_secs(10)).await;

    // Snapshot: a JPEG on disk, indexed, boxes drawn (the box edge is orange, not gradient).
    let d = a.store().incident_detail("fire-1").unwrap().unwrap();
    assert_eq!(d.snapshots.len(), 1);
    let img = image::open(&d.snapshots[0].path).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), (w, h));
    let px = img.get_pixel(100, 120);
    assert!(
        px[0] > 200 && px[1] > 100 && px[1] < 210 && px[2] < 80,
        "box edge colour {px:?}"
    );

    // CAP: required elements, in order, with values from the CAP 1.2 value sets.
    let mut caps: Vec<_> = std::fs::read_dir(dir.path().join("cap"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    caps.sort();
    assert_eq!(caps.len(), 3);
    for (i, p) in caps.iter().enumerate() {
        let x = std::fs::read_to_string(p).unwrap();
        let order = [
            "<identifier>",
            "<sender>",
            "<sent>",
            "<status>",
            "<msgType>",
            "<scope>",
            "<info>",
            "<category>",
            "<event>",
            "<urgency>",
            "<severity>",
            "<certainty>",
            "<area>",
            "<areaDesc>",
        ];
        let mut at = 0;
        for tag in order {
            let pos = x[at..]
                .find(tag)
                .unwrap_or_else(|| panic!("{tag} missing or out of order in {x}"));
            at += pos;
        }
        assert!(x.contains("xmlns=\"urn:oasis:names:tc:emergency:cap:1.2\""));
        let val = |tag: &str| -> String {
            let s = x.find(&format!("<{tag}>")).unwrap() + tag.len() + 2;
            let e = x[s..].find('<').unwrap();
            x[s..s + e].to_string()
        };
        assert!(["Actual", "Exercise", "System", "Test", "Draft"].contains(&val("status").as_str()));
        assert!(["Alert", "Update", "Cancel", "Ack", "Error"].contains(&val("msgType").as_str()));
        assert!(["Public", "Restricted", "Private"].contains(&val("scope").as_str()));
        assert_eq!(val("category"), "Fire");
        assert!(["Immediate", "Expected", "Future", "Past", "Unknown"]
            .contains(&val("urgency").as_str()));
        assert!(["Extreme", "Severe", "Moderate", "Minor", "Unknown"]
            .contains(&val("severity").as_str()));
        assert!(["Observed", "Likely", "Possible", "Unlikely", "Unknown"]
            .contains(&val("certainty").as_str()));
        let sent = val("sent");
        assert!(
            sent.ends_with("-00:00") && chrono::DateTime::parse_from_rfc3339(&sent).is_ok(),
            "{sent}"
        );
        assert!(!val("identifier").contains([' ', ',']));
        match i {
            0 => {
                assert_eq!(val("msgType"), "Alert");
                let poly = val("polygon");
                let pts: Vec<&str> = poly.split(' ').collect();
                assert!(
                    pts.len() >= 4 && pts.first() == pts.last(),
                    "closed polygon: {poly}"
                );
            }
            1 => {
                assert_eq!(val("msgType"), "Update");
                assert_eq!(val("certainty"), "Likely");
                assert!(val("circle").starts_with("45.050000,7.080000 "));
            }
            _ => {
                assert_eq!(val("msgType"), "Cancel");
                assert_eq!(val("certainty"), "Unlikely");
            }
        }
        if let Ok(out) = std::process::Command::new("xmllint")
            .arg("--noout")
            .arg(p)
            .output()
        {
            assert!(
                out.status.success(),
                "xmllint: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    // GeoJSON: valid JSON, a Feature with a Point in [lon, lat] order.
    let g: Vec<_> = std::fs::read_dir(dir.path().join("geo"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(g.len(), 1, "one file per incident, latest revision");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&g[0]).unwrap()).unwrap();
    assert_eq!(v["type"], "Feature");
    assert_eq!(v["geometry"]["type"], "Point");
    assert_eq!(v["geometry"]["coordinates"][0].as_f64(), Some(7.08));
    assert_eq!(v["geometry"]["coordinates"][1].as_f64(), Some(45.05));
    assert_eq!(v["properties"]["state"], "false_alarm");
    let z = incident("z", "ridge", 1, 0);
    let mut fc = lookout_core::geojson::FeatureCollection::new();
    fc.incident(&z);
    let fc = fc.to_value();
    // One camera's cone: a Polygon (several cameras' cones, which may overlap: a
    // GeometryCollection of Polygons).
    let ring = &fc["features"][0]["geometry"]["coordinates"][0];
    assert_eq!(fc["features"][0]["geometry"]["type"], "Polygon");
    assert_eq!(
        ring[0],
        ring[ring.as_array().unwrap().len() - 1],
        "rings are closed"
    );
    for p in ring.as_array().unwrap() {
        let (lon, lat) = (p[0].as_f64().unwrap(), p[1].as_f64().unwrap());
        assert!(
            (6.9..7.3).contains(&lon) && (44.9..45.2).contains(&lat),
            "{lon},{lat}"
        );
    }
}

/// A mosquitto broker on a free loopback port, stopped on drop.
struct Broker {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn mosquitto() -> Broker {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("m.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
    )
    .unwrap();
    let bin = ["/usr/sbin/mosquitto", "mosquitto"]
        .into_iter()
        .find(|b| std::path::Path::new(b).exists())
        .unwrap_or("mosquitto");
    let child = std::process::Command::new(bin)
        .arg("-c")
        .arg(&conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("mosquitto must be installed");
    let end = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < end, "mosquitto did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Broker {
        child,
        port,
        _dir: dir,
    }
}

async fn collect(
    port: u16,
    id: &str,
    topic: &str,
    until: impl Fn(&[(String, bool, serde_json::Value)]) -> bool,
) -> Vec<(String, bool, serde_json::Value)> {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(5));
    let (c, mut ev) = AsyncClient::new(o, 10);
    c.subscribe(topic, QoS::AtLeastOnce).await.unwrap();
    let mut got = Vec::new();
    let end = Instant::now() + Duration::from_secs(10);
    while !until(&got) {
        assert!(Instant::now() < end, "timed out; got {got:?}");
        if let Ok(Ok(Event::Incoming(Packet::Publish(p)))) =
            tokio::time::timeout(Duration::from_millis(500), ev.poll()).await
        {
            got.push((
                p.topic.clone(),
                p.retain,
                serde_json::from_slice(&p.payload).unwrap(),
            ));
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_publishes_incidents_and_retained_camera_status() {
    let broker = mosquitto();
    let port = broker.port;
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(vec![SinkConfig::Mqtt {
        name: "mq".into(),
        host: "127.0.0.1".into(),
        port,
        client_id: None,
        username: None,
        password: None,
        topic_prefix: "lookout".into(),
        timeout_s: 5.0,
        max_payload_bytes: 1 << 20,
        tls: None,
        events: true,
        retry: RetryConfig {
            initial_s: 0.05,
            max_s: 0.5,
            ..RetryConfig::default()
        },
        filter: SinkFilter::default(),
    }]);
    let sub = tokio::spawn(collect(port, "watcher", "lookout/incidents/+", |g| {
        g.len() >= 3
    }));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let a = Alerts::open_in(&c, dir.path(), &tokio::runtime::Handle::current()).unwrap();
    for rev in 1..=3 {
        a.record_incident(&incident("m1", "tower", rev, rev as i64), None)
            .unwrap();
    }
    let cam: CameraId = "tower".into();
    a.record_camera_status(&cam, &CameraStatus::Running, t0())
        .unwrap();
    wait_backlog_empty(&a, Duration::from_secs(10)).await;
    let got = sub.await.unwrap();
    let keys: Vec<&str> = got
        .iter()
        .map(|(t, _, v)| {
            assert_eq!(t, "lookout/incidents/fire");
            v["key"].as_str().unwrap()
        })
        .collect();
    assert_eq!(keys, vec!["m1:1", "m1:2", "m1:3"]);
    // A client that subscribes later still gets the camera's status: it is retained.
    let late = collect(port, "late", "lookout/cameras/+/status", |g| !g.is_empty()).await;
    assert_eq!(late[0].0, "lookout/cameras/tower/status");
    assert!(late[0].1, "retained");
    assert_eq!(late[0].2["status"]["state"], "running");
    // The incident's current state is retained on its own topic.
    let state = collect(port, "late2", "lookout/incidents/+/state", |g| {
        !g.is_empty()
    })
    .await;
    assert_eq!(state[0].0, "lookout/incidents/m1/state");
    assert!(state[0].1, "retained");
    assert_eq!(state[0].2["revision"], 3);
    assert_eq!(state[0].2["state"], "new");
}

/// A fusion stream with new incidents, revisions, a repeated revision (duplicate) and a
/// second fusion id on the same camera (its own incident: fusion decides identity).
fn mixed_stream() -> Vec<Incident> {
    let mut v = Vec::new();
    for rev in 1..=3 {
        for i in 0..8 {
            v.push(incident(
                &format!("g{i}"),
                &format!("cam{i}"),
                rev,
                rev as i64 * 10,
            ));
        }
    }
    v.push(incident("g2", "cam2", 3, 30));
    v.push(incident("late", "cam5", 1, 60));
    v.push(incident("late", "cam5", 2, 70));
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_stores_and_queues_exactly_what_one_by_one_does() {
    // Nothing listens on this port: every revision stays in the outbox.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let c = cfg(vec![webhook("hook", port)]);
    let stream = mixed_stream();
    let one = tempfile::tempdir().unwrap();
    let group = tempfile::tempdir().unwrap();
    let h = tokio::runtime::Handle::current();
    let one_out: Vec<ApplyOutcome> = {
        let a = Alerts::open_in(&c, one.path(), &h).unwrap();
        stream
            .iter()
            .map(|i| a.record_incident(i, None).unwrap())
            .collect()
    };
    let group_out: Vec<ApplyOutcome> = {
        let a = Alerts::open_in(&c, group.path(), &h).unwrap();
        let items: Vec<(&Incident, Option<&Frame>)> = stream.iter().map(|i| (i, None)).collect();
        let mut out = Vec::new();
        // Uneven batches, as drained from a channel.
        for chunk in items.chunks(7) {
            out.extend(a.record_incidents(chunk).into_iter().map(|r| r.unwrap()));
        }
        // Crash: no shutdown.
        drop(a);
        out
    };
    assert_eq!(one_out, group_out);
    assert!(group_out
        .iter()
        .any(|o| matches!(o, ApplyOutcome::Duplicate { .. })));
    assert!(group_out
        .iter()
        .any(|o| o.id() == "g5" && matches!(o, ApplyOutcome::Updated { .. })));
    // After reopening (nothing delivered), both stores hold the same incidents and the
    // same outbox keys, one per stored revision.
    let a1 = Alerts::open_in(&c, one.path(), &h).unwrap();
    let a2 = Alerts::open_in(&c, group.path(), &h).unwrap();
    let keys = |a: &Alerts| -> BTreeSet<String> {
        a.store()
            .pending("hook", 10_000)
            .unwrap()
            .into_iter()
            .map(|p| p.key)
            .collect()
    };
    assert_eq!(keys(&a1), keys(&a2));
    assert_eq!(keys(&a2), all_keys(&a2));
    let revs = |a: &Alerts| -> Vec<(String, u64, usize)> {
        let mut v: Vec<_> = a
            .store()
            .list_incidents(&IncidentFilter {
                limit: Some(1000),
                ..Default::default()
            })
            .unwrap()
            .into_iter()
            .map(|s| (s.incident.id, s.incident.revision, s.incident.events.len()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(revs(&a1), revs(&a2));
    assert!(
        revs(&a2).len() < 10,
        "the late fusion id was merged: {:?}",
        revs(&a2)
    );
}

/// The reader pool (off by default) is opened when switched on, reads what the writer
/// committed, and switching it off returns reads to the writer's connection.
#[test]
fn reader_pool_reads_what_the_writer_committed() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        lookout_alerts::store::Store::open(&dir.path().join("lookout.db"), vec![], 3600.0).unwrap();
    let now = t0();
    store
        .apply_incident(&incident("pool-1", "cam1", 1, 0), None, now)
        .unwrap();
    store.set_read_pool(true).unwrap();
    assert!(store.incident("pool-1").unwrap().is_some());
    // Committed after the pool opened: every reader sees it on its next read.
    store
        .apply_incident(&incident("pool-2", "cam2", 1, 5), None, now)
        .unwrap();
    for _ in 0..8 {
        let all = store.list_incidents(&IncidentFilter::default()).unwrap();
        assert_eq!(all.len(), 2);
    }
    store.set_read_pool(false).unwrap();
    assert!(store.incident("pool-2").unwrap().is_some());
    // An in-memory store has no pool: reads stay on the writer and still work.
    let mem = lookout_alerts::store::Store::open(std::path::Path::new(":memory:"), vec![], 3600.0)
        .unwrap();
    mem.set_read_pool(true).unwrap();
    mem.apply_incident(&incident("m", "cam1", 1, 0), None, now)
        .unwrap();
    assert!(mem.incident("m").unwrap().is_some());
}
