//! The INT8 models (`models/*-int8.toml`, written by `models/quantize/`) against their FP32
//! originals, with real ONNX Runtime on real labelled images from `$LOOKOUT_SHARED`:
//! the same boxes above the class threshold, and a bounded AP50 difference.

use std::path::{Path, PathBuf};

use lookout_core::Detection;
use lookout_infer::cli::list_images;
use lookout_infer::preprocess::ImageView;
use lookout_infer::{run_eval, Detector, EvalArgs, RuntimeOptions};

fn shared() -> PathBuf {
    std::env::var("LOOKOUT_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared")))
}

fn models() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../models"))
}

/// A detection kept by the rules at the class threshold; `margin` widens (negative) or
/// narrows (positive) the threshold.
fn above(d: &Detection, det: &Detector, margin: f32) -> bool {
    d.score >= det.model().threshold(d.class_id as usize) + margin
}

/// Every FP32 box clearly above threshold (threshold + 0.1) has an INT8 box of the same
/// class at IoU ≥ 0.5 that is at least near the threshold (threshold − 0.1), and the other
/// way round. Scores that sit right at the threshold may flip; located objects may not.
/// Returns the number of boxes checked.
fn same_boxes(fp32: &str, int8: &str, images: &Path, n: usize) -> usize {
    let opts = RuntimeOptions::default();
    let mut a = Detector::load(&models().join(fp32), &opts).unwrap();
    let mut b = Detector::load(&models().join(int8), &opts).unwrap();
    assert_eq!(a.model().class_names, b.model().class_names);
    let files = list_images(images).unwrap();
    assert!(
        files.len() >= n,
        "{} has {} images",
        images.display(),
        files.len()
    );
    let step = files.len() / n;
    let mut checked = 0;
    for f in files.iter().step_by(step).take(n) {
        let img = lookout_imageops::load_rgb8(f).unwrap();
        let v = ImageView::from_image(&img);
        let da = a.detect(&[v]).unwrap().remove(0);
        let db = b.detect(&[v]).unwrap().remove(0);
        for (name, from, to, from_det, to_det) in
            [("FP32", &da, &db, &a, &b), ("INT8", &db, &da, &b, &a)]
        {
            for d in from.iter().filter(|d| above(d, from_det, 0.1)) {
                checked += 1;
                let best = to
                    .iter()
                    .filter(|e| e.class_id == d.class_id && above(e, to_det, -0.1))
                    .map(|e| e.bbox.iou(&d.bbox))
                    .fold(0.0f32, f32::max);
                assert!(
                    best >= 0.5,
                    "{}: {name} {} box {:?} score {:.3} has no counterpart (best IoU {best:.2}) among {:?}",
                    f.display(),
                    d.class,
                    d.bbox,
                    d.score,
                    to.iter()
                        .filter(|e| e.class_id == d.class_id)
                        .map(|e| (e.score, e.bbox))
                        .collect::<Vec<_>>()
                );
            }
        }
    }
    checked
}

/// AP50 of both models on the first `limit` labelled images; returns (class, fp32, int8).
fn ap_pair(
    fp32: &str,
    int8: &str,
    data: &Path,
    labels: &[&str],
    limit: usize,
) -> Vec<(String, f64, f64)> {
    let eval = |m: &str| {
        let mut args = EvalArgs::new(models().join(m), data);
        args.labels = labels.iter().map(|s| s.to_string()).collect();
        args.limit = Some(limit);
        run_eval(&args).unwrap()
    };
    let (ra, rb) = (eval(fp32), eval(int8));
    assert_eq!(ra.images, limit);
    ra.classes
        .iter()
        .map(|(c, a)| (c.clone(), a.ap50, rb.classes[c].ap50))
        .collect()
}

/// Confident boxes only: the smoke/fire INT8 model does not hold its AP50 (cctv test fire
/// AP50 0.585 FP32 vs 0.545 INT8, see models/README.md "INT8 models"), so no AP bound is
/// asserted for it until it does; its located boxes must still agree.
#[test]
fn smoke_fire_int8_keeps_confident_boxes() {
    let data = shared().join("datasets/cctv-fire-smoke/test");
    let n = same_boxes(
        "smoke-fire.toml",
        "smoke-fire-int8.toml",
        &data.join("images"),
        20,
    );
    assert!(
        n >= 10,
        "only {n} confident boxes checked: the images prove nothing"
    );
}

#[test]
fn person_int8_agrees_with_fp32() {
    let data = shared().join("datasets/pennfudan-person");
    let n = same_boxes(
        "person-nanodet.toml",
        "person-nanodet-int8.toml",
        &data.join("images"),
        20,
    );
    assert!(
        n >= 20,
        "only {n} confident boxes checked: the images prove nothing"
    );
    for (class, a, b) in ap_pair(
        "person-nanodet.toml",
        "person-nanodet-int8.toml",
        &data,
        &[],
        60,
    ) {
        eprintln!("pennfudan-person (60) {class} AP50: FP32 {a:.3}, INT8 {b:.3}");
        assert!(a > 0.8, "{class}: FP32 AP50 {a:.3}");
        assert!(
            (a - b).abs() <= 0.03,
            "{class}: AP50 FP32 {a:.3} vs INT8 {b:.3}"
        );
    }
}
