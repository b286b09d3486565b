//! Detections per second through filters, masks, tracker, zones, personnel rules and
//! events, on one core, on synthetic recorded detections.
//!
//! 8 cameras × 500 frames, 10 detections a frame: 5 people walking (2 crossing a duty-post
//! zone), 3 smoke plumes, 2 weak detections; one mask, two zones, a duty post and an
//! occupancy rule per camera.

use std::sync::Arc;

use chrono::TimeZone;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lookout_core::{BBox, Detection, FrameResult, StageMsg};
use lookout_rules::{RulesConfig, RulesEngine};

const CAMERAS: usize = 8;
const FRAMES: usize = 500;

fn script() -> Vec<StageMsg> {
    let t0 = chrono::Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap();
    let mut msgs = Vec::with_capacity(CAMERAS * FRAMES);
    let person: Arc<str> = Arc::from("person");
    let smoke: Arc<str> = Arc::from("smoke");
    for f in 0..FRAMES {
        for c in 0..CAMERAS {
            let mut dets = Vec::with_capacity(10);
            for k in 0..5 {
                let x = 100.0 + ((f * (k + 1) * 3 + c * 17) % 1600) as f32;
                let y = 300.0 + 120.0 * k as f32;
                dets.push(Detection {
                    class: person.clone(),
                    class_id: 0,
                    score: 0.5 + 0.08 * ((f + k) % 5) as f32,
                    bbox: BBox::new(x, y, x + 60.0, y + 160.0),
                    role: None,
                });
            }
            for k in 0..3 {
                let x = 300.0 + 400.0 * k as f32;
                let grow = (f % 50) as f32;
                dets.push(Detection {
                    class: smoke.clone(),
                    class_id: 1,
                    score: 0.3 + 0.1 * ((f + k + c) % 5) as f32,
                    bbox: BBox::new(x, 100.0 - grow, x + 150.0 + grow, 250.0),
                    role: None,
                });
            }
            for k in 0..2 {
                let x = ((f * 37 + k * 500 + c * 11) % 1800) as f32;
                dets.push(Detection {
                    class: smoke.clone(),
                    class_id: 1,
                    score: 0.1,
                    bbox: BBox::new(x, 500.0, x + 40.0, 540.0),
                    role: None,
                });
            }
            msgs.push(StageMsg::Frame(FrameResult {
                camera: Arc::from(format!("cam{c}").as_str()),
                seq: f as u64,
                captured_at: t0 + chrono::Duration::milliseconds(500 * f as i64),
                preset: None,
                width: 1920,
                height: 1080,
                model: Arc::from("person-smoke"),
                detections: dets,
            }));
        }
    }
    msgs
}

fn config() -> RulesConfig {
    let mut toml = String::from("[rules]\n");
    for c in 0..CAMERAS {
        toml.push_str(&format!(
            r#"
[rules.cameras.cam{c}]
masks = [{{ polygon = [[0, 0], [0.1, 0], [0.1, 0.1]], classes = ["smoke"] }}]
zones = [
  {{ name = "post", polygon = [[0, 0.3], [0.4, 0.3], [0.4, 1], [0, 1]], inertia = 3 }},
  {{ name = "floor", polygon = [[0.3, 0.2], [1, 0.2], [1, 1], [0.3, 1]], inertia = 2, person_events = true }},
]
[[rules.duty_posts]]
camera = "cam{c}"
zone = "post"
max_vacant_s = 30
[[rules.occupancy]]
camera = "cam{c}"
zone = "floor"
max_people = 3
"#
        ));
    }
    let table: toml::Table = toml.parse().expect("bench config parses");
    let rules = table.get("rules").cloned().expect("rules section");
    rules.try_into().expect("bench config is a RulesConfig")
}

fn bench(c: &mut Criterion) {
    let msgs = script();
    let cfg = config();
    let detections: usize = msgs
        .iter()
        .map(|m| match m {
            StageMsg::Frame(f) => f.detections.len(),
            _ => 0,
        })
        .sum();
    // Sanity: the script exercises events.
    let mut e = RulesEngine::new(&cfg);
    let mut out = Vec::new();
    for m in &msgs {
        e.handle(m, &mut out);
    }
    eprintln!(
        "{} messages, {detections} detections, {} events",
        msgs.len(),
        out.len()
    );

    let mut g = c.benchmark_group("rules");
    g.sample_size(10);
    g.measurement_time(std::time::Duration::from_secs(8));
    g.throughput(Throughput::Elements(detections as u64));
    g.bench_function("tracker+rules", |b| {
        b.iter(|| {
            let mut e = RulesEngine::new(&cfg);
            let mut out = Vec::new();
            for m in &msgs {
                e.handle(m, &mut out);
                out.clear();
            }
            e.counters()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
