//! Inference throughput: raw ONNX Runtime (the same session options the engine uses) vs the
//! `Detector` (with pre- and post-processing) vs `InferenceService` fed by 8 cameras
//! publishing as fast as they can. Prints medians and ratios; asserts nothing.
//!
//! Also INT8 vs FP32 (`models/*-int8.toml` against their FP32 manifests), interleaved in
//! the same run.
//!
//! `cargo bench -p lookout-infer --bench throughput` (set `BENCH_SECONDS` to change the
//! service run, default 20; `BENCH_ONLY=int8` runs only the INT8 comparison). Commands and
//! measured numbers: `benches/infer/README.md`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lookout_core::{CameraId, Frame, FrameHub};
use lookout_infer::detector::build_session;
use lookout_infer::preprocess::ImageView;
use lookout_infer::{Detector, InferenceService, Model, RuntimeOptions};
use ort::value::TensorRef;

fn shared() -> PathBuf {
    std::env::var("LOOKOUT_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared")))
}

fn repo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Median seconds of `f` over `n` runs after `warm` warm-up runs.
fn time_it(warm: usize, n: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..warm {
        f();
    }
    median(
        (0..n)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

/// Raw session: a constant input tensor, `run` only.
fn raw_ort(model: &Model, opts: &RuntimeOptions, batch: usize, n: usize) -> f64 {
    let (mut session, _) = build_session(model, opts).unwrap();
    let i = &model.manifest.input;
    let len = batch * 3 * i.width as usize * i.height as usize;
    let input = vec![0.3f32; len];
    let shape = [batch, 3, i.height as usize, i.width as usize];
    time_it(2, n, || {
        let t = TensorRef::from_array_view((shape, &input[..])).unwrap();
        let out = session.run(ort::inputs![t]).unwrap();
        std::hint::black_box(out.len());
    })
}

/// INT8 vs FP32 of one model: raw ORT and `Detector` on a real image, timed in alternating
/// rounds (A, B, A, B, ...) so that the load of a shared machine hits both alike.
fn int8_vs_fp32(fp32: &Path, int8: &Path, img: &lookout_imageops::RgbImage, opts: &RuntimeOptions) {
    let (a, b) = (Model::load(fp32).unwrap(), Model::load(int8).unwrap());
    let i = &a.manifest.input;
    let input = vec![0.3f32; 3 * i.width as usize * i.height as usize];
    let shape = [1, 3, i.height as usize, i.width as usize];
    let (mut sa, _) = build_session(&a, opts).unwrap();
    let (mut sb, _) = build_session(&b, opts).unwrap();
    let (mut da, mut db) = (
        Detector::from_model(a.clone(), opts).unwrap(),
        Detector::from_model(b.clone(), opts).unwrap(),
    );
    let v = ImageView::from_image(img);
    let mut raw = (Vec::new(), Vec::new());
    let mut det = (Vec::new(), Vec::new());
    for _ in 0..10 {
        for (s, out) in [(&mut sa, &mut raw.0), (&mut sb, &mut raw.1)] {
            out.push(time_it(1, 5, || {
                let t = TensorRef::from_array_view((shape, &input[..])).unwrap();
                std::hint::black_box(s.run(ort::inputs![t]).unwrap().len());
            }));
        }
        for (d, out) in [(&mut da, &mut det.0), (&mut db, &mut det.1)] {
            out.push(time_it(1, 5, || {
                std::hint::black_box(d.detect(&[v]).unwrap());
            }));
        }
    }
    let (ra, rb, ea, eb) = (median(raw.0), median(raw.1), median(det.0), median(det.1));
    println!(
        "{} vs {}: raw ORT FP32 {:.1} ms, INT8 {:.1} ms (FP32/INT8 {:.2}x); Detector FP32 {:.1} ms, INT8 {:.1} ms (FP32/INT8 {:.2}x)",
        a.name(),
        b.name(),
        ra * 1e3,
        rb * 1e3,
        ra / rb,
        ea * 1e3,
        eb * 1e3,
        ea / eb
    );
}

fn reference_at(dir: &Path, size: u32) -> PathBuf {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/reference-yolov8.toml"
    ))
    .unwrap();
    let onnx = shared().join("models/reference-yolov8-smoke-fire_640.onnx");
    let text = text
        .replace("width = 640", &format!("width = {size}"))
        .replace("height = 640", &format!("height = {size}"))
        .replace(
            "file = \"reference-yolov8-smoke-fire_640.onnx\"",
            &format!("file = {:?}", onnx.display().to_string()),
        );
    let p = dir.join(format!("reference-{size}.toml"));
    std::fs::write(&p, text).unwrap();
    p
}

fn main() {
    let secs: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let opts = RuntimeOptions::default();
    println!(
        "session options: intra_threads {} inter_threads {} graph_optimization {} spin_wait {} providers {:?}",
        opts.intra_threads, opts.inter_threads, opts.graph_optimization, opts.spin_wait, opts.providers
    );
    let nanodet_manifest = repo().join("models/person-nanodet.toml");
    let nanodet = Model::load(&nanodet_manifest).unwrap();
    let mut files: Vec<_> = std::fs::read_dir(shared().join("datasets/pennfudan-person/images"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let imgs: Vec<_> = files
        .iter()
        .take(8)
        .map(|f| lookout_imageops::load_rgb8(f).unwrap())
        .collect();

    // 0. INT8 vs FP32, both shipped models, batch 1 (median of 10 alternating rounds of 5).
    for (fp32, int8) in [
        ("person-nanodet.toml", "person-nanodet-int8.toml"),
        ("smoke-fire.toml", "smoke-fire-int8.toml"),
    ] {
        let m = repo().join("models");
        int8_vs_fp32(&m.join(fp32), &m.join(int8), &imgs[0], &opts);
    }
    if std::env::var("BENCH_ONLY").is_ok_and(|v| v == "int8") {
        return;
    }

    // 1. NanoDet batch 1: raw ORT vs Detector.
    let raw_nd = raw_ort(&nanodet, &opts, 1, 40);
    let mut det = Detector::from_model(nanodet.clone(), &opts).unwrap();
    let v = ImageView::from_image(&imgs[0]);
    let det_nd = time_it(2, 40, || {
        std::hint::black_box(det.detect(&[v]).unwrap());
    });
    println!(
        "nanodet 416 b1: raw ORT {:.1} ms/frame, Detector {:.1} ms/frame (ratio raw/detector {:.3})",
        raw_nd * 1e3,
        det_nd * 1e3,
        raw_nd / det_nd
    );

    // 2. Tiling cost, NanoDet: 1x1 vs 2x2 (+full).
    let t22 = lookout_infer::tiling::parse_tile("2x2:0.1-full").unwrap();
    let t22f = lookout_infer::tiling::parse_tile("2x2:0.1+full").unwrap();
    let tiled = time_it(1, 15, || {
        std::hint::black_box(det.detect_tiled(&[v], Some(&t22)).unwrap());
    });
    let tiled_f = time_it(1, 15, || {
        std::hint::black_box(det.detect_tiled(&[v], Some(&t22f)).unwrap());
    });
    println!(
        "nanodet tiling: 1x1 {:.1} ms, 2x2 {:.1} ms ({:.2}x), 2x2+full {:.1} ms ({:.2}x)",
        det_nd * 1e3,
        tiled * 1e3,
        tiled / det_nd,
        tiled_f * 1e3,
        tiled_f / det_nd
    );

    // 3. Reference YOLOv8 at 320: batch 1 vs batch 4, raw.
    let dir = std::env::temp_dir().join(format!("lookout-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let reference = Model::load(&reference_at(&dir, 320)).unwrap();
    let r1 = raw_ort(&reference, &opts, 1, 10);
    let r4 = raw_ort(&reference, &opts, 4, 5);
    println!(
        "reference-yolov8 320: raw ORT b1 {:.1} ms/frame, b4 {:.1} ms/frame (b4 per-frame / b1 {:.3})",
        r1 * 1e3,
        r4 / 4.0 * 1e3,
        r4 / 4.0 / r1
    );
    let _ = std::fs::remove_dir_all(&dir);

    // 4. InferenceService, 8 cameras publishing as fast as possible, NanoDet.
    let cams: Vec<CameraId> = (0..8).map(|i| CameraId::from(format!("cam{i}"))).collect();
    let mut toml = format!(
        "[inference]\nworkers = 1\nmax_batch = 4\nmax_wait_ms = 20\n\n[models.person]\nmanifest = {:?}\n",
        nanodet_manifest.display().to_string()
    );
    for c in &cams {
        toml.push_str(&format!(
            "\n[[cameras]]\nid = \"{c}\"\nsource = {{ kind = \"test\" }}\nmodels = [\"person\"]\n"
        ));
    }
    let cfg = lookout_config::parse(&toml, "bench.toml", Path::new(".")).unwrap();
    let hub = FrameHub::new(cams.clone());
    let (tx, rx) = crossbeam_channel::bounded(64);
    let consumer = std::thread::spawn(move || rx.iter().count());
    let frames: Vec<Frame> = cams
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let img = &imgs[i % imgs.len()];
            Frame::from_rgb(
                c.clone(),
                0,
                chrono::Utc::now(),
                img.width,
                img.height,
                img.data.clone(),
            )
        })
        .collect();
    let svc = InferenceService::start(&cfg, hub.clone(), tx).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let publisher = {
        let hub = hub.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut seq = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                seq += 1;
                for f in &frames {
                    let mut f = f.clone();
                    f.seq = seq;
                    f.captured_at = chrono::Utc::now();
                    let _ = hub.publish(f);
                }
                // 25 fps per camera (200 frames/s in all): far more than one CPU worker
                // analyses, so the hub always has a fresh frame waiting, without the
                // publisher itself eating a core.
                std::thread::sleep(Duration::from_millis(40));
            }
        })
    };
    // Warm up, then measure the analysed-frame rate over `secs`.
    std::thread::sleep(Duration::from_secs(3));
    let a0: u64 = svc.stats().cameras.values().map(|c| c.analysed).sum();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let a1: u64 = svc.stats().cameras.values().map(|c| c.analysed).sum();
    let dt = t0.elapsed().as_secs_f64();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    publisher.join().unwrap();
    hub.close();
    let stats = svc.join();
    let msgs = consumer.join().unwrap();
    let fps = (a1 - a0) as f64 / dt;
    // The machine's load drifts: time raw ORT again right after and use the mean.
    let raw_after = raw_ort(&nanodet, &opts, 1, 40);
    let raw_nd = (raw_nd + raw_after) / 2.0;
    let dropped: u64 = stats.cameras.values().map(|c| c.dropped_stale).sum();
    println!(
        "service nanodet, 8 cameras at 25 fps: {:.2} frames/s analysed vs raw ORT {:.2} runs/s (mean of before and after; ratio {:.3}); \
         group latency median {:.1} ms p95 {:.1} ms; batch histogram {:?}; stale frames dropped at the hub {}; messages {}",
        fps,
        1.0 / raw_nd,
        fps * raw_nd,
        stats.latency_median_ms,
        stats.latency_p95_ms,
        stats.batch_histogram,
        dropped,
        msgs
    );
    let per_cam: Vec<u64> = stats.cameras.values().map(|c| c.analysed).collect();
    println!("analysed per camera (fairness): {per_cam:?}");
}
