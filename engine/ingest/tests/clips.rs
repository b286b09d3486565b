//! Incident clips from the packet ring: real pipelines over real encoded files, checked with
//! ffprobe (duration, codec, profile, key-frame start, and packet for packet the source's
//! bytes, i.e. no re-encode), and the re-encode path for a codec MP4 cannot carry as is.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{config, Running};
use lookout_core::{ClipInfo, ClipRequest, ClipSink};
use serde_json::Value;

fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ffprobe(path: &Path, what: &[&str]) -> Value {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-of", "json"])
        .args(what)
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(
        out.status.success(),
        "ffprobe {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("ffprobe writes JSON")
}

/// (size, key) of every video packet, in decode order.
fn packets(path: &Path) -> Vec<(u64, bool)> {
    let v = ffprobe(
        path,
        &[
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=size,flags",
        ],
    );
    v["packets"]
        .as_array()
        .expect("packets")
        .iter()
        .map(|p| {
            (
                p["size"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0),
                p["flags"].as_str().unwrap_or("").starts_with('K'),
            )
        })
        .collect()
}

fn stream(path: &Path) -> Value {
    let v = ffprobe(
        path,
        &["-show_streams", "-show_format", "-select_streams", "v:0"],
    );
    let mut s = v["streams"][0].clone();
    s["format_duration"] = v["format"]["duration"].clone();
    s
}

fn wait_for(path: &Path, timeout: Duration) -> bool {
    let until = Instant::now() + timeout;
    while Instant::now() < until {
        if path.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    path.exists()
}

fn camera_config(dir: &Path, file: &Path, pre: f64, post: f64) -> lookout_config::Config {
    config(
        &format!(
            r#"
[alerts.clips]
enabled = true
pre_s = {pre}
post_s = {post}
ring_mb = 64
[[cameras]]
id = "tower"
source = {{ kind = "file", path = "{p}", realtime = false, start_time = "2026-01-01T00:00:00Z" }}
keyframes_only = true
"#,
            p = file.display()
        ),
        dir,
    )
}

fn t0() -> lookout_core::UtcTime {
    "2026-01-01T00:00:00Z".parse().unwrap()
}

#[test]
fn h264_clip_is_remuxed_from_the_key_frame_before_pre_to_post() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("tower.mp4");
    // 20 s at 25 fps, a key frame every second, B-frames (PTS ≠ DTS), Main profile.
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=640x360:rate=25",
        "-t",
        "20",
        "-c:v",
        "libx264",
        "-profile:v",
        "main",
        "-pix_fmt",
        "yuv420p",
        "-g",
        "25",
        "-keyint_min",
        "25",
        "-sc_threshold",
        "0",
        "-bf",
        "2",
        src.to_str().unwrap(),
    ]);
    // Trigger at 8.5 s; pre 3 s → the key frame at 5 s; post 4 s → up to 12.5 s.
    let cfg = camera_config(dir.path(), &src, 3.0, 4.0);
    let r = Running::start(&cfg);
    let clips = r.ingest().clips().expect("clips are enabled");
    let out = dir.path().join("clips").join("inc-1.mp4");
    assert!(clips.request(ClipRequest {
        incident: "inc-1".into(),
        camera: "tower".into(),
        at: t0() + chrono::Duration::milliseconds(8500),
        path: out.clone(),
    }));
    // A camera without a ring is refused and counted, never queued.
    assert!(!clips.request(ClipRequest {
        incident: "inc-2".into(),
        camera: "nobody".into(),
        at: t0(),
        path: dir.path().join("clips").join("inc-2.mp4"),
    }));
    assert!(
        wait_for(&out, Duration::from_secs(60)),
        "no clip written: {:?}",
        clips.stats()
    );
    let stats = clips.stats();
    assert_eq!(
        (stats.requested, stats.written, stats.failed, stats.dropped),
        (1, 1, 0, 1),
        "{stats:?}"
    );
    assert!(
        r.wait(Duration::from_secs(60), |r| matches!(
            r.status("tower"),
            lookout_core::CameraStatus::Stopped { .. }
        )),
        "the file plays to its end: {:?}",
        r.stats("tower")
    );
    let (ring_packets, ring_bytes) = clips.ring("tower").unwrap().len();
    assert!(
        ring_packets == 500 && ring_bytes > 0,
        "the ring holds the whole 20 s file (500 packets, all of them though only key frames are decoded): {ring_packets}"
    );
    r.stop();

    let info: ClipInfo =
        serde_json::from_slice(&std::fs::read(out.with_extension("json")).unwrap()).unwrap();
    let s = stream(&out);
    let source = stream(&src);
    eprintln!("clip: {s}\ninfo: {info:?}");
    assert_eq!(s["codec_name"], "h264", "{s}");
    assert_eq!(
        s["profile"], source["profile"],
        "same profile as the source"
    );
    assert_eq!(
        (s["width"].as_u64(), s["height"].as_u64()),
        (Some(640), Some(360))
    );
    let duration: f64 = s["format_duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .unwrap();
    // From 5.0 s to 12.5 s (the packet that reaches at + post is the last).
    assert!(
        (duration - 7.5).abs() <= 0.25,
        "duration {duration} s, expected ≈ 7.5 (key frame at 5 s to 12.5 s)"
    );
    assert!(info.remuxed && info.codec == "video/x-h264", "{info:?}");
    let start_offset = (info.start - t0()).num_milliseconds();
    assert!(
        (4900..=5100).contains(&start_offset),
        "clip time 0 is capture time +5 s, not {start_offset} ms"
    );
    assert!(
        (info.duration_s - duration).abs() < 0.1,
        "{info:?} vs {duration}"
    );

    // No re-encode: the clip's packets are the source's, byte for byte in size, from the
    // key frame at 5 s (packet 125 in decode order) on.
    let clip_packets = packets(&out);
    let src_packets = packets(&src);
    assert!(clip_packets[0].1, "the clip starts on a key frame");
    assert_eq!(clip_packets.len() as u64, info.packets);
    let n = clip_packets.len();
    assert!((185..=190).contains(&n), "{n} packets for 7.5 s at 25 fps");
    assert_eq!(
        clip_packets,
        src_packets[125..125 + n].to_vec(),
        "the clip's packets must be the source's (no re-encode)"
    );
}

#[test]
fn mjpeg_is_re_encoded_to_h264_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("cctv.avi");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=320x240:rate=10",
        "-t",
        "6",
        "-c:v",
        "mjpeg",
        "-q:v",
        "5",
        src.to_str().unwrap(),
    ]);
    let cfg = camera_config(dir.path(), &src, 1.0, 2.0);
    let r = Running::start(&cfg);
    let clips = r.ingest().clips().unwrap();
    let out: PathBuf = dir.path().join("clips").join("mj.mp4");
    assert!(clips.request(ClipRequest {
        incident: "mj".into(),
        camera: "tower".into(),
        at: t0() + chrono::Duration::seconds(3),
        path: out.clone(),
    }));
    assert!(
        wait_for(&out, Duration::from_secs(60)),
        "no clip: {:?}",
        clips.stats()
    );
    r.stop();
    let info: ClipInfo =
        serde_json::from_slice(&std::fs::read(out.with_extension("json")).unwrap()).unwrap();
    let s = stream(&out);
    assert_eq!(s["codec_name"], "h264", "{s}");
    assert!(!info.remuxed && info.codec == "image/jpeg", "{info:?}");
    let stats = clips.stats();
    assert_eq!((stats.written, stats.reencoded), (1, 1), "{stats:?}");
    let duration: f64 = s["format_duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .unwrap();
    // Every JPEG is a key frame: 2 s to 5 s.
    assert!((duration - 3.0).abs() <= 0.25, "duration {duration}");
}
