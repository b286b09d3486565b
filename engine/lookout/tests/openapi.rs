//! The API's OpenAPI 3 description against the real server: `lookout run` on the FURG clip
//! with the smoke/fire model and an admin token, `GET /api/openapi.json`, then the PyPI API
//! fuzzer schemathesis (pinned in scripts/setup.sh, installed in the project's .venv) run
//! against it with the token, a fixed seed and bounded examples: no server error (5xx) and
//! every answer conforms to the description.

mod common;
use common::{repo, shared};

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const TOKEN: &str = "admin-token-0123456789";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `GET path` on 127.0.0.1:`port`: status and body (`None` while nothing listens).
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).ok()?;
    let status = answer.split(' ').nth(1)?.parse().ok()?;
    let body = answer.split_once("\r\n\r\n")?.1.to_string();
    Some((status, body))
}

fn config(dir: &Path, port: u16) -> std::path::PathBuf {
    let path = dir.join("api.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[engine]
shutdown_deadline_s = 5

[ingest]
analysis_max_side = 640

[inference]
workers = 1
intra_threads = 1

[server]
port = {port}
users = [{{ name = "admin", role = "admin", token = "{TOKEN}" }}]

[models.smoke-fire]
manifest = "{manifest}"

[[cameras]]
id = "house"
source = {{ kind = "file", path = "{clip}", loop = true }}
fps = 1
models = ["smoke-fire"]

[[alerts.sinks]]
kind = "jsonl"
name = "log"
path = "alerts.jsonl"
"#,
            manifest = repo().join("models/smoke-fire.toml").display(),
            clip = shared()
                .join("datasets/furg-house6/furg_house6.mp4")
                .display(),
        ),
    )
    .expect("write config");
    path
}

#[test]
fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    let st = repo().join(".venv/bin/schemathesis");
    assert!(
        st.exists(),
        "{} is missing: scripts/setup.sh installs schemathesis into .venv",
        st.display()
    );
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path();
    let port = free_port();
    let engine = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .arg("run")
        .arg("--config")
        .arg(config(dir, port))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env("LOOKOUT_SHARED", shared())
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(dir.join("lookout.log")).expect("log file"),
        ))
        .spawn()
        .expect("lookout starts");
    let _engine = Killed(engine);
    let log = || std::fs::read_to_string(dir.join("lookout.log")).unwrap_or_default();

    // The description is served, OpenAPI 3, and names the routes and the token scheme.
    let start = Instant::now();
    let doc = loop {
        if let Some((200, body)) = get(port, "/api/openapi.json") {
            break body;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the server did not answer /api/openapi.json; engine log:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let v: serde_json::Value = serde_json::from_str(&doc).expect("openapi.json is JSON");
    assert!(v["openapi"].as_str().is_some_and(|s| s.starts_with("3.")));
    for (path, method) in [
        ("/api/incidents", "get"),
        ("/api/incidents/{id}/transition", "post"),
        ("/api/config/rules", "patch"),
        ("/api/tuning/masks/apply", "post"),
        ("/api/outbox/retry", "post"),
        ("/metrics", "get"),
    ] {
        assert!(
            v["paths"][path][method].is_object(),
            "{method} {path} not described"
        );
    }
    assert_eq!(
        v["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    // A path id that is not one is a JSON 404, as described (schemathesis's stricter
    // checks found a plain-text 400 for an out-of-range snapshot id).
    let (status, body) = get(port, "/api/snapshots/9223372036854775808").expect("an answer");
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("\"not_found\""), "{body}");
    // Let the camera deliver a frame and the rules run for a moment, so reads have data.
    std::thread::sleep(Duration::from_secs(2));

    // The fuzzer: bounded examples, a fixed seed, each request within 10 s, the whole run
    // within 3 minutes (it takes about 15 s); SSE (`/api/live`) never ends, so it is left out.
    let out_path = dir.join("schemathesis.txt");
    let mut child = Command::new(&st)
        .args([
            "run",
            &format!("http://127.0.0.1:{port}/api/openapi.json"),
            "--header",
            &format!("Authorization: Bearer {TOKEN}"),
            "--checks",
            "not_a_server_error,response_schema_conformance",
            "--max-examples",
            "10",
            "--seed",
            "1",
            "--exclude-path",
            "/api/live",
            "--request-timeout",
            "10",
            "--no-color",
        ])
        .stdout(Stdio::from(
            std::fs::File::create(&out_path).expect("output file"),
        ))
        .stderr(Stdio::from(
            std::fs::File::options()
                .append(true)
                .open(&out_path)
                .expect("output file"),
        ))
        .current_dir(dir)
        .spawn()
        .expect("schemathesis runs");
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for schemathesis") {
            break s;
        }
        if started.elapsed() > Duration::from_secs(180) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "schemathesis ran over 3 minutes:\n{}",
                std::fs::read_to_string(&out_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let out = std::fs::read_to_string(&out_path).unwrap_or_default();
    println!(
        "schemathesis took {:.1} s:\n{}",
        started.elapsed().as_secs_f64(),
        out.lines()
            .filter(|l| l.contains("generated") || l.contains("Tested"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        status.success(),
        "schemathesis found problems:\n{out}\nengine log:\n{}",
        log()
    );
    assert!(out.contains("passed"), "no test case ran:\n{out}");
}
