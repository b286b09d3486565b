//! Event-level evaluation and the sequence-directory format.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::*;
use lookout_core::{Detection, FrameResult, StageMsg};
use lookout_rules::eval::{evaluate, EvalOptions, EvalReport, LabelBox, LabelledSequence, Truth};
use lookout_rules::seq::{parse_furg_xml, seq_from_stills, seq_labels_from_furg, SeqDir};
use lookout_rules::RulesConfig;

fn shared() -> PathBuf {
    std::env::var("LOOKOUT_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared")).to_path_buf()
        })
}

const PLUME: [f32; 4] = [400.0, 300.0, 500.0, 420.0];
const CLOUD: [f32; 4] = [100.0, 100.0, 200.0, 200.0];

/// 20 frames 10 s apart; `dets(i)` gives frame i's detections.
fn seq_frames(name: &str, dets: impl Fn(usize) -> Vec<Detection>) -> Vec<FrameResult> {
    (0..20)
        .map(
            |i| match frame(name, "fire", i as u64, 10.0 * i as f64, dets(i)) {
                StageMsg::Frame(f) => f,
                _ => unreachable!(),
            },
        )
        .collect()
}

fn boxes(from: usize, b: [f32; 4]) -> Truth {
    Truth::Boxes(
        (0..20)
            .map(|i| {
                if i >= from {
                    vec![LabelBox {
                        class: "smoke".into(),
                        bbox: lookout_core::BBox::new(b[0], b[1], b[2], b[3]),
                    }]
                } else {
                    vec![]
                }
            })
            .collect(),
    )
}

#[test]
fn event_level_metrics_on_scripted_sequences() {
    let seqs = vec![
        // Smoke labelled from frame 5, detected from frame 7: starts at 9 (3 of 5).
        LabelledSequence {
            name: "pos".into(),
            frames: seq_frames("pos", |i| {
                if i >= 7 {
                    vec![det("smoke", 0.7, PLUME)]
                } else {
                    vec![]
                }
            }),
            truth: boxes(5, PLUME),
        },
        // A cloud on a negative sequence.
        LabelledSequence {
            name: "neg".into(),
            frames: seq_frames("neg", |i| {
                if (3..10).contains(&i) {
                    vec![det("smoke", 0.8, CLOUD)]
                } else {
                    vec![]
                }
            }),
            truth: Truth::Boxes(vec![vec![]; 20]),
        },
        // Labelled by time: smoke from frame 10; the detector fires at 2 already (false),
        // and the same track carries on (no second event).
        LabelledSequence {
            name: "early".into(),
            frames: seq_frames("early", |i| {
                if i >= 2 {
                    vec![det("smoke", 0.8, PLUME)]
                } else {
                    vec![]
                }
            }),
            truth: Truth::FirstPositive {
                index: Some(10),
                class: Some("smoke".into()),
            },
        },
        // Labelled smoke, nothing detected.
        LabelledSequence {
            name: "missed".into(),
            frames: seq_frames("missed", |_| vec![]),
            truth: boxes(0, PLUME),
        },
    ];
    let report = evaluate(&seqs, &RulesConfig::default(), &EvalOptions::default());
    let smoke = &report.classes[0];
    assert_eq!(smoke.class, "smoke");
    assert_eq!(smoke.sequences, 4);
    assert_eq!(smoke.positive_sequences, 3);
    assert_eq!(
        (smoke.events, smoke.true_events, smoke.false_events),
        (3, 1, 2)
    );
    assert_eq!((smoke.detected_sequences, smoke.missed_sequences), (1, 2));
    assert!((smoke.precision.unwrap() - 1.0 / 3.0).abs() < 1e-9);
    assert!((smoke.sequence_recall.unwrap() - 1.0 / 3.0).abs() < 1e-9);
    let ttd = smoke.ttd_s.unwrap();
    assert_eq!((ttd.n, ttd.median), (1, 40.0));
    assert_eq!(smoke.ttd_frames.unwrap().median, 4.0);
    let pos = report
        .sequences
        .iter()
        .find(|r| r.name == "pos" && r.class == "smoke")
        .unwrap();
    assert_eq!((pos.first_positive, pos.ttd_frames), (Some(5), Some(4)));
    let fire = &report.classes[1];
    assert_eq!((fire.events, fire.positive_sequences), (0, 0));
    assert_eq!(fire.precision, None);

    // The report is data: JSON round trip.
    let json = serde_json::to_string(&report).unwrap();
    let back: EvalReport = serde_json::from_str(&json).unwrap();
    assert_eq!(back, report);

    // A stricter threshold (0.75) silences the 0.7 plume; only the 0.8 cloud still alarms.
    let mut strict = RulesConfig::default();
    strict.classes.entry("smoke".into()).or_default().threshold = Some(0.75);
    let seqs2: Vec<LabelledSequence> = seqs.iter().filter(|s| s.name != "early").cloned().collect();
    let r2 = evaluate(&seqs2, &strict, &EvalOptions::default());
    assert_eq!((r2.classes[0].events, r2.classes[0].true_events), (1, 0));
}

#[test]
fn furg_xml_to_sequence_dir() {
    let xml_path = shared().join("datasets/furg-house6/furg_house6.xml");
    let text = std::fs::read_to_string(&xml_path).unwrap();
    let ann = parse_furg_xml(&text, &xml_path).unwrap();
    assert_eq!((ann.width, ann.height), (426, 240));
    assert_eq!(ann.frames.len(), 900);
    assert_eq!(ann.frames.values().map(Vec::len).sum::<usize>(), 3662);
    assert_eq!(
        ann.frames[&0],
        vec![[176.0, 84.0, 24.0, 33.0], [154.0, 152.0, 17.0, 44.0]]
    );

    // The caller extracted every 30th frame of the test half (450..900).
    let dir = tempfile::tempdir().unwrap();
    let frames: Vec<(u32, String)> = (450..900)
        .step_by(30)
        .map(|n| (n, format!("{n:05}.jpg")))
        .collect();
    std::fs::create_dir_all(dir.path().join("frames")).unwrap();
    for (_, name) in &frames {
        std::fs::write(dir.path().join("frames").join(name), b"").unwrap();
    }
    let meta = seq_labels_from_furg(&ann, &frames, dir.path(), 1.0, "fire").unwrap();
    assert_eq!(meta.first_positive.as_deref(), Some("00450.jpg"));
    let seq = SeqDir::read(dir.path()).unwrap();
    assert_eq!(seq.frames.len(), 15);
    assert_eq!(seq.first_positive, Some(0));
    let labels = seq.labels.as_ref().unwrap();
    assert_eq!(labels[0].len(), ann.frames[&450].len());
    // Boxes come back in pixels at the original size.
    let b = labels[0][0].to_bbox(426, 240);
    let [x, y, w, h] = ann.frames[&450][0];
    assert!(
        (b.x1 - x).abs() < 0.01
            && (b.y1 - y).abs() < 0.01
            && (b.width() - w).abs() < 0.01
            && (b.height() - h).abs() < 0.01
    );
    match seq.truth(&[(426, 240); 15]) {
        Truth::Boxes(t) => {
            assert!(t.iter().all(|f| f.iter().all(|l| l.class == "fire")) && !t[0].is_empty())
        }
        other => panic!("{other:?}"),
    }

    // Truth from the labels drives an evaluation: detections = the labelled boxes from the
    // third frame on.
    let results: Vec<FrameResult> = (0..15)
        .map(|i| FrameResult {
            camera: Arc::from("house6"),
            seq: i as u64,
            captured_at: seq.captured_at(i, t0()),
            preset: None,
            width: 426,
            height: 240,
            model: Arc::from("fire"),
            detections: if i >= 2 {
                labels[i]
                    .iter()
                    .map(|l| Detection {
                        class: Arc::from("fire"),
                        class_id: 1,
                        score: 0.8,
                        bbox: l.to_bbox(426, 240),
                        role: None,
                    })
                    .collect()
            } else {
                vec![]
            },
        })
        .collect();
    let report = evaluate(
        &[LabelledSequence {
            name: "house6".into(),
            truth: seq.truth(&[(426, 240); 15]),
            frames: results,
        }],
        &RulesConfig::default(),
        &EvalOptions::default(),
    );
    let fire = &report.classes[1];
    assert_eq!(fire.class, "fire");
    assert!(fire.events >= 1 && fire.false_events == 0, "{fire:?}");
    assert_eq!(fire.missed_sequences, 0);
    // Fire needs 2 of 4 frames: first detected at frame 2, started at 3.
    assert_eq!(fire.ttd_frames.unwrap().median, 3.0);
}

#[test]
fn sequence_dir_from_stills_and_errors() {
    let src = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(src.path().join("images")).unwrap();
    std::fs::create_dir_all(src.path().join("labels")).unwrap();
    for n in ["b.jpg", "a.jpg", "c.png"] {
        std::fs::write(src.path().join("images").join(n), b"img").unwrap();
    }
    std::fs::write(src.path().join("images/notes.txt"), b"not an image").unwrap();
    std::fs::write(src.path().join("labels/b.txt"), "0 0.5 0.5 0.2 0.1\n").unwrap();
    let dest = tempfile::tempdir().unwrap();
    let seq = seq_from_stills(src.path(), dest.path(), 30.0, Some("b.jpg"), Some("smoke")).unwrap();
    assert_eq!(seq.frames, vec!["a.jpg", "b.jpg", "c.png"]);
    assert_eq!(seq.first_positive, Some(1));
    let labels = seq.labels.as_ref().unwrap();
    assert_eq!(
        (labels[0].len(), labels[1].len(), labels[2].len()),
        (0, 1, 0)
    );
    assert_eq!(seq.captured_at(2, t0()), at(60.0));
    assert!(dest.path().join("frames/c.png").is_file());

    // Broken inputs are named.
    std::fs::write(dest.path().join("labels/c.txt"), "0 0.5 0.5 1.7 0.1\n").unwrap();
    let err = SeqDir::read(dest.path()).unwrap_err().to_string();
    assert!(
        err.contains("c.txt:1:") && err.contains("normalised"),
        "{err}"
    );
    std::fs::remove_file(dest.path().join("labels/c.txt")).unwrap();
    std::fs::write(
        dest.path().join("sequence.toml"),
        "interval_s = 30\nfirst_positive = \"zz.jpg\"\n",
    )
    .unwrap();
    let err = SeqDir::read(dest.path()).unwrap_err().to_string();
    assert!(err.contains("zz.jpg"), "{err}");
    std::fs::write(
        dest.path().join("sequence.toml"),
        "interval_s = 30\nfirst_positve = \"a.jpg\"\n",
    )
    .unwrap();
    let err = SeqDir::read(dest.path()).unwrap_err().to_string();
    assert!(
        err.contains("sequence.toml:2:") && err.contains("unknown field"),
        "{err}"
    );
}
