//! The recording filter: recordings keep only the classes the rules use, above the
//! recording floor, and empty frames; replay and the tuning what-if give the same answers
//! on the filtered recording as on the full one.

mod common;
use common::*;

use lookout_core::{Detection, StageMsg};
use lookout_rules::{read_recording, replay, Recorder, RulesConfig, RulesEngine};

const PLANT: &str = r#"
[rules.cameras.plant1]
zones = [
  { name = "control-room", polygon = [[0, 0], [0.5, 0], [0.5, 1], [0, 1]], inertia = 2 },
  { name = "yard", polygon = [[0, 0], [1, 0], [1, 1], [0, 1]], inertia = 2, person_events = true },
]
[[rules.duty_posts]]
camera = "plant1"
zone = "control-room"
max_vacant_s = 10
[[rules.occupancy]]
camera = "plant1"
zone = "yard"
max_people = 1
min_duration_s = 3
"#;

/// A deterministic jitter in 0..1.
fn jitter(i: u64, k: u64) -> f32 {
    let x = (i * 2654435761 + k * 40503) % 1000;
    x as f32 / 1000.0
}

/// A COCO-like detector's output: people who come and go (scores from the floor up),
/// plus cars, a dog and a chair at any score; and a smoke-fire camera with weak and
/// strong smoke and fire. Every fifth plant frame is empty.
fn script() -> Vec<StageMsg> {
    let mut msgs = vec![health("plant1", 0.0, true)];
    for i in 0..240u64 {
        let t = i as f64 * 0.5;
        let mut people: Vec<Detection> = Vec::new();
        if i % 5 != 0 {
            let staff = (20..90).contains(&i) || (150..200).contains(&i);
            if staff {
                people.push(person_at(
                    200.0 + jitter(i, 1) * 8.0,
                    800.0,
                    0.3 + 0.6 * jitter(i, 2),
                ));
            }
            if (60..140).contains(&i) {
                people.push(person_at(
                    700.0 - i as f32,
                    850.0,
                    0.05 + 0.9 * jitter(i, 3),
                ));
                people.push(person_at(850.0, 700.0, 0.5 + 0.4 * jitter(i, 4)));
            }
            people.push(det(
                "car",
                0.05 + 0.9 * jitter(i, 5),
                [600.0, 500.0, 900.0, 700.0],
            ));
            people.push(det(
                "dog",
                0.07 + 0.3 * jitter(i, 6),
                [100.0, 900.0, 180.0, 980.0],
            ));
            people.push(det("chair", 0.6, [300.0, 600.0, 360.0, 700.0]));
        }
        msgs.push(frame("plant1", "person", i, t, people));
        let mut fire = Vec::new();
        if (30..200).contains(&i) && i % 7 != 0 {
            fire.push(det(
                "smoke",
                0.06 + 0.8 * jitter(i, 7),
                [400.0, 300.0, 500.0, 420.0],
            ));
        }
        if (100..160).contains(&i) {
            fire.push(det(
                "fire",
                0.08 + 0.8 * jitter(i, 8),
                [420.0, 380.0, 470.0, 420.0],
            ));
        }
        msgs.push(frame("a", "fire", i, t + 0.25, fire));
    }
    msgs.push(watermark(300.0));
    msgs
}

/// The tuning what-if: one camera's class threshold changed, as the tuning view does.
fn with_threshold(cfg: &RulesConfig, camera: &str, class: &str, threshold: f32) -> RulesConfig {
    let mut r = cfg.clone();
    let rule = r
        .cameras
        .entry(camera.into())
        .or_default()
        .classes
        .entry(class.into())
        .or_default();
    rule.threshold = Some(threshold);
    rule.keep_threshold = Some(threshold.min(0.35));
    r
}

#[test]
fn a_filtered_recording_replays_and_tunes_exactly_like_the_full_one() {
    let cfg = rules(PLANT);
    let dir = tempfile::tempdir().unwrap();
    let (full_path, kept_path) = (dir.path().join("full.jsonl"), dir.path().join("kept.jsonl"));
    let mut live = RulesEngine::try_new(&cfg).unwrap();
    let (mut full, mut kept) = (
        Recorder::open(&full_path).unwrap(),
        Recorder::open(&kept_path).unwrap(),
    );
    let mut scratch = StageMsg::Watermark { at: t0() };
    let mut live_events = Vec::new();
    for m in script() {
        full.record(&m).unwrap();
        kept.record(live.recorded(&m, &mut scratch)).unwrap();
        live.handle(&m, &mut live_events);
    }
    drop((full, kept));
    let full = read_recording(&full_path).unwrap();
    let kept = read_recording(&kept_path).unwrap();

    // Same messages, empty frames included; only used classes above the floor (0.1).
    assert_eq!(full.len(), kept.len());
    let dets = |msgs: &[StageMsg]| -> Vec<Detection> {
        msgs.iter()
            .filter_map(|m| match m {
                StageMsg::Frame(f) => Some(f.detections.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    };
    let (all, some) = (dets(&full), dets(&kept));
    assert!(
        some.len() * 2 < all.len(),
        "{} of {} kept",
        some.len(),
        all.len()
    );
    assert!(some
        .iter()
        .all(|d| ["person", "smoke", "fire"].contains(&&*d.class) && d.score >= 0.1));
    assert!(all.iter().any(|d| &*d.class == "person" && d.score < 0.1));
    let empty = |msgs: &[StageMsg]| {
        msgs.iter()
            .filter(|m| matches!(m, StageMsg::Frame(f) if f.detections.is_empty()))
            .count()
    };
    assert!(empty(&kept) >= empty(&full) && empty(&full) > 0);
    assert!(
        std::fs::metadata(&kept_path).unwrap().len() < std::fs::metadata(&full_path).unwrap().len()
    );

    // Replay: the live events, from either recording.
    let from_full = replay(full.clone(), &cfg);
    assert_eq!(from_full, live_events);
    assert_eq!(replay(kept.clone(), &cfg), from_full);
    let kinds: std::collections::BTreeSet<_> = from_full.iter().map(|e| e.kind).collect();
    assert!(
        kinds.len() >= 4,
        "the script should exercise the rules: {kinds:?}"
    );

    // The tuning what-if: every setting answers the same on both recordings.
    for (camera, class) in [("a", "smoke"), ("a", "fire"), ("plant1", "person")] {
        for threshold in [0.3, 0.5, 0.7, 0.9] {
            let tuned = with_threshold(&cfg, camera, class, threshold);
            assert_eq!(
                replay(full.clone(), &tuned),
                replay(kept.clone(), &tuned),
                "{camera} {class} {threshold}"
            );
        }
    }
}

#[test]
fn record_keys_are_validated_and_extra_classes_are_kept() {
    let errs = rules_errors("[rules.record]\nmin_score = 1.5\n");
    assert!(
        errs.iter()
            .any(|e| e.contains("rules.record.min_score") && e.contains("1.5")),
        "{errs:?}"
    );
    let cfg = rules("[rules.record]\nclasses = [\"car\"]\nmin_score = 0.5\n");
    let e = RulesEngine::try_new(&cfg).unwrap();
    let msg = frame(
        "a",
        "person",
        0,
        0.0,
        vec![
            det("car", 0.6, [0.0, 0.0, 10.0, 10.0]),
            det("car", 0.4, [0.0, 0.0, 10.0, 10.0]),
            det("dog", 0.9, [0.0, 0.0, 10.0, 10.0]),
        ],
    );
    let mut scratch = StageMsg::Watermark { at: t0() };
    let StageMsg::Frame(f) = e.recorded(&msg, &mut scratch) else {
        panic!("a frame stays a frame")
    };
    assert_eq!(f.detections.len(), 1);
    assert_eq!(
        (&*f.detections[0].class, f.detections[0].score),
        ("car", 0.6)
    );
}
