//! Ingest end to end with real GStreamer: real files, a real RTSP server on 127.0.0.1,
//! ffmpeg sending MPEG-TS over UDP, broken inputs.

mod common;

use std::time::{Duration, Instant};

use common::*;
use lookout_core::{CameraStatus, CaptureClock, RetryReason, StopReason};

fn finished(r: &Running, cam: &str) -> bool {
    matches!(
        r.status(cam),
        CameraStatus::Stopped {
            reason: StopReason::Finished
        }
    )
}

#[test]
fn furg_house6_decodes_every_frame_at_its_size() {
    let path = furg();
    let info = lookout_ingest::probe_file(&path).unwrap();
    check!(
        (info.width, info.height) == (426, 240),
        "probe says {info:?}"
    );
    check!(
        info.frames.is_some_and(|n| n.abs_diff(899) <= 1),
        "probe says {info:?}"
    );

    let cfg = config(
        &format!(
            r#"
[ingest]
ring_frames = 4
[[cameras]]
id = "house6"
source = {{ kind = "file", path = "{}", realtime = false, start_time = "2024-07-01T12:00:00Z" }}
fps = 120
"#,
            path.display()
        ),
        std::path::Path::new("."),
    );
    let r = Running::start(&cfg);
    check!(
        r.wait(Duration::from_secs(60), |r| finished(r, "house6")),
        "status {:?}",
        r.status("house6")
    );
    let st = r.stats("house6");
    check!(
        st.frames_delivered == 899 && st.frames_decoded == 899 && st.frames_dropped_fps == 0,
        "expected 899 frames delivered and decoded, got {st:?}"
    );
    check!((st.width, st.height) == (426, 240), "size {st:?}");
    let ring = r.ingest().rings()["house6"].clone();
    let last = ring.latest().unwrap();
    check!(last.seq == 898, "last seq {}", last.seq);
    check!(last.pixels.as_slice().len() == 426 * 240 * 3, "packed RGB");
    check!(last.clock == CaptureClock::Replay, "clock {:?}", last.clock);
    // start_time + stream time: the last of 899 frames at 29.97 fps is ~29.96 s in.
    let start: lookout_core::UtcTime = "2024-07-01T12:00:00Z".parse().unwrap();
    let offset = (last.captured_at - start).num_milliseconds();
    check!(
        (29_900..=30_000).contains(&offset),
        "last frame at +{offset} ms"
    );
    // The stats snapshot is what metrics and the UI serialise.
    let json = serde_json::to_value(r.ingest().stats()).unwrap();
    check!(
        json[0]["frames_delivered"] == 899 && json[0]["status"]["state"] == "stopped",
        "{json}"
    );
    let took = r.stop();
    check!(took < Duration::from_secs(5), "shutdown took {took:?}");
}

#[test]
fn file_read_as_fast_as_possible_waits_for_a_slow_consumer_and_drops_nothing() {
    // A consumer that needs 4 ms per frame is slower than decoding this small clip: a file
    // with realtime = false must wait for it (backpressure), not drop frames at the hub.
    let path = furg();
    let cfg = config(
        &format!(
            r#"
[[cameras]]
id = "replay"
source = {{ kind = "file", path = "{p}", realtime = false }}
fps = 120
[[cameras]]
id = "looping"
source = {{ kind = "file", path = "{p}", realtime = false, loop = true }}
fps = 120
"#,
            p = path.display()
        ),
        std::path::Path::new("."),
    );
    let r = Running::start_slow(&cfg, Duration::from_millis(4));
    check!(
        r.wait(Duration::from_secs(90), |r| finished(r, "replay")),
        "status {:?}",
        r.status("replay")
    );
    // The file can finish while its last frame still waits in the hub for the slow
    // consumer: let the consumer catch up (nothing more is published for this camera).
    r.wait(Duration::from_secs(5), |r| {
        r.hub
            .stats("replay")
            .is_some_and(|h| h.taken == h.published)
    });
    let seqs: Vec<u64> = r.seen("replay").iter().map(|s| s.seq).collect();
    check!(
        seqs == (0..899).collect::<Vec<_>>(),
        "every frame in order: got {} frames, first gaps {:?}",
        seqs.len(),
        seqs.windows(2)
            .filter(|w| w[1] != w[0] + 1)
            .take(5)
            .collect::<Vec<_>>()
    );
    let hub = r.hub.stats("replay").unwrap();
    check!(
        hub.dropped == 0 && hub.published == 899 && hub.waited_ms > 0,
        "hub {hub:?}"
    );
    // The looping camera is held back by the same consumer and still stops promptly.
    check!(
        r.hub.stats("looping").unwrap().dropped == 0,
        "looping never drops"
    );
    check!(
        r.status("looping").is_running(),
        "a waiting file is not a stalled one: {:?}",
        r.status("looping")
    );
    let took = r.stop();
    check!(took < Duration::from_secs(5), "shutdown took {took:?}");
}

#[test]
fn generated_720p_and_1080p_clips_scale_to_analysis_size() {
    let dir = tempfile::tempdir().unwrap();
    let c720 = make_clip(dir.path(), "c720.mp4", 1280, 720, 50, 25);
    let c1080 = make_clip(dir.path(), "c1080.mp4", 1920, 1080, 50, 25);
    let cfg = config(
        &format!(
            r#"
[ingest]
analysis_max_side = 1280
fps = 120
[[cameras]]
id = "hd"
source = {{ kind = "file", path = "{}", realtime = false }}
[[cameras]]
id = "fullhd"
source = {{ kind = "file", path = "{}", realtime = false }}
[[cameras]]
id = "fullhd_small"
source = {{ kind = "file", path = "{}", realtime = false }}
analysis_max_side = 640
"#,
            c720.display(),
            c1080.display(),
            c1080.display()
        ),
        dir.path(),
    );
    let r = Running::start(&cfg);
    for cam in ["hd", "fullhd", "fullhd_small"] {
        check!(
            r.wait(Duration::from_secs(60), |r| finished(r, cam)),
            "{cam}: {:?}",
            r.stats(cam)
        );
    }
    for (cam, w, h) in [
        ("hd", 1280, 720),
        ("fullhd", 1280, 720),
        ("fullhd_small", 640, 360),
    ] {
        let st = r.stats(cam);
        check!(
            st.frames_delivered == 50,
            "{cam}: expected 50 frames, {st:?}"
        );
        check!(
            (st.width, st.height) == (w, h),
            "{cam}: expected {w}x{h}, {st:?}"
        );
        let f = r.ingest().rings()[cam].latest().unwrap();
        check!(
            f.pixels.as_slice().len() == (w * h * 3) as usize,
            "{cam}: packed RGB"
        );
    }
    r.stop();
}

#[test]
fn keyframes_only_skips_decoding_and_fps_cap_samples() {
    let dir = tempfile::tempdir().unwrap();
    // 100 frames at 25 fps with a key frame every 25: 4 key frames, 96 delta frames.
    let clip = make_clip(dir.path(), "gop25.mp4", 320, 240, 100, 25);
    let cfg = config(
        &format!(
            r#"
[ingest]
fps = 120
[[cameras]]
id = "full"
source = {{ kind = "file", path = "{p}", realtime = false }}
[[cameras]]
id = "keyframes"
source = {{ kind = "file", path = "{p}", realtime = false }}
keyframes_only = true
[[cameras]]
id = "one_fps"
source = {{ kind = "file", path = "{p}", realtime = false }}
fps = 1
"#,
            p = clip.display()
        ),
        dir.path(),
    );
    let r = Running::start(&cfg);
    for cam in ["full", "keyframes", "one_fps"] {
        check!(
            r.wait(Duration::from_secs(30), |r| finished(r, cam)),
            "{cam}: {:?}",
            r.stats(cam)
        );
    }
    let full = r.stats("full");
    let kf = r.stats("keyframes");
    let one = r.stats("one_fps");
    check!(
        full.frames_decoded == 100 && full.frames_delivered == 100,
        "full decode: {full:?}"
    );
    check!(
        kf.frames_decoded == 4 && kf.frames_delivered == 4 && kf.delta_units_skipped == 96,
        "key frames only must decode the 4 key frames only: {kf:?}"
    );
    check!(
        kf.packets_to_decoder == 100,
        "all 100 packets reach the gate: {kf:?}"
    );
    check!(
        one.frames_decoded == 100 && one.frames_delivered == 4 && one.frames_dropped_fps == 96,
        "fps=1 over 4 s keeps 4 frames: {one:?}"
    );
    r.stop();
}

#[test]
fn file_loop_replays_with_increasing_times_realtime_and_ptz_poses() {
    let dir = tempfile::tempdir().unwrap();
    // 1 s clip, looped, realtime, 5 fps analysed.
    let clip = make_clip(dir.path(), "loop.mp4", 160, 120, 25, 25);
    let cfg = config(
        &format!(
            r#"
[[cameras]]
id = "loop"
source = {{ kind = "file", path = "{}", loop = true, realtime = true, start_time = "2025-01-01T00:00:00Z" }}
fps = 5
ptz = {{ presets = [{{ name = "north", pan_deg = 0 }}, {{ name = "east", pan_deg = 90, tilt_deg = -2 }}], tour = [{{ preset = "north", dwell_s = 0.8 }}, {{ preset = "east", dwell_s = 0.8 }}], settle_s = 0.4 }}
"#,
            clip.display()
        ),
        dir.path(),
    );
    let t0 = Instant::now();
    let r = Running::start(&cfg);
    check!(
        r.wait(Duration::from_secs(10), |r| r.seen("loop").len() >= 13),
        "{:?}",
        r.stats("loop")
    );
    let wall = t0.elapsed();
    let seen = r.seen("loop");
    // Realtime: 13 frames at 5 fps span 2.4 s of stream time (the first two leave together
    // at preroll); as fast as possible would take a fraction of a second.
    check!(
        wall >= Duration::from_millis(2100),
        "13 frames after {wall:?}: not paced"
    );
    let start: lookout_core::UtcTime = "2025-01-01T00:00:00Z".parse().unwrap();
    let ptz = cfg.cameras[0].ptz.clone().unwrap();
    for w in seen.windows(2) {
        check!(
            w[1].captured_at > w[0].captured_at,
            "times must increase across loops: {w:?}"
        );
    }
    let last = (seen.last().unwrap().captured_at - start).num_milliseconds();
    check!(
        last >= 2_300,
        "after two loops the capture time is +{last} ms"
    );
    for s in &seen {
        check!(s.clock == CaptureClock::Replay, "clock {:?}", s.clock);
        let elapsed = (s.captured_at - start).num_milliseconds() as f64 / 1000.0;
        let (preset, moving) = ptz.tour_position(elapsed).unwrap();
        let pose = s.pose.clone().unwrap();
        check!(
            pose.preset.as_deref() == Some(preset.name.as_str())
                && pose.moving == moving
                && pose.pan_deg == Some(preset.pan_deg),
            "at +{elapsed} s expected {} moving={moving}, got {pose:?}",
            preset.name
        );
    }
    check!(
        seen.iter().any(|s| s.pose.as_ref().unwrap().moving)
            && seen.iter().any(|s| !s.pose.as_ref().unwrap().moving),
        "the tour has moving and settled frames"
    );
    check!(
        r.stats("loop").reconnects == 0,
        "looping is not a reconnect"
    );
    r.stop();
}

#[test]
fn rtsp_outage_retries_resumes_and_spares_the_other_camera() {
    let server = RtspServer::start(0);
    let port = server.port;
    let cfg = config(
        &format!(
            r#"
[ingest]
stall_timeout_s = 3
backoff_initial_s = 0.2
backoff_max_s = 1.0
[[cameras]]
id = "tower"
source = {{ kind = "rtsp", url = "{}", latency_ms = 100 }}
fps = 5
[[cameras]]
id = "steady"
source = {{ kind = "test", width = 320, height = 240, framerate = 25 }}
fps = 10
"#,
            server.url()
        ),
        std::path::Path::new("."),
    );
    let r = Running::start(&cfg);
    check!(
        r.wait(Duration::from_secs(15), |r| r.seen("tower").len() >= 5),
        "no RTSP frames: {:?}",
        r.stats("tower")
    );
    check!(
        r.status("tower") == CameraStatus::Running,
        "{:?}",
        r.status("tower")
    );
    let f = r.seen("tower")[0].clone();
    check!(
        (f.width, f.height) == (320, 240),
        "size {}x{}",
        f.width,
        f.height
    );

    // Outage.
    let t_stop = Instant::now();
    server.stop();
    check!(
        r.wait(Duration::from_secs(6), |r| matches!(
            r.status("tower"),
            CameraStatus::Retrying { .. }
        )),
        "status after the server stopped: {:?}",
        r.status("tower")
    );
    let detected = t_stop.elapsed();
    std::thread::sleep(Duration::from_millis(2500));
    let retrying = r.status("tower");
    check!(
        matches!(retrying, CameraStatus::Retrying { attempt, .. } if attempt >= 2),
        "still retrying with increasing attempts: {retrying:?}"
    );

    // Back on the same port.
    let server = RtspServer::start(port);
    let t_restart = Instant::now();
    check!(
        r.wait(Duration::from_secs(10), |r| r
            .seen("tower")
            .iter()
            .any(|s| s.arrived > t_restart)),
        "frames did not resume: {:?}",
        r.stats("tower")
    );
    let resumed = t_restart.elapsed();
    let t_end = Instant::now();
    check!(
        r.wait(Duration::from_secs(3), |r| r.status("tower")
            == CameraStatus::Running),
        "{:?}",
        r.status("tower")
    );

    // The healthy camera during the outage [t_stop, t_end]: no gap over 2 s, >= 80 % of
    // its 10 fps.
    let steady: Vec<Instant> = r
        .seen("steady")
        .iter()
        .map(|s| s.arrived)
        .filter(|a| *a >= t_stop && *a <= t_end)
        .collect();
    let span = t_end - t_stop;
    let expected = span.as_secs_f64() * 10.0;
    let max_gap = steady.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(span);
    eprintln!(
        "RTSP outage: detected after {detected:?}, resumed {resumed:?} after restart; \
         steady camera: {} frames of {expected:.0} expected, max gap {max_gap:?}",
        steady.len()
    );
    check!(max_gap <= Duration::from_secs(2), "gap {max_gap:?}");
    check!(
        steady.len() as f64 >= 0.8 * expected,
        "{} of {expected:.0} frames",
        steady.len()
    );
    check!(r.stats("tower").reconnects >= 2, "{:?}", r.stats("tower"));

    // Once the server's RTCP sender report arrives, frames carry the sender's NTP time
    // (same host, same wall clock: close to arrival).
    check!(
        r.wait(Duration::from_secs(8), |r| r
            .seen("tower")
            .iter()
            .any(|s| s.clock == CaptureClock::Ntp)),
        "no frame with the sender's NTP time"
    );
    let ntp = r
        .seen("tower")
        .into_iter()
        .rev()
        .find(|s| s.clock == CaptureClock::Ntp)
        .unwrap();
    let lag = (chrono::Utc::now() - ntp.captured_at).num_milliseconds()
        - ntp.arrived.elapsed().as_millis() as i64;
    eprintln!("RTSP NTP capture time precedes arrival by {lag} ms");
    check!(
        (-100..2000).contains(&lag),
        "NTP capture time {lag} ms before arrival"
    );
    let took = r.stop();
    check!(took < Duration::from_secs(5), "shutdown took {took:?}");
    drop(server);
}

#[test]
fn udp_ts_drone_stream_from_ffmpeg() {
    let port = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    };
    let cfg = config(
        &format!(
            r#"
[ingest]
fps = 120
[[cameras]]
id = "drone"
source = {{ kind = "udp_ts", address = "127.0.0.1", port = {port} }}
"#
        ),
        std::path::Path::new("."),
    );
    let r = Running::start(&cfg);
    std::thread::sleep(Duration::from_millis(500));
    let status = std::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-re",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg("testsrc=size=640x360:rate=25")
        .args([
            "-t",
            "4",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "25",
            "-f",
            "mpegts",
        ])
        .arg(format!("udp://127.0.0.1:{port}?pkt_size=1316"))
        .status()
        .expect("ffmpeg runs");
    check!(status.success(), "ffmpeg: {status}");
    check!(
        r.wait(Duration::from_secs(3), |r| r
            .stats("drone")
            .frames_delivered
            >= 50),
        "{:?}",
        r.stats("drone")
    );
    let st = r.stats("drone");
    check!((st.width, st.height) == (640, 360), "{st:?}");
    check!(
        r.seen("drone")
            .iter()
            .all(|s| s.clock == CaptureClock::Arrival),
        "arrival clock"
    );
    r.stop();
}

#[test]
fn bad_inputs_name_camera_and_source_and_others_keep_running() {
    let dir = tempfile::tempdir().unwrap();
    let good = make_clip(dir.path(), "good.mp4", 320, 240, 50, 25);
    let bytes = std::fs::read(&good).unwrap();
    let truncated = dir.path().join("truncated.mp4");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let random = dir.path().join("random.mp4");
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let noise: Vec<u8> = (0..200_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(&random, noise).unwrap();
    let missing = dir.path().join("missing.mp4");
    // (Only the missing file: decodebin may swallow a demuxer's error while autoplugging,
    // then a probe waits for its 10 s timeout; the cameras below recover via the stall
    // timeout.)
    let err = lookout_ingest::probe_file(&missing)
        .unwrap_err()
        .to_string();
    check!(
        err.contains(&missing.display().to_string()),
        "probe error must name the file: {err}"
    );
    let closed = free_port();
    let cfg = config(
        &format!(
            r#"
[ingest]
stall_timeout_s = 2
backoff_initial_s = 0.2
backoff_max_s = 1.0
[[cameras]]
id = "cut"
source = {{ kind = "file", path = "{}" }}
[[cameras]]
id = "noise"
source = {{ kind = "file", path = "{}" }}
[[cameras]]
id = "nofile"
source = {{ kind = "file", path = "{}" }}
[[cameras]]
id = "nobody"
source = {{ kind = "rtsp", url = "rtsp://127.0.0.1:{closed}/cam" }}
[[cameras]]
id = "fine"
source = {{ kind = "test", width = 160, height = 120, framerate = 25 }}
fps = 5
"#,
            truncated.display(),
            random.display(),
            missing.display()
        ),
        dir.path(),
    );
    let r = Running::start(&cfg);
    for (cam, file) in [("cut", &truncated), ("noise", &random)] {
        check!(
            r.wait(Duration::from_secs(10), |r| matches!(
                r.status(cam),
                CameraStatus::Stopped {
                    reason: StopReason::Fatal(_)
                }
            )),
            "{cam}: {:?}",
            r.status(cam)
        );
        let CameraStatus::Stopped {
            reason: StopReason::Fatal(msg),
        } = r.status(cam)
        else {
            unreachable!()
        };
        eprintln!("{cam}: {msg}");
        check!(
            msg.contains(&format!("\"{cam}\"")) && msg.contains(&file.display().to_string()),
            "the error must name camera and file: {msg}"
        );
    }
    for (cam, what) in [
        ("nofile", missing.display().to_string()),
        ("nobody", format!("rtsp://127.0.0.1:{closed}/cam")),
    ] {
        check!(
            r.wait(Duration::from_secs(10), |r| matches!(
                r.status(cam),
                CameraStatus::Retrying {
                    reason: RetryReason::Unreachable(_),
                    ..
                }
            )),
            "{cam}: {:?}",
            r.status(cam)
        );
        let msg = r.stats(cam).last_error.unwrap();
        eprintln!("{cam}: {msg}");
        check!(
            msg.contains(&format!("\"{cam}\"")) && msg.contains(&what),
            "the error must name camera and source: {msg}"
        );
    }
    // The healthy camera kept going the whole time.
    let before = r.stats("fine").frames_delivered;
    std::thread::sleep(Duration::from_secs(1));
    let after = r.stats("fine").frames_delivered;
    check!(
        r.status("fine") == CameraStatus::Running,
        "{:?}",
        r.status("fine")
    );
    check!(
        after >= before + 3,
        "fine camera delivered {before} then {after}"
    );
    // A missing file keeps being retried (with a growing attempt count).
    check!(
        r.wait(Duration::from_secs(5), |r| r.stats("nofile").reconnects
            >= 3),
        "{:?}",
        r.stats("nofile")
    );
    // Health changes arrived on the channel too.
    let changes: Vec<_> = r.health.try_iter().collect();
    check!(
        changes.iter().any(|h| h.camera.as_ref() == "cut"
            && matches!(h.status, CameraStatus::Stopped { .. })),
        "{changes:?}"
    );
    let took = r.stop();
    check!(took < Duration::from_secs(5), "shutdown took {took:?}");
}

#[test]
fn srt_drone_stream_from_ffmpeg() {
    let port = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    };
    // ffmpeg listens (the drone side); the camera calls it.
    let mut ffmpeg = std::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-re",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg("testsrc=size=320x240:rate=25")
        .args([
            "-t",
            "5",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "25",
            "-f",
            "mpegts",
        ])
        .arg(format!("srt://127.0.0.1:{port}?mode=listener"))
        .spawn()
        .expect("ffmpeg runs");
    std::thread::sleep(Duration::from_millis(300));
    let cfg = config(
        &format!(
            r#"
[ingest]
fps = 5
backoff_initial_s = 0.2
backoff_max_s = 0.5
[[cameras]]
id = "srt_drone"
source = {{ kind = "srt", url = "srt://127.0.0.1:{port}?mode=caller" }}
"#
        ),
        std::path::Path::new("."),
    );
    let r = Running::start(&cfg);
    let ok = r.wait(Duration::from_secs(8), |r| {
        r.stats("srt_drone").frames_delivered >= 5
    });
    let st = r.stats("srt_drone");
    r.stop();
    let _ = ffmpeg.kill();
    let _ = ffmpeg.wait();
    check!(ok, "{st:?}");
    check!((st.width, st.height) == (320, 240), "{st:?}");
}

#[test]
fn silent_stream_counts_as_stalled_and_is_restarted() {
    let port = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    };
    let cfg = config(
        &format!(
            r#"
[ingest]
stall_timeout_s = 0.8
backoff_initial_s = 0.1
backoff_max_s = 0.2
[[cameras]]
id = "silent"
source = {{ kind = "udp_ts", address = "127.0.0.1", port = {port} }}
"#
        ),
        std::path::Path::new("."),
    );
    let r = Running::start(&cfg);
    check!(
        r.wait(Duration::from_secs(5), |r| r.stats("silent").reconnects
            >= 2),
        "{:?}",
        r.stats("silent")
    );
    check!(
        matches!(
            r.status("silent"),
            CameraStatus::Retrying {
                reason: RetryReason::Timeout,
                ..
            }
        ),
        "{:?}",
        r.status("silent")
    );
    r.stop();
}

#[test]
fn cameras_start_restart_and_stop_live_while_the_other_runs() {
    let dir = tempfile::tempdir().unwrap();
    let clip = make_clip(dir.path(), "b.mp4", 320, 240, 50, 25);
    let cfg = config(
        &format!(
            r#"
[[cameras]]
id = "a"
source = {{ kind = "test", width = 160, height = 120, framerate = 25 }}
fps = 10
[[cameras]]
id = "b"
enabled = false
source = {{ kind = "file", path = "{}", loop = true, realtime = true }}
fps = 10
"#,
            clip.display()
        ),
        dir.path(),
    );
    let r = Running::start(&cfg);
    check!(
        r.wait(Duration::from_secs(10), |r| r.seen("a").len() >= 5),
        "camera a delivers"
    );
    check!(r.ingest().status("b").is_none(), "b is disabled");
    let a_before = r.stats("a");

    // Started live: b joins the hub and delivers.
    let mut b = cfg.camera("b").unwrap().clone();
    b.enabled = true;
    let restarted = r.ingest().start_camera(&b, Duration::from_secs(5)).unwrap();
    check!(!restarted, "b was not running");
    check!(r.hub.contains("b"), "b is in the hub");
    check!(
        r.wait(Duration::from_secs(10), |r| r.seen("b").len() >= 5),
        "camera b delivers after being started live"
    );
    let last_b = r.seen("b").last().unwrap().seq;

    // Changed (fps): restarted, and its frame numbers continue.
    b.fps = Some(5.0);
    let restarted = r.ingest().start_camera(&b, Duration::from_secs(5)).unwrap();
    check!(restarted, "b was running, so it is restarted");
    let seen_before = r.seen("b").len();
    check!(
        r.wait(Duration::from_secs(10), |r| r.seen("b").len()
            >= seen_before + 3),
        "b delivers after its restart"
    );
    let after: Vec<u64> = r.seen("b")[seen_before..].iter().map(|s| s.seq).collect();
    check!(
        r.stats("b").frames_delivered as usize >= r.seen("b").len(),
        "counters continue across the restart: {} delivered, {} seen",
        r.stats("b").frames_delivered,
        r.seen("b").len()
    );
    check!(
        after.iter().all(|&s| s > last_b),
        "frame numbers continue across the restart: {last_b} then {after:?}"
    );

    // Stopped live: b leaves the hub and delivers nothing more; a never noticed.
    check!(
        r.ingest().stop_camera("b", Duration::from_secs(5)),
        "b stopped"
    );
    check!(
        !r.ingest().stop_camera("b", Duration::from_secs(5)),
        "b was already stopped"
    );
    check!(!r.hub.contains("b"), "b left the hub");
    check!(r.ingest().status("b").is_none(), "b has no status");
    let n = r.seen("b").len();
    let a_n = r.seen("a").len();
    std::thread::sleep(Duration::from_millis(800));
    check!(r.seen("b").len() == n, "no frame of b after it stopped");
    check!(r.seen("a").len() > a_n, "a keeps delivering");
    let a_after = r.stats("a");
    check!(
        a_after.reconnects == a_before.reconnects && matches!(r.status("a"), CameraStatus::Running),
        "a was not touched: {:?} {:?}",
        a_after.reconnects,
        r.status("a")
    );
    // After shutdown nothing starts.
    let mut r = r;
    let ingest = r.ingest.take().unwrap();
    ingest.shutdown(Duration::from_secs(5));
    let err = ingest
        .start_camera(&b, Duration::from_secs(5))
        .unwrap_err()
        .to_string();
    check!(err.contains("\"b\"") && err.contains("stopped"), "{err}");
}
