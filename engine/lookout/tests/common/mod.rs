//! Helpers shared by the binary's integration tests (each test binary uses a subset).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The shared third-party data directory (`$LOOKOUT_SHARED`, default `../shared`).
pub fn shared() -> PathBuf {
    std::env::var("LOOKOUT_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
}

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The demo's plant-gate clip (`scripts/make-samples.sh`): a continuous two-minute view of
/// a building entrance where real pedestrians (Penn-Fudan) come and go.
pub fn person_clip(dir: &Path) -> PathBuf {
    let out = dir.join("plant-gate.mkv");
    let status = Command::new("bash")
        .arg(repo().join("scripts/make-samples.sh"))
        .arg(&out)
        .env("LOOKOUT_SHARED", shared())
        .status()
        .expect("bash runs");
    assert!(
        status.success() && out.exists(),
        "scripts/make-samples.sh could not build the plant-gate clip"
    );
    out
}

/// Penn-Fudan pedestrian stills as a 2 fps H.264 clip (one still a frame, 640×480): many
/// clearly visible people at once, for tests that need the person model to find people in
/// the first seconds (the plant-gate clip shows one person at first).
pub fn pedestrian_slideshow(dir: &Path) -> PathBuf {
    let out = dir.join("pedestrians.mkv");
    let pattern = shared().join("datasets/pennfudan-person/images/FudanPed000*.jpg");
    let status = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-framerate", "2", "-pattern_type", "glob", "-i"])
        .arg(&pattern)
        .args([
            "-vf",
            "scale=640:480:force_original_aspect_ratio=decrease,pad=640:480:(ow-iw)/2:(oh-ih)/2,setsar=1,format=yuv420p",
            "-c:v",
            "libx264",
            "-g",
            "10",
        ])
        .arg(&out)
        .status()
        .expect("ffmpeg runs");
    assert!(
        status.success() && out.exists(),
        "ffmpeg could not build the pedestrian slideshow from {}",
        pattern.display()
    );
    out
}

/// One HTTP/1.1 request to a test server on 127.0.0.1 (`Connection: close`, bounded by a
/// 10 s read timeout): returns the status code and the body.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> std::io::Result<(u16, Vec<u8>)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() {
        req.push_str("Content-Type: application/json\r\n");
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("{path}: no HTTP header end")))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("{path}: bad status line {head:.80}")))?;
    Ok((status, raw[split + 4..].to_vec()))
}

/// A child process killed (and reaped) when dropped, so a failing test leaves nothing running.
pub struct Killed(pub std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Killed {
    /// SIGTERM, then waits up to `within` for the process to exit; false if it did not.
    pub fn terminate(&mut self, within: std::time::Duration) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let t0 = std::time::Instant::now();
        while t0.elapsed() < within {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        false
    }
}

/// `lookout run --config CONFIG --data-dir DATA` of the built binary, its log in `log`.
pub fn spawn_engine(config: &Path, data: &Path, log: &Path) -> Killed {
    let child = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .arg("run")
        .arg("--config")
        .arg(config)
        .arg("--data-dir")
        .arg(data)
        .env("LOOKOUT_SHARED", shared())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::from(
            std::fs::File::create(log).expect("log file"),
        ))
        .spawn()
        .expect("lookout starts");
    Killed(child)
}

/// A simulated tower site: the first `train` + `val` HPWREN tower frames (sorted by name)
/// with their smoke boxes, written into `dir` as a YOLO set (`train/`, `val/`).
/// Evaluation-only data: what a test fits on it is thrown away.
pub fn hpwren_site(dir: &Path, train: usize, val: usize) {
    let src = shared().join("datasets/hpwren-smoke-dev");
    let mut names: Vec<String> = std::fs::read_dir(src.join("images"))
        .expect("hpwren images")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    for (i, name) in names.iter().take(train + val).enumerate() {
        let split = if i < train { "train" } else { "val" };
        let stem = name.rsplit_once('.').map_or(name.as_str(), |(s, _)| s);
        for sub in ["images", "labels"] {
            std::fs::create_dir_all(dir.join(split).join(sub)).expect("mkdir");
        }
        std::fs::copy(
            src.join("images").join(name),
            dir.join(split).join("images").join(name),
        )
        .expect("copy image");
        std::fs::copy(
            src.join("labels").join(format!("{stem}.txt")),
            dir.join(split).join("labels").join(format!("{stem}.txt")),
        )
        .expect("copy label");
    }
}

/// One API call with a bearer token, the body parsed as JSON: `(0, null)` while nothing
/// listens (the engine is starting).
pub fn api_call(
    addr: &str,
    token: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, serde_json::Value) {
    match http(addr, method, path, Some(token), body) {
        Ok((code, body)) => (
            code,
            serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
        ),
        Err(_) => (0, serde_json::Value::Null),
    }
}

/// Waits (bounded) until `f` returns something, checking the engine is still up; `f` may
/// leave what it last saw in its argument, for the failure message (which carries the
/// engine's log).
pub fn wait_for<T>(
    what: &str,
    secs: u64,
    engine: &mut Killed,
    log: &Path,
    mut f: impl FnMut(&mut String) -> Option<T>,
) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    let mut seen = String::new();
    loop {
        if let Some(v) = f(&mut seen) {
            return v;
        }
        assert!(
            engine.0.try_wait().expect("wait").is_none(),
            "the engine exited early while waiting for {what}; log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within {secs} s; last seen: {seen}\nlog:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}
