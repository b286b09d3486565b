//! Promotion against the gate's candidate: the real server on 127.0.0.1:0, the real SQLite
//! store on disk, the repository's model manifests and ONNX files loaded and sha256-verified
//! by the inference crate's manifest loader, and a model control that records every model
//! the server swaps in (the engine side, sessions and workers, is the binary's).
//!
//! A `gate.json` left beside a candidate by another candidate (its `candidate_sha256` is not
//! the candidate's) refuses the promotion with a 409 naming both hashes and swaps nothing;
//! `force` promotes anyway and is recorded as forced; a gate naming the candidate promotes
//! it unforced; a gate that names no candidate is refused too.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use common::*;
use lookout_server::models::{ModelControl, ModelError, ModelInfo, ModelRef, SlotInfo};
use lookout_server::{RunningServer, ServerState};
use serde_json::{json, Value};

/// The repository's `models/` directory.
fn repo_models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models")
}

/// Loads a manifest as the engine does before a swap (manifest checked, ONNX file located,
/// its sha256 verified; no session).
fn load(manifest: &Path) -> Result<ModelInfo, ModelError> {
    let m = lookout_infer::Model::load(manifest).map_err(|e| ModelError::Invalid(e.to_string()))?;
    Ok(ModelInfo {
        file: ModelRef {
            manifest: manifest.display().to_string(),
            sha256: m.manifest.sha256.to_ascii_lowercase(),
        },
        name: m.manifest.name.clone(),
        licence: m.manifest.licence.clone(),
        classes: m.class_names.iter().map(|c| c.to_string()).collect(),
    })
}

/// One slot, `firesmoke`; every model swapped in, in order.
struct Recording {
    live: Mutex<ModelInfo>,
    swapped: Mutex<Vec<String>>,
}

impl ModelControl for Recording {
    fn slots(&self) -> Vec<SlotInfo> {
        vec![SlotInfo {
            name: "firesmoke".into(),
            live: self.live.lock().unwrap().clone(),
            shadow: None,
            shadow_frames: 0,
            shadow_dropped_saturated: 0,
            shadow_dropped_queue_full: 0,
        }]
    }

    fn set_live(&self, name: &str, manifest: &Path) -> Result<ModelInfo, ModelError> {
        if name != "firesmoke" {
            return Err(ModelError::NoSlot(name.into()));
        }
        let info = load(manifest)?;
        *self.live.lock().unwrap() = info.clone();
        self.swapped.lock().unwrap().push(info.file.sha256.clone());
        Ok(info)
    }

    fn set_shadow(
        &self,
        _name: &str,
        _manifest: Option<&Path>,
    ) -> Result<Option<ModelInfo>, ModelError> {
        Err(ModelError::Invalid("no shadow in this test".into()))
    }
}

const MODELS: &str = r#"
[models.firesmoke]
manifest = "firesmoke.toml"
"#;

struct Server {
    rt: tokio::runtime::Runtime,
    server: Option<RunningServer>,
    _rules: Applied,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            self.rt.block_on(s.stop());
        }
    }
}

impl Server {
    fn call(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
        let b = body.map(|b| b.to_string());
        let r = http(
            self.server.as_ref().unwrap().addr,
            method,
            path,
            Some(token),
            b.as_deref(),
        );
        let v = if r.body.is_empty() {
            Value::Null
        } else {
            r.json()
        };
        (r.status, v)
    }
}

fn start(dir: &Path, control: Arc<Recording>) -> Server {
    let cfg = lookout_config::parse(&format!("{CONFIG}{MODELS}"), "test.toml", dir).unwrap();
    let (rt, alerts) = open_alerts(&cfg);
    let mut state = ServerState::new(alerts, cfg);
    state.load_overlay().unwrap();
    let (rules, applied) = Applied::control();
    state.rules = Some(rules);
    state.models = Some(control as Arc<dyn ModelControl>);
    let server = rt
        .block_on(lookout_server::start(state, "127.0.0.1:0".parse().unwrap()))
        .unwrap();
    Server {
        rt,
        server: Some(server),
        _rules: applied,
    }
}

/// A candidate directory: the repository manifest `from` (its ONNX file named by absolute
/// path) as `site-model.toml`, and `gate` as `gate.json` beside it.
fn candidate(dir: &Path, sub: &str, from: &str, gate: Value) -> PathBuf {
    let d = dir.join(sub);
    std::fs::create_dir_all(&d).unwrap();
    let text = std::fs::read_to_string(repo_models().join(from)).unwrap();
    let onnx = from.replace(".toml", ".onnx");
    let abs = repo_models().join(&onnx).canonicalize().unwrap();
    let text = text.replace(
        &format!("file = \"{onnx}\""),
        &format!("file = {:?}", abs.display().to_string()),
    );
    assert!(
        text.contains(&abs.display().to_string()),
        "{from}: no file key"
    );
    let m = d.join("site-model.toml");
    std::fs::write(&m, text).unwrap();
    std::fs::write(d.join("gate.json"), gate.to_string()).unwrap();
    m
}

fn live_sha(s: &Server) -> String {
    let (st, v) = s.call("GET", "/api/models", VIEWER, None);
    assert_eq!(st, 200, "{v}");
    v["models"][0]["live"]["sha256"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn promotion_refuses_a_gate_that_offered_another_candidate() {
    let dir = tempfile::tempdir().unwrap();
    let base = load(&repo_models().join("smoke-fire.toml")).unwrap();
    let int8 = load(&repo_models().join("smoke-fire-int8.toml")).unwrap();
    let (base_sha, int8_sha) = (base.file.sha256.clone(), int8.file.sha256.clone());
    assert_ne!(base_sha, int8_sha);
    let rec = Arc::new(Recording {
        live: Mutex::new(base),
        swapped: Mutex::new(Vec::new()),
    });
    let s = start(dir.path(), rec.clone());
    let promote = |m: &Path, force: bool| {
        s.call(
            "POST",
            "/api/models/firesmoke/promote",
            ADMIN,
            Some(json!({"manifest": m, "force": force, "comment": "test"})),
        )
    };

    // 1. The INT8 candidate beside a gate that offered another model (a re-fit that
    //    overwrote the ONNX file and manifest but not the gate, say).
    let stale = "ab".repeat(32);
    let cand = candidate(
        dir.path(),
        "cand",
        "smoke-fire-int8.toml",
        json!({"offered": true, "candidate_sha256": stale, "method": "head"}),
    );
    let (st, v) = promote(&cand, false);
    assert_eq!(st, 409, "{v}");
    assert_eq!(v["error"]["code"], "gate_candidate", "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains(&stale) && msg.contains(&int8_sha) && msg.contains("force"),
        "{msg}"
    );
    assert!(rec.swapped.lock().unwrap().is_empty(), "nothing swapped in");
    assert_eq!(live_sha(&s), base_sha);

    // 2. Forced: promoted, recorded as forced with the gate as read.
    let (st, v) = promote(&cand, true);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["forced"], true, "{v}");
    assert_eq!(v["gate"]["candidate_sha256"], stale.as_str(), "{v}");
    assert_eq!(v["to"]["sha256"], int8_sha.as_str(), "{v}");
    assert_eq!(live_sha(&s), int8_sha);

    // 3. A gate naming its candidate (case aside): promoted, not forced.
    let back = candidate(
        dir.path(),
        "back",
        "smoke-fire.toml",
        json!({"offered": true, "candidate_sha256": base_sha.to_ascii_uppercase()}),
    );
    let (st, v) = promote(&back, false);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["forced"], false, "{v}");
    assert_eq!(live_sha(&s), base_sha);

    // 4. A gate that names no candidate cannot be matched: refused unless forced.
    let old = candidate(
        dir.path(),
        "old",
        "smoke-fire-int8.toml",
        json!({"offered": true}),
    );
    let (st, v) = promote(&old, false);
    assert_eq!(st, 409, "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("candidate_sha256") && msg.contains(&int8_sha),
        "{msg}"
    );
    assert_eq!(live_sha(&s), base_sha);

    // Exactly the forced and the matching promotions swapped, and the audit trail says
    // which was forced.
    assert_eq!(
        *rec.swapped.lock().unwrap(),
        vec![int8_sha.clone(), base_sha.clone()]
    );
    let (st, history) = s.call("GET", "/api/config/history", OPERATOR, None);
    assert_eq!(st, 200, "{history}");
    let mut forced: Vec<(String, bool)> = history
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["section"] == "models")
        .map(|r| {
            (
                r["body"]["to"]["sha256"].as_str().unwrap_or("").to_string(),
                r["body"]["forced"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    forced.sort();
    let mut want = vec![(int8_sha, true), (base_sha, false)];
    want.sort();
    assert_eq!(forced, want, "{history}");
}
