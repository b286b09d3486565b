//! `lookout models` through the built binary, on the checkout's real manifests and ONNX
//! files: what is installed, in use, verified, under which licence.

mod common;
use common::{repo, shared};

use std::process::Command;

use serde_json::Value;

fn models(args: &[&str]) -> (bool, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .arg("models")
        .arg("--json")
        .args(args)
        .env("LOOKOUT_SHARED", shared())
        .current_dir(repo())
        .output()
        .expect("lookout runs");
    let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.success(), v)
}

fn find<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["models"]
        .as_array()
        .and_then(|a| a.iter().find(|m| m["name"] == name))
        .unwrap_or_else(|| panic!("{name} not listed: {v}"))
}

#[test]
fn lists_installed_models_with_status_use_and_licence() {
    let (ok, v) = models(&[]);
    assert!(ok, "{v}");
    let sf = find(&v, "smoke-fire");
    assert_eq!(sf["status"], "ok", "{sf}");
    assert_eq!(sf["in_use_as"], serde_json::json!(["smoke-fire"]));
    assert_eq!(sf["licence"], "Apache-2.0");
    assert!(sf["licence_note"]
        .as_str()
        .is_some_and(|n| n.starts_with("permissive")));
    assert!(sf["card"]
        .as_str()
        .is_some_and(|c| c.ends_with("smoke-fire.md")));
    assert!(
        sf["measured"].as_array().is_some_and(|m| m
            .iter()
            .any(|x| x.as_str().is_some_and(|x| x.contains("fire AP50")))),
        "{sf}"
    );
    assert_eq!(
        find(&v, "person-nanodet")["in_use_as"],
        serde_json::json!(["person"])
    );
    // Installed but not configured.
    assert_eq!(
        find(&v, "smoke-fire-int8")["in_use_as"],
        serde_json::json!([])
    );

    // A third-party model a site pointed a manifest at: listed with what its licence means.
    let fixtures = repo().join("engine/infer/tests/fixtures");
    let (ok, v) = models(&["--dir", fixtures.to_str().expect("utf-8")]);
    assert!(ok, "{v}");
    let r = find(&v, "reference-yolov8");
    assert_eq!(r["status"], "ok", "{r}");
    assert!(
        r["licence_note"]
            .as_str()
            .is_some_and(|n| n.contains("source")),
        "{r}"
    );

    // A manifest whose file is not the one it names, and one whose file is missing.
    let tmp = tempfile::tempdir().expect("temp dir");
    let text = std::fs::read_to_string(repo().join("models/smoke-fire.toml")).expect("manifest");
    let onnx = repo().join("models/smoke-fire.onnx");
    std::fs::write(
        tmp.path().join("tampered.toml"),
        text.replace("name = \"smoke-fire\"", "name = \"tampered\"")
            .replace(
                "file = \"smoke-fire.onnx\"",
                &format!("file = \"{}\"", onnx.display()),
            )
            .replace("sha256 = \"bc2f", "sha256 = \"0000"),
    )
    .expect("write");
    std::fs::write(
        tmp.path().join("gone.toml"),
        text.replace("name = \"smoke-fire\"", "name = \"gone\"")
            .replace("file = \"smoke-fire.onnx\"", "file = \"not-here.onnx\""),
    )
    .expect("write");
    std::fs::write(
        tmp.path().join("notes.toml"),
        "title = \"not a manifest\"\n",
    )
    .expect("write");
    let (ok, v) = models(&["--dir", tmp.path().to_str().expect("utf-8")]);
    assert!(ok, "{v}");
    assert_eq!(find(&v, "tampered")["status"], "sha256_mismatch", "{v}");
    assert_eq!(find(&v, "gone")["status"], "missing", "{v}");
    assert_eq!(v["models"].as_array().map(Vec::len), Some(2), "{v}");
}
