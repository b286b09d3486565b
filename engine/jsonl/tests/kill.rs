//! kill -9 in the middle of writing and rotating loses no line and duplicates none.
//!
//! The test re-runs its own binary as a writer process (`LOOKOUT_JSONL_CHILD`), which
//! appends numbered lines to a log rotated every few hundred bytes until it is killed with
//! SIGKILL. After each kill, every line written before the kill (the writer flushes each one)
//! is in exactly one file, and a restarted writer continues after the last one.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use lookout_jsonl::{parse_rotated, JsonlWriter, Rotation};

const CHILD: &str = "LOOKOUT_JSONL_CHILD";

/// Every `n` in every file of `dir` (rotated and live), and the number of lines that are
/// not a complete `{"n":..}` value.
fn numbers(dir: &Path) -> (Vec<u64>, usize) {
    let mut ns = Vec::new();
    let mut bad = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name == "log.jsonl" || parse_rotated(&name).is_some(),
            "unexpected file {name}"
        );
        for line in std::fs::read_to_string(&p).unwrap().lines() {
            match serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v["n"].as_u64())
            {
                Some(n) => ns.push(n),
                None => bad += 1,
            }
        }
    }
    ns.sort_unstable();
    (ns, bad)
}

#[test]
fn child_writer() {
    let Ok(spec) = std::env::var(CHILD) else {
        return;
    };
    let (dir, from) = spec.split_once('|').unwrap();
    let from: u64 = from.parse().unwrap();
    let mut w = JsonlWriter::open_rotating(
        &Path::new(dir).join("log.jsonl"),
        Rotation::new(300, Duration::ZERO),
    );
    let pad = "x".repeat(40);
    for n in from.. {
        w.write(&serde_json::json!({ "n": n, "pad": pad }));
    }
}

#[test]
fn kill_9_while_writing_and_rotating_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut next = 0u64;
    for (round, ms) in [40u64, 90, 150, 60, 220].into_iter().enumerate() {
        let mut child = Command::new(&exe)
            .args(["--exact", "child_writer", "--nocapture", "--test-threads=1"])
            .env(CHILD, format!("{}|{next}", dir.path().display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(ms));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let (ns, bad) = numbers(dir.path());
        let unique: BTreeSet<u64> = ns.iter().copied().collect();
        assert_eq!(
            unique.len(),
            ns.len(),
            "round {round}: a line is duplicated"
        );
        assert!(bad <= round + 1, "round {round}: {bad} cut lines");
        let last = *ns.last().expect("the writer wrote something");
        assert!(last >= next, "round {round}: nothing new was written");
        assert_eq!(
            ns,
            (0..=last).collect::<Vec<u64>>(),
            "round {round}: a line is missing"
        );
        next = last + 1;
    }
    let rotated = std::fs::read_dir(dir.path()).unwrap().count() - 1;
    assert!(rotated >= 5, "only {rotated} rotations happened");
}
