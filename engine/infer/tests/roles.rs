//! The role colour classifier on real crops: the Penn-Fudan pedestrians of the role test
//! clip with and without the safety vests `scripts/make-vest-clip.py` paints on them.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::Command;

use lookout_config::roles::{RoleConfig, RoleMatch};
use lookout_core::BBox;
use lookout_infer::roles::RolePalette;

/// Counts this thread's heap allocations (the classifier must not allocate per person).
struct Counting;

thread_local! {
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: the caller's contract is passed on as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

fn shared() -> PathBuf {
    std::env::var("LOOKOUT_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Builds the clip's sprites into `dir` and returns `dir/sprites`.
fn sprites(dir: &Path) -> PathBuf {
    let status = Command::new(repo().join(".venv/bin/python"))
        .arg(repo().join("scripts/make-vest-clip.py"))
        .arg(dir)
        .env("LOOKOUT_SHARED", shared())
        .status()
        .expect("the project's .venv python runs (scripts/setup.sh)");
    assert!(status.success(), "scripts/make-vest-clip.py failed");
    dir.join("sprites")
}

fn palette(roles: &[(&str, &[&str], &[&str])]) -> RolePalette {
    let roles: Vec<RoleConfig> = roles
        .iter()
        .map(|(name, vest, helmet)| RoleConfig {
            name: name.to_string(),
            vest: vest.iter().map(|s| s.to_string()).collect(),
            helmet: helmet.iter().map(|s| s.to_string()).collect(),
        })
        .collect();
    RolePalette::new(&roles, &RoleMatch::default()).expect("roles configured")
}

/// The sprite pasted into a grey 640×480 frame at (x, y); returns the frame and the box.
fn in_frame(sprite: &Path, x: u32, y: u32) -> (Vec<u8>, BBox) {
    let img = lookout_imageops::load_rgb8(sprite).expect("sprite loads");
    let (w, h) = (640u32, 480u32);
    let mut frame = vec![128u8; (w * h * 3) as usize];
    for row in 0..img.height.min(h - y) {
        for col in 0..img.width.min(w - x) {
            let s = ((row * img.width + col) * 3) as usize;
            let d = (((row + y) * w + col + x) * 3) as usize;
            frame[d..d + 3].copy_from_slice(&img.data[s..s + 3]);
        }
    }
    let b = BBox::new(
        x as f32,
        y as f32,
        (x + img.width.min(w - x)) as f32,
        (y + img.height.min(h - y)) as f32,
    );
    (frame, b)
}

#[test]
fn painted_vests_give_their_role_and_plain_clothes_are_unknown() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = sprites(tmp.path());
    let roles = std::fs::read_to_string(dir.join("roles.txt")).expect("roles.txt");
    let p = palette(&[
        ("visitor", &["safety-orange"], &[]),
        ("operator", &["#1f4fd0"], &[]),
    ]);
    let mut checked = 0;
    for line in roles.lines() {
        let Some((name, role)) = line.split_once(' ') else {
            continue;
        };
        for (x, y) in [(0, 0), (250, 200)] {
            let (frame, b) = in_frame(&dir.join(format!("{name}.png")), x, y);
            let tag = p.classify(&frame, 640, 480, &b);
            assert_eq!(&*tag.name, role, "{name} at ({x}, {y}): {tag:?}");
            assert!(tag.score >= 0.25, "{name}: {tag:?}");
            let (frame, b) = in_frame(&dir.join(format!("{name}-plain.png")), x, y);
            let tag = p.classify(&frame, 640, 480, &b);
            assert_eq!(
                &*tag.name,
                lookout_core::UNKNOWN_ROLE,
                "{name} without a vest at ({x}, {y}): {tag:?}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 6, "three people, two places each: {roles}");

    // Measuring allocates nothing (the role name is a shared `Arc`).
    let (frame, b) = in_frame(&dir.join("b.png"), 100, 100);
    let before = ALLOCS.with(Cell::get);
    let mut operators = 0;
    for _ in 0..100 {
        let tag = p.classify(&frame, 640, 480, &b);
        operators += (&*tag.name == "operator") as u32;
    }
    assert_eq!(
        ALLOCS.with(Cell::get) - before,
        0,
        "allocations while measuring"
    );
    assert_eq!(operators, 100);
}

#[test]
fn two_roles_of_about_the_same_colour_are_unknown() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = sprites(tmp.path());
    // Two roles whose vests are both orange: the painted vest matches both, so neither
    // leads and the person is unknown rather than guessed.
    let p = palette(&[
        ("visitor", &["safety-orange"], &[]),
        ("contractor", &["#ff7a08"], &[]),
    ]);
    let (frame, b) = in_frame(&dir.join("a.png"), 10, 10);
    let tag = p.classify(&frame, 640, 480, &b);
    assert_eq!(&*tag.name, lookout_core::UNKNOWN_ROLE, "{tag:?}");
    // A role that also needs a helmet colour the person does not wear is not given.
    let p = palette(&[("visitor", &["safety-orange"], &["white"])]);
    let tag = p.classify(&frame, 640, 480, &b);
    assert_eq!(&*tag.name, lookout_core::UNKNOWN_ROLE, "{tag:?}");
}

#[test]
fn a_box_at_the_frame_edge_or_degenerate_is_unknown_not_a_panic() {
    let p = palette(&[("visitor", &["orange"], &[])]);
    let frame = vec![0u8; 64 * 48 * 3];
    for b in [
        BBox::new(-50.0, -50.0, 10.0, 10.0),
        BBox::new(60.0, 40.0, 500.0, 500.0),
        BBox::new(10.0, 10.0, 10.0, 10.0),
        BBox::new(f32::NAN, 0.0, 5.0, 5.0),
    ] {
        let tag = p.classify(&frame, 64, 48, &b);
        assert_eq!(&*tag.name, lookout_core::UNKNOWN_ROLE, "{b:?}");
    }
    // A short pixel buffer (a frame whose size lies) is read only where it exists.
    let tag = p.classify(&frame[..100], 64, 48, &BBox::new(0.0, 0.0, 64.0, 48.0));
    assert_eq!(&*tag.name, lookout_core::UNKNOWN_ROLE);
}
