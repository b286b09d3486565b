//! `lookout data status` and `lookout data fetch` through the built binary: the shipped
//! manifest is true of the real shared directory; fetch downloads and verifies files from a
//! local HTTP server on 127.0.0.1 (never the internet), resumes a cut download, refuses a
//! file whose hash differs without keeping any part of it, and names a 404; a bad manifest
//! entry is a located error.

mod common;
use common::shared;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};

fn lookout(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(args)
        .env("LOOKOUT_SHARED", shared())
        .output()
        .expect("lookout runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn sha(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn status_reports_every_manifest_file_of_the_shared_directory_present() {
    let out = lookout(&["data", "status", "--dest", s(&shared())]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    let manifest = include_str!("../../../samples/data.toml");
    let entries = manifest.matches("[[entry]]").count();
    assert!(entries >= 10, "{entries}");
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("present")).count(),
        entries,
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{entries} present, 0 missing, 0 corrupt")),
        "{stdout}"
    );

    // A directory without the files: every entry missing, with what it disables.
    let empty = tempfile::tempdir().unwrap();
    let out = lookout(&[
        "data",
        "status",
        "--only",
        "demo",
        "--dest",
        s(empty.path()),
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("MISSING") && stdout.contains("disables: the demo's house6"),
        "{stdout}"
    );
    assert!(!stdout.contains("present "), "{stdout}");
}

/// What the server saw: request path and Range header.
type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// A small HTTP/1.1 server on 127.0.0.1 for `conns` connections at most: `/good.bin` and
/// `/bad.bin` in full, `/cut.bin` cut after half its bytes the first time and served from
/// a Range after that, anything else 404.
fn serve(good: Vec<u8>, cut: Vec<u8>, bad: Vec<u8>, conns: usize) -> (u16, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Seen = Arc::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        let mut cut_served = false;
        for stream in listener.incoming().take(conns) {
            let Ok(mut stream) = stream else { continue };
            stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
            let Some((path, range)) = read_request(&stream) else {
                continue;
            };
            log.lock().unwrap().push((path.clone(), range.clone()));
            let start: usize = range
                .as_deref()
                .and_then(|r| r.strip_prefix("bytes="))
                .and_then(|r| r.trim_end_matches('-').parse().ok())
                .unwrap_or(0);
            let body = match path.as_str() {
                "/good.bin" => &good,
                "/bad.bin" => &bad,
                "/cut.bin" => &cut,
                _ => {
                    let _ = stream.write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                    continue;
                }
            };
            if path == "/cut.bin" && !cut_served {
                cut_served = true;
                let half = body.len() / 2;
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(&body[..half]);
                let _ = stream.flush();
                continue; // dropped: the connection closes mid-body
            }
            let part = &body[start.min(body.len())..];
            let status = if start > 0 {
                "206 Partial Content"
            } else {
                "200 OK"
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                part.len()
            );
            let _ = stream.write_all(part);
        }
    });
    (port, seen)
}

fn read_request(stream: &TcpStream) -> Option<(String, Option<String>)> {
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_string();
    let mut range = None;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("range") {
                range = Some(v.trim().to_string());
            }
        }
    }
    let _ = r.read(&mut [0u8; 0]);
    Some((path, range))
}

fn entry(path: &str, body: &[u8], sha256: &str, url: &str) -> String {
    format!(
        "[[entry]]\npath = \"{path}\"\nsize = {}\nsha256 = \"{sha256}\"\nlicence = \"CC0\"\nsource_url = \"{url}\"\ndownload_url = \"{url}\"\nneeded_by = [\"tests\"]\ndisables = \"nothing real\"\n\n",
        body.len()
    )
}

#[test]
fn fetch_downloads_verifies_resumes_and_refuses_over_local_http() {
    let good: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let cut: Vec<u8> = (0..300_000u32).map(|i| (i * 13 % 253) as u8).collect();
    let bad: Vec<u8> = vec![42; 50_000];
    // Connections: good, cut (cut), bad, 404, then cut again (resumed).
    let (port, seen) = serve(good.clone(), cut.clone(), bad.clone(), 5);
    let url = |p: &str| format!("http://127.0.0.1:{port}/{p}");
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("data.toml");
    std::fs::write(
        &manifest,
        entry("models/good.bin", &good, &sha(&good), &url("good.bin"))
            + &entry("datasets/cut.bin", &cut, &sha(&cut), &url("cut.bin"))
            + &entry(
                "hotspots/bad.bin",
                &bad,
                &sha(b"something else"),
                &url("bad.bin"),
            )
            + &entry("hotspots/gone.csv", b"x", &sha(b"x"), &url("gone.csv")),
    )
    .unwrap();
    let dest = dir.path().join("shared");
    let fetch = || {
        lookout(&[
            "data",
            "fetch",
            "--allow-http-loopback",
            "--manifest",
            s(&manifest),
            "--dest",
            s(&dest),
        ])
    };
    let out = fetch();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(std::fs::read(dest.join("models/good.bin")).unwrap(), good);
    assert!(
        err.contains("licence: CC0"),
        "the licence is shown first: {err}"
    );
    // The cut download keeps its part for a resume, and says so.
    assert!(!dest.join("datasets/cut.bin").exists());
    let part = std::fs::metadata(dest.join("datasets/cut.bin.part"))
        .unwrap()
        .len();
    assert!(part > 0 && part < cut.len() as u64, "{part}");
    assert!(
        err.contains("datasets/cut.bin") && err.contains("resume"),
        "{err}"
    );
    // A hash mismatch keeps nothing.
    assert!(
        err.contains("hotspots/bad.bin") && err.contains("sha256 mismatch"),
        "{err}"
    );
    assert!(
        !dest.join("hotspots/bad.bin").exists() && !dest.join("hotspots/bad.bin.part").exists()
    );
    // A 404 by name.
    assert!(
        err.lines()
            .any(|l| l.contains("hotspots/gone.csv") && l.contains("404")),
        "{err}"
    );

    // Again: good is present, cut resumes from its part with a Range request.
    let out = fetch();
    let err = text(&out.stderr);
    assert_eq!(
        std::fs::read(dest.join("datasets/cut.bin")).unwrap(),
        cut,
        "{err}"
    );
    assert!(!dest.join("datasets/cut.bin.part").exists());
    assert!(err.contains("resuming"), "{err}");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen.iter().filter(|(p, _)| p == "/good.bin").count(),
        1,
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|(p, r)| p == "/cut.bin" && r.as_deref() == Some(&format!("bytes={part}-"))),
        "{seen:?}"
    );
}

#[test]
fn a_bad_manifest_entry_is_a_located_error_and_plain_http_needs_the_test_flag() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("data.toml");
    std::fs::write(
        &manifest,
        "[[entry]]\npath = \"a.bin\"\nsize = 1\nlicence = \"CC0\"\nsource_url = \"https://example.org/a\"\nneeded_by = [\"tests\"]\ndisables = \"x\"\n\n\
         [[entry]]\npath = \"b.bin\"\nsize = 1\nsha256 = \"2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881\"\nlicence = \"CC0\"\nsource_url = \"http://example.org/b\"\nneeded_by = [\"tests\"]\ndisables = \"x\"\n\n\
         [[entry]]\npath = \"c.bin\"\nsize = 1\nsha256 = \"2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881\"\nlicence = \"CC0\"\nsource_url = \"https://example.org/c\"\ndownload_url = \"http://127.0.0.1:9/c\"\nneeded_by = [\"tests\"]\ndisables = \"x\"\n",
    )
    .unwrap();
    let out = lookout(&[
        "data",
        "status",
        "--manifest",
        s(&manifest),
        "--dest",
        s(dir.path()),
    ]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let m = manifest.display().to_string();
    assert!(
        err.contains(&format!("{m}:1:1: `entry[0]`: missing field `sha256`")),
        "{err}"
    );
    assert!(
        err.contains(&format!("{m}:14:")) && err.contains("`entry[1].source_url`"),
        "{err}"
    );
    assert!(
        err.contains("`entry[2].download_url`") && err.contains("https"),
        "{err}"
    );
}

#[test]
fn with_missing_files_skip_the_engine_starts_without_the_camera_whose_video_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("site.toml");
    std::fs::write(
        &cfg,
        r#"[engine]
data_dir = "state"
missing_files = "skip"

[[cameras]]
id = "pattern"
source = { kind = "test" }

[[cameras]]
id = "gone"
source = { kind = "file", path = "clips/gone.mp4" }

[server]
enabled = false
"#,
    )
    .unwrap();
    let out = lookout(&["check-config", s(&cfg)]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("Camera gone is off") && err.contains("clips/gone.mp4"),
        "{err}"
    );
    let out = lookout(&["run", "--config", s(&cfg), "--run-for", "2"]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("Camera gone is off"), "{err}");
    // The same config with the default policy refuses to start, naming the file.
    std::fs::write(
        &cfg,
        std::fs::read_to_string(&cfg)
            .unwrap()
            .replace("missing_files = \"skip\"\n", ""),
    )
    .unwrap();
    let out = lookout(&["run", "--config", s(&cfg), "--run-for", "2"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("cameras[1].source.path") && err.contains("clips/gone.mp4"),
        "{err}"
    );
}
