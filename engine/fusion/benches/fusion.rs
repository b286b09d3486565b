//! Fusion throughput against 100,000 hotspots in memory.
//!
//! * `sector_query/grid` vs `sector_query/linear`: the hotspots in one bearing cone and time
//!   window, through the grid index and by scanning every hotspot (the baseline).
//! * `on_event/update`: an ongoing smoke event from one of two triangulating cameras is
//!   updated (cone query, hotspot absorption, triangulation, one incident revision).
//! * `on_event/new`: a new (already ended) smoke event at a random bearing every 10 s of
//!   event time, with the watermark advancing so incidents close after 600 s and are
//!   forgotten (steady state of ~120 incidents held).
//!
//! Hotspots: 100,000 synthetic VIIRS pixels spread over 20° × 10° around Rhodes and seven
//! days, from a fixed-seed generator (no randomness between runs).

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lookout_core::{
    BBox, Event, EventKind, EventPhase, GeoPoint, Hotspot, HotspotConfidence, HotspotSource,
    Sector, UtcTime,
};
use lookout_fusion::index::HotspotIndex;
use lookout_fusion::Fusion;

const N: usize = 100_000;

/// A small deterministic generator (xorshift64*).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn t0() -> UtcTime {
    Utc.with_ymd_and_hms(2023, 7, 20, 0, 0, 0).unwrap()
}

fn hotspots() -> Vec<Hotspot> {
    let mut r = Rng(0x9E37_79B9_7F4A_7C15);
    (0..N)
        .map(|_| Hotspot {
            source: HotspotSource::ViirsSnpp,
            location: GeoPoint::new(31.0 + 10.0 * r.next(), 18.0 + 20.0 * r.next()),
            scan_km: 0.4,
            track_km: 0.4,
            acquired_at: t0() + Duration::seconds((7.0 * 86_400.0 * r.next()) as i64),
            confidence: HotspotConfidence::Low,
            frp: Some(3.0),
            brightness_k: Some(330.0),
            daynight: Some('D'),
            fire_type: Some(0),
        })
        .collect()
}

const CONFIG: &str = r#"
[[cameras]]
id = "a"
source = { kind = "test" }
geo = { lat = 36.2, lon = 27.8667, heading_deg = 140, hfov_deg = 60, range_m = 20000 }

[[cameras]]
id = "b"
source = { kind = "test" }
geo = { lat = 36.2319, lon = 28.1356, heading_deg = 220, hfov_deg = 60, range_m = 20000 }

[fusion]
close_after_s = 600
allowed_lateness_s = 600
hotspot_before_s = 3600
hotspot_after_s = 3600
"#;

fn event(
    id: String,
    cam: &str,
    cx: f32,
    first: UtcTime,
    last: UtcTime,
    phase: EventPhase,
) -> Event {
    Event {
        id,
        camera: Arc::from(cam),
        kind: EventKind::Smoke,
        phase,
        track: None,
        zone: None,
        preset: None,
        best_score: 0.7,
        first_seen: first,
        last_seen: last,
        bbox: Some(BBox::from_cxcywh(cx, 540.0, 30.0, 40.0)),
        frame_size: Some((1920, 1080)),
        snapshot: None,
        count: None,
        detail: String::new(),
    }
}

fn bench(c: &mut Criterion) {
    let hs = hotspots();

    let mut idx = HotspotIndex::default();
    for h in &hs {
        idx.insert(h.clone(), true);
    }
    let sector = Sector {
        camera: "a".into(),
        origin: GeoPoint::new(36.2, 27.8667),
        bearing_deg: 134.0,
        half_width_deg: 1.5,
        range_m: 20_000.0,
        at: t0(),
    };
    let (from, to) = (
        t0() + Duration::days(2),
        t0() + Duration::days(2) + Duration::hours(4),
    );
    let mut g = c.benchmark_group("sector_query");
    g.throughput(Throughput::Elements(1));
    g.bench_function("grid", |b| {
        b.iter(|| idx.in_sector(&sector, from, to).len())
    });
    g.bench_function("linear", |b| {
        b.iter(|| idx.in_sector_linear(&sector, from, to).len())
    });
    g.finish();

    let cfg = lookout_config::parse(CONFIG, "bench.toml", std::path::Path::new(".")).unwrap();
    let mut f = Fusion::new(&cfg).unwrap();
    let mut out = Vec::new();
    for h in hs {
        f.on_hotspot(h, &mut out);
    }
    assert_eq!(f.hotspot_count(), N);
    let start = t0() + Duration::days(3);
    f.on_event(
        &event("ea".into(), "a", 1000.0, start, start, EventPhase::Start),
        &mut out,
    );
    f.on_event(
        &event("eb".into(), "b", 900.0, start, start, EventPhase::Start),
        &mut out,
    );
    let mut g = c.benchmark_group("on_event");
    g.throughput(Throughput::Elements(1));
    let mut k = 0u64;
    g.bench_function("update", |b| {
        b.iter(|| {
            k += 1;
            out.clear();
            let (id, cam) = if k.is_multiple_of(2) {
                ("ea", "a")
            } else {
                ("eb", "b")
            };
            let last = start + Duration::seconds((k % 600) as i64);
            let cx = 950.0 + (k % 20) as f32;
            f.on_event(
                &event(id.into(), cam, cx, start, last, EventPhase::Update),
                &mut out,
            );
            out.len()
        })
    });

    let mut f = Fusion::new(&cfg).unwrap();
    for h in hotspots() {
        f.on_hotspot(h, &mut out);
    }
    let mut r = Rng(42);
    let mut n = 0u64;
    g.bench_function("new", |b| {
        b.iter(|| {
            n += 1;
            out.clear();
            let at = t0() + Duration::seconds(10 * n as i64);
            f.on_watermark(at, &mut out);
            let cam = if n.is_multiple_of(2) { "a" } else { "b" };
            let cx = (100.0 + 1720.0 * r.next()) as f32;
            f.on_event(
                &event(format!("n{n}"), cam, cx, at, at, EventPhase::End),
                &mut out,
            );
            out.len()
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
