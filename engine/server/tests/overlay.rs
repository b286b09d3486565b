//! The config overlay against real parts: a config file on disk watched by the real rules
//! watcher, the real SQLite store in the file's data directory, the real server on
//! 127.0.0.1:0. API changes survive file edits (unrelated and same key), are reported when
//! they no longer validate, and are re-applied by a new server over the same store.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use lookout_server::{RunningServer, ServerState};
use serde_json::{json, Value};

/// The test config plus the keys the test edits.
fn config_text(extra: &str) -> String {
    format!("{CONFIG}\n[rules.tracker]\nmax_missed = 10\n{extra}")
}

struct Engine {
    rt: tokio::runtime::Runtime,
    server: Option<RunningServer>,
    state: ServerState,
    applied: Applied,
    _watcher: Option<lookout_rules::ConfigWatcher>,
}

impl Engine {
    fn addr(&self) -> std::net::SocketAddr {
        self.server.as_ref().unwrap().addr
    }
    fn stop(mut self) {
        self._watcher.take();
        if let Some(s) = self.server.take() {
            self.rt.block_on(s.stop());
        }
    }
}

/// Starts what `lookout run` starts for the config: store, overlay, watcher, server.
fn start_engine(path: &Path) -> Engine {
    let cfg = lookout_config::load(path).unwrap();
    let (rt, alerts) = open_alerts(&cfg);
    let mut state = ServerState::new(alerts, cfg);
    state.load_overlay().unwrap();
    let (control, applied) = Applied::control();
    state.rules = Some(control);
    let watcher = lookout_rules::watch_config_file(path.to_path_buf(), {
        let state = state.clone();
        move |res| {
            if let Ok(rules) = res {
                state.file_rules_changed(rules)
            }
        }
    })
    .unwrap();
    let server = rt
        .block_on(lookout_server::start(
            state.clone(),
            "127.0.0.1:0".parse().unwrap(),
        ))
        .unwrap();
    Engine {
        rt,
        server: Some(server),
        state,
        applied,
        _watcher: Some(watcher),
    }
}

fn config(e: &Engine) -> Value {
    let r = http(e.addr(), "GET", "/api/config", None, None);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

fn smoke_threshold(cfg: &Value) -> Option<f64> {
    cfg["rules"]["cameras"]["tower1"]["classes"]["smoke"]["threshold"]
        .as_f64()
        .map(|t| (t * 100.0).round() / 100.0)
}

/// Rewrites the file and waits (at most 5 s) until `/api/config` satisfies `done`.
fn edit_and_wait(e: &Engine, path: &Path, text: &str, done: impl Fn(&Value) -> bool) -> Value {
    std::fs::write(path, text).unwrap();
    let t0 = Instant::now();
    loop {
        let c = config(e);
        if done(&c) {
            return c;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "the reload was not seen: {}",
            c["rules"]
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("lookout.toml");
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn api_change_survives_file_edits_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &config_text(""));
    let e = start_engine(&path);
    assert_eq!(config(&e)["overlay"], Value::Null);

    // An operator lowers the alarm rate on tower1.
    let body = json!({"camera": "tower1", "class": "smoke", "threshold": 0.6, "comment": "dust on the lens"});
    let r = http(
        e.addr(),
        "POST",
        "/api/tuning/apply",
        Some(ADMIN),
        Some(&body.to_string()),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let version = r.json()["version"].as_i64().unwrap();
    let c = config(&e);
    assert_eq!(smoke_threshold(&c), Some(0.6));
    assert_eq!(c["overlay"]["version"], version);
    assert_eq!(c["overlay"]["author"], "root");
    assert_eq!(c["overlay"]["applied"], true);
    assert_eq!(
        c["overlay"]["changes"][0]["path"],
        "rules.cameras.tower1.classes.smoke"
    );

    // 1. An unrelated key changes in the file: both the file's edit and the overlay run.
    let c = edit_and_wait(
        &e,
        &path,
        &config_text("").replace("max_missed = 10", "max_missed = 12"),
        |c| c["rules"]["tracker"]["max_missed"] == 12,
    );
    assert_eq!(smoke_threshold(&c), Some(0.6), "the overlay was dropped");
    assert_eq!(c["overlay"]["applied"], true);
    assert_eq!(c["overlay"]["conflicts"], json!([]));
    let last = e.applied.last().unwrap();
    assert_eq!(last.tracker.max_missed, 12);
    assert_eq!(
        last.cameras["tower1"].classes["smoke"].threshold,
        Some(0.6),
        "the rules engine was not given file + overlay"
    );
    // The file's own rules are kept apart from the overlay.
    assert_eq!(
        e.state.file_rules().cameras["tower1"].classes.get("smoke"),
        None
    );

    // 2. The same key changes in the file: the overlay wins, the conflict is reported.
    let same = config_text("[rules.cameras.tower1.classes.smoke]\nthreshold = 0.4\n")
        .replace("max_missed = 10", "max_missed = 12");
    let c = edit_and_wait(&e, &path, &same, |c| {
        !c["overlay"]["conflicts"].as_array().unwrap().is_empty()
    });
    assert_eq!(smoke_threshold(&c), Some(0.6));
    let k = &c["overlay"]["conflicts"][0];
    assert_eq!(k["path"], "rules.cameras.tower1.classes.smoke.threshold");
    assert_eq!(k["base"], Value::Null);
    assert!((k["file"].as_f64().unwrap() - 0.4).abs() < 1e-6, "{k}");
    assert!((k["overlay"].as_f64().unwrap() - 0.6).abs() < 1e-6, "{k}");

    // 3. The file makes the overlay invalid (keep_threshold above the overlay's
    //    threshold): the file's rules run, the overlay is reported, not dropped.
    let invalid = config_text(
        "[rules.cameras.tower1.classes.smoke]\nthreshold = 0.7\nkeep_threshold = 0.65\n",
    )
    .replace("max_missed = 10", "max_missed = 12");
    let c = edit_and_wait(&e, &path, &invalid, |c| c["overlay"]["applied"] == false);
    assert_eq!(smoke_threshold(&c), Some(0.7));
    assert_eq!(c["overlay"]["version"], version);
    let err = c["overlay"]["errors"][0]["path"].as_str().unwrap();
    assert!(err.ends_with("smoke.keep_threshold"), "{err}");
    assert_eq!(
        e.applied.last().unwrap().cameras["tower1"].classes["smoke"].threshold,
        Some(0.7)
    );

    // 4. The file is fixed again: the same overlay applies again.
    let c = edit_and_wait(&e, &path, &same, |c| c["overlay"]["applied"] == true);
    assert_eq!(smoke_threshold(&c), Some(0.6));
    e.stop();

    // 5. Restart: a new server over the same SQLite re-applies the overlay at start.
    let e = start_engine(&path);
    let c = config(&e);
    assert_eq!(smoke_threshold(&c), Some(0.6));
    assert_eq!(c["overlay"]["version"], version);
    assert_eq!(c["overlay"]["applied"], true);
    assert_eq!(c["rules"]["tracker"]["max_missed"], 12);
    let hist = http(e.addr(), "GET", "/api/config/history", None, None).json();
    assert_eq!(hist.as_array().unwrap().len(), 1);
    assert_eq!(hist[0]["comment"], "dust on the lens");
    assert_eq!(hist[0]["body"]["change"]["kind"], "tune");

    // 6. Revert: a new version with an empty patch, the file's rules run again.
    let r = http(
        e.addr(),
        "POST",
        "/api/config/revert",
        Some(ADMIN),
        Some(r#"{"comment": "lens cleaned"}"#),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let c = config(&e);
    assert_eq!(smoke_threshold(&c), Some(0.4));
    assert_eq!(c["overlay"]["version"], version + 1);
    assert_eq!(c["overlay"]["changes"], json!([]));
    e.stop();
}

/// A smoke incident on tower1 whose best box is anchored (bottom centre) at `(x, y)` of a
/// 1280×720 frame. Each one is seen at its own time, further apart than the cooldown
/// (which would merge them into one incident).
fn incident_at(id: &str, x: f64, y: f64) -> lookout_core::Incident {
    static N: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(1);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let at = chrono::Utc::now() - chrono::Duration::minutes(5 * n);
    let mut inc = smoke_incident(id, "tower1", at, 0.7);
    let (cx, by) = (x * 1280.0, y * 720.0);
    inc.events[0].bbox = Some(lookout_core::BBox::new(
        (cx - 40.0) as f32,
        (by - 60.0) as f32,
        (cx + 40.0) as f32,
        by as f32,
    ));
    inc
}

#[test]
fn mask_proposal_covers_false_alarms_and_applies_through_the_overlay() {
    use lookout_core::IncidentState::{Closed, Confirmed, FalseAlarm};
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &config_text(""));
    let e = start_engine(&path);
    let alerts = e.state.alerts.clone();
    // False alarms clustered on the left (a chimney), one of them closed after the verdict;
    // a confirmed fire on the right; one lone false alarm far away.
    let fas = [(0.12, 0.40), (0.15, 0.43), (0.18, 0.38), (0.14, 0.45)];
    let confirmed = [(0.62, 0.55)];
    for (i, (x, y)) in fas.iter().enumerate() {
        let id = format!("fa-{i}");
        alerts
            .record_incident(&incident_at(&id, *x, *y), None)
            .unwrap();
        alerts
            .transition(&id, FalseAlarm, "ana", "chimney")
            .unwrap();
    }
    alerts.transition("fa-0", Closed, "ana", "").unwrap();
    alerts
        .record_incident(&incident_at("lone", 0.85, 0.9), None)
        .unwrap();
    alerts.transition("lone", FalseAlarm, "ana", "").unwrap();
    for (i, (x, y)) in confirmed.iter().enumerate() {
        let id = format!("fire-{i}");
        alerts
            .record_incident(&incident_at(&id, *x, *y), None)
            .unwrap();
        alerts.transition(&id, Confirmed, "ana", "real").unwrap();
    }
    // An incident nobody judged does not count.
    alerts
        .record_incident(&incident_at("open", 0.13, 0.41), None)
        .unwrap();

    let masks = |q: &str| {
        let r = http(
            e.addr(),
            "GET",
            &format!("/api/tuning/masks?{q}"),
            None,
            None,
        );
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    };
    let m = masks("camera=tower1");
    assert_eq!(m["false_alarms"].as_array().unwrap().len(), 5);
    assert_eq!(m["confirmed"].as_array().unwrap().len(), 1);
    let props = m["proposals"].as_array().unwrap();
    assert_eq!(props.len(), 1, "{m}");
    let p = &props[0];
    let poly: Vec<[f64; 2]> = serde_json::from_value(p["polygon"].clone()).unwrap();
    for (x, y) in fas {
        assert!(
            lookout_server::masks::contains(&poly, x, y),
            "({x}, {y}) not in {poly:?}"
        );
    }
    for (x, y) in confirmed.into_iter().chain([(0.85, 0.9)]) {
        assert!(
            !lookout_server::masks::contains(&poly, x, y),
            "({x}, {y}) in {poly:?}"
        );
    }
    assert_eq!(p["false_alarms_removed"], 4);
    assert_eq!(p["confirmed_touched"], 0);
    assert_eq!(p["classes"], json!(["smoke"]));
    assert_eq!(p["incidents"], json!(["fa-0", "fa-1", "fa-2", "fa-3"]));
    // With one false alarm enough for a cluster, the lone one is proposed too.
    assert_eq!(
        masks("camera=tower1&min=1")["proposals"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // Validation.
    let r = http(
        e.addr(),
        "GET",
        "/api/tuning/masks?camera=nope&class=person",
        None,
        None,
    );
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["error"]["fields"].as_array().unwrap().len(), 2);

    // Apply: admin only, through the overlay.
    let body =
        json!({"camera": "tower1", "polygon": poly, "classes": ["smoke"], "comment": "chimney"})
            .to_string();
    let r = http(
        e.addr(),
        "POST",
        "/api/tuning/masks/apply",
        Some(OPERATOR),
        Some(&body),
    );
    assert_eq!(r.status, 403);
    let r = http(
        e.addr(),
        "POST",
        "/api/tuning/masks/apply",
        Some(ADMIN),
        Some(&body),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let c = config(&e);
    let cam = &c["rules"]["cameras"]["tower1"];
    assert_eq!(cam["masks"].as_array().unwrap().len(), 1);
    assert_eq!(cam["masks"][0]["polygon"], json!(poly));
    assert_eq!(cam["zones"][0]["name"], "ridge", "the file's zone was lost");
    assert_eq!(c["overlay"]["author"], "root");
    let hist = http(e.addr(), "GET", "/api/config/history", None, None).json();
    assert_eq!(hist[0]["author"], "root");
    assert_eq!(hist[0]["comment"], "chimney");
    assert_eq!(hist[0]["body"]["change"]["kind"], "mask");
    let last = e.applied.last().unwrap();
    assert_eq!(last.cameras["tower1"].masks.len(), 1);
    // The masked false alarms propose nothing any more.
    assert_eq!(masks("camera=tower1")["proposals"], json!([]));
    let bad = json!({"camera": "tower1", "polygon": [[0.1, 0.1], [1.5, 0.1]]}).to_string();
    let r = http(
        e.addr(),
        "POST",
        "/api/tuning/masks/apply",
        Some(ADMIN),
        Some(&bad),
    );
    assert_eq!(r.status, 422);
    e.stop();
}
