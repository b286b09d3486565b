//! The site fine-tune and its gate (`models/train/site.sh`) on a simulated site: HPWREN
//! tower frames stand for the verdicts a tower site would have collected (evaluation-only
//! data: the model made here is measured and thrown away, never shipped). The real ONNX
//! Runtime fits the shipped smoke/fire model's class outputs, the real `lookout eval`
//! measures running vs candidate on the held-out split, and the gate's verdict must follow
//! from those figures.

mod common;
use common::{hpwren_site, repo, shared};

use std::process::Command;

use serde_json::Value;

fn site_sh(args: &[&str]) -> std::process::Output {
    Command::new("bash")
        .arg(repo().join("models/train/site.sh"))
        .args(args)
        .env("LOOKOUT_BIN", env!("CARGO_BIN_EXE_lookout"))
        .env("LOOKOUT_SHARED", shared())
        .current_dir(repo())
        .output()
        .expect("site.sh runs")
}

#[test]
fn site_fit_writes_a_verified_candidate_and_the_gate_follows_the_figures() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("site-set");
    hpwren_site(&data, 24, 12);
    let out = tmp.path().join("candidate");
    let neg = shared().join("datasets/dfire-negatives/train");
    let keep = shared().join("datasets/cctv-fire-smoke/test");
    let run = site_sh(&[
        "--data",
        data.to_str().expect("utf-8"),
        "--base",
        "models/smoke-fire.toml",
        "--out",
        out.to_str().expect("utf-8"),
        "--minutes",
        "0.5",
        // The class-output re-fit: the method every machine has (the deep fit needs the
        // training environment, which the test command does not install).
        "--method",
        "head",
        "--neg",
        neg.to_str().expect("utf-8"),
        "--keep-eval",
        keep.to_str().expect("utf-8"),
    ]);
    let code = run.status.code();
    assert!(
        code == Some(0) || code == Some(3),
        "exit {code:?}: {}",
        String::from_utf8_lossy(&run.stderr)
    );

    // The candidate is a model the engine accepts: its manifest's sha256 verifies.
    let listed = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(["models", "--json", "--dir"])
        .arg(&out)
        .env("LOOKOUT_SHARED", shared())
        .current_dir(repo())
        .output()
        .expect("lookout models");
    let listed: Value = serde_json::from_slice(&listed.stdout).expect("JSON");
    assert_eq!(listed["models"][0]["name"], "site-model", "{listed}");
    assert_eq!(listed["models"][0]["status"], "ok", "{listed}");
    let base = std::fs::read(repo().join("models/smoke-fire.onnx")).expect("base");
    let cand = std::fs::read(out.join("site-model.onnx")).expect("candidate");
    assert_ne!(base, cand, "the class outputs were re-fitted");

    // The gate's verdict follows from the two real evaluations.
    let read = |f: &str| -> Value {
        serde_json::from_slice(&std::fs::read(out.join(f)).expect(f)).expect("JSON")
    };
    let (b, s, gate) = (
        read("eval-base.json"),
        read("eval-site.json"),
        read("gate.json"),
    );
    let ap = |r: &Value| r["classes"]["smoke"]["ap50"].as_f64().expect("smoke AP50");
    assert!((gate["mean_ap50"]["running"].as_f64().unwrap_or(-1.0) - ap(&b)).abs() < 1e-3);
    assert!((gate["mean_ap50"]["candidate"].as_f64().unwrap_or(-1.0) - ap(&s)).abs() < 1e-3);
    // What the candidate must not forget (fire and smoke on CCTV test frames) is measured
    // for both and gates the offer: within 0.05 of the running model's mean AP50.
    let (kb, ks) = (read("keep-base.json"), read("keep-site.json"));
    let keep_mean = |r: &Value| {
        let c = &r["classes"];
        (c["smoke"]["ap50"].as_f64().expect("smoke") + c["fire"]["ap50"].as_f64().expect("fire"))
            / 2.0
    };
    let kept = keep_mean(&ks) >= keep_mean(&kb) - 0.05;
    assert!(
        (gate["keep"]["mean_ap50"]["running"]
            .as_f64()
            .unwrap_or(-1.0)
            - keep_mean(&kb))
        .abs()
            < 1e-3,
        "{gate}"
    );
    assert_eq!(gate["keep"]["kept"], kept, "{gate}");
    assert_eq!(gate["offered"], ap(&s) > ap(&b) && kept, "{gate}");
    assert_eq!(gate["offered"] == true, code == Some(0));
    let card = std::fs::read_to_string(out.join("site-model.md")).expect("card");
    assert!(
        card.contains("| smoke AP50 |") && card.contains("**Gate: "),
        "{card}"
    );

    // Without held-out frames the gate cannot decide: refused, said why.
    let empty = tmp.path().join("no-val");
    hpwren_site(&empty, 4, 0);
    let run = site_sh(&[
        "--data",
        empty.to_str().expect("utf-8"),
        "--base",
        "models/smoke-fire.toml",
        "--out",
        tmp.path().join("x").to_str().expect("utf-8"),
    ]);
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("val/images"));
}
