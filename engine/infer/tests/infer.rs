//! Integration tests with real ONNX Runtime and the real models from `$LOOKOUT_SHARED`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lookout_core::{BBox, CameraId, Frame, FrameHub, Pose, StageMsg};
use lookout_infer::preprocess::ImageView;
use lookout_infer::{run_eval, Detector, EvalArgs, InferError, InferenceService, RuntimeOptions};

fn shared() -> PathBuf {
    std::env::var("LOOKOUT_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared")))
}

fn repo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn nanodet_manifest() -> PathBuf {
    repo().join("models/person-nanodet.toml")
}

fn reference_manifest() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/reference-yolov8.toml"
    ))
}

/// A copy of the reference manifest with another input size, in `dir`, pointing at the
/// shared ONNX file by absolute path.
fn reference_at(dir: &Path, size: u32) -> PathBuf {
    let text = std::fs::read_to_string(reference_manifest()).unwrap();
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

fn yolo_labels(label: &Path, w: u32, h: u32) -> Vec<(u16, BBox)> {
    std::fs::read_to_string(label)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Vec<f32> = l.split_whitespace().map(|x| x.parse().unwrap()).collect();
            let (w, h) = (w as f32, h as f32);
            (
                v[0] as u16,
                BBox::from_cxcywh(v[1] * w, v[2] * h, v[3] * w, v[4] * h),
            )
        })
        .collect()
}

#[test]
fn nanodet_eval_pennfudan_person_ap50() {
    let data = shared().join("datasets/pennfudan-person");
    let mut args = EvalArgs::new(nanodet_manifest(), &data);
    let dir = tempfile::tempdir().unwrap();
    args.plot = Some(dir.path().join("pr.png"));
    let t = std::time::Instant::now();
    let report = run_eval(&args).unwrap();
    eprintln!("{}", report.to_text());
    eprintln!("eval took {:?}", t.elapsed());
    let person = &report.classes["person"];
    assert_eq!(
        report.classes.len(),
        1,
        "only labelled classes are reported"
    );
    assert_eq!(person.positives, 423);
    assert_eq!(report.images, 170);
    assert!(person.ap50 >= 0.85, "person AP50 {} < 0.85", person.ap50);
    assert!(person.recall_25 >= person.recall_50);
    // The JSON has exactly the documented shape.
    let v: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    let keys: Vec<&str> = v["classes"]["person"]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    for k in [
        "ap50",
        "positives",
        "precision@0.5",
        "recall@0.5",
        "precision@0.25",
        "recall@0.25",
        "image_recall@0.5",
    ] {
        assert!(keys.contains(&k), "missing {k} in {keys:?}");
    }
    assert_eq!(keys.len(), 7);
    assert!(v["negatives"]["hit@0.5"].is_u64());
    assert!(v["seconds_per_image"].is_f64());
    let png = lookout_imageops::load_rgb8(&dir.path().join("pr.png")).unwrap();
    assert_eq!(
        (png.width, png.height),
        (lookout_infer::eval::PLOT_W, lookout_infer::eval::PLOT_H)
    );
}

#[test]
fn reference_yolov8_finds_labelled_smoke_and_fire() {
    let opts = RuntimeOptions {
        max_batch: 1,
        ..RuntimeOptions::default()
    };
    let mut det = Detector::load(&reference_manifest(), &opts).unwrap();
    let base = shared().join("datasets/nemo-tower-sample/train");
    // One fire frame and one smoke frame.
    for stem in [
        "2nd_hour_of_the_Voltaire_Fire_near_Carson_City_from_McClellan_Peak_at_8_PM_FR-1344",
        "Sparks_structural_fire_near_El_Rancho_seen_from_NOAA_after_10_AM_FR-1400",
    ] {
        let img = lookout_imageops::load_rgb8(&base.join(format!("images/{stem}.jpg"))).unwrap();
        let labels = yolo_labels(
            &base.join(format!("labels/{stem}.txt")),
            img.width,
            img.height,
        );
        let dets = det
            .detect(&[ImageView::from_image(&img)])
            .unwrap()
            .remove(0);
        for (class, gt) in &labels {
            let best = dets
                .iter()
                .filter(|d| d.class_id == *class)
                .map(|d| (d.bbox.iou(gt), d.score))
                .fold((0f32, 0f32), |a, b| if b.0 > a.0 { b } else { a });
            eprintln!(
                "{stem}: class {class} best IoU {:.3} score {:.3}",
                best.0, best.1
            );
            assert!(
                best.0 >= 0.5,
                "{stem}: no class {class} box with IoU >= 0.5 near {gt:?}; got {dets:?}"
            );
            assert!(best.1 >= 0.25, "{stem}: matched box has score {}", best.1);
        }
        for d in &dets {
            assert!(
                d.bbox.x1 >= 0.0 && d.bbox.x2 <= img.width as f32 && d.bbox.y2 <= img.height as f32
            );
        }
    }
}

#[test]
fn batch_1_and_batch_4_agree() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = reference_at(dir.path(), 320);
    let mut imgs = Vec::new();
    for split in ["train", "val"] {
        let d = shared().join(format!("datasets/nemo-tower-sample/{split}/images"));
        let mut files: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for f in files.into_iter().take(2) {
            imgs.push(lookout_imageops::load_rgb8(&f).unwrap());
        }
    }
    assert_eq!(imgs.len(), 4);
    let views: Vec<ImageView> = imgs.iter().map(ImageView::from_image).collect();
    let mut one = Detector::load(
        &manifest,
        &RuntimeOptions {
            max_batch: 1,
            ..Default::default()
        },
    )
    .unwrap();
    let mut four = Detector::load(
        &manifest,
        &RuntimeOptions {
            max_batch: 4,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(four.batch_capacity(), 4);
    let batched = four.detect(&views).unwrap();
    let mut total = 0;
    for (i, v) in views.iter().enumerate() {
        let single = one.detect(&[*v]).unwrap().remove(0);
        let b = &batched[i];
        // Compare the confident detections (near the floor, float noise may flip one).
        let strong = |d: &&lookout_core::Detection| d.score >= 0.1;
        let s: Vec<_> = single.iter().filter(strong).collect();
        let bb: Vec<_> = b.iter().filter(strong).collect();
        assert_eq!(s.len(), bb.len(), "image {i}: {s:?} vs {bb:?}");
        for (x, y) in s.iter().zip(&bb) {
            assert_eq!(x.class_id, y.class_id);
            assert!((x.score - y.score).abs() < 1e-3, "{x:?} vs {y:?}");
            assert!(x.bbox.iou(&y.bbox) > 0.99, "{x:?} vs {y:?}");
        }
        total += s.len();
    }
    assert!(total > 0, "the comparison must compare something");
}

#[test]
fn bad_manifests_fail_loudly() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(nanodet_manifest()).unwrap();
    let onnx = shared().join("models/nanodet-plus-m-1.5x_416.onnx");
    let abs = text.replace(
        "file = \"nanodet-plus-m-1.5x_416.onnx\"",
        &format!("file = {:?}", onnx.display().to_string()),
    );
    // Wrong sha256.
    let p = dir.path().join("sha.toml");
    std::fs::write(&p, abs.replace("4b82da99", "00000000")).unwrap();
    let e = Detector::load(&p, &RuntimeOptions::default()).unwrap_err();
    assert!(matches!(e, InferError::Checksum { .. }), "{e}");
    assert!(e.to_string().contains("4b82da9944b8"), "{e}");
    // Wrong input size.
    let p = dir.path().join("shape.toml");
    std::fs::write(&p, abs.replace("width = 416", "width = 320")).unwrap();
    let e = Detector::load(&p, &RuntimeOptions::default()).unwrap_err();
    assert!(matches!(e, InferError::Shape { .. }), "{e}");
    assert!(e.to_string().contains("[1, 3, 416, 416]"), "{e}");
    // Dynamic batch declared for a fixed-batch model.
    let p = dir.path().join("batch.toml");
    std::fs::write(&p, abs.replace("batch = 1", "batch = \"dynamic\"")).unwrap();
    let e = Detector::load(&p, &RuntimeOptions::default()).unwrap_err();
    assert!(matches!(e, InferError::Shape { .. }), "{e}");
    // Wrong input tensor name.
    let p = dir.path().join("name.toml");
    std::fs::write(
        &p,
        abs.replace("tensor = \"input.1\"", "tensor = \"images\""),
    )
    .unwrap();
    let e = Detector::load(&p, &RuntimeOptions::default()).unwrap_err();
    assert!(e.to_string().contains("input.1"), "{e}");
    // Missing file: the message names the manifest's folder and the shared folder.
    let p = dir.path().join("missing.toml");
    std::fs::write(
        &p,
        text.replace("nanodet-plus-m-1.5x_416.onnx", "nope.onnx"),
    )
    .unwrap();
    let e = Detector::load(&p, &RuntimeOptions::default()).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains(&dir.path().join("nope.onnx").display().to_string()),
        "{msg}"
    );
    assert!(
        msg.contains(
            &shared()
                .join("models")
                .join("nope.onnx")
                .display()
                .to_string()
        ),
        "{msg}"
    );
}

#[test]
fn tiles_map_back_and_merge() {
    let mut det = Detector::load(&nanodet_manifest(), &RuntimeOptions::default()).unwrap();
    let d = shared().join("datasets/pennfudan-person/images");
    let mut files: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let img = lookout_imageops::load_rgb8(&files[0]).unwrap();
    let v = ImageView::from_image(&img);
    let tile = lookout_infer::tiling::parse_tile("2x2:0.2+full").unwrap();
    let full = det.detect(&[v]).unwrap().remove(0);
    let tiled = det.detect_tiled(&[v], Some(&tile)).unwrap().remove(0);
    let people = |ds: &[lookout_core::Detection]| {
        ds.iter()
            .filter(|d| d.class.as_ref() == "person" && d.score >= 0.5)
            .count()
    };
    assert!(people(&full) >= 1);
    assert!(
        people(&tiled) >= people(&full),
        "tiling with the full frame must not lose people"
    );
    for d in &tiled {
        assert!(
            d.bbox.x1 >= 0.0
                && d.bbox.y1 >= 0.0
                && d.bbox.x2 <= img.width as f32
                && d.bbox.y2 <= img.height as f32
        );
    }
    // Class-wise NMS merged duplicates across tiles.
    for (i, a) in tiled.iter().enumerate() {
        for b in &tiled[i + 1..] {
            assert!(
                a.class_id != b.class_id || a.bbox.iou(&b.bbox) <= 0.5,
                "{a:?} and {b:?} overlap"
            );
        }
    }
}

#[test]
fn service_runs_frames_from_several_cameras() {
    let data = shared().join("datasets/pennfudan-person/images");
    let mut files: Vec<_> = std::fs::read_dir(data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let imgs: Vec<_> = files
        .iter()
        .take(6)
        .map(|f| lookout_imageops::load_rgb8(f).unwrap())
        .collect();
    let toml = format!(
        r#"
[inference]
workers = 1
max_batch = 4
max_wait_ms = 5
results_capacity = 4

[models.person]
manifest = {manifest:?}

[inference.camera_tiles.c2]
grid = [2, 1]
full_frame = false

[[cameras]]
id = "c0"
source = {{ kind = "test" }}
models = ["person"]
[[cameras]]
id = "c1"
source = {{ kind = "test" }}
models = ["person"]
[[cameras]]
id = "c2"
source = {{ kind = "test" }}
models = ["person"]
[[cameras]]
id = "c3"
source = {{ kind = "test" }}
"#,
        manifest = nanodet_manifest().display().to_string()
    );
    let cfg = lookout_config::parse(&toml, "test.toml", Path::new(".")).unwrap();
    let cams: Vec<CameraId> = ["c0", "c1", "c2", "c3"]
        .iter()
        .map(|c| CameraId::from(*c))
        .collect();
    let hub = FrameHub::new(cams.clone());
    let (tx, rx) = crossbeam_channel::bounded(4);
    let svc = InferenceService::start(&cfg, hub.clone(), tx).unwrap();
    let publisher = {
        let hub = hub.clone();
        let cams = cams.clone();
        std::thread::spawn(move || {
            for seq in 0..6u64 {
                for (ci, cam) in cams.iter().enumerate() {
                    let img = &imgs[(seq as usize + ci) % imgs.len()];
                    let mut f = Frame::from_rgb(
                        cam.clone(),
                        seq,
                        chrono::Utc::now(),
                        img.width,
                        img.height,
                        img.data.clone(),
                    );
                    if ci == 1 && seq % 2 == 1 {
                        f.pose = Some(Pose {
                            moving: true,
                            ..Pose::default()
                        });
                    }
                    hub.publish(f).unwrap();
                }
                std::thread::sleep(Duration::from_millis(30));
            }
            hub.close();
        })
    };
    // Consume on another thread; the channel is small, so the workers block until it reads.
    let collector = std::thread::spawn(move || rx.iter().collect::<Vec<StageMsg>>());
    publisher.join().unwrap();
    // Returns once the hub is closed and drained; the final statistics come back.
    let stats = svc.join();
    let msgs = collector.join().unwrap();

    let mut last_seq: std::collections::HashMap<String, u64> = Default::default();
    let mut frames_per_cam: std::collections::HashMap<String, (usize, usize)> = Default::default();
    for m in &msgs {
        match m {
            StageMsg::ImageStats(s) => {
                let e = frames_per_cam.entry(s.camera.to_string()).or_default();
                e.0 += 1;
                if let Some(prev) = last_seq.insert(s.camera.to_string(), s.seq) {
                    assert!(s.seq > prev, "camera {} out of order", s.camera);
                }
            }
            StageMsg::Frame(r) => {
                assert_eq!(r.model.as_ref(), "person");
                assert_ne!(r.camera.as_ref(), "c3", "c3 runs no model");
                assert_eq!(
                    last_seq.get(r.camera.as_ref()),
                    Some(&r.seq),
                    "result follows its image stats"
                );
                frames_per_cam.entry(r.camera.to_string()).or_default().1 += 1;
                for d in &r.detections {
                    assert!(d.score >= 0.05);
                    assert!(d.bbox.x2 <= r.width as f32 && d.bbox.y2 <= r.height as f32);
                }
            }
            other => panic!("unexpected message {other:?}"),
        }
    }
    eprintln!("stats: {stats:?}\nper camera (stats, results): {frames_per_cam:?}");
    for cam in ["c0", "c1", "c2"] {
        let (s, r) = frames_per_cam.get(cam).copied().unwrap_or_default();
        assert!(s >= 1, "camera {cam} was analysed");
        assert_eq!(
            s, r,
            "camera {cam}: one result per analysed frame, empty ones included"
        );
    }
    assert!(frames_per_cam
        .get("c3")
        .is_some_and(|(s, r)| *s >= 1 && *r == 0));
    let c1 = &stats.cameras["c1"];
    let hub1 = hub.stats("c1").unwrap();
    // Every frame inference took from c1 was either analysed or skipped as moving.
    assert_eq!(c1.analysed + c1.skipped_moving, hub1.taken);
    let total_analysed: u64 = stats.cameras.values().map(|c| c.analysed).sum();
    let stat_msgs = msgs
        .iter()
        .filter(|m| matches!(m, StageMsg::ImageStats(_)))
        .count() as u64;
    assert_eq!(total_analysed, stat_msgs);
    assert!(stats.batch_histogram.iter().sum::<u64>() >= 1);
}

#[test]
fn detect_command_writes_json_and_annotated_images() {
    let dir = tempfile::tempdir().unwrap();
    let data = shared().join("datasets/pennfudan-person/images");
    let mut files: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let args = lookout_infer::DetectArgs {
        model: nanodet_manifest(),
        inputs: vec![files[0].clone(), files[1].clone()],
        out: dir.path().join("out"),
        no_images: false,
        min_score: 0.5,
        tile: None,
        threads: 2,
    };
    let report = lookout_infer::run_detect(&args).unwrap();
    assert_eq!(report.images.len(), 2);
    assert_eq!(report.provider, "cpu");
    let json = serde_json::to_value(&report).unwrap();
    assert!(json["images"][0]["detections"]
        .as_array()
        .is_some_and(|d| !d.is_empty()));
    for im in &report.images {
        assert!(im.detections.iter().all(|d| d.score >= 0.5));
        let annotated = im.annotated.as_ref().unwrap();
        let back = lookout_imageops::load_rgb8(annotated).unwrap();
        assert_eq!((back.width, back.height), (im.width, im.height));
    }
    // A missing input is reported by name; the good one is still analysed.
    let r = lookout_infer::run_detect(&lookout_infer::DetectArgs {
        inputs: vec![dir.path().join("missing.jpg"), files[0].clone()],
        ..args
    })
    .unwrap();
    assert_eq!(r.images.len(), 1);
    assert_eq!(r.errors.len(), 1);
    assert!(r.errors[0].path.ends_with("missing.jpg"), "{:?}", r.errors);
}

#[test]
fn eval_with_label_names_limit_and_negatives() {
    let data = shared().join("datasets/pennfudan-person");
    let mut args = EvalArgs::new(nanodet_manifest(), &data);
    args.limit = Some(5);
    args.labels = vec!["person".into()];
    args.neg = vec![shared().join("datasets/dfire-negatives/eval")];
    let report = run_eval(&args).unwrap();
    let mut files: Vec<_> = std::fs::read_dir(data.join("labels"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let positives: usize = files
        .iter()
        .take(5)
        .map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .filter(|l| !l.trim().is_empty())
                .count()
        })
        .sum();
    assert_eq!(report.classes["person"].positives, positives);
    assert_eq!(report.negatives.images, 50);
    assert_eq!(report.images, 55);
    assert!(report.negatives.hit_50 <= report.negatives.hit_25 && report.negatives.hit_25 <= 50);
    // An unknown label name is an argument error naming the classes.
    args.labels = vec!["smoke".into()];
    let e = run_eval(&args).unwrap_err();
    assert!(e.to_string().contains("\"smoke\" is not a class"), "{e}");
}

/// A 1920 × 1080 view with one small, far person: a D-Fire fixed-camera frame (CC0,
/// `dfire-negatives/train/images/AoF00000.jpg`) scaled up, and the Penn-Fudan guard of the
/// demo clip (FudanPed00030's labelled box) scaled to `tall` px and pasted at (`x`, `y`).
/// Returns the frame and the pasted box.
fn far_person_frame(x: u32, y: u32, tall: u32) -> (lookout_imageops::RgbImage, BBox) {
    let mut rs = lookout_imageops::Resizer::new();
    let bg = lookout_imageops::load_rgb8(
        &shared().join("datasets/dfire-negatives/train/images/AoF00000.jpg"),
    )
    .unwrap();
    let (w, h) = (1920u32, 1080u32);
    let mut data = vec![0u8; (w * h * 3) as usize];
    rs.resize_rgb8(&bg.data, bg.width, bg.height, None, &mut data, w, h)
        .unwrap();
    let ped = shared().join("datasets/pennfudan-person");
    let src = lookout_imageops::load_rgb8(&ped.join("images/FudanPed00030.jpg")).unwrap();
    let (_, b) = yolo_labels(&ped.join("labels/FudanPed00030.txt"), src.width, src.height)[0];
    let crop = lookout_imageops::CropRect {
        x: b.x1 as f64,
        y: b.y1 as f64,
        width: (b.x2 - b.x1) as f64,
        height: (b.y2 - b.y1) as f64,
    };
    let pw = ((tall as f32) * (b.x2 - b.x1) / (b.y2 - b.y1)).round() as u32;
    let mut sprite = vec![0u8; (pw * tall * 3) as usize];
    rs.resize_rgb8(
        &src.data,
        src.width,
        src.height,
        Some(crop),
        &mut sprite,
        pw,
        tall,
    )
    .unwrap();
    for row in 0..tall {
        let d = (((y + row) * w + x) * 3) as usize;
        let s = (row * pw * 3) as usize;
        data[d..d + (pw * 3) as usize].copy_from_slice(&sprite[s..s + (pw * 3) as usize]);
    }
    let img = lookout_imageops::RgbImage {
        width: w,
        height: h,
        data,
    };
    let bbox = BBox::new(x as f32, y as f32, (x + pw) as f32, (y + tall) as f32);
    (img, bbox)
}

#[test]
fn a_far_person_at_a_duty_post_is_found_only_by_the_zone_crop() {
    // The guard, 64 px tall, at a duty post in the lower left of a 1080p view. Camera
    // "plain" runs the resized frame; "zoned" adds the post's crop at native resolution.
    let (img, truth) = far_person_frame(330, 700, 64);
    let toml = format!(
        r#"
[inference]
max_batch = 2
max_wait_ms = 5

[models.person]
manifest = {manifest:?}

[inference.camera_zones.zoned]
margin = 0.25

[[cameras]]
id = "plain"
source = {{ kind = "test" }}
models = ["person"]
[[cameras]]
id = "zoned"
source = {{ kind = "test" }}
models = ["person"]

[rules.cameras.plain]
zones = [{{ name = "post", polygon = [[0.15, 0.6], [0.22, 0.6], [0.22, 0.75], [0.15, 0.75]] }}]
[rules.cameras.zoned]
zones = [{{ name = "post", polygon = [[0.15, 0.6], [0.22, 0.6], [0.22, 0.75], [0.15, 0.75]] }}]

[[rules.duty_posts]]
camera = "plain"
zone = "post"
max_vacant_s = 20
[[rules.duty_posts]]
camera = "zoned"
zone = "post"
max_vacant_s = 20
"#,
        manifest = nanodet_manifest().display().to_string()
    );
    let cfg = lookout_config::parse(&toml, "test.toml", Path::new(".")).unwrap();
    let cams: Vec<CameraId> = ["plain", "zoned"]
        .iter()
        .map(|c| CameraId::from(*c))
        .collect();
    let hub = FrameHub::new(cams.clone());
    let (tx, rx) = crossbeam_channel::bounded(8);
    let svc = InferenceService::start(&cfg, hub.clone(), tx).unwrap();
    let collector = std::thread::spawn(move || rx.iter().collect::<Vec<StageMsg>>());
    for (seq, cam) in cams.iter().enumerate() {
        let f = Frame::from_rgb(
            cam.clone(),
            seq as u64,
            chrono::Utc::now(),
            img.width,
            img.height,
            img.data.clone(),
        );
        hub.publish(f).unwrap();
    }
    hub.close();
    svc.join();
    let msgs = collector.join().unwrap();
    let best = |cam: &str| -> f32 {
        msgs.iter()
            .filter_map(|m| match m {
                StageMsg::Frame(r) if r.camera.as_ref() == cam => Some(r),
                _ => None,
            })
            .flat_map(|r| r.detections.iter())
            .filter(|d| d.class.as_ref() == "person" && d.bbox.iou(&truth) >= 0.5)
            .map(|d| d.score)
            .fold(0.0, f32::max)
    };
    let (plain, zoned) = (best("plain"), best("zoned"));
    eprintln!("person at {truth:?}: plain resize {plain:.3}, zone crop {zoned:.3}");
    // 0.57 measured; the manifest's person threshold is 0.5.
    assert!(zoned >= 0.5, "the zone crop finds the guard: {zoned}");
    assert!(plain < 0.3, "the resized frame misses him: {plain}");
    // Every box of the zoned camera is in frame pixels, inside the frame.
    for m in &msgs {
        if let StageMsg::Frame(r) = m {
            for d in &r.detections {
                assert!(d.bbox.x1 >= 0.0 && d.bbox.x2 <= 1920.0 && d.bbox.y2 <= 1080.0);
            }
        }
    }
}

#[test]
fn cameras_changed_live_get_their_plan_and_lose_it() {
    let img = lookout_imageops::load_rgb8(
        &shared().join("datasets/pennfudan-person/images/FudanPed00001.jpg"),
    )
    .unwrap();
    let toml = format!(
        r#"
[inference]
workers = 1
max_wait_ms = 5

[models.person]
manifest = {manifest:?}

[[cameras]]
id = "c0"
source = {{ kind = "test" }}
models = ["person"]
[[cameras]]
id = "c1"
enabled = false
source = {{ kind = "test" }}
models = ["person"]
"#,
        manifest = nanodet_manifest().display().to_string()
    );
    let mut cfg = lookout_config::parse(&toml, "test.toml", Path::new(".")).unwrap();
    let hub = FrameHub::new([CameraId::from("c0")]);
    let (tx, rx) = crossbeam_channel::bounded(64);
    let svc = InferenceService::start(&cfg, hub.clone(), tx).unwrap();
    let switch = svc.switch();
    let frame = |cam: &str, seq: u64| {
        Frame::from_rgb(
            CameraId::from(cam),
            seq,
            chrono::Utc::now(),
            img.width,
            img.height,
            img.data.clone(),
        )
    };
    // The number of confident people in the result of (cam, seq), waiting for it.
    let result = |cam: &str, seq: u64| -> Option<usize> {
        let until = std::time::Instant::now() + Duration::from_secs(20);
        while std::time::Instant::now() < until {
            if let Ok(StageMsg::Frame(r)) = rx.recv_timeout(Duration::from_millis(100)) {
                if r.camera.as_ref() == cam && r.seq == seq {
                    return Some(r.detections.iter().filter(|d| d.score >= 0.5).count());
                }
            }
        }
        None
    };
    hub.publish(frame("c0", 1)).unwrap();
    assert!(
        result("c0", 1).is_some_and(|n| n >= 1),
        "c0 runs the person model"
    );

    // c1 enabled live: the plan first, then its frames.
    cfg.cameras[1].enabled = true;
    switch
        .set_camera(&cfg, &CameraId::from("c1"), false)
        .unwrap();
    hub.add_camera("c1".into());
    hub.publish(frame("c1", 7)).unwrap();
    assert!(
        result("c1", 7).is_some_and(|n| n >= 1),
        "c1 runs the person model"
    );
    assert_eq!(svc.stats().cameras["c1"].analysed, 1);

    // Restarted: its numbers may start again, and are not shed as out of order.
    switch
        .set_camera(&cfg, &CameraId::from("c1"), true)
        .unwrap();
    hub.publish(frame("c1", 0)).unwrap();
    assert!(
        result("c1", 0).is_some(),
        "a restarted camera's first frame is analysed"
    );
    assert_eq!(svc.stats().cameras["c1"].reordered, 0);

    // A camera listing an unknown model is refused, naming both.
    let mut bad = cfg.clone();
    bad.cameras[1].models = vec!["nope".into()];
    let err = switch
        .set_camera(&bad, &CameraId::from("c1"), false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("c1") && err.contains("nope"), "{err}");

    // Stopped live: gone from the statistics; c0 unaffected.
    assert!(switch.remove_camera("c1").unwrap());
    assert!(!switch.remove_camera("c1").unwrap());
    hub.remove_camera("c1");
    assert!(!svc.stats().cameras.contains_key("c1"));
    hub.publish(frame("c0", 2)).unwrap();
    assert!(result("c0", 2).is_some());
    hub.close();
    drop(rx);
    svc.join();
    // After the service has stopped the switch says so.
    assert!(switch
        .set_camera(&cfg, &CameraId::from("c1"), false)
        .unwrap_err()
        .to_string()
        .contains("stopped"));
}
