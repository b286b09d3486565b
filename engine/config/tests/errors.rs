//! Located errors and the never-panic property of the config parser.

use std::path::Path;

use lookout_config::{parse, DEFAULT_CONFIG};
use proptest::prelude::*;

fn errors(src: &str) -> Vec<String> {
    match parse(src, "test.toml", Path::new(".")) {
        Ok(_) => vec![],
        Err(e) => e.errors.iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn default_config_is_valid() {
    std::env::set_var("LOOKOUT_SHARED", "../shared");
    let cfg = parse(DEFAULT_CONFIG, "default", Path::new(".")).expect("default config parses");
    assert!(!cfg.cameras.is_empty());
}

#[test]
fn unknown_key_is_located() {
    let src = "[engine]\ndata_dir = \"d\"\n\n[[cameras]]\nid = \"a\"\nsource = { kind = \"test\" }\nfsp = 3\n";
    let errs = errors(src);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("test.toml:7:1: `cameras[0].fsp`: unknown field `fsp`"),
        "{}",
        errs[0]
    );
    assert!(errs[0].contains("expected one of"), "{}", errs[0]);
}

#[test]
fn every_error_is_reported() {
    let src = r#"
[ingest]
fps = "fast"

[[cameras]]
id = "ok"
source = { kind = "rtsp", url = "http://not-rtsp" }

[[cameras]]
id = "bad id!"
source = { kind = "test" }
models = ["nope"]

[[cameras]]
id = "x"
source = { kind = "warp" }

[bogus]
"#;
    let errs = errors(src);
    let all = errs.join("\n");
    assert!(
        all.contains("test.toml:3:1: `ingest.fps`: invalid type"),
        "{all}"
    );
    assert!(all.contains("`cameras[0].source.url`"), "{all}");
    assert!(all.contains("not a valid URL"), "{all}");
    assert!(all.contains("`cameras[1].id`"), "{all}");
    assert!(all.contains("unknown model \"nope\""), "{all}");
    assert!(
        all.contains("`cameras[2].source.kind`") && all.contains("unknown variant `warp`"),
        "{all}"
    );
    assert!(all.contains("`bogus`: unknown section"), "{all}");
    assert!(errs.len() >= 6, "{all}");
}

#[test]
fn syntax_error_is_located() {
    let errs = errors("[engine]\ndata_dir = \n");
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with("test.toml:2:"), "{}", errs[0]);
}

#[test]
fn env_secrets_expand_and_stay_redacted() {
    std::env::set_var("LOOKOUT_TEST_PASS", "s3cret-value");
    let src = "[[cameras]]\nid = \"a\"\nsource = { kind = \"rtsp\", url = \"rtsp://admin:${LOOKOUT_TEST_PASS}@127.0.0.1:8554/s\" }\n\n[[cameras]]\nid = \"b\"\nsource = { kind = \"rtsp\", url = \"rtsp://admin:literal@127.0.0.1/s\" }\n";
    let cfg = parse(src, "t", Path::new(".")).expect("valid");
    match &cfg.cameras[0].source {
        lookout_config::cameras::SourceConfig::Rtsp { url, .. } => {
            assert_eq!(url.value(), "rtsp://admin:s3cret-value@127.0.0.1:8554/s")
        }
        other => panic!("{other:?}"),
    }
    let dump = cfg.redacted_toml();
    let dbg = format!("{cfg:?}");
    for text in [&dump, &dbg] {
        assert!(!text.contains("s3cret-value"), "{text}");
        assert!(!text.contains("literal@"), "{text}");
        assert!(text.contains("${LOOKOUT_TEST_PASS}"), "{text}");
    }
    let errs = errors("[[cameras]]\nid = \"a\"\nsource = { kind = \"rtsp\", url = \"rtsp://${LOOKOUT_SURELY_UNSET_VAR}/x\" }\n");
    assert!(
        errs[0].contains("`LOOKOUT_SURELY_UNSET_VAR` is not set"),
        "{errs:?}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, .. ProptestConfig::default() })]

    #[test]
    fn never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let src = String::from_utf8_lossy(&bytes);
        let _ = parse(&src, "fuzz.toml", Path::new("."));
    }

    #[test]
    fn never_panics_on_mutated_default(pos in 0usize..4096, len in 0usize..16, insert in "[ -~\n]{0,12}") {
        let base = DEFAULT_CONFIG;
        let start = base.char_indices().map(|(i, _)| i).nth(pos % base.chars().count().max(1)).unwrap_or(0);
        let end = base[start..].char_indices().map(|(i, _)| start + i).nth(len).unwrap_or(base.len());
        let mutated = format!("{}{}{}", &base[..start], insert, &base[end..]);
        match parse(&mutated, "m.toml", Path::new(".")) {
            Ok(_) => {}
            Err(e) => {
                prop_assert!(!e.errors.is_empty());
                for err in &e.errors {
                    prop_assert!(!err.message.is_empty());
                }
            }
        }
    }
}

#[test]
fn cluster_errors_are_located() {
    let src = "[cluster]\nrole = \"edge\"\nnats = [\"http://x:4222\"]\nsite = \"a.b\"\nlease_ttl_s = 4\nheartbeat_s = 3\n";
    let errs = errors(src);
    assert_eq!(errs.len(), 3, "{errs:?}");
    assert!(
        errs.iter().any(|e| e.starts_with("test.toml:3:")
            && e.contains("`cluster.nats[0]`")
            && e.contains("nats://host:port")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.starts_with("test.toml:4:") && e.contains("`cluster.site`")),
        "{errs:?}"
    );
    assert!(
        errs.iter().any(|e| e.starts_with("test.toml:6:")
            && e.contains("`cluster.heartbeat_s`")
            && e.contains("half")),
        "{errs:?}"
    );
    let errs = errors("[cluster]\nrole = \"leader\"\n");
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("test.toml:2:") && errs[0].contains("cluster.role"),
        "{errs:?}"
    );
    assert!(errors("[cluster]\nrole = \"hub\"\nnats = [\"nats://127.0.0.1:4222\"]\n").is_empty());
}
