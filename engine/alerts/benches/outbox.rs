//! Incidents per second through the store and the outbox with two sinks (a webhook to a
//! local HTTP receiver and a JSONL file): `cargo bench -p lookout-alerts --bench outbox`.
//!
//! Reports medians over rounds of: `record` (store + outbox enqueue, one transaction per
//! revision) and `end-to-end` (until both sinks have delivered every revision).

use std::time::{Duration, Instant};

use chrono::Utc;
use lookout_alerts::Alerts;
use lookout_config::alerts::{AlertsConfig, RetryConfig, SinkConfig, SinkFilter};
use lookout_config::env::EnvString;
use lookout_core::{
    BBox, Event, EventKind, EventPhase, Incident, IncidentConfidence, IncidentKind, IncidentState,
    Severity,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const INCIDENTS: usize = 500;
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
        first_seen: at,
        last_seen: at,
        revision: rev,
        notes: vec![],
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

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let port = rt.block_on(receiver());
    let mut record = Vec::new();
    let mut e2e = Vec::new();
    for round in 0..ROUNDS {
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
                    retry: RetryConfig {
                        initial_s: 0.01,
                        max_s: 0.1,
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
        let t = Instant::now();
        for rev in 1..=REVISIONS {
            for i in 0..INCIDENTS {
                alerts
                    .record_incident(&incident(i, rev), None)
                    .expect("record");
            }
        }
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
        println!(
            "round {round}: {n} revisions recorded in {rec:.3} s ({:.0}/s), delivered to 2 sinks in {all:.3} s ({:.0}/s)",
            n as f64 / rec,
            n as f64 / all
        );
        record.push(n as f64 / rec);
        e2e.push(n as f64 / all);
    }
    println!(
        "median: record {:.0} incidents/s, end-to-end (store + webhook + JSONL) {:.0} incidents/s",
        median(&mut record),
        median(&mut e2e)
    );
}
