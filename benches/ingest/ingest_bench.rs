//! CPU cost of ingesting a 1080p H.264 stream: full decode at 25 fps vs an fps=1 cap vs
//! key-frames-only, in CPU seconds per minute of stream.
//!
//! `cargo bench -p lookout-ingest --bench ingest` (see benches/ingest/README.md). The parent
//! generates the clip with ffmpeg, then runs every mode `REPS` times, each in a fresh child
//! process (this binary with `--child`), which reads the clip as fast as possible through
//! the real `Ingest` (file camera, analysis at 1280 px) and reports its own
//! `getrusage(RUSAGE_SELF)` user+system time. The parent prints medians and ratios.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lookout_core::{CameraStatus, FrameHub, StopReason};

const MODES: &[&str] = &["full_25fps", "fps_1", "keyframes_only"];

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we pass and has no other effect.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    assert_eq!(rc, 0, "getrusage failed");
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn child(mode: &str, clip: &Path) {
    let mode_keys = match mode {
        "full_25fps" => "fps = 25",
        "fps_1" => "fps = 1",
        "keyframes_only" => "fps = 25\nkeyframes_only = true",
        other => panic!("unknown mode {other}"),
    };
    let toml = format!(
        "[ingest]\nanalysis_max_side = 1280\n[[cameras]]\nid = \"bench\"\n\
         source = {{ kind = \"file\", path = \"{}\", realtime = false }}\n{mode_keys}\n",
        clip.display()
    );
    let cfg = lookout_config::parse(&toml, "bench.toml", Path::new(".")).expect("bench config");
    let hub = FrameHub::new(lookout_ingest::camera_ids(&cfg));
    let (tx, _rx) = crossbeam_channel::bounded(64);
    // A consumer that takes frames like inference would (cheaply).
    let h2 = hub.clone();
    let consumer = std::thread::spawn(move || {
        let mut out = Vec::new();
        while h2.take(4, Duration::from_millis(50), &mut out) {
            out.clear();
        }
    });
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let ingest = lookout_ingest::Ingest::start(&cfg, Arc::clone(&hub), tx).expect("ingest starts");
    loop {
        match ingest.status("bench") {
            Some(CameraStatus::Stopped {
                reason: StopReason::Finished,
            }) => break,
            Some(CameraStatus::Stopped { reason }) => panic!("bench camera stopped: {reason:?}"),
            _ => std::thread::sleep(Duration::from_millis(5)),
        }
        assert!(
            t0.elapsed() < Duration::from_secs(600),
            "bench run too long"
        );
    }
    let st = ingest.stats().remove(0);
    ingest.shutdown(Duration::from_secs(5));
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    consumer.join().expect("consumer");
    println!(
        "RESULT {mode} cpu_s={cpu:.3} wall_s={wall:.3} decoded={} delivered={}",
        st.frames_decoded, st.frames_delivered
    );
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(&args[i + 1], Path::new(&args[i + 2]));
        return;
    }
    let env_num = |k: &str, d: u32| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let seconds = env_num("INGEST_BENCH_SECONDS", 20);
    let reps = env_num("INGEST_BENCH_REPS", 3);
    let gop = env_num("INGEST_BENCH_GOP", 50);
    let dir = std::env::temp_dir().join("lookout-ingest-bench");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let clip: PathBuf = dir.join(format!("bench_1080p_{seconds}s_gop{gop}.mp4"));
    if !clip.exists() {
        eprintln!(
            "Generating {} ({seconds} s, 1080p25, H.264 high, 4 Mb/s, GOP {gop}) ...",
            clip.display()
        );
        let st = Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-loglevel",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
            ])
            .arg(format!(
                "testsrc2=size=1920x1080:rate=25:duration={seconds}"
            ))
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-profile:v",
                "high",
                "-pix_fmt",
                "yuv420p",
            ])
            .args(["-b:v", "4M", "-maxrate", "4M", "-bufsize", "8M", "-bf", "0"])
            .args([
                "-g",
                &gop.to_string(),
                "-keyint_min",
                &gop.to_string(),
                "-sc_threshold",
                "0",
            ])
            .arg(&clip)
            .status()
            .expect("ffmpeg runs");
        assert!(st.success(), "ffmpeg failed: {st}");
    }
    let exe = std::env::current_exe().expect("own path");
    let stream_min = f64::from(seconds) / 60.0;
    let mut per_mode: Vec<(String, Vec<f64>, String)> = Vec::new();
    for mode in MODES {
        per_mode.push((mode.to_string(), Vec::new(), String::new()));
    }
    for rep in 0..reps {
        for (mode, samples, last) in per_mode.iter_mut() {
            let out = Command::new(&exe)
                .args(["--child", mode])
                .arg(&clip)
                .output()
                .expect("child runs");
            assert!(
                out.status.success(),
                "{mode}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let text = String::from_utf8_lossy(&out.stdout);
            let line = text
                .lines()
                .find(|l| l.starts_with("RESULT"))
                .expect("result line")
                .to_string();
            let cpu: f64 = line
                .split_whitespace()
                .find_map(|kv| kv.strip_prefix("cpu_s="))
                .and_then(|v| v.parse().ok())
                .expect("cpu_s");
            eprintln!("rep {rep}: {line}");
            samples.push(cpu / stream_min);
            *last = line;
        }
    }
    println!("\nIngest CPU per stream-minute, 1080p25 H.264 ({seconds} s clip, GOP {gop}), median of {reps}:");
    println!(
        "{:<16} {:>14} {:>10}   last run",
        "mode", "cpu_s/min", "vs full"
    );
    let medians: Vec<f64> = per_mode.iter_mut().map(|(_, s, _)| median(s)).collect();
    for ((mode, _, last), m) in per_mode.iter().zip(&medians) {
        println!("{mode:<16} {m:>14.2} {:>9.3}x   {last}", m / medians[0]);
    }
    println!(
        "\nkey-frames-only / full = {:.3} (goal <= 0.100); fps=1 / full = {:.3}",
        medians[2] / medians[0],
        medians[1] / medians[0]
    );
}
