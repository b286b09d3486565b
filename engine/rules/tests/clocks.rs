//! Time is per camera (and per PTZ preset where state is per preset): no frame of one
//! camera may expire, end or touch another camera's state.

mod common;
use common::*;

use lookout_core::{EventKind, EventPhase, StageMsg};
use lookout_rules::RulesEngine;

/// Three years in seconds (2026-06-01 back to 2023-06-01, with no leap day in between).
const THREE_YEARS_S: f64 = 3.0 * 365.0 * 86_400.0;

const SMOKE_BOX: [f32; 4] = [400.0, 300.0, 500.0, 420.0];

/// Camera `a` live on today's clock, camera `b` replaying footage three years back, camera
/// `plant1` whose frames stop after 20 s: smoke on all three, interleaved frame by frame.
#[test]
fn cameras_on_clocks_years_apart_and_a_stopped_clock_never_touch_each_other() {
    let cfg = rules("[rules]\nquiet_s = 30\n");
    let mut e = RulesEngine::try_new(&cfg).unwrap();
    let smoke = || vec![det("smoke", 0.8, SMOKE_BOX)];
    let mut events = Vec::new();
    for i in 0..600u64 {
        let s = i as f64;
        let mut msgs = vec![
            frame("a", "fire", i, s, smoke()),
            frame("b", "fire", i, s - THREE_YEARS_S, smoke()),
        ];
        if i < 20 {
            msgs.push(frame("plant1", "fire", i, s, smoke()));
        }
        events.extend(run(&mut e, &msgs));
    }
    // One event per camera, none ended: ten minutes of the others' frames (three years
    // ahead of `b`, and ten minutes past `plant1`'s last frame) ended nothing.
    let starts = |cam: &str| {
        events
            .iter()
            .filter(|ev| &*ev.camera == cam && ev.phase == EventPhase::Start)
            .count()
    };
    assert_eq!((starts("a"), starts("b"), starts("plant1")), (1, 1, 1));
    assert!(
        events.iter().all(|ev| ev.phase != EventPhase::End),
        "{events:#?}"
    );
    assert_eq!(e.open_events().len(), 3);
    assert_eq!(
        e.track_count("plant1"),
        1,
        "a stopped camera keeps its tracks"
    );

    // `plant1` resumes 2 s later on its own clock: still the same event (quiet_s is 30).
    let resumed = run(&mut e, &[frame("plant1", "fire", 20, 22.0, smoke())]);
    assert!(
        resumed.iter().all(|ev| ev.phase == EventPhase::Update),
        "{resumed:#?}"
    );
    // `a` goes quiet: only its own event ends, at its own time, and `b` (three years
    // behind, still smoking) keeps its event.
    let mut quiet = Vec::new();
    for i in 600..640u64 {
        let s = i as f64;
        quiet.extend(run(
            &mut e,
            &[
                frame("a", "fire", i, s, vec![]),
                frame("b", "fire", i, s - THREE_YEARS_S, smoke()),
            ],
        ));
    }
    let ended: Vec<_> = quiet
        .iter()
        .filter(|ev| ev.phase == EventPhase::End)
        .collect();
    assert_eq!(ended.len(), 1, "{quiet:#?}");
    assert_eq!(&*ended[0].camera, "a");
    assert_eq!(ended[0].last_seen, at(599.0));
    // And `b` ends by its own clock when its smoke clears, three years back.
    let mut late = Vec::new();
    for i in 640..680u64 {
        late.extend(run(
            &mut e,
            &[frame("b", "fire", i, i as f64 - THREE_YEARS_S, vec![])],
        ));
    }
    let ended: Vec<_> = late
        .iter()
        .filter(|ev| ev.phase == EventPhase::End)
        .collect();
    assert_eq!(ended.len(), 1, "{late:#?}");
    assert_eq!(&*ended[0].camera, "b");
    assert_eq!(ended[0].last_seen, at(639.0 - THREE_YEARS_S));
    // `plant1` has not moved since 22 s: its event is still open.
    let open: Vec<_> = e.open_events();
    assert_eq!(open.len(), 1);
    assert_eq!(&*open[0].camera, "plant1");
}

/// Personnel timers run on their camera's clock: a duty post on a camera replaying a past
/// date is not judged by a live camera's frames, and a patrol's window opens on the clock
/// of the camera that must see the next checkpoint.
#[test]
fn personnel_rules_use_their_own_cameras_clock() {
    let cfg = rules(
        r#"
[rules.cameras.plant1]
zones = [{ name = "post", polygon = [[0, 0], [0.5, 0], [0.5, 1], [0, 1]], inertia = 1 }]
[rules.cameras.a]
zones = [{ name = "gate", polygon = [[0, 0], [1, 0], [1, 1], [0, 1]], inertia = 1 }]
[[rules.duty_posts]]
camera = "plant1"
zone = "post"
max_vacant_s = 60
[[rules.patrols]]
name = "round"
checkpoints = [{ camera = "a", zone = "gate", within_s = 600 }, { camera = "plant1", zone = "post", within_s = 120 }]
"#,
    );
    let mut e = RulesEngine::try_new(&cfg).unwrap();
    let mut events = Vec::new();
    // plant1 replays three years back, staffed for 5 s then empty for 30 s; camera `a` is
    // live and sees the patrol at the gate at 10 s.
    for i in 0..40u64 {
        let s = i as f64;
        let staffed = i < 5;
        let post = if staffed {
            vec![person_at(200.0, 800.0, 0.9)]
        } else {
            vec![]
        };
        let gate = if (8..12).contains(&i) {
            vec![person_at(600.0, 800.0, 0.9)]
        } else {
            vec![]
        };
        events.extend(run(
            &mut e,
            &[
                frame("plant1", "person", i, s - THREE_YEARS_S, post),
                frame("a", "person", i, s, gate),
            ],
        ));
    }
    // Empty for ~33 s of plant1's own time (limit 60 s), and the patrol's post window
    // opened on plant1's clock 30 s ago (limit 120 s): nothing is due, although `a` is
    // three years ahead.
    assert!(events.is_empty(), "{events:#?}");
    // plant1's own time passes: the vacancy fires at 60 s of its clock, the missed
    // checkpoint at ~120 s after the visit at the gate.
    for i in 40..200u64 {
        events.extend(run(
            &mut e,
            &[frame(
                "plant1",
                "person",
                i,
                i as f64 - THREE_YEARS_S,
                vec![],
            )],
        ));
    }
    let kinds = phases(&events);
    assert_eq!(
        kinds,
        vec![
            (EventKind::PostVacant, EventPhase::Start),
            (EventKind::PatrolMissed, EventPhase::Start)
        ],
        "{events:#?}"
    );
    let due = events[1].first_seen;
    assert!(
        due > at(120.0 - THREE_YEARS_S) && due < at(140.0 - THREE_YEARS_S),
        "due {due}"
    );
}

/// A PTZ tower on a tour: state that belongs to a preset ages only while the camera looks
/// at that preset. Smoke on `north` stays one event with one track through tours longer
/// than `quiet_s`.
#[test]
fn a_preset_ages_only_while_the_camera_looks_at_it() {
    let cfg = rules("[rules]\nquiet_s = 30\n");
    let mut e = RulesEngine::try_new(&cfg).unwrap();
    let mut events = Vec::new();
    let mut seq = 0;
    let mut t = 0.0;
    // Three tours: 20 s on north (smoke), 60 s on south (nothing).
    for _ in 0..3 {
        for _ in 0..20 {
            events.extend(run(
                &mut e,
                &[frame_at(
                    "tower",
                    "fire",
                    seq,
                    t,
                    Some("north"),
                    vec![det("smoke", 0.8, SMOKE_BOX)],
                )],
            ));
            seq += 1;
            t += 1.0;
        }
        for _ in 0..60 {
            events.extend(run(
                &mut e,
                &[frame_at("tower", "fire", seq, t, Some("south"), vec![])],
            ));
            seq += 1;
            t += 1.0;
        }
    }
    let smoke = of_kind(&events, EventKind::Smoke);
    assert!(
        smoke.iter().all(|ev| ev.phase != EventPhase::End),
        "{smoke:#?}"
    );
    assert_eq!(
        smoke
            .iter()
            .filter(|ev| ev.phase == EventPhase::Start)
            .count(),
        1
    );
    assert!(smoke.iter().all(|ev| ev.track == smoke[0].track));
    // Looking at north without smoke for quiet_s ends it.
    let mut tail = Vec::new();
    for _ in 0..35 {
        tail.extend(run(
            &mut e,
            &[frame_at("tower", "fire", seq, t, Some("north"), vec![])],
        ));
        seq += 1;
        t += 1.0;
    }
    assert_eq!(phases(&tail), vec![(EventKind::Smoke, EventPhase::End)]);
}

/// A watermark speaks for every source: it moves every camera's clock.
#[test]
fn a_watermark_moves_every_camera() {
    let cfg = rules("[rules]\nquiet_s = 30\n");
    let mut e = RulesEngine::try_new(&cfg).unwrap();
    let mut msgs: Vec<StageMsg> = Vec::new();
    for i in 0..10u64 {
        msgs.push(frame(
            "a",
            "fire",
            i,
            i as f64,
            vec![det("smoke", 0.8, SMOKE_BOX)],
        ));
        msgs.push(frame(
            "b",
            "fire",
            i,
            i as f64,
            vec![det("smoke", 0.8, SMOKE_BOX)],
        ));
    }
    msgs.push(watermark(100.0));
    let ev = run(&mut e, &msgs);
    let ends = ev.iter().filter(|e| e.phase == EventPhase::End).count();
    assert_eq!(ends, 2, "{ev:#?}");
}
