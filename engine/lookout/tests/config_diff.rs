//! `lookout config diff` as a real process over a real data directory: an overlay written
//! by the server's API path into the SQLite store is listed key by key with its version,
//! author and comment; a later file edit shows as a conflict, an invalid one as "not
//! applied".

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use serde_json::Value;

const CONFIG: &str = r#"
[engine]
data_dir = "state"

[[cameras]]
id = "tower1"
source = { kind = "file", path = "tower1.mp4" }

[rules]
quiet_s = 30

[rules.cameras.tower1.classes.smoke]
threshold = 0.5
"#;

fn diff(config: &Path, data_dir: Option<&Path>, json: bool) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lookout"));
    cmd.args(["config", "diff", "--config"]).arg(config);
    if let Some(d) = data_dir {
        cmd.arg("--data-dir").arg(d);
    }
    if json {
        cmd.arg("--json");
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "lookout config diff failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), stdout)
}

#[test]
fn config_diff_lists_the_api_overlay_over_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("site.toml");
    std::fs::write(&path, CONFIG).unwrap();

    // No database yet: nothing to show, nothing created.
    let (_, out) = diff(&path, None, false);
    assert!(out.contains("No config overlay"), "{out}");
    assert!(!dir.path().join("state").exists());

    // An operator's change through the server's overlay path, stored in state/lookout.db.
    let cfg = lookout_config::load(&path).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    {
        let alerts = Arc::new(
            rt.block_on(async {
                lookout_alerts::Alerts::open(&cfg, &tokio::runtime::Handle::current())
            })
            .unwrap(),
        );
        let mut state = lookout_server::ServerState::new(alerts, cfg.clone());
        // A real control whose queue nobody reads (no rules stage runs here); it holds
        // the one change this test makes.
        let (control, _queue) = lookout_server::RulesControl::channel(4);
        state.rules = Some(control);
        let mut rules = cfg.rules.clone();
        rules
            .cameras
            .get_mut("tower1")
            .unwrap()
            .classes
            .get_mut("smoke")
            .unwrap()
            .threshold = Some(0.6);
        rules.quiet_s = 45.0;
        let v = state
            .change_rules(
                "root",
                |_, _| rules,
                "dust on the lens",
                serde_json::json!({"kind": "rules"}),
            )
            .unwrap();
        assert_eq!(v, 1);
    }
    drop(rt);
    assert!(dir.path().join("state/lookout.db").is_file());

    let (_, out) = diff(&path, None, false);
    assert!(out.contains("overlay v1 by root at "), "{out}");
    assert!(out.contains("\"dust on the lens\""), "{out}");
    assert!(out.contains("applied over the file"), "{out}");
    assert!(
        out.contains("rules.cameras.tower1.classes.smoke.threshold: 0.5 → 0.6"),
        "{out}"
    );
    assert!(out.contains("rules.quiet_s: 30.0 → 45.0"), "{out}");

    let (_, js) = diff(&path, None, true);
    let v: Value = serde_json::from_str(&js).unwrap();
    assert_eq!(v["overlay"]["version"], 1);
    assert_eq!(v["overlay"]["author"], "root");
    assert_eq!(v["overlay"]["applied"], true);
    let paths: Vec<&str> = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        vec![
            "rules.cameras.tower1.classes.smoke.threshold",
            "rules.quiet_s"
        ]
    );

    // The file later changes the same key: a conflict, the overlay's value runs.
    std::fs::write(&path, CONFIG.replace("quiet_s = 30", "quiet_s = 40")).unwrap();
    let (_, out) = diff(&path, None, false);
    assert!(out.contains("Conflicts"), "{out}");
    assert!(
        out.contains("rules.quiet_s: file was 30.0 when v1 was made, is 40.0 now; overlay 45.0"),
        "{out}"
    );

    // The file makes the overlay invalid: reported, the file's rules run.
    std::fs::write(
        &path,
        CONFIG.replace("threshold = 0.5", "threshold = 0.7\nkeep_threshold = 0.65"),
    )
    .unwrap();
    let (_, out) = diff(&path, None, false);
    assert!(out.contains("NOT APPLIED"), "{out}");
    assert!(out.contains("smoke.keep_threshold"), "{out}");

    // --data-dir points at another directory: no overlay there.
    let other = tempfile::tempdir().unwrap();
    let (_, out) = diff(&path, Some(other.path()), false);
    assert!(out.contains("No config overlay"), "{out}");
}
