//! Camera-health storms on real frames: at most one open condition per camera and kind,
//! hysteresis and a cooldown; a PTZ preset change is expected motion, not `view_moved`.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use lookout_core::msg::ImageStats;
use lookout_core::{Event, EventKind, EventPhase, Frame, StageMsg};
use lookout_rules::RulesEngine;

fn shared() -> PathBuf {
    std::env::var("LOOKOUT_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared")).to_path_buf()
        })
}

const W: u32 = 160;
const H: u32 = 120;

/// Decodes `input` (ffmpeg arguments before the output) into 160×120 RGB frames.
fn decode(input: &[&str]) -> Vec<Vec<u8>> {
    let out = Command::new("ffmpeg")
        .args(["-loglevel", "error"])
        .args(input)
        .args([
            "-vf",
            "scale=160:120,setsar=1",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ])
        .output()
        .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let n = (W * H * 3) as usize;
    assert!(out.stdout.len() >= n, "no frames decoded from {input:?}");
    out.stdout.chunks_exact(n).map(<[u8]>::to_vec).collect()
}

/// The Penn-Fudan stills: a slideshow, each frame a real cut.
fn slideshow() -> Vec<Vec<u8>> {
    let glob = shared().join("datasets/pennfudan-person/images/FudanPed000*.jpg");
    decode(&["-pattern_type", "glob", "-i", &glob.to_string_lossy()])
}

/// Two frames a second of the FURG house video: one continuous real view.
fn house_video() -> Vec<Vec<u8>> {
    let clip = shared().join("datasets/furg-house6/furg_house6.mp4");
    decode(&["-i", &clip.to_string_lossy(), "-r", "2"])
}

/// Image statistics of one real frame of `camera` at `t_s`, at `preset`.
fn stats(camera: &str, seq: u64, t_s: f64, preset: Option<&str>, rgb: &[u8]) -> StageMsg {
    let mut f = Frame::from_rgb(Arc::from(camera), seq, at(t_s), W, H, rgb.to_vec());
    f.pose = preset.map(|p| lookout_core::Pose {
        preset: Some(Arc::from(p)),
        ..Default::default()
    });
    StageMsg::ImageStats(ImageStats::compute(&f))
}

/// Never more than one open condition per camera and kind, in emission order.
fn max_open(events: &[Event], kind: EventKind) -> usize {
    let (mut open, mut max) = (0i64, 0i64);
    for e in events.iter().filter(|e| e.kind == kind) {
        match e.phase {
            EventPhase::Start => open += 1,
            EventPhase::End => open -= 1,
            EventPhase::Update => {}
        }
        max = max.max(open);
    }
    max as usize
}

fn starts(events: &[Event], kind: EventKind) -> usize {
    events
        .iter()
        .filter(|e| e.kind == kind && e.phase == EventPhase::Start)
        .count()
}

/// Six minutes of a slideshow at 2 fps: every cut really moves the view, yet the camera
/// gets one `view_moved` (default cooldown 600 s), and without a cooldown the hysteresis
/// still keeps one open at a time and far fewer than the cuts.
#[test]
fn a_slideshow_raises_one_view_moved_not_a_storm() {
    let stills = slideshow();
    assert!(stills.len() > 50);
    let msgs: Vec<StageMsg> = (0..720u64)
        .map(|i| {
            let rgb = &stills[i as usize % stills.len()];
            stats("a", i, i as f64 * 0.5, None, rgb)
        })
        .collect();
    let ev = run(&mut RulesEngine::try_new(&rules("")).unwrap(), &msgs);
    assert_eq!(starts(&ev, EventKind::ViewMoved), 1, "{ev:#?}");
    for k in [
        EventKind::ViewMoved,
        EventKind::ViewBlocked,
        EventKind::ViewDefocused,
    ] {
        assert!(max_open(&ev, k) <= 1);
    }

    let no_cooldown = rules("[rules.health]\ncooldown_s = 0\n");
    let ev = run(&mut RulesEngine::try_new(&no_cooldown).unwrap(), &msgs);
    let n = starts(&ev, EventKind::ViewMoved);
    assert!((1..=20).contains(&n), "{n} view_moved in 6 min");
    assert!(max_open(&ev, EventKind::ViewMoved) <= 1);
}

/// A PTZ tower touring two presets: north a real continuous view (the FURG house video),
/// south another real scene (a Penn-Fudan street). Labelled with their presets the turns
/// are expected motion and raise nothing; the same frames without presets are a camera
/// that keeps being turned: one `view_moved`, not one per turn.
#[test]
fn a_preset_tour_is_expected_motion_but_an_unlabelled_turn_is_view_moved() {
    let video = house_video();
    assert!(video.len() >= 40);
    let street = slideshow().swap_remove(0);
    let other = vec![street];
    let tour = |labelled: bool| -> Vec<StageMsg> {
        let mut msgs = Vec::new();
        let mut seq = 0u64;
        for round in 0..6 {
            for (preset, frames) in [("north", &video), ("south", &other)] {
                for k in 0..20 {
                    let rgb = &frames[(round * 20 + k) % frames.len()];
                    let p = labelled.then_some(preset);
                    msgs.push(stats("tower", seq, seq as f64 * 0.5, p, rgb));
                    seq += 1;
                }
            }
        }
        msgs
    };
    let cfg = rules("");
    let ev = run(&mut RulesEngine::try_new(&cfg).unwrap(), &tour(true));
    assert!(ev.is_empty(), "{ev:#?}");
    let ev = run(&mut RulesEngine::try_new(&cfg).unwrap(), &tour(false));
    assert_eq!(starts(&ev, EventKind::ViewMoved), 1, "{ev:#?}");
    assert!(max_open(&ev, EventKind::ViewMoved) <= 1);
}
