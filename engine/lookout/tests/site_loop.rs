//! The whole site-learning loop on real parts, on a few images in minutes: the live engine
//! watches a real fire video (FURG house 6) on two cameras; through the HTTP API an
//! operator confirms one incident and marks the other a false alarm; `lookout dataset
//! export` turns the verdicts into a YOLO set, to which a handful of HPWREN tower frames
//! (evaluation-only data standing for a tower site's verdicts: the model made here is
//! measured and thrown away in a temp dir, never shipped) add held-out frames;
//! `models/train/site.sh` fits and gates a candidate; the engine runs it in shadow (its
//! would-be events stored apart, never incidents), promotes it (the live sha256 changes in
//! `/api/models` and `/metrics`, the workers swap sessions without a restart, the change is
//! in the config history), keeps it across a restart, and rolls back to the base.

mod common;
use common::{api_call, hpwren_site, http, repo, shared, spawn_engine, wait_for};

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

const OPERATOR: &str = "site-loop-operator-token";
const ADMIN: &str = "site-loop-admin-token-0123";

fn call(addr: &str, token: &str, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    api_call(addr, token, method, path, body)
}

fn lookout(args: &[&str], config: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env("LOOKOUT_SHARED", shared())
        .output()
        .expect("lookout runs")
}

fn live_sha(addr: &str) -> Option<String> {
    let (code, v) = call(addr, OPERATOR, "GET", "/api/models", None);
    (code == 200).then_some(())?;
    v["models"]
        .as_array()?
        .iter()
        .find(|m| m["name"] == "smoke-fire")?["live"]["sha256"]
        .as_str()
        .map(String::from)
}

fn metrics_live_sha(addr: &str) -> Option<String> {
    let (code, body) = http(addr, "GET", "/metrics", None, None).ok()?;
    (code == 200).then_some(())?;
    String::from_utf8_lossy(&body)
        .lines()
        .find(|l| {
            l.starts_with("lookout_model_info{")
                && l.contains("model=\"smoke-fire\"")
                && l.contains("role=\"live\"")
        })?
        .split("sha256=\"")
        .nth(1)?
        .split('"')
        .next()
        .map(String::from)
}

#[test]
fn export_fit_gate_shadow_promote_restart_and_rollback() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let video = shared().join("datasets/furg-house6/furg_house6.mp4");
    let base_manifest = repo().join("models/smoke-fire.toml");
    let config = tmp.path().join("site.toml");
    let mut cameras = String::new();
    for id in ["cam-a", "cam-b"] {
        cameras.push_str(&format!(
            r#"
[[cameras]]
id = "{id}"
source = {{ kind = "file", path = "{video}", loop = true }}
fps = 2
models = ["smoke-fire"]
"#,
            video = video.display()
        ));
    }
    std::fs::write(
        &config,
        format!(
            r#"
[engine]
shutdown_deadline_s = 10

[inference]
workers = 1
intra_threads = 1

[models.smoke-fire]
manifest = "{manifest}"
{cameras}
[rules]
quiet_s = 5

[server]
port = {port}

[[server.users]]
name = "night-shift"
role = "operator"
token = "{OPERATOR}"

[[server.users]]
name = "site-admin"
role = "admin"
token = "{ADMIN}"

[[alerts.sinks]]
kind = "jsonl"
name = "log"
path = "alerts.jsonl"
"#,
            manifest = base_manifest.display(),
        ),
    )
    .expect("config");
    let data = tmp.path().join("data");
    let log = tmp.path().join("lookout-1.log");

    // 1. The live engine raises fire incidents; the operator judges them.
    let mut engine = spawn_engine(&config, &data, &log);
    let incident_on = |cam: &str, list: &Value| -> Option<String> {
        list.as_array()?.iter().find_map(|i| {
            let on_cam = i["cameras"]
                .as_array()
                .is_some_and(|c| c.len() == 1 && c[0] == cam);
            (on_cam && i["kind"] == "fire" && i["snapshot_id"].is_i64())
                .then(|| i["id"].as_str().map(String::from))
                .flatten()
        })
    };
    let (a, b) = wait_for(
        "a fire incident with a snapshot on both cameras",
        120,
        &mut engine,
        &log,
        |_| {
            let (code, list) = call(&addr, OPERATOR, "GET", "/api/incidents", None);
            (code == 200).then_some(())?;
            let list = if list.is_array() {
                list
            } else {
                list["incidents"].clone()
            };
            Some((incident_on("cam-a", &list)?, incident_on("cam-b", &list)?))
        },
    );
    let base_sha = live_sha(&addr).expect("the live model is listed");
    assert_eq!(metrics_live_sha(&addr).as_deref(), Some(base_sha.as_str()));
    for (id, to) in [(&a, "confirmed"), (&b, "false_alarm")] {
        let (code, v) = call(
            &addr,
            OPERATOR,
            "POST",
            &format!("/api/incidents/{id}/transition"),
            Some(&json!({ "to": to }).to_string()),
        );
        assert_eq!(code, 200, "{v}");
    }
    // Model changes are admin's: an operator is refused.
    let (code, v) = call(
        &addr,
        OPERATOR,
        "POST",
        "/api/models/smoke-fire/rollback",
        Some("{}"),
    );
    assert_eq!(code, 403, "{v}");
    assert!(engine.terminate(Duration::from_secs(20)), "clean stop");

    // 2. Export, plus tower frames for held-out figures; fit and gate.
    let set = tmp.path().join("site-set");
    let out = lookout(
        &[
            "dataset",
            "export",
            "--json",
            "--data-dir",
            data.to_str().expect("utf-8"),
            "--out",
            set.to_str().expect("utf-8"),
        ],
        &config,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).expect("JSON summary");
    assert!(summary["positives"].as_u64() >= Some(1), "{summary}");
    assert!(summary["negatives"].as_u64() >= Some(1), "{summary}");
    hpwren_site(&set, 16, 8);
    let cand_dir = tmp.path().join("candidate");
    let fit = Command::new("bash")
        .arg(repo().join("models/train/site.sh"))
        .args(["--data"])
        .arg(&set)
        .args(["--base", "models/smoke-fire.toml", "--out"])
        .arg(&cand_dir)
        .args(["--minutes", "1", "--method", "head", "--neg"])
        .arg(shared().join("datasets/dfire-negatives/train"))
        .env("LOOKOUT_BIN", env!("CARGO_BIN_EXE_lookout"))
        .env("LOOKOUT_SHARED", shared())
        .current_dir(repo())
        .output()
        .expect("site.sh runs");
    let code = fit.status.code();
    assert!(
        code == Some(0) || code == Some(3),
        "site.sh exit {code:?}: {}",
        String::from_utf8_lossy(&fit.stderr)
    );
    let gate: Value =
        serde_json::from_slice(&std::fs::read(cand_dir.join("gate.json")).expect("gate.json"))
            .expect("gate JSON");
    let offered = gate["offered"] == true;
    assert_eq!(offered, code == Some(0), "{gate}");
    let cand = cand_dir.join("site-model.toml");
    let cand_s = cand.to_str().expect("utf-8").to_string();

    // 3. Shadow: the candidate beside the live model, same frames, same rules.
    let log = tmp.path().join("lookout-2.log");
    let mut engine = spawn_engine(&config, &data, &log);
    wait_for("the API", 30, &mut engine, &log, |_| live_sha(&addr));
    let (code, v) = call(
        &addr,
        ADMIN,
        "POST",
        "/api/models/smoke-fire/shadow",
        Some(&json!({"manifest": "/nonexistent/site-model.toml"}).to_string()),
    );
    assert_eq!(code, 422, "a manifest that does not load is refused: {v}");
    // First a shadow that is the live model under another path: it must raise what the
    // live model raised, on the same cameras, and agree with the verdicts as the live
    // model does (raised the confirmed fire and the false alarm alike).
    let twin = tmp.path().join("twin");
    std::fs::create_dir_all(&twin).expect("mkdir");
    for f in ["smoke-fire.toml", "smoke-fire.onnx"] {
        std::fs::copy(repo().join("models").join(f), twin.join(f)).expect("copy the base");
    }
    let (code, v) = call(
        &addr,
        ADMIN,
        "POST",
        "/api/models/smoke-fire/shadow",
        Some(&json!({"manifest": twin.join("smoke-fire.toml"), "comment": "twin"}).to_string()),
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["shadow"]["sha256"], base_sha.as_str(), "{v}");
    let twin_view = wait_for(
        "the twin shadow's would-be events on both judged incidents",
        120,
        &mut engine,
        &log,
        |seen| {
            let (code, v) = call(
                &addr,
                OPERATOR,
                "GET",
                "/api/models/smoke-fire/shadow",
                None,
            );
            *seen = v.to_string();
            let cams = v["cameras"].as_array()?;
            let cam = |id: &str| cams.iter().find(|c| c["camera"] == id).cloned();
            let (a, b) = (cam("cam-a")?, cam("cam-b")?);
            (code == 200
                && a["shadow_raised_confirmed"] == 1
                && b["shadow_events"].as_u64() >= Some(1))
            .then_some(v)
        },
    );
    let cams = twin_view["cameras"].as_array().expect("per camera");
    for c in cams {
        assert_eq!(c["shadow_agreement"], c["live_agreement"], "{twin_view}");
        assert_eq!(c["shadow_silent_false_alarms"], 0, "{twin_view}");
    }
    assert!(twin_view["shadow_frames"].as_u64() > Some(0), "{twin_view}");
    for e in twin_view["events"].as_array().expect("events") {
        assert_eq!(e["model"], "smoke-fire", "{e}");
        assert!(["smoke", "fire"].contains(&e["event"]["kind"].as_str().unwrap_or("")));
    }

    // Then the site's candidate replaces it in shadow.
    let (code, v) = call(
        &addr,
        ADMIN,
        "POST",
        "/api/models/smoke-fire/shadow",
        Some(&json!({"manifest": cand_s, "comment": "site fit"}).to_string()),
    );
    assert_eq!(code, 200, "{v}");
    let cand_sha = v["shadow"]["sha256"]
        .as_str()
        .expect("shadow sha")
        .to_string();
    assert_ne!(cand_sha, base_sha, "the candidate is another file");
    let frames_before = twin_view["shadow_frames"].as_u64().unwrap_or(0);
    let shadow = wait_for(
        "the candidate's shadow frames",
        60,
        &mut engine,
        &log,
        |seen| {
            let (code, v) = call(
                &addr,
                OPERATOR,
                "GET",
                "/api/models/smoke-fire/shadow",
                None,
            );
            *seen = v.to_string();
            (code == 200
                && v["shadow"]["sha256"] == cand_sha.as_str()
                && v["shadow_frames"].as_u64() > Some(frames_before + 4))
            .then_some(v)
        },
    );
    let cand_events = shadow["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["sha256"] == cand_sha.as_str())
        .count();
    let cams = shadow["cameras"].as_array().expect("per camera");
    let judged: u64 = cams
        .iter()
        .map(|c| c["confirmed"].as_u64().unwrap_or(0) + c["false_alarms"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(judged, 2, "both verdicts are compared: {shadow}");
    let compared: u64 = cams
        .iter()
        .map(|c| c["shadow_events"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(
        compared as usize, cand_events,
        "the comparison counts the candidate's events only: {shadow}"
    );
    eprintln!(
        "site loop: candidate in shadow: {} frames, {cand_events} would-be events; per camera {}",
        shadow["shadow_frames"], shadow["cameras"]
    );
    let (_, models) = call(&addr, OPERATOR, "GET", "/api/models", None);
    assert_eq!(models["models"][0]["shadow"]["sha256"], cand_sha.as_str());
    let metrics = String::from_utf8_lossy(
        &http(&addr, "GET", "/metrics", None, None)
            .expect("metrics")
            .1,
    )
    .to_string();
    assert!(
        metrics.contains(&format!("role=\"shadow\",sha256=\"{cand_sha}\"")),
        "{metrics}"
    );
    assert!(metrics.contains(
        "lookout_shadow_frames_dropped_total{model=\"smoke-fire\",reason=\"saturated\"}"
    ));

    // 4. Promote: refused without a passing gate unless forced.
    let (code, v) = call(
        &addr,
        ADMIN,
        "POST",
        "/api/models/smoke-fire/promote",
        Some(&json!({"comment": "the shadow agrees"}).to_string()),
    );
    if offered {
        assert_eq!(code, 200, "{v}");
        assert_eq!(v["forced"], false, "{v}");
        assert_eq!(v["gate"]["offered"], true, "{v}");
    } else {
        assert_eq!(code, 409, "a candidate the gate did not offer: {v}");
        let (code2, v2) = call(
            &addr,
            ADMIN,
            "POST",
            "/api/models/smoke-fire/promote",
            Some(&json!({"force": true, "comment": "forced for the test"}).to_string()),
        );
        assert_eq!(code2, 200, "{v2}");
        assert_eq!(v2["forced"], true, "{v2}");
    }
    assert_eq!(live_sha(&addr).as_deref(), Some(cand_sha.as_str()));
    assert_eq!(metrics_live_sha(&addr).as_deref(), Some(cand_sha.as_str()));
    wait_for(
        "the workers to swap sessions",
        30,
        &mut engine,
        &log,
        |_| {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("Live model swapped.")
                .then_some(())
        },
    );
    let (_, models) = call(&addr, OPERATOR, "GET", "/api/models", None);
    assert!(
        models["models"][0]["shadow"].is_null(),
        "the promoted shadow stops: {models}"
    );
    assert!(engine.terminate(Duration::from_secs(20)), "clean stop");

    // 5. A restart keeps the promotion (the models record is re-applied at start).
    let log = tmp.path().join("lookout-3.log");
    let mut engine = spawn_engine(&config, &data, &log);
    let sha = wait_for("the API after a restart", 30, &mut engine, &log, |_| {
        live_sha(&addr)
    });
    assert_eq!(sha, cand_sha, "the promotion survives a restart");

    // 6. Rollback returns to the base; a second has nothing left to undo.
    let (code, v) = call(
        &addr,
        ADMIN,
        "POST",
        "/api/models/smoke-fire/rollback",
        Some(r#"{"comment": "back to the shipped model"}"#),
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(live_sha(&addr).as_deref(), Some(base_sha.as_str()));
    assert_eq!(metrics_live_sha(&addr).as_deref(), Some(base_sha.as_str()));
    let (code, v) = call(
        &addr,
        ADMIN,
        "POST",
        "/api/models/smoke-fire/rollback",
        Some("{}"),
    );
    assert_eq!(code, 409, "{v}");

    // The audit trail: who, what, from and to.
    let (code, history) = call(&addr, OPERATOR, "GET", "/api/config/history", None);
    assert_eq!(code, 200);
    let models: Vec<&Value> = history
        .as_array()
        .expect("history")
        .iter()
        .filter(|r| r["section"] == "models")
        .collect();
    let actions: Vec<&str> = models
        .iter()
        .map(|r| r["body"]["action"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        actions,
        ["rollback", "promote", "shadow_start", "shadow_start"],
        "{history}"
    );
    assert!(models.iter().all(|r| r["author"] == "site-admin"));
    assert_eq!(models[1]["body"]["from"]["sha256"], base_sha.as_str());
    assert_eq!(models[1]["body"]["to"]["sha256"], cand_sha.as_str());
    assert_eq!(models[0]["body"]["to"]["sha256"], base_sha.as_str());
    assert_eq!(models[1]["body"]["forced"], !offered, "{history}");
    assert_eq!(
        models[2]["body"]["from"]["sha256"],
        base_sha.as_str(),
        "the twin it replaced"
    );
    assert!(engine.terminate(Duration::from_secs(20)), "clean stop");

    let diff = lookout(
        &[
            "config",
            "diff",
            "--data-dir",
            data.to_str().expect("utf-8"),
        ],
        &config,
    );
    let text = String::from_utf8_lossy(&diff.stdout);
    assert!(diff.status.success(), "{text}");
    assert!(
        text.contains("last change rollback of smoke-fire")
            && text.contains("models.smoke-fire.shadow: stopped")
            && !text.contains("models.smoke-fire.manifest:"),
        "after the rollback the file's model runs: {text}"
    );
}
