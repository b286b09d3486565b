//! Regression test of the shipped smoke/fire model (`models/smoke-fire.onnx`): it loads from
//! `models/`, its sha256 matches the manifest, it finds the labelled smoke and fire on fixed
//! test-split frames (never training frames) with IoU ≥ 0.5 at the manifest's thresholds, and
//! it raises nothing on two evaluation-only negatives.

mod common;
use common::shared;

use std::path::{Path, PathBuf};

use lookout_core::BBox;
use lookout_infer::{Detector, ImageView, Model, RuntimeOptions};

fn manifest() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/smoke-fire.toml")
}

/// Reads the first YOLO box of `class` in a label file, in pixels.
fn label(path: &Path, class: usize, w: u32, h: u32) -> BBox {
    let text = std::fs::read_to_string(path).expect("label file");
    for line in text.lines() {
        let v: Vec<f32> = line
            .split_whitespace()
            .filter_map(|t| t.parse().ok())
            .collect();
        if v.len() == 5 && v[0] as usize == class {
            return BBox::from_cxcywh(
                v[1] * w as f32,
                v[2] * h as f32,
                v[3] * w as f32,
                v[4] * h as f32,
            );
        }
    }
    panic!("no box of class {class} in {}", path.display());
}

#[test]
fn shipped_smoke_fire_model_regression() {
    let model = Model::load(&manifest()).expect("the shipped manifest loads");
    assert!(
        model
            .onnx_path
            .starts_with(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models")),
        "the shipped model must load from models/, got {}",
        model.onnx_path.display()
    );
    let digest = lookout_infer::manifest::sha256_file(&model.onnx_path).expect("hash");
    assert_eq!(
        digest, model.manifest.sha256,
        "sha256 of models/smoke-fire.onnx"
    );
    let thresholds: Vec<f32> = (0..model.num_classes())
        .map(|i| model.threshold(i))
        .collect();
    let mut det = Detector::from_model(model, &RuntimeOptions::default()).expect("session");

    let test = shared().join("datasets/cctv-fire-smoke/test");
    let cases = [
        (
            "test3_mp4-11_jpg.rf.28789b80d7865ebacdcb4e43db0975fc",
            0usize,
        ),
        (
            "newsmoke2_mp4-19_jpg.rf.a9c891012654fdd371a618ccfdfb591c",
            0,
        ),
        ("fire1_mp4-26_jpg.rf.5a09c11c9facf23a9413ca63bc2a6085", 1),
    ];
    for (stem, class) in cases {
        let img = lookout_imageops::load_rgb8(&test.join("images").join(format!("{stem}.jpg")))
            .expect("test image");
        let truth = label(
            &test.join("labels").join(format!("{stem}.txt")),
            class,
            img.width,
            img.height,
        );
        let dets = det
            .detect(&[ImageView {
                width: img.width,
                height: img.height,
                rgb: &img.data,
            }])
            .expect("inference")
            .remove(0);
        let best = dets
            .iter()
            .filter(|d| d.class_id as usize == class && d.score >= thresholds[class])
            .map(|d| d.bbox.iou(&truth))
            .fold(0f32, f32::max);
        assert!(
            best >= 0.5,
            "{stem}: class {class} not found (best IoU {best:.2}); {dets:?}"
        );
    }

    let negatives = shared().join("datasets/dfire-negatives/eval/images");
    for name in ["AoF00050.jpg", "AoF00052.jpg"] {
        let img = lookout_imageops::load_rgb8(&negatives.join(name)).expect("negative image");
        let dets = det
            .detect(&[ImageView {
                width: img.width,
                height: img.height,
                rgb: &img.data,
            }])
            .expect("inference")
            .remove(0);
        let alarms: Vec<_> = dets
            .iter()
            .filter(|d| d.score >= thresholds[d.class_id as usize])
            .collect();
        assert!(
            alarms.is_empty(),
            "{name} is an evaluation negative: {alarms:?}"
        );
    }
}
