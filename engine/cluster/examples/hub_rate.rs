//! The hub's event rate: the same synthetic event load through the same fusion, in process
//! (`inproc`: `HubCore::on_msg`, as one process hands fusion its messages) and over NATS
//! (`publish` fills the site's stream from a generator process, then `hub` drains it with
//! the hub's consumer: decode, de-duplication, fusion, ack per burst).
//!
//! ```text
//! hub_rate inproc  --cameras 200 --messages 50000
//! hub_rate publish --cameras 200 --messages 50000 --nats nats://127.0.0.1:4222
//! hub_rate hub     --cameras 200 --messages 50000 --nats nats://127.0.0.1:4222
//! ```
//!
//! Each prints one JSON object. The load: `cameras` towers on a grid, each with smoke
//! tracks (start, an update every 2 s, end after 60 s, boxes that give a bearing) and a
//! clock message every second of capture time, interleaved in time order.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use chrono::TimeZone;
use lookout_cluster::hub::{HubCore, HubSink};
use lookout_core::wire::{FusionMsg, WireMsg};
use lookout_core::{BBox, Event, EventKind, EventPhase, Hotspot, Incident};

struct Args {
    mode: String,
    cameras: usize,
    messages: usize,
    nats: String,
}

fn args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mode = it
        .next()
        .ok_or("usage: hub_rate inproc|publish|hub [--cameras N] [--messages N] [--nats URL]")?;
    let mut a = Args {
        mode,
        cameras: 200,
        messages: 50_000,
        nats: "nats://127.0.0.1:4222".into(),
    };
    while let Some(k) = it.next() {
        let v = it.next().ok_or(format!("{k} needs a value"))?;
        match k.as_str() {
            "--cameras" => a.cameras = v.parse().map_err(|e| format!("--cameras: {e}"))?,
            "--messages" => a.messages = v.parse().map_err(|e| format!("--messages: {e}"))?,
            "--nats" => a.nats = v,
            _ => return Err(format!("unknown option {k}")),
        }
    }
    Ok(a)
}

fn config(cameras: usize, nats: &str) -> lookout_config::Config {
    let mut toml = String::from("[models.m]\nmanifest = \"m.toml\"\n\n");
    for i in 0..cameras {
        toml.push_str(&format!(
            "[[cameras]]\nid = \"t{i}\"\nsource = {{ kind = \"file\", path = \"x.mp4\" }}\nmodels = [\"m\"]\n\
             geo = {{ lat = {:.4}, lon = {:.4}, alt_m = 500, heading_deg = {}, hfov_deg = 60, range_m = 25000 }}\n\n",
            36.0 + (i / 20) as f64 * 0.15,
            27.0 + (i % 20) as f64 * 0.15,
            (i * 37) % 360
        ));
    }
    toml.push_str(&format!(
        "[cluster]\nrole = \"hub\"\nnats = [\"{nats}\"]\nsite = \"bench\"\n\n[cluster.stream]\nduplicate_window_s = 60\n"
    ));
    match lookout_config::parse(&toml, "bench.toml", std::path::Path::new(".")) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    }
}

/// The synthetic load, in capture-time order: `n` messages.
fn load(cameras: usize, n: usize) -> Vec<WireMsg> {
    let t0 = chrono::Utc.timestamp_opt(1_750_000_000, 0).unwrap();
    let mut out = Vec::with_capacity(n);
    let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut s: i64 = 0;
    while out.len() < n {
        let at = t0 + chrono::Duration::seconds(s);
        for c in 0..cameras {
            if out.len() >= n {
                break;
            }
            let camera = format!("t{c}");
            // One track per camera at a time, 60 s long, a new one every 90 s (phase by camera).
            let age = (s + (c as i64 * 7)) % 90;
            if age < 60 && age % 2 == 0 {
                let first = at - chrono::Duration::seconds(age);
                let phase = match age {
                    0 => EventPhase::Start,
                    58 => EventPhase::End,
                    _ => EventPhase::Update,
                };
                let x = (next() % 1100) as f32;
                out.push(WireMsg::Fusion(FusionMsg::Event(Event {
                    id: format!(
                        "{camera}:smoke:{}:{}",
                        first.timestamp(),
                        first.timestamp_millis()
                    ),
                    camera: camera.as_str().into(),
                    kind: EventKind::Smoke,
                    phase,
                    track: Some(first.timestamp() as u64),
                    zone: None,
                    preset: None,
                    best_score: 0.6 + (next() % 30) as f32 / 100.0,
                    first_seen: first,
                    last_seen: at,
                    bbox: Some(BBox {
                        x1: x,
                        y1: 200.0,
                        x2: x + 120.0,
                        y2: 320.0,
                    }),
                    frame_size: Some((1280, 720)),
                    snapshot: None,
                    count: None,
                    detail: String::new(),
                })));
            }
            if out.len() < n {
                out.push(WireMsg::Fusion(FusionMsg::Clock {
                    camera: camera.as_str().into(),
                    at,
                }));
            }
        }
        s += 1;
    }
    out
}

#[derive(Default)]
struct Count {
    revisions: u64,
}

impl HubSink for Count {
    fn event(&mut self, _: &Event) {}
    fn hotspots(&mut self, _: &[Hotspot]) {}
    fn incidents(&mut self, r: &[Incident]) -> bool {
        self.revisions += r.len() as u64;
        true
    }
}

fn main() {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let cfg = config(a.cameras, &a.nats);
    let msgs = load(a.cameras, a.messages);
    let events = msgs
        .iter()
        .filter(|m| matches!(m, WireMsg::Fusion(FusionMsg::Event(_))))
        .count();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let never = AtomicBool::new(false);
    match a.mode.as_str() {
        "inproc" => {
            let mut core = HubCore::new(&cfg).expect("fusion");
            let mut sink = Count::default();
            let mut out = Vec::new();
            let t = Instant::now();
            for m in msgs {
                core.on_msg(m, Some(&mut sink), &mut out);
                sink.incidents(&out);
                out.clear();
            }
            let dt = t.elapsed().as_secs_f64();
            println!(
                "{{\"mode\":\"inproc\",\"messages\":{},\"events\":{events},\"revisions\":{},\"seconds\":{dt:.3},\"messages_per_s\":{:.0}}}",
                a.messages,
                sink.revisions,
                a.messages as f64 / dt
            );
        }
        "publish" => {
            let js = rt.block_on(async {
                let c = lookout_cluster::connect(&cfg.cluster, "gen", &never)
                    .await
                    .expect("connect");
                let js = async_nats::jetstream::new(c);
                lookout_cluster::ensure_stream(&js, &cfg.cluster)
                    .await
                    .expect("stream");
                js
            });
            let subjects = lookout_cluster::Subjects::new(&cfg.cluster.site);
            let t = Instant::now();
            rt.block_on(async {
                // Pipelined: up to 1,024 publishes in flight, acks awaited in order.
                let mut acks = std::collections::VecDeque::new();
                for m in &msgs {
                    let mut h = async_nats::HeaderMap::new();
                    h.insert(
                        async_nats::header::NATS_MESSAGE_ID,
                        lookout_cluster::msg_id(m).as_str(),
                    );
                    let body = lookout_core::wire::Envelope::new(m.clone()).encode();
                    let ack = js
                        .publish_with_headers(subjects.subject_of(m), h, body.into())
                        .await
                        .expect("publish");
                    acks.push_back(ack);
                    if acks.len() >= 1024 {
                        if let Some(a) = acks.pop_front() {
                            a.await.expect("ack");
                        }
                    }
                }
                for a in acks {
                    a.await.expect("ack");
                }
            });
            let dt = t.elapsed().as_secs_f64();
            println!(
                "{{\"mode\":\"publish\",\"messages\":{},\"seconds\":{dt:.3},\"messages_per_s\":{:.0}}}",
                a.messages,
                a.messages as f64 / dt
            );
        }
        "hub" => {
            let mut core = HubCore::new(&cfg).expect("fusion");
            let stats = core.stats();
            let stop = std::sync::Arc::new(AtomicBool::new(false));
            let watcher = {
                let stop = stop.clone();
                let stats = stats.clone();
                let n = a.messages as u64;
                std::thread::spawn(move || {
                    let mut first = None;
                    loop {
                        let m = stats.messages.load(Ordering::Relaxed);
                        if m > 0 && first.is_none() {
                            first = Some((Instant::now(), m));
                        }
                        if m >= n {
                            stop.store(true, Ordering::SeqCst);
                            return first.map(|(t, m1)| (t, m1, Instant::now()));
                        }
                        std::thread::sleep(std::time::Duration::from_micros(500));
                    }
                })
            };
            let mut sink = Count::default();
            let t = Instant::now();
            rt.block_on(async {
                let c = lookout_cluster::connect(&cfg.cluster, "hub", &never)
                    .await
                    .expect("connect");
                let js = async_nats::jetstream::new(c);
                lookout_cluster::hub::run(&js, &cfg.cluster, &mut core, &mut sink, &stop)
                    .await
                    .expect("hub");
            });
            let (t1, m1, t2) = watcher
                .join()
                .ok()
                .flatten()
                .unwrap_or((t, 0, Instant::now()));
            // From the first message handled to the last: the drain rate of a full stream.
            let dt = t2.duration_since(t1).as_secs_f64().max(1e-6);
            println!(
                "{{\"mode\":\"hub\",\"messages\":{},\"events\":{},\"revisions\":{},\"seconds\":{dt:.3},\"messages_per_s\":{:.0}}}",
                a.messages,
                stats.events.load(Ordering::Relaxed),
                sink.revisions,
                (a.messages as u64 - m1) as f64 / dt
            );
        }
        other => {
            eprintln!("unknown mode {other}: inproc, publish or hub");
            std::process::exit(2);
        }
    }
}
