//! The rules stage thread behind its handle: what it sends fusion is what the pure engine
//! gives (plus per-camera clocks), its logs and tap see everything, and its control swaps
//! rules between two messages and refuses bad ones.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use crossbeam_channel::bounded;
use lookout_core::{Event, FusionMsg, StageMsg};
use lookout_rules::stage::{ControlError, RulesLogs, RulesStage, RulesTap};
use lookout_rules::{read_recording, replay, RulesConfig};

const SMOKE_BOX: [f32; 4] = [400.0, 300.0, 500.0, 420.0];

/// Two cameras, smoke on `a` for 12 s then 45 s of empty frames, `b` always empty; frames
/// every 0.5 s.
fn script() -> Vec<StageMsg> {
    let mut v = Vec::new();
    for i in 0..120u64 {
        let t = i as f64 * 0.5;
        let dets = if t < 12.0 {
            vec![det("smoke", 0.9, SMOKE_BOX)]
        } else {
            vec![]
        };
        v.push(frame("a", "fire", i, t, dets));
        v.push(frame("b", "fire", i, t, vec![]));
    }
    v
}

#[derive(Clone, Default)]
struct Seen(Arc<Mutex<(Vec<StageMsg>, Vec<Event>)>>);

impl RulesTap for Seen {
    fn message(&mut self, msg: &StageMsg) {
        self.0.lock().unwrap().0.push(msg.clone());
    }
    fn event(&mut self, ev: &Event) {
        self.0.lock().unwrap().1.push(ev.clone());
    }
}

#[test]
fn the_stage_sends_the_engines_events_and_per_camera_clocks_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let logs = RulesLogs {
        detections: Some(dir.path().join("detections.jsonl")),
        events: Some(dir.path().join("events.jsonl")),
        ..RulesLogs::default()
    };
    let (in_tx, in_rx) = bounded(8);
    let (out_tx, out_rx) = bounded(8);
    let seen = Seen::default();
    let cfg = RulesConfig::default();
    let stage = RulesStage::spawn(&cfg, logs, in_rx, out_tx, seen.clone()).unwrap();
    let msgs = script();
    let feeder = std::thread::spawn({
        let msgs = msgs.clone();
        move || {
            for m in msgs {
                in_tx.send(m).unwrap();
            }
        }
    });
    let out: Vec<FusionMsg> = out_rx.iter().collect();
    feeder.join().unwrap();
    stage.join().unwrap();

    let expected = replay(msgs.clone(), &cfg);
    assert!(!expected.is_empty(), "the script raises smoke events");
    let events: Vec<Event> = out
        .iter()
        .filter_map(|m| match m {
            FusionMsg::Event(e) => Some(e.clone()),
            FusionMsg::Clock { .. } => None,
        })
        .collect();
    assert_eq!(events, expected);
    // Clocks: every camera, never going back, at most one per second of capture time.
    for cam in ["a", "b"] {
        let clocks: Vec<_> = out
            .iter()
            .filter_map(|m| match m {
                FusionMsg::Clock { camera, at } if &**camera == cam => Some(*at),
                _ => None,
            })
            .collect();
        assert_eq!(clocks.len(), 60, "{cam}: one clock per second of its 60 s");
        assert!(clocks
            .windows(2)
            .all(|w| w[1] - w[0] >= chrono::Duration::seconds(1)));
    }
    let (tapped, tapped_events) = seen.0.lock().unwrap().clone();
    assert_eq!(tapped, msgs);
    assert_eq!(tapped_events, expected);
    assert_eq!(
        read_recording(&dir.path().join("detections.jsonl")).unwrap(),
        msgs
    );
    let lines = std::fs::read_to_string(dir.path().join("events.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), expected.len());
}

#[test]
fn control_swaps_rules_between_messages_and_refuses_bad_ones() {
    let (in_tx, in_rx) = bounded(8);
    let (out_tx, out_rx) = bounded(1024);
    let stage = RulesStage::spawn(
        &RulesConfig::default(),
        RulesLogs::default(),
        in_rx,
        out_tx,
        Seen::default(),
    )
    .unwrap();
    let control = stage.control();

    // A bad section is refused with its reason; the running rules stay.
    let bad = RulesConfig {
        quiet_s: -1.0,
        ..RulesConfig::default()
    };
    let e = control.apply(&bad).unwrap_err();
    assert!(
        matches!(e, ControlError::Invalid(_)) && e.to_string().contains("quiet_s"),
        "{e}"
    );
    // A control message that is not a rules section.
    let msg = lookout_core::ControlMsg::Rules {
        version: 1,
        rules: serde_json::json!({"quiet_s": "soon"}),
    };
    assert!(matches!(
        control.apply_msg(&msg).unwrap_err(),
        ControlError::Malformed(_)
    ));

    // Smoke over a threshold of 0.95 raises nothing: the change (sent as a control
    // message, as another node would) is in force before the next message.
    let strict = rules("[rules.classes.smoke]\nthreshold = 0.95\n");
    control
        .apply_msg(&lookout_rules::stage::RulesControl::message(2, &strict))
        .unwrap();
    while control.pending() > 0 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    for m in script() {
        in_tx.send(m).unwrap();
    }
    drop(in_tx);
    stage.join().unwrap();
    let events: Vec<FusionMsg> = out_rx
        .try_iter()
        .filter(|m| matches!(m, FusionMsg::Event(_)))
        .collect();
    assert!(events.is_empty(), "{events:?}");
    assert!(!replay(script(), &RulesConfig::default()).is_empty());
}

#[test]
fn the_stage_stops_when_fusion_has_gone() {
    let (in_tx, in_rx) = bounded(1024);
    let (out_tx, out_rx) = bounded(1);
    let stage = RulesStage::spawn(
        &RulesConfig::default(),
        RulesLogs::default(),
        in_rx,
        out_tx,
        Seen::default(),
    )
    .unwrap();
    drop(out_rx);
    for m in script() {
        if in_tx.send(m).is_err() {
            break;
        }
    }
    // The input is still open: the thread ended because its output closed.
    stage.join().unwrap();
}
