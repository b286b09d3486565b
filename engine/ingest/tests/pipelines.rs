//! The `gst-launch-1.0` lines documented in `pipelines/*.pipeline` are real: each parses
//! with the installed plugins, and the ones that need no network run to the end.

mod common;

use common::*;
use lookout_ingest::template;

/// Drops the shell quoting of a documented command (`"caps"` → caps).
fn unshell(cmd: &str) -> String {
    cmd.replace('"', "")
}

#[test]
fn documented_lines_parse_and_offline_ones_run() {
    gstreamer::init().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clip = make_clip(dir.path(), "clip.mp4", 426, 240, 10, 5);
    let mut ran = 0;
    for (name, t) in template::ALL {
        for cmd in template::documented_commands(t) {
            let line = unshell(&cmd).replace("clip.mp4", &clip.display().to_string());
            if let Err(e) = gstreamer::parse::launch(&line) {
                panic!("{name}: documented line does not parse: {e}\n{line}");
            }
            if name.starts_with("file") || name.starts_with("test") || name.starts_with("analysis")
            {
                run_to_eos(&line);
                ran += 1;
            }
        }
    }
    check!(ran >= 3, "ran {ran} documented lines");
}

#[test]
fn filled_templates_parse_for_every_source_kind() {
    gstreamer::init().unwrap();
    let cfg = config(
        r#"
[[cameras]]
id = "a"
source = { kind = "rtsp", url = "rtsp://user:secret@127.0.0.1:8554/x?a=1&b=2", transport = "udp" }
[[cameras]]
id = "b"
source = { kind = "rtmp", url = "rtmp://127.0.0.1/live/x" }
[[cameras]]
id = "c"
source = { kind = "srt", url = "srt://127.0.0.1:7001?mode=caller" }
[[cameras]]
id = "d"
source = { kind = "udp_ts", port = 5600 }
[[cameras]]
id = "e"
source = { kind = "file", path = "dir with space/clip \"1\".mp4" }
[[cameras]]
id = "f"
source = { kind = "test", pattern = "smpte" }
"#,
        std::path::Path::new("/tmp"),
    );
    for cam in &cfg.cameras {
        let text = template::pipeline_text(&cfg, &cam.source).unwrap();
        check!(
            !text.redacted.contains("secret"),
            "{}: redacted text leaks the password: {}",
            cam.id,
            text.redacted
        );
        let p = gstreamer::parse::launch(&text.launch)
            .unwrap_or_else(|e| panic!("{}: {e}\n{:?}", cam.id, text));
        let bin = p.downcast::<gstreamer::Bin>().unwrap();
        use gstreamer::prelude::*;
        for name in ["src", "pace", "size", "sink"] {
            check!(bin.by_name(name).is_some(), "{}: no element {name}", cam.id);
        }
        if cam.id == "e" {
            let loc: String = bin.by_name("src").unwrap().property("location");
            check!(
                loc == "/tmp/dir with space/clip \"1\".mp4",
                "location {loc}"
            );
        }
        if cam.id == "a" {
            let loc: String = bin.by_name("src").unwrap().property("location");
            check!(loc.ends_with("/x?a=1&b=2"), "location {loc}");
        }
    }
}
