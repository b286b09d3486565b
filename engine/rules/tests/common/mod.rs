//! Scripted inputs for the rules tests: frames on a 1000×1000 image, accelerated time.

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use chrono::TimeZone;
use lookout_core::{
    BBox, CameraHealth, CameraStatus, Detection, Event, EventKind, EventPhase, FrameResult,
    RetryReason, StageMsg, UtcTime,
};
use lookout_rules::{RulesConfig, RulesEngine};

/// 2026-06-01 12:00:00 UTC.
pub fn t0() -> UtcTime {
    chrono::Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap()
}

/// `t0` plus seconds.
pub fn at(s: f64) -> UtcTime {
    t0() + chrono::Duration::milliseconds((s * 1000.0).round() as i64)
}

/// A detection: class, score, box `[x1, y1, x2, y2]` in pixels of a 1000×1000 frame.
pub fn det(class: &str, score: f32, b: [f32; 4]) -> Detection {
    Detection {
        class: Arc::from(class),
        class_id: 0,
        score,
        bbox: BBox::new(b[0], b[1], b[2], b[3]),
        role: None,
    }
}

/// A frame result of `model` on `camera` at `t_s` seconds.
pub fn frame(camera: &str, model: &str, seq: u64, t_s: f64, dets: Vec<Detection>) -> StageMsg {
    frame_at(camera, model, seq, t_s, None, dets)
}

/// A frame result with a preset.
pub fn frame_at(
    camera: &str,
    model: &str,
    seq: u64,
    t_s: f64,
    preset: Option<&str>,
    dets: Vec<Detection>,
) -> StageMsg {
    StageMsg::Frame(FrameResult {
        camera: Arc::from(camera),
        seq,
        captured_at: at(t_s),
        preset: preset.map(Arc::from),
        width: 1000,
        height: 1000,
        model: Arc::from(model),
        detections: dets,
    })
}

/// A health message.
pub fn health(camera: &str, t_s: f64, running: bool) -> StageMsg {
    StageMsg::Health(CameraHealth {
        camera: Arc::from(camera),
        at: at(t_s),
        status: if running {
            CameraStatus::Running
        } else {
            CameraStatus::Retrying {
                attempt: 1,
                reason: RetryReason::Timeout,
            }
        },
    })
}

/// A watermark.
pub fn watermark(t_s: f64) -> StageMsg {
    StageMsg::Watermark { at: at(t_s) }
}

/// Parses a whole config (cameras `a`, `b`, `plant1`, and PTZ `tower` with presets
/// `north`/`south`) plus `rules` text, and returns its `[rules]`.
pub fn rules(rules_toml: &str) -> RulesConfig {
    let src = format!("{}\n{rules_toml}", cameras_toml());
    match lookout_config::parse(&src, "test.toml", Path::new(".")) {
        Ok(c) => c.rules,
        Err(e) => panic!("config does not parse:\n{e}\n{src}"),
    }
}

/// Errors of a whole config, as printed.
pub fn rules_errors(rules_toml: &str) -> Vec<String> {
    let src = format!("{}\n{rules_toml}", cameras_toml());
    match lookout_config::parse(&src, "test.toml", Path::new(".")) {
        Ok(_) => vec![],
        Err(e) => e.errors.iter().map(|e| e.to_string()).collect(),
    }
}

/// The camera part of the test configs.
pub fn cameras_toml() -> &'static str {
    r#"
[[cameras]]
id = "a"
source = { kind = "test" }

[[cameras]]
id = "b"
source = { kind = "test" }

[[cameras]]
id = "plant1"
source = { kind = "test" }

[[cameras]]
id = "tower"
source = { kind = "test" }
ptz = { presets = [{ name = "north", pan_deg = 0 }, { name = "south", pan_deg = 180 }] }
"#
}

/// Runs messages through an engine, collecting events.
pub fn run(engine: &mut RulesEngine, msgs: &[StageMsg]) -> Vec<Event> {
    let mut out = Vec::new();
    for m in msgs {
        engine.handle(m, &mut out);
    }
    out
}

/// (kind, phase) of events, for compact asserts.
pub fn phases(events: &[Event]) -> Vec<(EventKind, EventPhase)> {
    events.iter().map(|e| (e.kind, e.phase)).collect()
}

/// Events of one kind.
pub fn of_kind(events: &[Event], kind: EventKind) -> Vec<Event> {
    events.iter().filter(|e| e.kind == kind).cloned().collect()
}

/// A person box whose feet are at (x, y) in pixels.
pub fn person_at(x: f32, y: f32, score: f32) -> Detection {
    det("person", score, [x - 30.0, y - 150.0, x + 30.0, y])
}
