//! UI API latency under 50 concurrent clients on loopback:
//! `cargo bench -p lookout-server --bench api_latency` (stops by itself, about 30 s).
//!
//! Starts the real server on 127.0.0.1:0 over a real on-disk store seeded like a busy site
//! (3,000 incidents with revision history and operator transitions, 1,500 satellite
//! hotspots, 24 cameras with geometry and live detections), keeps writing incidents while
//! it runs (group commits of 20 revisions every 50 ms, delivered to a JSONL sink), and lets
//! 50 keep-alive HTTP/1.1 clients (tokio tasks, no think time) hammer the UI's read
//! endpoints for a fixed time. Prints p50/p90/p99/max per endpoint and overall, and the
//! ratio of each p99 to `/health`'s p99 in the same phase.
//!
//! Two store modes in the same run, alternated in slices: `single-connection` (the default:
//! every store read shares the writer's SQLite connection) and `reader-pool` (reads on a
//! pool of WAL reader connections, `Store::set_read_pool(true)`). `LOOKOUT_BENCH_SECONDS`
//! sets each mode's total time (default 10), `LOOKOUT_BENCH_CLIENTS` the number of clients
//! (default 50), `LOOKOUT_BENCH_WRITE_BATCH` the revisions per writer group commit
//! (default 20).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use lookout_alerts::Alerts;
use lookout_core::{
    BBox, CameraId, Detection, Event, EventKind, EventPhase, FrameResult, GeoPoint, Hotspot,
    HotspotConfidence, HotspotSource, Incident, IncidentConfidence, IncidentKind, IncidentState,
    Location, LocationMethod, Sector, Severity, StageMsg,
};
use lookout_server::ServerState;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const DEFAULT_CLIENTS: usize = 50;
/// Slices per store mode (alternated).
const SLICES: usize = 4;
const CAMERAS: usize = 24;
const INCIDENTS: usize = 3000;
const HOTSPOTS: usize = 1500;

/// The UI's read endpoints, as the incident queue, map and camera grid call them.
const ENDPOINTS: &[(&str, &str)] = &[
    ("incidents", "/api/incidents"),
    (
        "incidents?state=new,acknowledged",
        "/api/incidents?state=new,acknowledged&limit=200",
    ),
    (
        "incidents?camera&kind",
        "/api/incidents?camera=cam7&kind=fire&limit=50",
    ),
    (
        "incidents?min_severity",
        "/api/incidents?min_severity=high&limit=100",
    ),
    ("incident detail", "/api/incidents/inc-42"),
    ("cameras", "/api/cameras"),
    ("geojson", "/api/geojson"),
    ("hotspots", "/api/hotspots"),
    ("health", "/health"),
];

fn config_text() -> String {
    let mut s = String::from(
        "[alerts]\ncooldown_s = 0\nescalate_after_s = 86400\n\n[[alerts.sinks]]\nkind = \"jsonl\"\nname = \"log\"\npath = \"alerts.jsonl\"\n\n[server]\nport = 0\n",
    );
    for c in 0..CAMERAS {
        s.push_str(&format!(
            "\n[[cameras]]\nid = \"cam{c}\"\nname = \"Tower {c}\"\nsource = {{ kind = \"file\", path = \"cam{c}.mp4\" }}\ngeo = {{ lat = {:.3}, lon = {:.3}, heading_deg = {}, hfov_deg = 60, range_m = 15000 }}\n",
            36.0 + (c / 6) as f64 * 0.05,
            27.8 + (c % 6) as f64 * 0.05,
            (c * 37) % 360
        ));
    }
    s
}

fn cam(i: usize) -> CameraId {
    format!("cam{}", i % CAMERAS).into()
}

/// A realistic incident revision: 1–3 camera events, sectors, a location for most, a
/// hotspot for some.
fn incident(i: usize, rev: u64, base: chrono::DateTime<Utc>) -> Incident {
    let at = base + chrono::Duration::seconds((i * 80) as i64 + rev as i64 * 10);
    let cams: Vec<CameraId> = (0..1 + i % 2).map(|k| cam(i + k * 5)).collect();
    let events = (0..(1 + i % 3).min(rev as usize + 1))
        .map(|k| Event {
            id: format!("inc-{i}-ev{k}"),
            camera: cams[k % cams.len()].clone(),
            kind: if i.is_multiple_of(4) {
                EventKind::Fire
            } else {
                EventKind::Smoke
            },
            phase: if rev == 1 {
                EventPhase::Start
            } else {
                EventPhase::Update
            },
            track: Some((i * 3 + k) as u64),
            zone: None,
            preset: None,
            best_score: 0.5 + ((i + k) % 40) as f32 * 0.01 + rev as f32 * 0.01,
            first_seen: at - chrono::Duration::seconds(30),
            last_seen: at,
            bbox: Some(BBox::new(400.0, 200.0, 560.0, 320.0)),
            frame_size: Some((1280, 720)),
            snapshot: None,
            count: None,
            detail: String::new(),
        })
        .collect();
    let origin = GeoPoint::new(36.0, 27.8);
    Incident {
        id: format!("inc-{i}"),
        kind: IncidentKind::Fire,
        confidence: if cams.len() > 1 {
            IncidentConfidence::MultiCamera
        } else {
            IncidentConfidence::Camera
        },
        severity: if i.is_multiple_of(5) {
            Severity::High
        } else {
            Severity::Medium
        },
        state: IncidentState::New,
        location: (!i.is_multiple_of(3)).then(|| Location {
            point: GeoPoint::new(
                36.1 + (i % 50) as f64 * 0.002,
                27.9 + (i % 70) as f64 * 0.002,
            ),
            method: LocationMethod::Triangulated,
            ellipse: None,
        }),
        cameras: cams.clone(),
        sectors: cams
            .iter()
            .map(|c| Sector {
                camera: c.clone(),
                origin,
                bearing_deg: (i * 7 % 360) as f64,
                half_width_deg: 1.5,
                range_m: 15_000.0,
                at,
            })
            .collect(),
        events,
        hotspots: if i.is_multiple_of(10) {
            vec![hotspot(i, base)]
        } else {
            vec![]
        },
        evidence: Default::default(),
        first_seen: at - chrono::Duration::seconds(30),
        last_seen: at,
        revision: rev,
        notes: vec![format!("Smoke seen by {}.", cams[0])],
        changes: vec![],
    }
}

fn hotspot(i: usize, base: chrono::DateTime<Utc>) -> Hotspot {
    Hotspot {
        source: if i.is_multiple_of(2) {
            HotspotSource::ViirsSnpp
        } else {
            HotspotSource::ModisAqua
        },
        location: GeoPoint::new(
            36.05 + (i % 97) as f64 * 0.003,
            27.85 + (i % 89) as f64 * 0.003,
        ),
        scan_km: 0.39,
        track_km: 0.36,
        acquired_at: base + chrono::Duration::minutes(i as i64 * 2),
        confidence: HotspotConfidence::Nominal,
        frp: Some(4.0 + (i % 30) as f64),
        brightness_k: Some(330.0),
        daynight: Some('D'),
        fire_type: Some(0),
    }
}

fn seed(alerts: &Alerts) {
    let base = Utc::now() - chrono::Duration::days(3);
    for rev in 1..=3u64 {
        let list: Vec<Incident> = (0..INCIDENTS)
            .filter(|i| rev == 1 || i.is_multiple_of(rev as usize))
            .map(|i| incident(i, rev, base))
            .collect();
        for chunk in list.chunks(lookout_alerts::GROUP_COMMIT_MAX) {
            let items: Vec<_> = chunk.iter().map(|i| (i, None)).collect();
            for r in alerts.record_incidents(&items) {
                r.expect("seed incident");
            }
        }
    }
    for i in 0..INCIDENTS {
        let id = format!("inc-{i}");
        let path: &[IncidentState] = match i % 10 {
            0..=2 => &[IncidentState::Acknowledged],
            3 => &[IncidentState::Acknowledged, IncidentState::Confirmed],
            4 => &[IncidentState::FalseAlarm],
            5 => &[IncidentState::Acknowledged, IncidentState::Closed],
            _ => &[],
        };
        for to in path {
            alerts
                .transition(&id, *to, "ana", "seen on the camera grid")
                .expect("transition");
        }
    }
    for i in 0..HOTSPOTS {
        alerts
            .record_hotspot(&hotspot(i, base))
            .expect("seed hotspot");
    }
    for c in 0..CAMERAS {
        let msg = StageMsg::Frame(FrameResult {
            camera: cam(c),
            seq: 1,
            captured_at: Utc::now(),
            preset: None,
            width: 1280,
            height: 720,
            model: "smoke-fire".into(),
            detections: (0..3)
                .map(|k| Detection {
                    class: "smoke".into(),
                    class_id: 0,
                    score: 0.3 + k as f32 * 0.1,
                    bbox: BBox::new(100.0 * k as f32, 80.0, 100.0 * k as f32 + 90.0, 160.0),
                    role: None,
                })
                .collect(),
        });
        alerts.record_frame_result(&msg).expect("frame result");
    }
}

/// One keep-alive HTTP/1.1 GET; returns the status. Reconnects when the server closed.
async fn get(
    conn: &mut Option<TcpStream>,
    addr: SocketAddr,
    path: &str,
    buf: &mut Vec<u8>,
) -> Result<u16, String> {
    for attempt in 0..2 {
        if conn.is_none() {
            *conn = Some(TcpStream::connect(addr).await.map_err(|e| e.to_string())?);
        }
        let Some(s) = conn.as_mut() else {
            continue;
        };
        let req =
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n\r\n");
        let r = async {
            s.write_all(req.as_bytes())
                .await
                .map_err(|e| e.to_string())?;
            read_response(s, buf).await
        }
        .await;
        match r {
            Ok(code) => return Ok(code),
            Err(e) => {
                *conn = None;
                if attempt == 1 {
                    return Err(e);
                }
            }
        }
    }
    Err("unreachable".into())
}

async fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>) -> Result<u16, String> {
    buf.clear();
    let mut chunk = [0u8; 64 * 1024];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed before the headers".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or("no status")?;
    let len: Option<usize> = head.lines().find_map(|l| {
        l.strip_prefix("content-length:")
            .and_then(|v| v.trim().parse().ok())
    });
    match len {
        Some(len) => {
            while buf.len() < head_end + len {
                let n = s.read(&mut chunk).await.map_err(|e| e.to_string())?;
                if n == 0 {
                    return Err("closed in the body".into());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
        }
        None if head.contains("transfer-encoding: chunked") => loop {
            // Chunked: read until the terminating zero-length chunk.
            if buf[head_end..].windows(5).any(|w| w == b"0\r\n\r\n") {
                break;
            }
            let n = s.read(&mut chunk).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("closed in a chunked body".into());
            }
            buf.extend_from_slice(&chunk[..n]);
        },
        None => return Err("response without a length".into()),
    }
    Ok(status)
}

/// Revisions per group commit of the writer (every 50 ms): `LOOKOUT_BENCH_WRITE_BATCH`,
/// default 20 (400/s); 256 is an incident storm (about 5,000/s offered).
fn write_batch() -> usize {
    std::env::var("LOOKOUT_BENCH_WRITE_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|v: &usize| (1..=lookout_alerts::GROUP_COMMIT_MAX).contains(v))
        .unwrap_or(20)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

struct Phase {
    name: &'static str,
    clients: usize,
    /// Latencies in ms per endpoint name.
    lat: BTreeMap<&'static str, Vec<f64>>,
    errors: u64,
    written: u64,
    secs: f64,
}

#[allow(clippy::too_many_arguments)]
fn run_phase(
    clients: usize,
    rt: &tokio::runtime::Runtime,
    alerts: &Arc<Alerts>,
    addr: SocketAddr,
    name: &'static str,
    secs: f64,
    next_id: &Arc<AtomicU64>,
) -> Phase {
    // Writer: incidents keep arriving while the clients read.
    let batch = write_batch();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (alerts, stop, next_id) = (alerts.clone(), stop.clone(), next_id.clone());
        std::thread::spawn(move || {
            let base = Utc::now() - chrono::Duration::hours(1);
            let mut written = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let first = next_id.fetch_add(batch as u64, Ordering::Relaxed) as usize;
                let list: Vec<Incident> = (first..first + batch)
                    .map(|i| incident(i, 1, base))
                    .collect();
                let items: Vec<_> = list.iter().map(|i| (i, None)).collect();
                written += alerts
                    .record_incidents(&items)
                    .into_iter()
                    .filter(|r| r.is_ok())
                    .count() as u64;
                std::thread::sleep(Duration::from_millis(50));
            }
            written
        })
    };
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let t0 = Instant::now();
    let results = rt.block_on(async {
        let tasks: Vec<_> = (0..clients)
            .map(|c| {
                tokio::spawn(async move {
                    let mut conn = None;
                    let mut buf = Vec::with_capacity(256 * 1024);
                    let mut out: Vec<(usize, f64)> = Vec::new();
                    let mut errors = 0u64;
                    let mut k = c;
                    while Instant::now() < deadline {
                        let e = k % ENDPOINTS.len();
                        k += 1;
                        let t = Instant::now();
                        match get(&mut conn, addr, ENDPOINTS[e].1, &mut buf).await {
                            Ok(200) => out.push((e, t.elapsed().as_secs_f64() * 1e3)),
                            Ok(_) | Err(_) => errors += 1,
                        }
                    }
                    (out, errors)
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.push(t.await.expect("client task"));
        }
        all
    });
    let elapsed = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().expect("writer");
    let mut lat: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
    let mut errors = 0;
    for (out, e) in results {
        errors += e;
        for (i, ms) in out {
            lat.entry(ENDPOINTS[i].0).or_default().push(ms);
        }
    }
    for v in lat.values_mut() {
        v.sort_by(|a, b| a.total_cmp(b));
    }
    Phase {
        name,
        clients,
        lat,
        errors,
        written,
        secs: elapsed,
    }
}

impl Phase {
    fn merge(&mut self, o: Phase) {
        for (k, mut v) in o.lat {
            let e = self.lat.entry(k).or_default();
            e.append(&mut v);
            e.sort_by(|a, b| a.total_cmp(b));
        }
        self.errors += o.errors;
        self.written += o.written;
        self.secs += o.secs;
    }
}

fn report(p: &Phase) -> (f64, f64) {
    let health_p99 = p
        .lat
        .get("health")
        .map(|v| pct(v, 0.99))
        .unwrap_or(f64::NAN);
    let mut all: Vec<f64> = p.lat.values().flatten().copied().collect();
    all.sort_by(|a, b| a.total_cmp(b));
    println!(
        "\n== {}: {} clients, {:.1} s, {} requests ({:.0}/s), {} errors, {} incident revisions written meanwhile",
        p.name,
        p.clients,
        p.secs,
        all.len(),
        all.len() as f64 / p.secs,
        p.errors,
        p.written
    );
    println!(
        "{:<34} {:>7} {:>9} {:>9} {:>9} {:>9} {:>12}",
        "endpoint", "n", "p50 ms", "p90 ms", "p99 ms", "max ms", "p99/health"
    );
    for (name, _) in ENDPOINTS {
        let Some(v) = p.lat.get(name) else {
            continue;
        };
        println!(
            "{:<34} {:>7} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>11.2}x",
            name,
            v.len(),
            pct(v, 0.5),
            pct(v, 0.9),
            pct(v, 0.99),
            pct(v, 1.0),
            pct(v, 0.99) / health_p99
        );
    }
    let p99 = pct(&all, 0.99);
    println!(
        "{:<34} {:>7} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>11.2}x",
        "overall",
        all.len(),
        pct(&all, 0.5),
        pct(&all, 0.9),
        p99,
        pct(&all, 1.0),
        p99 / health_p99
    );
    (p99, health_p99)
}

fn main() {
    let secs: f64 = std::env::var("LOOKOUT_BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|v: &f64| *v > 0.0 && *v <= 120.0)
        .unwrap_or(10.0);
    let clients: usize = std::env::var("LOOKOUT_BENCH_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|v: &usize| (1..=500).contains(v))
        .unwrap_or(DEFAULT_CLIENTS);
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = lookout_config::parse(&config_text(), "bench.toml", dir.path()).expect("config");
    // The engine's runtime shape: 2 tokio workers serve the API and run the sink workers.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("server runtime");
    let alerts = Arc::new(Alerts::open(&cfg, server_rt.handle()).expect("alerts"));
    let t = Instant::now();
    seed(&alerts);
    println!(
        "seeded {INCIDENTS} incidents (with revisions and transitions), {HOTSPOTS} hotspots, {CAMERAS} cameras in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let state = ServerState::new(alerts.clone(), cfg);
    let server = server_rt
        .block_on(lookout_server::start(
            state,
            "127.0.0.1:0".parse().expect("addr"),
        ))
        .expect("server");
    let addr = server.addr;
    // The clients get their own runtime (they share the 2 cores with the server).
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("client runtime");
    let next_id = Arc::new(AtomicU64::new(INCIDENTS as u64 + 1));
    // Alternate the two store modes in short slices so load changes on the shared box hit
    // both alike; each mode runs `secs` in total.
    let mut phases: Vec<Phase> = Vec::new();
    for slice in 0..SLICES {
        for (k, (name, pool)) in [("single-connection", false), ("reader-pool", true)]
            .into_iter()
            .enumerate()
        {
            alerts.store().set_read_pool(pool).expect("reader pool");
            let p = run_phase(
                clients,
                &client_rt,
                &alerts,
                addr,
                name,
                secs / SLICES as f64,
                &next_id,
            );
            if slice == 0 {
                phases.push(p);
            } else {
                phases[k].merge(p);
            }
        }
    }
    alerts.store().set_read_pool(false).expect("reader pool");
    let (b99, bh) = report(&phases[0]);
    let (a99, ah) = report(&phases[1]);
    println!(
        "\noverall p99: single-connection {b99:.2} ms, reader-pool {a99:.2} ms (single / pool {:.2}x); /health p99 {bh:.2} ms vs {ah:.2} ms",
        b99 / a99
    );
    server_rt.block_on(server.stop());
}
