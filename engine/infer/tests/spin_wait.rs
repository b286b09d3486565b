//! `[inference] spin_wait = true` (ONNX Runtime's threads busy-wait between runs) changes
//! how the session's threads wait, never what the model finds: the real shipped models,
//! real ONNX Runtime, real frames from `$LOOKOUT_SHARED`, spinning off and on, the same
//! detections.

use std::path::{Path, PathBuf};
use std::time::Instant;

use lookout_core::Detection;
use lookout_infer::preprocess::ImageView;
use lookout_infer::{Detector, RuntimeOptions};

fn shared() -> PathBuf {
    std::env::var("LOOKOUT_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared")))
}

fn repo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// The first image (by name) of a shared dataset directory.
fn first_image(dir: &str) -> PathBuf {
    let d = shared().join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&d)
        .unwrap_or_else(|e| panic!("{}: {e}", d.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jpg" || x == "png"))
        .collect();
    files.sort();
    files.remove(0)
}

/// Detections of `manifest` on `image` with spinning `spin`, two intra-op threads (so there
/// is a thread pool whose waiting the setting changes); run three times, which must agree.
/// Returns them and the mean seconds per run after the first.
fn detect(manifest: &str, image: &Path, spin: bool) -> (Vec<Detection>, f64) {
    let opts = RuntimeOptions {
        intra_threads: 2,
        spin_wait: spin,
        ..Default::default()
    };
    let mut det = Detector::load(&repo().join(manifest), &opts)
        .unwrap_or_else(|e| panic!("{manifest} (spin_wait = {spin}): {e}"));
    let img = lookout_imageops::load_rgb8(image).unwrap();
    let view = ImageView::from_image(&img);
    let first = det.detect(&[view]).unwrap().remove(0);
    let t = Instant::now();
    for _ in 0..2 {
        assert_eq!(det.detect(&[view]).unwrap().remove(0), first, "{manifest}");
    }
    (first, t.elapsed().as_secs_f64() / 2.0)
}

fn same_detections_with_and_without_spinning(manifest: &str, image: PathBuf, class: &str) {
    let (off, s_off) = detect(manifest, &image, false);
    let (on, s_on) = detect(manifest, &image, true);
    eprintln!(
        "{manifest} on {}: {} detections; {:.1} ms/run spin off, {:.1} ms/run spin on",
        image.file_name().unwrap().to_string_lossy(),
        off.len(),
        s_off * 1e3,
        s_on * 1e3
    );
    assert!(
        off.iter().any(|d| &*d.class == class && d.score >= 0.3),
        "the comparison must compare something: no confident {class} in {off:?}"
    );
    assert_eq!(off.len(), on.len(), "off {off:?}\non {on:?}");
    for (a, b) in off.iter().zip(&on) {
        assert_eq!(a.class_id, b.class_id, "{a:?} vs {b:?}");
        assert!((a.score - b.score).abs() < 1e-5, "{a:?} vs {b:?}");
        assert!(a.bbox.iou(&b.bbox) > 0.999, "{a:?} vs {b:?}");
    }
}

#[test]
fn smoke_fire_model_finds_the_same_with_spin_wait_on_and_off() {
    same_detections_with_and_without_spinning(
        "models/smoke-fire.toml",
        first_image("datasets/cctv-fire-smoke/test/images"),
        "fire",
    );
}

#[test]
fn person_model_finds_the_same_with_spin_wait_on_and_off() {
    same_detections_with_and_without_spinning(
        "models/person-nanodet.toml",
        first_image("datasets/pennfudan-person/images"),
        "person",
    );
}
