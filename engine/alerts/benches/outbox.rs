//! Incidents per second through the store and the outbox with two sinks (a webhook to a
//! local HTTP receiver and a JSONL file): `cargo bench -p lookout-alerts --bench outbox`.
//!
//! A producer thread pushes incident revisions into a bounded crossbeam channel (as fusion
//! does into the engine's incidents channel) and the consumer stores them in one of two
//! ways, alternating round by round in the same run:
//! * `per-incident` (the baseline): `Alerts::record_incident` per revision, one
//!   transaction each;
//! * `group`: whatever is queued (up to `GROUP_COMMIT_MAX`) goes to
//!   `Alerts::record_incidents`, one transaction per batch.
//!
//! Reports medians of `record` (store + outbox enqueue) and `end-to-end` (until both sinks
//! have delivered every revision) per mode, and the group / per-incident ratios.

use std::time::{Duration, Instant};

use chrono::Utc;
use lookout_alerts::{Alerts, GROUP_COMMIT_MAX};
use lookout_config::alerts::{AlertsConfig, RetryConfig, SinkConfig, SinkFilter};
use lookout_config::env::EnvString;
use lookout_core::{
    BBox, Event, EventKind, EventPhase, Incident, IncidentConfidence, IncidentKind, IncidentState,
    Severity,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const INCIDENTS: usize = 1000;
const REVISIONS: u64 = 6;
const ROUNDS: usize = 5;

fn incident(i: usize, rev: u64) -> Incident {
    let cam: lookout_core::CameraId = format!("cam{}", i % 50).into();
    let at = Utc::now();
    Incident {
        id: format!("bench-{i}"),
        kind: IncidentKind::Fire,
        confidence: IncidentConfidence::Camera,
        severity: Severity::High,
        state: IncidentState::New,
        location: None,
        cameras: vec![cam.clone()],
        sectors: vec![],
        events: vec![Event {
            id: format!("ev-{i}"),
            camera: cam,
            kind: EventKind::Smoke,
            phase: EventPhase::Update,
            track: Some(i as u64),
            zone: None,
            preset: None,
            best_score: 0.5 + rev as f32 * 0.01,
            first_seen: at,
            last_seen: at,
            bbox: Some(BBox::new(10.0, 10.0, 50.0, 50.0)),
            frame_size: Some((1280, 720)),
            snapshot: None,
            count: None,
            detail: String::new(),
        }],
        hotspots: vec![],
        evidence: Default::default(),
        first_seen: at,
        last_seen: at,
        revision: rev,
        notes: vec![],
        changes: vec![],
    }
}

async fn receiver() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = l.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut got = Vec::new();
                loop {
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                    if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&got[..i]).to_ascii_lowercase();
                        let len: usize = head
                            .lines()
                            .find_map(|l| {
                                l.strip_prefix("content-length:")
                                    .and_then(|v| v.trim().parse().ok())
                            })
                            .unwrap_or(0);
                        if got.len() >= i + 4 + len {
                            break;
                        }
                    }
                }
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    port
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    PerIncident,
    Group,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::PerIncident => "per-incident",
            Mode::Group => "group",
        }
    }
}

/// One round: returns (record rate, end-to-end rate, mean batch size).
fn round(rt: &tokio::runtime::Runtime, port: u16, mode: Mode) -> (f64, f64, f64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = AlertsConfig {
        cooldown_s: 0.0,
        snapshots: false,
        sinks: vec![
            SinkConfig::Webhook {
                name: "hook".into(),
                url: EnvString::literal(format!("http://127.0.0.1:{port}/")),
                token: None,
                timeout_s: 5.0,
                ca_file: None,
                max_payload_bytes: 1 << 20,
                retry: RetryConfig {
                    initial_s: 0.01,
                    max_s: 0.1,
                    ..RetryConfig::default()
                },
                filter: SinkFilter::default(),
            },
            SinkConfig::Jsonl {
                name: "file".into(),
                path: "out.jsonl".into(),
                filter: SinkFilter::default(),
            },
        ],
        ..AlertsConfig::default()
    };
    let alerts = Alerts::open_in(&cfg, dir.path(), rt.handle()).expect("open");
    let n = INCIDENTS * REVISIONS as usize;
    // The engine's incidents channel is bounded(1024) with blocking senders.
    let (tx, rx) = crossbeam_channel::bounded::<Incident>(1024);
    let t = Instant::now();
    let producer = std::thread::spawn(move || {
        for rev in 1..=REVISIONS {
            for i in 0..INCIDENTS {
                if tx.send(incident(i, rev)).is_err() {
                    return;
                }
            }
        }
    });
    let mut batches = 0usize;
    match mode {
        Mode::PerIncident => {
            for inc in rx.iter() {
                alerts.record_incident(&inc, None).expect("record");
                batches += 1;
            }
        }
        Mode::Group => {
            while let Ok(first) = rx.recv() {
                let mut batch = vec![first];
                batch.extend(rx.try_iter().take(GROUP_COMMIT_MAX - 1));
                let items: Vec<(&Incident, Option<&lookout_core::Frame>)> =
                    batch.iter().map(|i| (i, None)).collect();
                for r in alerts.record_incidents(&items) {
                    r.expect("record");
                }
                batches += 1;
            }
        }
    }
    producer.join().expect("producer");
    let rec = t.elapsed().as_secs_f64();
    let end = Instant::now() + Duration::from_secs(120);
    while alerts
        .backlog()
        .expect("backlog")
        .iter()
        .any(|(_, b)| *b > 0)
    {
        assert!(Instant::now() < end, "backlog did not drain");
        std::thread::sleep(Duration::from_millis(5));
    }
    let all = t.elapsed().as_secs_f64();
    let delivered: u64 = alerts.sink_stats().iter().map(|(_, d, _)| *d).sum();
    assert_eq!(delivered, 2 * n as u64, "every revision reached both sinks");
    let lines = std::fs::read_to_string(dir.path().join("out.jsonl"))
        .expect("jsonl")
        .lines()
        .count();
    assert_eq!(lines, n, "JSONL sink has every revision");
    (n as f64 / rec, n as f64 / all, n as f64 / batches as f64)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let port = rt.block_on(receiver());
    let n = INCIDENTS * REVISIONS as usize;
    let modes = [Mode::PerIncident, Mode::Group];
    let mut record = [Vec::new(), Vec::new()];
    let mut e2e = [Vec::new(), Vec::new()];
    for r in 0..ROUNDS {
        for (k, mode) in modes.iter().enumerate() {
            let (rec, all, batch) = round(&rt, port, *mode);
            println!(
                "round {r} {:>12}: {n} revisions recorded at {rec:.0}/s (mean batch {batch:.1}), delivered to 2 sinks at {all:.0}/s",
                mode.name()
            );
            record[k].push(rec);
            e2e[k].push(all);
        }
    }
    let (r0, r1) = (median(&mut record[0]), median(&mut record[1]));
    let (e0, e1) = (median(&mut e2e[0]), median(&mut e2e[1]));
    println!("median per-incident: record {r0:.0} incidents/s, end-to-end (store + webhook + JSONL) {e0:.0} incidents/s");
    println!("median group:        record {r1:.0} incidents/s, end-to-end (store + webhook + JSONL) {e1:.0} incidents/s");
    println!(
        "ratio group / per-incident: record {:.2}x, end-to-end {:.2}x",
        r1 / r0,
        e1 / e0
    );
}
