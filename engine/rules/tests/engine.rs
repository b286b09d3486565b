//! Scripted detection sequences through the rules engine, with accelerated time.

mod common;

use common::*;
use lookout_core::{EventKind, EventPhase, StageMsg};
use lookout_rules::{replay, RulesConfig, RulesEngine};

const SMOKE_BOX: [f32; 4] = [400.0, 300.0, 500.0, 420.0];

/// Smoke frames at 1 s intervals with the given scores, then `tail` empty frames.
fn smoke_run(camera: &str, scores: &[f32], tail: usize) -> Vec<StageMsg> {
    let mut v = Vec::new();
    let mut seq = 0;
    for &s in scores {
        v.push(frame(
            camera,
            "fire",
            seq,
            seq as f64,
            vec![det("smoke", s, SMOKE_BOX)],
        ));
        seq += 1;
    }
    for _ in 0..tail {
        v.push(frame(camera, "fire", seq, seq as f64, vec![]));
        seq += 1;
    }
    v
}

#[test]
fn one_frame_spike_raises_no_event() {
    let mut e = RulesEngine::new(&RulesConfig::default());
    let mut msgs = vec![frame(
        "a",
        "fire",
        0,
        0.0,
        vec![det("smoke", 0.95, SMOKE_BOX)],
    )];
    msgs.extend(smoke_run("a", &[], 0));
    for i in 1..60 {
        msgs.push(frame("a", "fire", i, i as f64, vec![]));
    }
    let ev = run(&mut e, &msgs);
    assert!(ev.is_empty(), "{ev:?}");
}

#[test]
fn persistent_smoke_is_exactly_one_start_update_end() {
    let mut e = RulesEngine::new(&RulesConfig::default());
    let mut scores = vec![0.5; 8];
    scores.extend([0.9; 4]);
    let ev = run(&mut e, &smoke_run("a", &scores, 45));
    assert_eq!(
        phases(&ev),
        vec![
            (EventKind::Smoke, EventPhase::Start),
            (EventKind::Smoke, EventPhase::Update),
            (EventKind::Smoke, EventPhase::End)
        ],
        "{ev:#?}"
    );
    assert!(
        ev.iter().all(|x| x.id == ev[0].id),
        "one id for the whole event"
    );
    // Persistence 3 of 5: the third frame starts it; first seen is the first sighting.
    assert_eq!(ev[0].last_seen, at(2.0));
    assert_eq!(ev[0].first_seen, at(0.0));
    assert_eq!(ev[0].track, Some(1));
    assert!((ev[1].best_score - 0.9).abs() < 1e-6);
    assert_eq!(ev[1].snapshot.as_ref().map(|s| s.seq), Some(8));
    // Ends after the quiet time (30 s) since the last sighting at 11 s.
    assert_eq!(ev[2].last_seen, at(11.0));
    assert!(ev[2].bbox.is_some() && ev[2].frame_size == Some((1000, 1000)));
    assert!(e.open_events().is_empty());
}

#[test]
fn hysteresis_keeps_an_ongoing_event_alive() {
    // 0.40 is under the start threshold (0.45) and over the keep threshold (0.35).
    let mut scores = vec![0.5; 5];
    scores.extend([0.40; 40]);
    let ev = run(
        &mut RulesEngine::new(&RulesConfig::default()),
        &smoke_run("a", &scores, 0),
    );
    assert_eq!(
        phases(&ev),
        vec![(EventKind::Smoke, EventPhase::Start)],
        "{ev:#?}"
    );

    // The same 0.40 alone never starts an event.
    let ev = run(
        &mut RulesEngine::new(&RulesConfig::default()),
        &smoke_run("a", &[0.40; 40], 0),
    );
    assert!(ev.is_empty(), "{ev:#?}");

    // Below the keep threshold the event lapses and ends after the quiet time.
    let mut scores = vec![0.5; 5];
    scores.extend([0.30; 50]);
    let ev = run(
        &mut RulesEngine::new(&RulesConfig::default()),
        &smoke_run("a", &scores, 0),
    );
    assert_eq!(
        phases(&ev),
        vec![
            (EventKind::Smoke, EventPhase::Start),
            (EventKind::Smoke, EventPhase::End)
        ]
    );
    // The median of 5 drops below 0.35 once three 0.30 scores are in: last alive at 6 s.
    assert_eq!(ev[1].last_seen, at(6.0));

    // The same track qualifying again later is a new event with its own id and clock.
    let mut scores = vec![0.5; 5];
    scores.extend([0.30; 40]);
    scores.extend([0.6; 5]);
    let ev = run(
        &mut RulesEngine::new(&RulesConfig::default()),
        &smoke_run("a", &scores, 0),
    );
    assert_eq!(
        phases(&ev),
        vec![
            (EventKind::Smoke, EventPhase::Start),
            (EventKind::Smoke, EventPhase::End),
            (EventKind::Smoke, EventPhase::Start)
        ]
    );
    assert_eq!(ev[0].track, ev[2].track);
    assert_ne!(ev[0].id, ev[2].id);
    // Median of 5 back over 0.45 once three 0.6 scores are in (47 s).
    assert_eq!((ev[2].first_seen, ev[2].last_seen), (at(47.0), at(47.0)));
}

#[test]
fn masks_drop_detections_by_camera_class_and_preset() {
    let cfg = rules(
        r#"
[rules.cameras.a]
masks = [{ polygon = [[0, 0], [1, 0], [1, 0.5], [0, 0.5]], classes = ["smoke"] }]
[rules.cameras.tower]
masks = [{ polygon = [[0, 0], [1, 0], [1, 0.5], [0, 0.5]], preset = "north" }]
"#,
    );
    // Anchor (bottom centre) at y = 0.42: inside the top-half mask.
    let ev = run(&mut RulesEngine::new(&cfg), &smoke_run("a", &[0.8; 10], 0));
    assert!(ev.is_empty(), "masked smoke raised {ev:#?}");
    // The mask is for smoke only: fire there still counts.
    let fire: Vec<StageMsg> = (0..6)
        .map(|i| frame("a", "fire", i, i as f64, vec![det("fire", 0.9, SMOKE_BOX)]))
        .collect();
    let ev = run(&mut RulesEngine::new(&cfg), &fire);
    assert_eq!(phases(&ev), vec![(EventKind::Fire, EventPhase::Start)]);
    // Camera b has no mask.
    let ev = run(&mut RulesEngine::new(&cfg), &smoke_run("b", &[0.8; 10], 0));
    assert_eq!(phases(&ev), vec![(EventKind::Smoke, EventPhase::Start)]);
    // Preset masks apply only at their preset.
    let at_preset = |p: &str| -> Vec<StageMsg> {
        (0..10)
            .map(|i| {
                frame_at(
                    "tower",
                    "fire",
                    i,
                    i as f64,
                    Some(p),
                    vec![det("smoke", 0.8, SMOKE_BOX)],
                )
            })
            .collect()
    };
    assert!(run(&mut RulesEngine::new(&cfg), &at_preset("north")).is_empty());
    assert_eq!(
        run(&mut RulesEngine::new(&cfg), &at_preset("south")).len(),
        1
    );
}

#[test]
fn size_filters_drop_wide_and_tiny_boxes() {
    let cfg = rules(
        r#"
[rules.classes.smoke]
min_area = 0.01
"#,
    );
    // 0.9 of the frame wide: over the smoke default max_width 0.8.
    let wide: Vec<StageMsg> = (0..10)
        .map(|i| {
            frame(
                "a",
                "fire",
                i,
                i as f64,
                vec![det("smoke", 0.9, [50.0, 300.0, 950.0, 500.0])],
            )
        })
        .collect();
    assert!(run(&mut RulesEngine::new(&cfg), &wide).is_empty());
    // 50×50 px = 0.0025 of the frame: under min_area.
    let tiny: Vec<StageMsg> = (0..10)
        .map(|i| {
            frame(
                "a",
                "fire",
                i,
                i as f64,
                vec![det("smoke", 0.9, [100.0, 100.0, 150.0, 150.0])],
            )
        })
        .collect();
    assert!(run(&mut RulesEngine::new(&cfg), &tiny).is_empty());
    assert_eq!(
        run(&mut RulesEngine::new(&cfg), &smoke_run("a", &[0.9; 10], 0)).len(),
        1
    );
}

#[test]
fn zone_inertia_and_required_zones() {
    let cfg = rules(
        r#"
[rules.cameras.a]
zones = [
  { name = "yard", polygon = [[0.5, 0], [1, 0], [1, 1], [0.5, 1]], inertia = 3, person_events = true },
  { name = "forest", polygon = [[0, 0], [0.3, 0], [0.3, 1], [0, 1]], objects = ["smoke"], required = true, inertia = 2 },
]
"#,
    );
    // A person outside for 5 frames, then inside: person_in_zone starts on the third
    // frame inside.
    let mut msgs = Vec::new();
    for i in 0..5 {
        msgs.push(frame(
            "a",
            "person",
            i,
            i as f64,
            vec![person_at(400.0 + 5.0 * i as f32, 800.0, 0.9)],
        ));
    }
    for i in 5..12 {
        msgs.push(frame(
            "a",
            "person",
            i,
            i as f64,
            vec![person_at(600.0 + 5.0 * i as f32, 800.0, 0.9)],
        ));
    }
    let ev = run(&mut RulesEngine::new(&cfg), &msgs);
    assert_eq!(
        phases(&ev),
        vec![(EventKind::PersonInZone, EventPhase::Start)],
        "{ev:#?}"
    );
    assert_eq!(ev[0].last_seen, at(7.0));
    assert_eq!(ev[0].zone.as_deref(), Some("yard"));

    // Smoke outside the required zone raises nothing; inside it does, naming the zone.
    assert!(run(&mut RulesEngine::new(&cfg), &smoke_run("a", &[0.8; 10], 0)).is_empty());
    let inside: Vec<StageMsg> = (0..10)
        .map(|i| {
            frame(
                "a",
                "fire",
                i,
                i as f64,
                vec![det("smoke", 0.8, [100.0, 300.0, 200.0, 420.0])],
            )
        })
        .collect();
    let ev = run(&mut RulesEngine::new(&cfg), &inside);
    assert_eq!(phases(&ev), vec![(EventKind::Smoke, EventPhase::Start)]);
    assert_eq!(ev[0].zone.as_deref(), Some("forest"));
}

#[test]
fn tracks_keep_ids_through_occlusion_and_reset_on_preset_change() {
    let cfg = rules(
        r#"
[rules.cameras.tower]
zones = [{ name = "all", polygon = [[0, 0], [1, 0], [1, 1], [0, 1]], inertia = 1, person_events = true }]
"#,
    );
    let mut msgs = Vec::new();
    for i in 0..20u64 {
        let dets = if (6..10).contains(&i) {
            vec![]
        } else {
            vec![person_at(300.0 + 4.0 * i as f32, 700.0, 0.9)]
        };
        msgs.push(frame_at(
            "tower",
            "person",
            i,
            i as f64,
            Some("north"),
            dets,
        ));
    }
    let mut e = RulesEngine::new(&cfg);
    let ev = run(&mut e, &msgs);
    assert_eq!(
        phases(&ev),
        vec![(EventKind::PersonInZone, EventPhase::Start)],
        "{ev:#?}"
    );
    assert_eq!(e.track_count("tower"), 1);
    // Turning to another preset forgets tracks: the same box there is a new track.
    let ev = run(
        &mut e,
        &(20..25)
            .map(|i| {
                frame_at(
                    "tower",
                    "person",
                    i,
                    i as f64,
                    Some("south"),
                    vec![person_at(380.0, 700.0, 0.9)],
                )
            })
            .collect::<Vec<_>>(),
    );
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].track, Some(2));
}

/// A plant camera with a duty post on the left half.
const POST: &str = r#"
[rules.cameras.plant1]
zones = [{ name = "control-room", polygon = [[0, 0], [0.5, 0], [0.5, 1], [0, 1]], inertia = 2 }]
[[rules.duty_posts]]
camera = "plant1"
zone = "control-room"
max_vacant_s = 10
"#;

#[test]
fn duty_post_fires_when_empty_too_long_and_ends_when_staffed() {
    let cfg = rules(POST);
    let mut msgs = Vec::new();
    for i in 0..40u64 {
        let staffed = !(5..30).contains(&i);
        let dets = if staffed {
            vec![person_at(200.0, 800.0, 0.9)]
        } else {
            vec![]
        };
        msgs.push(frame("plant1", "person", i, i as f64, dets));
    }
    let ev = run(&mut RulesEngine::new(&cfg), &msgs);
    assert_eq!(
        phases(&ev),
        vec![
            (EventKind::PostVacant, EventPhase::Start),
            (EventKind::PostVacant, EventPhase::End)
        ],
        "{ev:#?}"
    );
    // Last counted at 4 s (coasting keeps it 2 more frames), so vacant from 7 s: start at 17.
    assert_eq!(ev[0].first_seen, at(7.0));
    assert_eq!(ev[0].last_seen, at(17.0));
    // A new track needs persistence 2 and inertia 2: staffed again at 31 s.
    assert_eq!(ev[1].last_seen, at(31.0));
    assert_eq!(ev[0].id, ev[1].id);
}

#[test]
fn camera_offline_suppresses_post_vacant() {
    let cfg = rules(POST);
    let mut msgs = vec![health("plant1", 0.0, true)];
    for i in 0..5u64 {
        msgs.push(frame("plant1", "person", i, i as f64, vec![]));
    }
    msgs.push(health("plant1", 5.0, false));
    for s in 6..120 {
        msgs.push(watermark(s as f64));
    }
    msgs.push(health("plant1", 120.0, true));
    for i in 121..128u64 {
        msgs.push(frame("plant1", "person", i, i as f64, vec![]));
    }
    let mut e = RulesEngine::new(&cfg);
    let ev = run(&mut e, &msgs);
    assert_eq!(
        phases(&ev),
        vec![
            (EventKind::CameraOffline, EventPhase::Start),
            (EventKind::CameraOffline, EventPhase::End)
        ],
        "{ev:#?}"
    );
    assert_eq!(ev[0].first_seen, at(5.0));
    assert_eq!(ev[0].last_seen, at(65.0));
    assert_eq!(ev[1].last_seen, at(120.0));
    // Back online, vacancy counts from the first frame after the restart (121 s).
    let more: Vec<StageMsg> = (128..140u64)
        .map(|i| frame("plant1", "person", i, i as f64, vec![]))
        .collect();
    let ev = run(&mut e, &more);
    assert_eq!(
        phases(&ev),
        vec![(EventKind::PostVacant, EventPhase::Start)]
    );
    assert_eq!(ev[0].first_seen, at(121.0));
    assert_eq!(ev[0].last_seen, at(131.0));
    // Going offline ends the vacancy event instead of leaving it open.
    let ev = run(&mut e, &[health("plant1", 140.0, false)]);
    assert_eq!(phases(&ev), vec![(EventKind::PostVacant, EventPhase::End)]);
}

#[test]
fn frames_from_a_model_without_people_do_not_empty_the_post() {
    let cfg = rules(POST);
    let msgs: Vec<StageMsg> = (0..30u64)
        .map(|i| frame("plant1", "smoke-fire", i, i as f64, vec![]))
        .collect();
    assert!(run(&mut RulesEngine::new(&cfg), &msgs).is_empty());
}

#[test]
fn occupancy_limit_fires_updates_and_clears() {
    let cfg = rules(
        r#"
[rules.cameras.plant1]
zones = [{ name = "tank-farm", polygon = [[0, 0], [1, 0], [1, 1], [0, 1]], inertia = 1 }]
[[rules.occupancy]]
camera = "plant1"
zone = "tank-farm"
max_people = 2
min_duration_s = 5
clear_s = 3
"#,
    );
    let people = |n: usize| -> Vec<lookout_core::Detection> {
        (0..n)
            .map(|k| person_at(100.0 + 150.0 * k as f32, 800.0, 0.9))
            .collect()
    };
    let mut msgs = Vec::new();
    for i in 0..30u64 {
        let n = match i {
            0..=9 => 3,
            10..=14 => 4,
            _ => 2,
        };
        msgs.push(frame("plant1", "person", i, i as f64, people(n)));
    }
    let ev = run(&mut RulesEngine::new(&cfg), &msgs);
    assert_eq!(
        phases(&ev),
        vec![
            (EventKind::OverOccupancy, EventPhase::Start),
            (EventKind::OverOccupancy, EventPhase::Update),
            (EventKind::OverOccupancy, EventPhase::End)
        ],
        "{ev:#?}"
    );
    // Confirmed (persistence 2) at 1 s, over the limit for 5 s at 6 s.
    assert_eq!(ev[0].first_seen, at(1.0));
    assert_eq!(ev[0].last_seen, at(6.0));
    assert_eq!(ev[0].count, Some(3));
    assert_eq!(ev[1].count, Some(4));
    assert!(ev[0].detail.contains("limit 2"), "{}", ev[0].detail);
    // Last over the limit at 16 s (the two extra tracks coast 2 frames), then within the
    // limit for 3 s.
    assert_eq!(ev[2].last_seen, at(16.0));
    assert!(
        ev[2].detail.contains("now 2 (since 3 s)"),
        "{}",
        ev[2].detail
    );
}

#[test]
fn restricted_area_fires_after_inertia_and_clears() {
    let cfg = rules(
        r#"
[rules.cameras.plant1]
zones = [{ name = "reactor", polygon = [[0.5, 0], [1, 0], [1, 1], [0.5, 1]], inertia = 3 }]
[[rules.restricted]]
camera = "plant1"
zone = "reactor"
clear_s = 4
"#,
    );
    let mut msgs = Vec::new();
    for i in 0..30u64 {
        let dets = match i {
            10..=19 => vec![person_at(700.0, 800.0, 0.9)],
            _ => vec![person_at(200.0, 800.0, 0.9)],
        };
        msgs.push(frame("plant1", "person", i, i as f64, dets));
    }
    let ev = run(&mut RulesEngine::new(&cfg), &msgs);
    assert_eq!(
        phases(&ev),
        vec![
            (EventKind::Restricted, EventPhase::Start),
            (EventKind::Restricted, EventPhase::End)
        ],
        "{ev:#?}"
    );
    // The jump to x=700 is a new track (no overlap), born at 10 inside the zone, confirmed
    // at 11, inside for 3 frames at 12.
    assert_eq!(ev[0].last_seen, at(12.0));
    // Last counted at 21 (coasting 2 frames after 19); empty from 22, clear after 4 s.
    assert_eq!(ev[1].last_seen, at(21.0));
}

#[test]
fn patrol_checkpoints_must_be_visited_in_time() {
    let cfg = rules(
        r#"
[rules.cameras.a]
zones = [
  { name = "gate", polygon = [[0, 0], [0.5, 0], [0.5, 1], [0, 1]], inertia = 1 },
  { name = "yard", polygon = [[0.5, 0], [1, 0], [1, 1], [0.5, 1]], inertia = 1 },
]
[[rules.patrols]]
name = "night round"
checkpoints = [{ camera = "a", zone = "gate", within_s = 30 }, { camera = "a", zone = "yard", within_s = 30 }]
"#,
    );
    let mut msgs = Vec::new();
    for i in 0..120u64 {
        let dets = match i {
            0..=2 => vec![person_at(200.0, 800.0, 0.9)],
            20..=22 => vec![person_at(800.0, 800.0, 0.9)],
            90..=92 => vec![person_at(200.0, 800.0, 0.9)],
            _ => vec![],
        };
        msgs.push(frame("a", "person", i, i as f64, dets));
    }
    let ev = run(&mut RulesEngine::new(&cfg), &msgs);
    assert_eq!(
        phases(&ev),
        vec![
            (EventKind::PatrolMissed, EventPhase::Start),
            (EventKind::PatrolMissed, EventPhase::End)
        ],
        "{ev:#?}"
    );
    // Gate visited at 1 s (confirmation), yard at 21 s; the gate is due by 51 s.
    assert_eq!(ev[0].first_seen, at(51.0));
    assert_eq!(ev[0].last_seen, at(52.0));
    assert_eq!(ev[0].zone.as_deref(), Some("gate"));
    assert_eq!(ev[1].last_seen, at(91.0));
}

#[test]
fn night_profile_raises_the_threshold_by_local_time() {
    let cfg = rules(
        r#"
[[rules.profiles]]
name = "night"
from = "20:00"
to = "06:00"
timezone = "Europe/Athens"
classes.smoke.threshold = 0.6
"#,
    );
    // t0 is 12:00 UTC = 15:00 in Athens (day): 0.5 starts an event.
    assert_eq!(
        run(&mut RulesEngine::new(&cfg), &smoke_run("a", &[0.5; 10], 0)).len(),
        1
    );
    // 10 hours later it is 01:00 in Athens (night): 0.5 does not.
    let night: Vec<StageMsg> = (0..10u64)
        .map(|i| {
            frame(
                "a",
                "fire",
                i,
                36_000.0 + i as f64,
                vec![det("smoke", 0.5, SMOKE_BOX)],
            )
        })
        .collect();
    assert!(run(&mut RulesEngine::new(&cfg), &night).is_empty());
}

fn mixed_script() -> Vec<StageMsg> {
    let mut msgs = vec![health("plant1", 0.0, true)];
    for i in 0..80u64 {
        let t = i as f64;
        let smoke = if (5..30).contains(&i) && i % 7 != 0 {
            vec![det("smoke", 0.4 + 0.01 * (i % 10) as f32, SMOKE_BOX)]
        } else {
            vec![]
        };
        msgs.push(frame("a", "fire", i, t, smoke));
        let people = if (20..40).contains(&i) {
            vec![person_at(200.0, 800.0, 0.8), person_at(700.0, 800.0, 0.85)]
        } else {
            vec![]
        };
        msgs.push(frame("plant1", "person", i, t + 0.5, people));
        if i == 60 {
            msgs.push(health("plant1", t, false));
        }
    }
    msgs.push(watermark(200.0));
    msgs
}

const MIXED: &str = r#"
[rules.cameras.plant1]
zones = [
  { name = "control-room", polygon = [[0, 0], [0.5, 0], [0.5, 1], [0, 1]], inertia = 2 },
  { name = "reactor", polygon = [[0.5, 0], [1, 0], [1, 1], [0.5, 1]], inertia = 2, person_events = true },
]
[[rules.duty_posts]]
camera = "plant1"
zone = "control-room"
max_vacant_s = 10
[[rules.restricted]]
camera = "plant1"
zone = "reactor"
[rules.health]
offline_after_s = 30
"#;

#[test]
fn replay_reproduces_the_live_events() {
    let cfg = rules(MIXED);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rec/rules.jsonl");
    let mut live = RulesEngine::new(&cfg);
    let mut rec = lookout_rules::Recorder::open(&path).unwrap();
    let mut live_events = Vec::new();
    for m in mixed_script() {
        rec.record(&m).unwrap();
        live.handle(&m, &mut live_events);
    }
    rec.flush().unwrap();
    drop(rec);
    let kinds: std::collections::BTreeSet<EventKind> = live_events.iter().map(|e| e.kind).collect();
    for k in [
        EventKind::Smoke,
        EventKind::PostVacant,
        EventKind::Restricted,
        EventKind::PersonInZone,
        EventKind::CameraOffline,
    ] {
        assert!(
            kinds.contains(&k),
            "the script should exercise {k}: {kinds:?}"
        );
    }
    let recorded = lookout_rules::read_recording(&path).unwrap();
    assert_eq!(recorded, mixed_script());
    let replayed = replay(recorded, &cfg);
    assert_eq!(replayed, live_events);
    // And a different threshold changes the outcome: replay is a tuning tool.
    let mut strict = cfg.clone();
    strict.classes.entry("smoke".into()).or_default().threshold = Some(0.9);
    let fewer = replay(mixed_script(), &strict);
    assert!(of_kind(&fewer, EventKind::Smoke).is_empty());
}

#[test]
fn recording_errors_name_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.jsonl");
    let good = serde_json::to_string(&watermark(1.0)).unwrap();
    std::fs::write(&path, format!("{good}\n{{\"type\":\"frame\"}}\n")).unwrap();
    let err = lookout_rules::read_recording(&path)
        .unwrap_err()
        .to_string();
    assert!(err.contains("bad.jsonl:2:"), "{err}");
}

#[test]
fn hot_reload_raising_a_threshold_stops_new_events_and_invalid_config_is_rejected() {
    let cfg = rules("");
    let mut e = RulesEngine::new(&cfg);
    let ev = run(&mut e, &smoke_run("a", &[0.6; 5], 40));
    assert_eq!(
        phases(&ev),
        vec![
            (EventKind::Smoke, EventPhase::Start),
            (EventKind::Smoke, EventPhase::End)
        ]
    );

    // An invalid change (keep above threshold; unknown time zone) is rejected...
    let mut bad = cfg.clone();
    bad.classes.entry("smoke".into()).or_default().threshold = Some(0.3);
    bad.classes
        .entry("smoke".into())
        .or_default()
        .keep_threshold = Some(0.5);
    let err = e.apply_config(bad).unwrap_err().to_string();
    assert!(err.contains("rules.classes.smoke.keep_threshold"), "{err}");
    let mut bad_tz = cfg.clone();
    bad_tz.profiles = rules(
        "[[rules.profiles]]\nname = \"n\"\nfrom = \"20:00\"\nto = \"06:00\"\ntimezone = \"Mars/Olympus\"\n",
    )
    .profiles;
    let err = e.apply_config(bad_tz).unwrap_err().to_string();
    assert!(err.contains("rules.profiles[0].timezone"), "{err}");
    // ...and the running config stays: the same smoke still raises an event.
    let later: Vec<StageMsg> = (100..110u64)
        .map(|i| frame("a", "fire", i, i as f64, vec![det("smoke", 0.6, SMOKE_BOX)]))
        .collect();
    assert_eq!(run(&mut e, &later).len(), 1);

    // A valid change raising the threshold stops new events without a restart.
    let mut strict = cfg.clone();
    strict.classes.entry("smoke".into()).or_default().threshold = Some(0.7);
    e.apply_config(strict).unwrap();
    assert_eq!(e.config().classes["smoke"].threshold, Some(0.7));
    let ev = run(&mut e, &[watermark(200.0)]);
    assert_eq!(phases(&ev), vec![(EventKind::Smoke, EventPhase::End)]);
    let more: Vec<StageMsg> = (300..320u64)
        .map(|i| frame("a", "fire", i, i as f64, vec![det("smoke", 0.6, SMOKE_BOX)]))
        .collect();
    assert!(run(&mut e, &more).is_empty());
}

#[test]
fn hot_reload_removing_a_rule_ends_its_open_event() {
    let cfg = rules(POST);
    let mut e = RulesEngine::new(&cfg);
    let msgs: Vec<StageMsg> = (0..15u64)
        .map(|i| frame("plant1", "person", i, i as f64, vec![]))
        .collect();
    assert_eq!(run(&mut e, &msgs).len(), 1);
    let mut without = cfg.clone();
    without.duty_posts.clear();
    e.apply_config(without).unwrap();
    let ev = run(&mut e, &[watermark(16.0)]);
    assert_eq!(phases(&ev), vec![(EventKind::PostVacant, EventPhase::End)]);
    assert!(ev[0].detail.contains("rule removed"));
}

#[test]
fn view_blocked_defocused_and_moved() {
    use lookout_core::msg::ImageStats;
    let stats = |seq: u64, b: f32, c: f32, s: f32, thumb: Vec<u8>| {
        StageMsg::ImageStats(ImageStats {
            camera: std::sync::Arc::from("a"),
            seq,
            captured_at: at(seq as f64),
            preset: None,
            brightness: b,
            contrast: c,
            sharpness: s,
            thumb,
        })
    };
    let scene: Vec<u8> = (0..256)
        .map(|i| ((i % 16) * 12 + (i / 16) * 3) as u8)
        .collect();
    let turned: Vec<u8> = (0..256)
        .map(|i| (((15 - i / 16) * 12 + (i % 16) * 3) % 256) as u8)
        .collect();
    let mut msgs = Vec::new();
    let mut seq = 0;
    let mut push = |n: usize, b: f32, c: f32, s: f32, th: &Vec<u8>, msgs: &mut Vec<StageMsg>| {
        for _ in 0..n {
            msgs.push(stats(seq, b, c, s, th.clone()));
            seq += 1;
        }
    };
    push(20, 120.0, 40.0, 300.0, &scene, &mut msgs); // baseline
    push(8, 15.0, 2.0, 5.0, &scene, &mut msgs); // tarp over the lens
    push(8, 120.0, 40.0, 300.0, &scene, &mut msgs); // clear again
    push(8, 118.0, 38.0, 30.0, &scene, &mut msgs); // out of focus
    push(8, 120.0, 40.0, 300.0, &scene, &mut msgs);
    push(8, 120.0, 40.0, 300.0, &turned, &mut msgs); // camera turned
                                                     // Clears after as many normal frames as it took to raise (the default clears after 10).
    let mut cfg = RulesConfig::default();
    cfg.health.clear_frames = cfg.health.persist_frames;
    let ev = run(&mut RulesEngine::new(&cfg), &msgs);
    assert_eq!(
        phases(&ev),
        vec![
            (EventKind::ViewBlocked, EventPhase::Start),
            (EventKind::ViewBlocked, EventPhase::End),
            (EventKind::ViewDefocused, EventPhase::Start),
            (EventKind::ViewDefocused, EventPhase::End),
            (EventKind::ViewMoved, EventPhase::Start),
        ],
        "{ev:#?}"
    );
    assert_eq!(ev[0].first_seen, at(20.0));
    assert_eq!(ev[0].last_seen, at(24.0));
}

#[test]
fn config_errors_are_located() {
    let errs = rules_errors(
        r#"
[rules.classes.smoke]
threshold = 1.5
persistence = { k = 6, n = 5 }

[rules.cameras.nosuch]
zones = []

[rules.cameras.a]
masks = [{ polygon = [[0, 0], [2, 0], [1, 1]] }]
zones = [{ name = "z", polygon = [[0, 0], [1, 0]], preset = "north" }]

[[rules.duty_posts]]
camera = "a"
zone = "missing"
max_vacant_s = 60

[[rules.profiles]]
name = "night"
from = "25:00"
to = "06:00"
"#,
    );
    let all = errs.join("\n");
    for want in [
        "`rules.classes.smoke.threshold`: 1.5 is out of range",
        "`rules.classes.smoke.persistence.k`",
        "`rules.cameras.nosuch`: unknown camera \"nosuch\"",
        "`rules.cameras.a.masks[0].polygon[1]`: point [2, 0] is outside the image",
        "`rules.cameras.a.zones[0].polygon`: a polygon needs at least 3 points",
        "`rules.cameras.a.zones[0].preset`: unknown preset \"north\": camera \"a\" has no PTZ presets",
        "`rules.duty_posts[0].zone`: unknown zone \"missing\"",
        "`rules.profiles[0].from`",
    ] {
        assert!(all.contains(want), "missing {want:?} in:\n{all}");
    }
    // Errors carry lines.
    assert!(all.contains("test.toml:"), "{all}");
    let unknown = rules_errors("[rules.classes.smoke]\ntreshold = 0.5\n").join("\n");
    assert!(
        unknown.contains("`rules.classes.smoke.treshold`: unknown field"),
        "{unknown}"
    );
    // An empty [rules] is valid and works for smoke, fire and person.
    assert_eq!(rules("[rules]\n"), RulesConfig::default());
}

#[test]
fn config_watcher_applies_changes_within_a_second() {
    use std::sync::mpsc;
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lookout.toml");
    let write = |rules_toml: &str| {
        std::fs::write(&path, format!("{}\n{rules_toml}", cameras_toml())).unwrap();
    };
    write("[rules]\nquiet_s = 30\n");
    let (tx, rx) = mpsc::channel();
    let _w = lookout_rules::watch_config_file(&path, move |r| {
        let _ = tx.send(r);
    })
    .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let t = Instant::now();
    write("[rules]\nquiet_s = 12\n");
    let got = rx.recv_timeout(Duration::from_secs(2)).unwrap().unwrap();
    assert_eq!(got.quiet_s, 12.0);
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    let mut e = RulesEngine::new(&RulesConfig::default());
    e.apply_config(got).unwrap();
    assert_eq!(e.config().quiet_s, 12.0);

    write("[rules]\nquiet_s = -1\n");
    let err = rx
        .recv_timeout(Duration::from_secs(2))
        .unwrap()
        .unwrap_err();
    assert!(err.contains("rules.quiet_s"), "{err}");
}

#[test]
fn sample_plant_config_is_valid_and_behaves() {
    let path = std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../samples/rules/plant.toml"
    ));
    let cfg = lookout_config::load(path)
        .unwrap_or_else(|e| panic!("{e}"))
        .rules;
    let mut e = RulesEngine::try_new(&cfg).unwrap();
    // Four people walk into the tank farm (limit 2) and stay 20 s.
    let mut msgs = Vec::new();
    for i in 0..25u64 {
        let dets = (0..4)
            .map(|k| person_at(80.0 + 120.0 * k as f32, 900.0, 0.9))
            .collect();
        msgs.push(frame("plant2", "person", i, i as f64, dets));
    }
    let ev = run(&mut e, &msgs);
    assert_eq!(
        phases(&ev),
        vec![(EventKind::OverOccupancy, EventPhase::Start)],
        "{ev:#?}"
    );
    assert_eq!(ev[0].count, Some(4));
    // Smoke in the chimney mask at the east preset: nothing; at north in the forest: smoke.
    let chimney: Vec<StageMsg> = (0..10u64)
        .map(|i| {
            frame_at(
                "tower",
                "fire",
                i,
                i as f64,
                Some("east"),
                vec![det("smoke", 0.9, [620.0, 200.0, 680.0, 400.0])],
            )
        })
        .collect();
    assert!(run(&mut e, &chimney).is_empty());
    let forest: Vec<StageMsg> = (10..20u64)
        .map(|i| {
            frame_at(
                "tower",
                "fire",
                i,
                i as f64,
                Some("north"),
                vec![det("smoke", 0.9, [620.0, 200.0, 680.0, 400.0])],
            )
        })
        .collect();
    let ev = run(&mut e, &forest);
    assert_eq!(phases(&ev), vec![(EventKind::Smoke, EventPhase::Start)]);
    assert_eq!(ev[0].zone.as_deref(), Some("forest"));
}

/// The duty post of `POST` with active hours.
fn post_with_hours(schedule: &str, timezone: &str) -> String {
    POST.replace(
        "max_vacant_s = 10\n",
        &format!("max_vacant_s = 10\nschedule = {schedule:?}\ntimezone = {timezone:?}\n"),
    )
}

#[test]
fn personnel_rules_keep_their_schedule_in_its_time_zone() {
    // t0 is Monday 2026-06-01 12:00 UTC, 15:00 in Athens (UTC+3 in summer). The post must
    // be staffed Monday 14:00-15:01 Athens time: active for the first 60 s of the clip.
    let empty: Vec<StageMsg> = (0..120u64)
        .map(|i| frame("plant1", "person", i, i as f64, vec![]))
        .collect();
    let cfg = rules(&post_with_hours("Mon 14:00-15:01", "Europe/Athens"));
    let ev = run(&mut RulesEngine::new(&cfg), &empty);
    assert_eq!(
        phases(&ev),
        vec![
            (EventKind::PostVacant, EventPhase::Start),
            (EventKind::PostVacant, EventPhase::End)
        ],
        "{ev:#?}"
    );
    assert_eq!(ev[0].last_seen, at(10.0));
    assert_eq!(ev[1].last_seen, at(60.0), "ends when the hours end");
    assert!(
        ev[1].detail.contains("outside active hours"),
        "{}",
        ev[1].detail
    );
    // The same hours in UTC (14:00-15:01 UTC) have not begun: nothing.
    let cfg = rules(&post_with_hours("Mon 14:00-15:01", "UTC"));
    assert!(run(&mut RulesEngine::new(&cfg), &empty).is_empty());
    // Weekdays all day, overnight spans: Monday 12:00 UTC is inside.
    let cfg = rules(&post_with_hours(
        "Mon-Fri 00:00-24:00; Sat 22:00-06:00",
        "UTC",
    ));
    assert_eq!(
        of_kind(
            &run(&mut RulesEngine::new(&cfg), &empty),
            EventKind::PostVacant
        )
        .len(),
        1
    );
}

#[test]
fn a_schedule_or_time_zone_that_does_not_parse_is_a_located_error() {
    let errs = rules_errors(&post_with_hours("Mon-Fry 06:00-18:00", "Europe/Atlantis"));
    let joined = errs.join("\n");
    assert!(
        errs.iter().any(|e| e.starts_with("test.toml:")
            && e.contains("rules.duty_posts[0].schedule")
            && e.contains("\"Fry\"")),
        "{joined}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("rules.duty_posts[0].timezone") && e.contains("Europe/Atlantis")),
        "{joined}"
    );
    let errs = rules_errors(&format!(
        "{}\n[[rules.patrols]]\nname = \"night\"\nschedule = \"daily 22:00\"\ncheckpoints = [{{ camera = \"plant1\", zone = \"control-room\", within_s = 60 }}]\n",
        POST
    ));
    assert!(
        errs.iter().any(|e| e.contains("rules.patrols[0].schedule")),
        "{errs:?}"
    );
}
