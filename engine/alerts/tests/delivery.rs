//! Deliveries against real receivers: the outbox against an HTTP receiver on loopback (a
//! refused payload is dead-lettered without holding up the rest of the sink and can be
//! re-driven, `Retry-After` is honoured, an oversized payload is never sent, plain-HTTP
//! webhooks keep one connection alive, IPv6 literals included), and CAP files checked by
//! the third-party `capvalidator` against the OASIS schema.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lookout_alerts::http::{HttpUrl, WebhookClient};
use lookout_alerts::Alerts;
use lookout_config::alerts::{AlertsConfig, RetryConfig, SinkConfig, SinkFilter};
use lookout_config::env::EnvString;
use lookout_core::{GeoPoint, IncidentState, Location, LocationMethod, UncertaintyEllipse};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

mod common;
use common::incident;

/// One request as the receiver saw it: when, on which connection, its idempotency key,
/// and the status answered.
#[derive(Debug, Clone)]
struct Hit {
    at: Instant,
    conn: usize,
    key: String,
    status: u16,
}

/// The answer for a key: status, extra header lines, body.
type Answer = Box<dyn Fn(&str) -> (u16, String, String) + Send + Sync>;

struct Receiver {
    hits: Arc<Mutex<Vec<Hit>>>,
    conns: Arc<AtomicUsize>,
    port: u16,
}

/// An HTTP/1.1 receiver on `addr`. With `keep_alive` it serves many requests per
/// connection; without, it closes after each answer (without saying so when `silent`).
async fn receiver(addr: &str, keep_alive: bool, silent: bool, answer: Answer) -> Receiver {
    let l = TcpListener::bind(addr).await.unwrap();
    let port = l.local_addr().unwrap().port();
    let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
    let conns = Arc::new(AtomicUsize::new(0));
    let answer = Arc::new(answer);
    let (h, c) = (hits.clone(), conns.clone());
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = l.accept().await else {
                return;
            };
            let conn = c.fetch_add(1, Ordering::SeqCst) + 1;
            let (h, answer) = (h.clone(), answer.clone());
            tokio::spawn(async move {
                let mut r = BufReader::new(sock);
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let (mut len, mut key) = (0usize, String::new());
                    loop {
                        line.clear();
                        if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let l = line.trim_end();
                        if l.is_empty() {
                            break;
                        }
                        let (k, v) = l.split_once(':').unwrap();
                        if k.eq_ignore_ascii_case("content-length") {
                            len = v.trim().parse().unwrap();
                        } else if k.eq_ignore_ascii_case("idempotency-key") {
                            key = v.trim().to_string();
                        }
                    }
                    let mut body = vec![0u8; len];
                    r.read_exact(&mut body).await.unwrap();
                    let (status, headers, text) = answer(&key);
                    h.lock().unwrap().push(Hit {
                        at: Instant::now(),
                        conn,
                        key,
                        status,
                    });
                    let close = if keep_alive || silent {
                        ""
                    } else {
                        "Connection: close\r\n"
                    };
                    let resp = format!(
                        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\n{headers}{close}\r\n{text}",
                        text.len()
                    );
                    if r.get_mut().write_all(resp.as_bytes()).await.is_err() || !keep_alive {
                        return;
                    }
                }
            });
        }
    });
    Receiver { hits, conns, port }
}

fn hook(port: u16, retry: RetryConfig, max_payload_bytes: u64) -> AlertsConfig {
    AlertsConfig {
        cooldown_s: 0.0,
        escalate_after_s: 3600.0,
        snapshots: false,
        sinks: vec![SinkConfig::Webhook {
            name: "hook".into(),
            url: EnvString::literal(format!("http://127.0.0.1:{port}/in")),
            token: None,
            timeout_s: 3.0,
            ca_file: None,
            max_payload_bytes,
            retry,
            filter: SinkFilter::default(),
        }],
        ..AlertsConfig::default()
    }
}

async fn wait_for(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let end = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn backlog(a: &Alerts) -> u64 {
    a.backlog().unwrap().iter().map(|(_, n)| n).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_payload_is_dead_lettered_without_holding_up_the_others_then_redriven() {
    let fixed = Arc::new(AtomicBool::new(false));
    let f = fixed.clone();
    let rx = receiver(
        "127.0.0.1:0",
        true,
        false,
        Box::new(move |key| {
            if key == "bad:1" && !f.load(Ordering::SeqCst) {
                (400, String::new(), "{\"error\":\"schema refused\"}".into())
            } else {
                (200, String::new(), "ok".into())
            }
        }),
    )
    .await;
    let retry = RetryConfig {
        initial_s: 1.0,
        max_s: 2.0,
        max_rejected: 2,
        max_attempts: 0,
    };
    let dir = tempfile::tempdir().unwrap();
    let a = Alerts::open_in(
        &hook(rx.port, retry, 1 << 20),
        dir.path(),
        &tokio::runtime::Handle::current(),
    )
    .unwrap();
    // The refused incident first, so every other row is behind it in the outbox.
    a.record_incident(&incident("bad", "cam0", 1, 1), None)
        .unwrap();
    let mut others = Vec::new();
    for i in 0..10 {
        for rev in 1..=2 {
            a.record_incident(
                &incident(&format!("ok{i}"), &format!("cam{i}"), rev, rev as i64),
                None,
            )
            .unwrap();
            others.push(format!("ok{i}:{rev}"));
        }
    }
    // A later revision of the refused incident, queued behind its revision 1.
    a.record_incident(&incident("bad", "cam0", 2, 5), None)
        .unwrap();
    let start = Instant::now();
    wait_for("the outbox to drain", Duration::from_secs(20), || {
        backlog(&a) == 0
    })
    .await;
    let hits = rx.hits.lock().unwrap().clone();
    let first_bad = hits.iter().position(|h| h.key == "bad:1").unwrap();
    let bad_attempts: Vec<&Hit> = hits.iter().filter(|h| h.key == "bad:1").collect();
    assert_eq!(bad_attempts.len(), 2, "retry.max_rejected = 2: {hits:?}");
    assert!(bad_attempts.iter().all(|h| h.status == 400));
    // Every other revision went out right after the first refusal, before the refused one
    // was tried again (its retry waits at least initial_s / 2 = 0.5 s).
    for k in &others {
        let i = hits
            .iter()
            .position(|h| &h.key == k && h.status == 200)
            .unwrap_or_else(|| panic!("{k} never delivered: {hits:?}"));
        assert!(i > first_bad);
        assert!(
            hits[i].at <= bad_attempts[1].at,
            "{k} waited for the refused delivery's retry"
        );
    }
    // Per-incident order: revision 2 of the refused incident only after revision 1 was
    // given up on.
    let bad2 = hits.iter().find(|h| h.key == "bad:2").unwrap();
    assert!(bad2.at >= bad_attempts[1].at && bad2.status == 200);
    let dead = a.store().dead_letters(None, 10).unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    let d = &dead[0];
    assert_eq!(
        (d.sink.as_str(), d.key.as_str(), d.status, d.attempts),
        ("hook", "bad:1", Some(400), 2)
    );
    assert!(d.body.contains("schema refused"), "{d:?}");
    assert_eq!(
        a.dead_letter_counts().unwrap(),
        vec![("hook".to_string(), 1)]
    );
    // Refusals and retries all went over the one kept-alive connection.
    assert!(hits.iter().all(|h| h.conn == 1), "{hits:?}");
    println!(
        "drained {} deliveries in {:.2} s over {} connection(s)",
        hits.len(),
        start.elapsed().as_secs_f64(),
        rx.conns.load(Ordering::SeqCst)
    );
    // The receiver is fixed: a re-drive delivers it.
    fixed.store(true, Ordering::SeqCst);
    assert_eq!(a.redrive(Some("hook"), &[]).unwrap(), 1);
    wait_for("the re-driven delivery", Duration::from_secs(10), || {
        rx.hits
            .lock()
            .unwrap()
            .iter()
            .any(|h| h.key == "bad:1" && h.status == 200)
    })
    .await;
    wait_for("the outbox to drain", Duration::from_secs(5), || {
        backlog(&a) == 0
    })
    .await;
    assert!(a.store().dead_letters(None, 10).unwrap().is_empty());
    assert_eq!(a.redrive(None, &[]).unwrap(), 0, "nothing left to re-drive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_pauses_the_sink_and_an_oversized_payload_is_never_sent() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let rx = receiver(
        "127.0.0.1:0",
        true,
        false,
        Box::new(move |_| {
            if c.fetch_add(1, Ordering::SeqCst) == 0 {
                (429, "Retry-After: 2\r\n".into(), "slow down".into())
            } else {
                (200, String::new(), String::new())
            }
        }),
    )
    .await;
    // Backoff alone would retry within 20 ms: only the header can make it wait 2 s.
    let retry = RetryConfig {
        initial_s: 0.01,
        max_s: 0.02,
        ..RetryConfig::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let a = Alerts::open_in(
        &hook(rx.port, retry, 4096),
        dir.path(),
        &tokio::runtime::Handle::current(),
    )
    .unwrap();
    let mut big = incident("big", "cam9", 1, 1);
    big.notes.push("x".repeat(8192));
    a.record_incident(&big, None).unwrap();
    a.record_incident(&incident("a", "cam1", 1, 1), None)
        .unwrap();
    a.record_incident(&incident("b", "cam2", 1, 1), None)
        .unwrap();
    wait_for("the outbox to drain", Duration::from_secs(10), || {
        backlog(&a) == 0
    })
    .await;
    let hits = rx.hits.lock().unwrap().clone();
    assert_eq!(hits[0].status, 429);
    assert!(hits.len() >= 3, "{hits:?}");
    let gap = hits[1].at - hits[0].at;
    assert!(
        gap >= Duration::from_secs(2),
        "called again {:.3} s after Retry-After: 2",
        gap.as_secs_f64()
    );
    assert!(gap < Duration::from_secs(5), "{gap:?}");
    println!(
        "429 Retry-After: 2 -> next call after {:.3} s",
        gap.as_secs_f64()
    );
    assert!(
        hits.iter().all(|h| h.key != "big:1"),
        "the oversized payload was sent"
    );
    let dead = a.store().dead_letters(Some("hook"), 10).unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].key.as_str(), dead[0].status), ("big:1", None));
    assert!(dead[0].error.contains("max_payload_bytes"), "{:?}", dead[0]);
}

async fn post_n(url: &str, n: usize) -> (WebhookClient, Vec<u16>) {
    let client =
        WebhookClient::new(&HttpUrl::parse(url).unwrap(), None, Duration::from_secs(3)).unwrap();
    let mut codes = Vec::new();
    for i in 0..n {
        let key = format!("k:{i}");
        codes.push(
            client
                .post_json(&[("Idempotency-Key", &key)], b"{}")
                .await
                .unwrap(),
        );
    }
    (client, codes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_keeps_one_connection_alive_also_on_ipv6() {
    let ok: fn() -> Answer = || Box::new(|_| (200, String::new(), "{\"ok\":true}".into()));
    // A receiver that closes after each answer: one connection per POST (as before).
    let close = receiver("127.0.0.1:0", false, false, ok()).await;
    let (_, codes) = post_n(&format!("http://127.0.0.1:{}/", close.port), 20).await;
    assert!(codes.iter().all(|c| *c == 200));
    let before = close.conns.load(Ordering::SeqCst);
    assert_eq!(before, 20);
    // One that keeps connections alive, on an IPv6 literal: one connection for all.
    let keep = receiver("[::1]:0", true, false, ok()).await;
    let (client, codes) = post_n(&format!("http://[::1]:{}/hook", keep.port), 20).await;
    assert!(codes.iter().all(|c| *c == 200));
    let after = keep.conns.load(Ordering::SeqCst);
    assert_eq!(after, 1);
    assert_eq!(client.connections_opened(), 1);
    assert_eq!(keep.hits.lock().unwrap().len(), 20);
    println!("20 POSTs: {before} connections with Connection: close, {after} kept alive");
    // One that closes without saying so: the closed connection is noticed and replaced.
    let silent = receiver("127.0.0.1:0", false, true, ok()).await;
    let (_, codes) = post_n(&format!("http://127.0.0.1:{}/", silent.port), 5).await;
    assert_eq!(codes, vec![200; 5]);
    assert_eq!(silent.hits.lock().unwrap().len(), 5);
}

fn cap_sink(name: &str, status: &str, scope: &str, restriction: Option<&str>) -> SinkConfig {
    SinkConfig::Cap {
        name: name.into(),
        dir: name.into(),
        status: status.into(),
        scope: scope.into(),
        restriction: restriction.map(str::to_string),
        addresses: None,
        filter: SinkFilter::default(),
    }
}

/// The text of the first `<tag>` of a CAP document.
fn val(x: &str, tag: &str) -> Option<String> {
    let s = x.find(&format!("<{tag}>"))? + tag.len() + 2;
    let e = x[s..].find('<')?;
    Some(x[s..s + e].to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cap_messages_reference_their_predecessors_and_pass_the_oasis_schema() {
    let dir = tempfile::tempdir().unwrap();
    let c = AlertsConfig {
        cooldown_s: 0.0,
        escalate_after_s: 3600.0,
        snapshots: false,
        cap_sender: "lookout@ridge.example".into(),
        sinks: vec![
            cap_sink("drill", "Exercise", "Restricted", Some("Fire service only")),
            cap_sink("public", "Actual", "Public", None),
        ],
        ..AlertsConfig::default()
    };
    let a = Alerts::open_in(&c, dir.path(), &tokio::runtime::Handle::current()).unwrap();
    let mut inc = incident("fire-7", "ridge", 1, 0);
    a.record_incident(&inc, None).unwrap();
    inc.revision = 2;
    inc.location = Some(Location {
        point: GeoPoint::new(45.05, 7.08),
        method: LocationMethod::Triangulated,
        ellipse: Some(UncertaintyEllipse {
            semi_major_m: 900.0,
            semi_minor_m: 300.0,
            orientation_deg: 35.0,
        }),
    });
    a.record_incident(&inc, None).unwrap();
    a.transition("fire-7", IncidentState::Acknowledged, "ana", "on it")
        .unwrap();
    a.transition("fire-7", IncidentState::FalseAlarm, "ana", "dust")
        .unwrap();
    wait_for("the CAP files", Duration::from_secs(10), || {
        backlog(&a) == 0
    })
    .await;
    let revisions = a
        .store()
        .incident_detail("fire-7")
        .unwrap()
        .unwrap()
        .revisions;
    assert_eq!(revisions.len(), 4);
    let mut files = Vec::new();
    for sink in ["drill", "public"] {
        let mut caps: Vec<(u64, std::path::PathBuf)> = std::fs::read_dir(dir.path().join(sink))
            .unwrap()
            .map(|e| e.unwrap().path())
            .map(|p| {
                let x = std::fs::read_to_string(&p).unwrap();
                (
                    val(&x, "identifier")
                        .unwrap()
                        .rsplit('-')
                        .next()
                        .unwrap()
                        .parse()
                        .unwrap(),
                    p,
                )
            })
            .collect();
        caps.sort();
        assert_eq!(caps.len(), 4, "{sink}: one message per revision");
        let mut before: Vec<String> = Vec::new();
        for (i, (rev, p)) in caps.iter().enumerate() {
            let x = std::fs::read_to_string(p).unwrap();
            assert_eq!(*rev, revisions[i].revision);
            let sent = val(&x, "sent").unwrap();
            // <sent> is the revision's time (stored to the millisecond, CAP has seconds).
            assert_eq!(
                sent,
                lookout_alerts::export::cap_time(revisions[i].at),
                "{sink} r{rev}"
            );
            let msg_type = val(&x, "msgType").unwrap();
            let expected = match i {
                0 => "Alert",
                3 => "Cancel",
                _ => "Update",
            };
            assert_eq!(msg_type, expected, "{sink} r{rev}");
            // Every Update/Cancel lists every earlier message, in order.
            let refs: Vec<String> = val(&x, "references")
                .map(|r| r.split(' ').map(str::to_string).collect())
                .unwrap_or_default();
            assert_eq!(refs, before, "{sink} r{rev} <references>");
            before.push(format!(
                "lookout@ridge.example,{},{sent}",
                val(&x, "identifier").unwrap()
            ));
            match sink {
                "drill" => {
                    assert_eq!(val(&x, "status").unwrap(), "Exercise");
                    assert_eq!(val(&x, "scope").unwrap(), "Restricted");
                    assert_eq!(val(&x, "restriction").unwrap(), "Fire service only");
                }
                _ => {
                    assert_eq!(val(&x, "status").unwrap(), "Actual");
                    assert_eq!(val(&x, "scope").unwrap(), "Public");
                    assert!(!x.contains("<restriction>"));
                }
            }
            // Areas: closed polygons of lat,lon pairs; the located revisions have a circle.
            let mut polygons = 0;
            for part in x.split("<polygon>").skip(1) {
                let poly = &part[..part.find('<').unwrap()];
                let pts: Vec<&str> = poly.split(' ').collect();
                assert!(pts.len() >= 4 && pts[0] == pts[pts.len() - 1], "{poly}");
                for pt in pts {
                    let (lat, lon) = pt.split_once(',').unwrap();
                    let (lat, lon): (f64, f64) = (lat.parse().unwrap(), lon.parse().unwrap());
                    assert!(
                        (44.9..45.2).contains(&lat) && (6.9..7.3).contains(&lon),
                        "{pt}"
                    );
                }
                polygons += 1;
            }
            assert!(polygons >= 1, "{sink} r{rev}: no polygon");
            if i >= 1 {
                assert!(val(&x, "circle")
                    .unwrap()
                    .starts_with("45.050000,7.080000 "));
            }
            files.push(p.display().to_string());
        }
    }
    let py = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/validate_cap.py");
    let out = std::process::Command::new(&py)
        .arg(&script)
        .args(&files)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/setup.sh)", py.display()));
    assert!(
        out.status.success(),
        "capvalidator failed to run (run scripts/setup.sh): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for f in &files {
        assert_eq!(v["files"][f][0], true, "{f}: {}", v["files"][f][1]);
    }
    assert_eq!(
        v["control"][0], false,
        "the validator accepted <status>Bogus</status>"
    );
    println!(
        "capvalidator: {} CAP files valid, the broken control refused",
        files.len()
    );
}
