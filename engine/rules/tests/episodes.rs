//! One smoke or fire event per episode: a track the tracker lost and found again (a plume
//! that flickers below the detector's threshold, a replayed clip that restarts) continues
//! the open event instead of starting another (`rules.merge_tracks`).

mod common;

use common::*;
use lookout_core::{EventKind, EventPhase, StageMsg};
use lookout_rules::{RulesConfig, RulesEngine};

const A: [f32; 4] = [400.0, 300.0, 500.0, 420.0];
/// Near A (the plume drifted by a third of its width).
const A2: [f32; 4] = [430.0, 290.0, 530.0, 415.0];
/// Far from A: another fire on the same view.
const FAR: [f32; 4] = [820.0, 80.0, 880.0, 150.0];

/// `class` at `first` for 10 frames, 14 empty frames (the tracker drops the track after
/// 10 misses, the event stays open: 14 s < quiet_s 30), `class` at `second` for 10
/// frames, then 45 empty frames (everything ends).
fn lost_and_found(class: &str, first: [f32; 4], second: [f32; 4]) -> Vec<StageMsg> {
    let mut v = Vec::new();
    let mut seq = 0u64;
    let mut push = |dets: Vec<lookout_core::Detection>| {
        v.push(frame("tower", "fire", seq, seq as f64, dets));
        seq += 1;
    };
    for _ in 0..10 {
        push(vec![det(class, 0.9, first)]);
    }
    for _ in 0..14 {
        push(vec![]);
    }
    for _ in 0..10 {
        push(vec![det(class, 0.9, second)]);
    }
    for _ in 0..45 {
        push(vec![]);
    }
    v
}

fn starts(ev: &[lookout_core::Event]) -> usize {
    ev.iter().filter(|e| e.phase == EventPhase::Start).count()
}

#[test]
fn a_lost_and_found_plume_is_one_event() {
    let mut e = RulesEngine::new(&RulesConfig::default());
    let ev = run(&mut e, &lost_and_found("smoke", A, A2));
    assert_eq!(starts(&ev), 1, "{:#?}", phases(&ev));
    assert!(ev.iter().all(|x| x.id == ev[0].id), "one id: {ev:#?}");
    let end = ev
        .iter()
        .find(|x| x.phase == EventPhase::End)
        .expect("an end");
    // The episode lasts until the second track's last sighting (frame 33).
    assert_eq!(end.last_seen, at(33.0));
    assert_eq!(end.kind, EventKind::Smoke);
    assert!(e.open_events().is_empty());
}

#[test]
fn without_merging_each_track_is_its_own_event() {
    let cfg = RulesConfig {
        merge_tracks: false,
        ..RulesConfig::default()
    };
    let mut e = RulesEngine::new(&cfg);
    let ev = run(&mut e, &lost_and_found("smoke", A, A2));
    assert_eq!(starts(&ev), 2, "{:#?}", phases(&ev));
}

#[test]
fn a_second_fire_elsewhere_in_the_view_is_another_event() {
    let mut e = RulesEngine::new(&RulesConfig::default());
    let ev = run(&mut e, &lost_and_found("fire", A, FAR));
    assert_eq!(starts(&ev), 2, "{:#?}", phases(&ev));
    let ids: std::collections::BTreeSet<&str> = ev.iter().map(|x| x.id.as_str()).collect();
    assert_eq!(ids.len(), 2);
}

#[test]
fn smoke_does_not_continue_a_fire_event() {
    let mut e = RulesEngine::new(&RulesConfig::default());
    let mut msgs = lost_and_found("fire", A, A2);
    // The second sighting is smoke, not fire.
    for m in &mut msgs[24..34] {
        if let StageMsg::Frame(f) = m {
            for d in &mut f.detections {
                d.class = "smoke".into();
            }
        }
    }
    let ev = run(&mut e, &msgs);
    let kinds: Vec<EventKind> = ev
        .iter()
        .filter(|e| e.phase == EventPhase::Start)
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, vec![EventKind::Fire, EventKind::Smoke]);
}
