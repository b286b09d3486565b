//! `[engine.retention]`: defaults, located range errors, the quota that must hold one
//! snapshot, and the `[alerts]` retention keys that moved here.

use std::path::Path;

use lookout_config::parse;

fn errors(src: &str) -> Vec<String> {
    match parse(src, "site.toml", Path::new(".")) {
        Ok(_) => vec![],
        Err(e) => e.errors.iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn defaults_are_sane() {
    let cfg = parse("", "site.toml", Path::new(".")).expect("empty config parses");
    let r = &cfg.engine.retention;
    assert_eq!(r.jsonl_rotate_bytes(), 64 * 1024 * 1024);
    assert_eq!(r.jsonl_rotate_hours, 24.0);
    assert!(r.jsonl_keep >= 1 && r.jsonl_compress);
    assert_eq!(r.quota_bytes(), Some(20 * 1024 * 1024 * 1024));
    assert!(r.frame_results_days < r.events_days && r.events_days <= r.closed_incidents_days);
}

#[test]
fn values_parse() {
    let src = "[engine.retention]\njsonl_rotate_mb = 8\njsonl_keep = 2\njsonl_compress = false\nquota_mb = 0\nsnapshots_days = 3.5\n";
    let cfg = parse(src, "site.toml", Path::new(".")).expect("parses");
    let r = &cfg.engine.retention;
    assert_eq!(r.jsonl_rotate_bytes(), 8 * 1024 * 1024);
    assert_eq!(r.jsonl_keep, 2);
    assert!(!r.jsonl_compress);
    assert_eq!(r.quota_bytes(), None);
    assert_eq!(r.snapshots_days, 3.5);
}

#[test]
fn out_of_range_values_are_located() {
    let src = "[engine]\ndata_dir = \"d\"\n\n[engine.retention]\nevents_days = 0\njsonl_keep = 0\n  frame_results_days = -1\nquota_mb = -5\njsonl_rotate_mb = 1e9\n";
    let errs = errors(src);
    let all = errs.join("\n");
    assert_eq!(errs.len(), 5, "{all}");
    assert!(
        all.contains("site.toml:5:1: `engine.retention.events_days`: 0 is out of range"),
        "{all}"
    );
    assert!(
        all.contains("site.toml:6:1: `engine.retention.jsonl_keep`: 0 is out of range"),
        "{all}"
    );
    assert!(
        all.contains("site.toml:7:3: `engine.retention.frame_results_days`: -1 is out of range"),
        "{all}"
    );
    assert!(
        all.contains("site.toml:8:1: `engine.retention.quota_mb`: -5 is out of range"),
        "{all}"
    );
    assert!(
        all.contains("site.toml:9:1: `engine.retention.jsonl_rotate_mb`"),
        "{all}"
    );
}

#[test]
fn quota_smaller_than_one_snapshot_is_located() {
    // 1280-pixel analysis frames (the default): one snapshot may take 4.69 MiB.
    let src = "[engine.retention]\nquota_mb = 2\n";
    let errs = errors(src);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("site.toml:2:1: `engine.retention.quota_mb`: 2 MiB is smaller than one snapshot (up to 4.69 MiB for 1280-pixel analysis frames)"),
        "{}",
        errs[0]
    );
    // A camera with bigger frames raises the floor ...
    let src = "[engine.retention]\nquota_mb = 10\n\n[[cameras]]\nid = \"a\"\nsource = { kind = \"test\" }\nanalysis_max_side = 3840\n";
    let errs = errors(src);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].contains("42.19 MiB for 3840-pixel"), "{}", errs[0]);
    // ... small frames lower it, and a quota that holds one is accepted.
    let src = "[ingest]\nanalysis_max_side = 64\n\n[engine.retention]\nquota_mb = 0.05\n";
    assert!(errors(src).is_empty(), "{:?}", errors(src));
    let src = "[ingest]\nanalysis_max_side = 64\n\n[engine.retention]\nquota_mb = 0.01\n";
    assert_eq!(errors(src).len(), 1);
}

#[test]
fn moved_alerts_keys_say_where_they_went() {
    let src = "[alerts]\ncooldown_s = 60\nretention_days = 30\noutbox_retention_days = 1\n";
    let errs = errors(src);
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(
        errs[0].starts_with("site.toml:3:1: `alerts.retention_days`: moved: write it as `closed_incidents_days` under [engine.retention]"),
        "{}",
        errs[0]
    );
    assert!(
        errs[1].starts_with("site.toml:4:1: `alerts.outbox_retention_days`: moved"),
        "{}",
        errs[1]
    );
}

#[test]
fn unknown_retention_key_is_located() {
    let errs = errors("[engine.retention]\nkeep_forever = true\n");
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("site.toml:2:1: `engine.retention.keep_forever`: unknown field"),
        "{}",
        errs[0]
    );
}
