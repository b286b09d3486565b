//! `lookout sequences` + `lookout eval-events` on real data: the held-out half of the FURG
//! house-6 video (a positive sequence, labelled boxes) and the D-Fire evaluation negatives
//! (a negative sequence of stills), through Lookout's smoke/fire model and the real rules.

mod common;
use common::shared;

use std::path::Path;
use std::process::Command;

fn lookout(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(args)
        .env("LOOKOUT_SHARED", shared())
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .output()
        .expect("lookout runs")
}

#[test]
fn eval_events_on_furg_heldout_and_dfire_negatives() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let pos = tmp.path().join("furg-heldout");
    let furg = shared().join("datasets/furg-house6");
    let out = lookout(&[
        "sequences",
        "from-furg",
        "--video",
        furg.join("furg_house6.mp4").to_str().expect("utf-8 path"),
        "--xml",
        furg.join("furg_house6.xml").to_str().expect("utf-8 path"),
        "--from",
        "450",
        "--to",
        "898",
        "--every",
        "15",
        "--out",
        pos.to_str().expect("utf-8 path"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let neg = tmp.path().join("dfire-negatives");
    let out = lookout(&[
        "sequences",
        "from-stills",
        "--src",
        shared()
            .join("datasets/dfire-negatives/eval")
            .to_str()
            .expect("utf-8 path"),
        "--interval-s",
        "2",
        "--out",
        neg.to_str().expect("utf-8 path"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = lookout(&[
        "eval-events",
        "--json",
        "--data",
        pos.to_str().expect("utf-8 path"),
        neg.to_str().expect("utf-8 path"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Progress with rate and ETA on stderr, the report alone on stdout.
    let progress = String::from_utf8_lossy(&out.stderr);
    assert!(
        progress.contains(" frames/s, ETA "),
        "no rate and ETA: {progress}"
    );
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("one JSON object on stdout");
    let fire = report["classes"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["class"] == "fire"))
        .expect("a fire row")
        .clone();
    assert_eq!(fire["positive_sequences"], 1, "{report}");
    assert_eq!(
        fire["detected_sequences"], 1,
        "the held-out fire must be detected: {report}"
    );
    assert!(fire["true_events"].as_u64().unwrap_or(0) >= 1, "{report}");
    assert!(fire["ttd_s"]["median"].as_f64().is_some(), "{report}");
    // One row per sequence and class: 2 sequences × (smoke, fire).
    let rows = report["sequences"].as_array().expect("sequence rows");
    assert_eq!(rows.len(), 4, "{report}");
    assert!(
        rows.iter()
            .any(|r| r["name"] == "dfire-negatives" && r["positive"] == false),
        "{report}"
    );
    eprintln!("eval-events report: {report}");
}
