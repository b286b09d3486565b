//! The mistakes people make with the command line, one test per class of mistake, each on a
//! real command through the built binary: relative paths that meant different files
//! depending on how a config was loaded, missing files a config names, numeric arguments
//! out of range (and a property test that no value of a numeric flag makes a command
//! panic), batch commands that stopped at the first bad item, a data directory that does
//! not exist, sequences written before their inputs were checked, errors printed twice or
//! in colour.

mod common;
use common::{repo, shared};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use proptest::prelude::*;

fn lookout_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(args)
        .env("LOOKOUT_SHARED", shared())
        .env_remove("LOOKOUT_LOG")
        .current_dir(dir)
        .output()
        .expect("lookout runs")
}

fn lookout(args: &[&str]) -> Output {
    lookout_in(&repo(), args)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A site laid out as a user would: `site/conf/site.toml` naming `../models/...`,
/// `../clips/...` and `../hotspots/...` relative to itself.
fn site(root: &Path) -> PathBuf {
    let site = root.join("site");
    for d in ["conf", "models", "clips", "hotspots"] {
        std::fs::create_dir_all(site.join(d)).unwrap();
    }
    for f in ["smoke-fire.toml", "smoke-fire.onnx"] {
        std::fs::copy(repo().join("models").join(f), site.join("models").join(f)).unwrap();
    }
    std::fs::copy(
        shared().join("hotspots/firms_viirs_snpp_archive_rhodes_2023-07.csv"),
        site.join("hotspots/rhodes.csv"),
    )
    .unwrap();
    std::fs::copy(
        shared().join("datasets/furg-house6/furg_house6.mp4"),
        site.join("clips/tower.mp4"),
    )
    .unwrap();
    let cfg = site.join("conf/site.toml");
    std::fs::write(
        &cfg,
        r#"[engine]
data_dir = "../state"

[models.smoke-fire]
manifest = "../models/smoke-fire.toml"

[[cameras]]
id = "tower"
source = { kind = "file", path = "../clips/tower.mp4" }
models = ["smoke-fire"]

[fusion]
hotspots = [{ kind = "file", path = "../hotspots/rhodes.csv" }]
"#,
    )
    .unwrap();
    cfg
}

/// A sequence of three real stills (D-Fire negatives) for eval-events.
fn small_sequence(root: &Path) -> PathBuf {
    let src = root.join("stills");
    std::fs::create_dir_all(&src).unwrap();
    let from = shared().join("datasets/dfire-negatives/eval/images");
    let mut names: Vec<_> = std::fs::read_dir(&from)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    names.sort();
    for p in names.iter().take(3) {
        std::fs::copy(p, src.join(p.file_name().unwrap())).unwrap();
    }
    let seq = root.join("seq");
    let out = lookout(&[
        "sequences",
        "from-stills",
        "--src",
        s(&src),
        "--out",
        s(&seq),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    seq
}

#[test]
fn relative_paths_mean_the_same_files_from_any_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = site(tmp.path());
    let elsewhere = tempfile::tempdir().unwrap();
    // From the directory above the site with a relative path, and from an unrelated
    // directory with the absolute path: the same resolved config.
    let a = lookout_in(
        tmp.path(),
        &["check-config", "--dump", "site/conf/site.toml"],
    );
    let b = lookout_in(elsewhere.path(), &["check-config", "--dump", s(&cfg)]);
    assert!(a.status.success(), "{}", text(&a.stderr));
    assert!(b.status.success(), "{}", text(&b.stderr));
    let dump = |o: &Output| {
        text(&o.stdout)
            .lines()
            .skip(1)
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(dump(&a), dump(&b));
    // --dump shows the resolved, absolute paths.
    let site = cfg.parent().unwrap().parent().unwrap();
    for p in [
        site.join("models/smoke-fire.toml"),
        site.join("clips/tower.mp4"),
        site.join("hotspots/rhodes.csv"),
        site.join("state"),
    ] {
        assert!(
            dump(&a).contains(s(&p)),
            "{} not in\n{}",
            p.display(),
            dump(&a)
        );
    }

    // eval-events reads the model the config names, from any directory.
    let seq = small_sequence(tmp.path());
    let out = lookout_in(
        elsewhere.path(),
        &[
            "eval-events",
            "--json",
            "--config",
            s(&cfg),
            "--data",
            s(&seq),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert!(
        v["sequences"].as_array().is_some_and(|r| !r.is_empty()),
        "{v}"
    );

    // The shipped default resolves against configs/: its manifests are the checkout's (and
    // its pedestrian clip the one scripts/make-samples.sh builds in the checkout's data/).
    let out = lookout(&["check-config", "--dump", "configs/default.toml"]);
    let root = std::fs::canonicalize(repo()).unwrap();
    if out.status.success() {
        let dump = text(&out.stdout);
        assert!(
            dump.contains(s(&root.join("models/smoke-fire.toml"))),
            "{dump}"
        );
        assert!(
            dump.contains(s(&root.join("data/samples/plant-gate.mkv"))),
            "{dump}"
        );
    } else {
        let err = text(&out.stderr);
        assert!(!err.contains("models."), "{err}");
        assert!(
            err.contains(s(&root.join("data/samples/plant-gate.mkv"))),
            "{err}"
        );
    }
}

#[test]
fn missing_files_are_located_errors_in_check_config_and_run() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = site(tmp.path());
    let site = tmp.path().join("site");
    std::fs::remove_file(site.join("models/smoke-fire.toml")).unwrap();
    std::fs::remove_file(site.join("clips/tower.mp4")).unwrap();
    std::fs::remove_file(site.join("hotspots/rhodes.csv")).unwrap();
    for cmd in [
        vec!["check-config", s(&cfg)],
        vec!["run", "--config", s(&cfg), "--run-for", "5"],
    ] {
        let out = lookout(&cmd);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cmd:?}: {err}");
        for (line, key, path) in [
            (5, "models.smoke-fire.manifest", "models/smoke-fire.toml"),
            (9, "cameras[0].source.path", "clips/tower.mp4"),
            (13, "fusion.hotspots[0].path", "hotspots/rhodes.csv"),
        ] {
            let want = format!("{}:{line}:", cfg.display());
            let path = site.join(path);
            assert!(
                err.lines()
                    .any(|l| l.contains(&want) && l.contains(key) && l.contains(s(&path))),
                "{cmd:?}: no located error for {key} ({}) in\n{err}",
                path.display()
            );
        }
        assert!(!err.contains("Ingest"), "{cmd:?} started something: {err}");
    }
    // A model file whose sha256 differs is refused too, by key.
    let cfg = self::site(&tmp.path().join("b"));
    let onnx = cfg.parent().unwrap().join("../models/smoke-fire.onnx");
    std::fs::write(&onnx, b"not the model").unwrap();
    let out = lookout(&["check-config", s(&cfg)]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("models.smoke-fire.manifest") && err.contains("sha256"),
        "{err}"
    );
}

#[test]
fn numeric_arguments_out_of_range_are_refused_by_the_parser() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("seq");
    for args in [
        vec!["run", "--run-for=-1"],
        vec!["run", "--run-for", "NaN"],
        vec!["run", "--run-for", "inf"],
        vec!["run", "--run-for", "0"],
        vec!["eval", "--model", "m.toml", "--data", "d", "--iou", "1.5"],
        vec!["eval", "--model", "m.toml", "--data", "d", "--limit", "0"],
        vec!["detect", "--model", "m.toml", "--min-score", "1.5", "x.jpg"],
        vec!["detect", "--model", "m.toml", "--threads", "0", "x.jpg"],
        vec!["eval-events", "--data", "d", "--min-iou=-0.1"],
        vec![
            "sequences",
            "from-stills",
            "--src",
            "d",
            "--out",
            s(&out_dir),
            "--interval-s",
            "0",
        ],
        vec![
            "sequences",
            "from-furg",
            "--video",
            "v",
            "--xml",
            "x",
            "--out",
            s(&out_dir),
            "--every",
            "0",
        ],
        vec![
            "sequences",
            "from-stills",
            "--src",
            "d",
            "--out",
            s(&out_dir),
            "--first-positive",
            "a.jpg",
            "--class",
            "smok",
        ],
    ] {
        let out = lookout(&args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("out of range")
                || err.contains("invalid value")
                || err.contains("not a number"),
            "{args:?}: {err}"
        );
        assert!(text(&out.stdout).is_empty(), "{args:?} printed output");
    }
    // A range that selects no frame is refused before anything is written.
    let furg = shared().join("datasets/furg-house6");
    let out = lookout(&[
        "sequences",
        "from-furg",
        "--video",
        s(&furg.join("furg_house6.mp4")),
        "--xml",
        s(&furg.join("furg_house6.xml")),
        "--from",
        "500",
        "--to",
        "400",
        "--out",
        s(&out_dir),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--from 500"),
        "{}",
        text(&out.stderr)
    );
    assert!(!out_dir.exists(), "an empty sequence was written");
    // --tile means what a config's `tile` means, and --help says so.
    let help = text(&lookout(&["eval", "--help"]).stdout);
    assert!(
        help.contains("the same as `tile = { grid = [2, 2] }`"),
        "{help}"
    );
}

#[test]
fn batch_commands_go_on_past_a_bad_item_and_count_it() {
    let tmp = tempfile::tempdir().unwrap();
    let good = shared().join("datasets/pennfudan-person/images/FudanPed00001.jpg");
    let bad = tmp.path().join("broken.jpg");
    std::fs::write(&bad, b"this is not a JPEG").unwrap();
    let out = lookout(&[
        "detect",
        "--model",
        "models/person-nanodet.toml",
        "--no-images",
        s(&bad),
        s(&good),
        s(&tmp.path().join("missing.jpg")),
    ]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("JSON for the good image");
    assert_eq!(v["images"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(v["errors"].as_array().map(Vec::len), Some(2), "{v}");
    assert!(
        err.contains("broken.jpg") && err.contains("missing.jpg"),
        "{err}"
    );
    assert!(err.contains("2 of 3 inputs"), "{err}");
    // Logs written to a file (here a pipe) carry no colour codes.
    assert!(
        !err.contains('\u{1b}'),
        "colour codes in a log file: {err:?}"
    );

    // hotspots parse: the good file is summarised, the missing one named, its OS error once.
    let csv = shared().join("hotspots/firms_viirs_snpp_archive_rhodes_2023-07.csv");
    let missing = tmp.path().join("nope.csv");
    let out = lookout(&["hotspots", "parse", s(&missing), s(&csv)]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(text(&out.stdout).contains("rows"), "{}", text(&out.stdout));
    assert!(err.contains("nope.csv"), "{err}");
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");

    // eval: a folder without labels/ is refused, not counted as negatives.
    let stills = tmp.path().join("unlabelled/images");
    std::fs::create_dir_all(&stills).unwrap();
    std::fs::copy(&good, stills.join("a.jpg")).unwrap();
    let out = lookout(&[
        "eval",
        "--model",
        "models/person-nanodet.toml",
        "--data",
        s(&tmp.path().join("unlabelled")),
    ]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("labels") && err.contains("--neg"), "{err}");
}

#[test]
fn commands_on_a_data_directory_say_when_it_does_not_exist() {
    let tmp = tempfile::tempdir().unwrap();
    let wrong = tmp.path().join("no-such-dir");
    for args in [
        vec!["config", "diff", "--data-dir", s(&wrong)],
        vec!["geojson", "--data-dir", s(&wrong)],
    ] {
        let out = lookout(&args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("no-such-dir") && err.contains("no such directory"),
            "{args:?}: {err}"
        );
        assert!(!text(&out.stdout).contains("No config overlay"), "{args:?}");
    }
}

/// Values a person might type for a numeric flag, valid or not.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<f64>().prop_map(|x| x.to_string()),
        any::<i64>().prop_map(|x| x.to_string()),
        (0u32..3000).prop_map(|x| (x as f64 / 1000.0).to_string()),
        Just("NaN".to_string()),
        Just("inf".to_string()),
        Just("-inf".to_string()),
        Just(String::new()),
        "[-+.eE0-9x:]{1,8}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    /// Whatever the numeric flags say, no command panics: it either refuses the value
    /// (exit 2) or fails on the missing input that follows (exit 1 or 2), never 101.
    #[test]
    fn no_numeric_argument_makes_a_command_panic(
        a in value(), b in value(), c in value(), d in value(), which in 0usize..6
    ) {
        let tmp = std::env::temp_dir().join("lookout-proptest-none");
        let out = tmp.join("out");
        let out = s(&out).to_string();
        let flag = |name: &str, v: &str| format!("--{name}={v}");
        let args: Vec<String> = match which {
            0 => vec!["run".into(), "--config".into(), "/nonexistent/site.toml".into(), flag("run-for", &a)],
            1 => vec!["detect".into(), "--model".into(), "/nonexistent.toml".into(), flag("min-score", &a), flag("threads", &b), flag("tile", &c), "x.jpg".into()],
            2 => vec!["eval".into(), "--model".into(), "/nonexistent.toml".into(), "--data".into(), "/nonexistent".into(), flag("iou", &a), flag("score-floor", &b), flag("limit", &c), flag("threads", &d)],
            3 => vec!["eval-events".into(), "--config".into(), "/nonexistent.toml".into(), "--data".into(), "/nonexistent".into(), flag("min-iou", &a)],
            4 => vec!["sequences".into(), "from-stills".into(), "--src".into(), "/nonexistent".into(), "--out".into(), out, flag("interval-s", &a)],
            _ => vec!["sequences".into(), "from-furg".into(), "--video".into(), "/nonexistent.mp4".into(), "--xml".into(), "/nonexistent.xml".into(), "--out".into(), out, flag("from", &a), flag("to", &b), flag("every", &c)],
        };
        let o = Command::new(env!("CARGO_BIN_EXE_lookout"))
            .args(&args)
            .env("LOOKOUT_SHARED", shared())
            .current_dir(repo())
            .output()
            .expect("lookout runs");
        let err = text(&o.stderr);
        prop_assert!(!err.contains("panicked"), "{args:?}: {err}");
        prop_assert!(matches!(o.status.code(), Some(1) | Some(2)), "{args:?}: {:?} {err}", o.status);
    }
}
