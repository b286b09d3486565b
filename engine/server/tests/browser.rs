//! The web UI in headless Chromium, driven over WebDriver (chromedriver), against a real
//! server with a seeded store: an incident appears live, is acknowledged, the tuning slider
//! changes the alarm count to what the replay endpoint says, and "apply" changes /api/config;
//! a mask proposed from clustered false alarms is drawn, shows the API's count and applies.
//! Screenshots go to tests/artifacts/ (git-ignored).

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Driver {
    child: Child,
    addr: SocketAddr,
    session: String,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = http(
            self.addr,
            "DELETE",
            &format!("/session/{}", self.session),
            None,
            None,
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver must be installed");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let end = Instant::now() + Duration::from_secs(15);
        loop {
            if std::net::TcpStream::connect(addr).is_ok() {
                let r = http(addr, "GET", "/status", None, None);
                if r.status == 200 && r.json()["value"]["ready"] == true {
                    break;
                }
            }
            assert!(Instant::now() < end, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1400,900",
                format!("--user-data-dir={}", profile.path().display())]
        }}}});
        let r = http(addr, "POST", "/session", None, Some(&caps.to_string()));
        assert_eq!(r.status, 200, "new session: {}", r.text());
        let session = r.json()["value"]["sessionId"].as_str().unwrap().to_string();
        Driver {
            child,
            addr,
            session,
            _profile: profile,
        }
    }

    fn cmd(&self, method: &str, path: &str, body: Value) -> Value {
        let body = body.to_string();
        let body = if method == "GET" {
            None
        } else {
            Some(body.as_str())
        };
        let r = http(
            self.addr,
            method,
            &format!("/session/{}{path}", self.session),
            None,
            body,
        );
        assert_eq!(r.status, 200, "{method} {path}: {}", r.text());
        r.json()["value"].clone()
    }

    fn goto(&self, url: &str) {
        self.cmd("POST", "/url", json!({"url": url}));
    }

    fn js(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
    }

    fn click(&self, css: &str) {
        let el = self.cmd(
            "POST",
            "/element",
            json!({"using": "css selector", "value": css}),
        );
        let id = el[ELEMENT].as_str().unwrap().to_string();
        self.cmd("POST", &format!("/element/{id}/click"), json!({}));
    }

    /// Polls a script until it returns a truthy value.
    fn wait(&self, what: &str, script: &str) -> Value {
        let end = Instant::now() + Duration::from_secs(15);
        loop {
            let v = self.js(script);
            if !(v.is_null() || v == false || v == "") {
                return v;
            }
            assert!(Instant::now() < end, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn screenshot(&self, name: &str) {
        let b64 = self.cmd("GET", "/screenshot", Value::Null);
        let png = base64_decode(b64.as_str().unwrap());
        assert_eq!(&png[1..4], b"PNG");
        let dir = std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/artifacts"
        ));
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(name), png).unwrap();
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            b'/' => 63,
            _ => 0,
        }
    };
    let bytes: Vec<u8> = s.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let pad = chunk.iter().filter(|c| **c == b'=').count();
        let n = chunk.iter().fold(0u32, |acc, c| (acc << 6) | val(*c)) << (6 * (4 - chunk.len()));
        let b = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&b[..3 - pad.min(2)]);
    }
    out
}

#[test]
fn ui_incident_ack_tuning_slider_and_apply() {
    let f = start();
    let base = format!("http://{}", f.addr);
    let d = Driver::start();
    d.goto(&format!("{base}/"));
    d.js(&format!(
        "localStorage.setItem('lookout.token', '{ADMIN}'); return true;"
    ));
    d.goto(&format!("{base}/"));
    d.wait(
        "the live stream",
        "return document.querySelector('#live').classList.contains('on');",
    );
    d.wait(
        "the signed-in user",
        "return document.querySelector('#who').textContent.includes('root');",
    );

    // A new incident appears without a reload (SSE).
    let now = chrono::Utc::now();
    f.alerts
        .record_incident(
            &smoke_incident("ui-1", "tower1", now, 0.9),
            Some(&frame("tower1", 3, now)),
        )
        .unwrap();
    d.wait(
        "the new incident row",
        "return !!document.querySelector('tr[data-id=\"ui-1\"]');",
    );
    d.click("tr[data-id=\"ui-1\"]");
    d.wait("the snapshot in the detail", "const i = document.querySelector('#detail img'); return i && i.complete && i.naturalWidth > 0;");
    d.screenshot("ui-incidents.png");
    d.click("tr[data-id=\"ui-1\"] .act-ack");
    d.wait("the acknowledged state", "const r = document.querySelector('tr[data-id=\"ui-1\"] .state'); return r && r.textContent === 'acknowledged';");
    let s = f.alerts.store().incident("ui-1").unwrap().unwrap();
    assert_eq!(s.incident.state, lookout_core::IncidentState::Acknowledged);
    let detail = f.alerts.store().incident_detail("ui-1").unwrap().unwrap();
    assert_eq!(detail.transitions[0].actor, "root");

    // Map and cameras render.
    d.click(".tab[data-view=\"cameras\"]");
    d.wait("the camera grid", "const i = document.querySelector('.cam img'); return i && i.complete && i.naturalWidth > 0;");
    d.screenshot("ui-cameras.png");
    d.click(".tab[data-view=\"map\"]");
    d.wait("the map", "return document.querySelectorAll('#map polygon').length >= 2 && !!document.querySelector('#map circle.incident') && !!document.querySelector('#map line.bearing');");
    d.screenshot("ui-map.png");

    // Tuning: the slider's alarm count is what the replay endpoint says for that setting.
    d.click(".tab[data-view=\"tuning\"]");
    let first = d.wait("the first replay", "const e = document.querySelector('#tune-alarms'); return e.dataset.threshold ? e.textContent + '@' + e.dataset.threshold : '';");
    let first = first.as_str().unwrap().to_string();
    d.js("const s = document.querySelector('#tune-threshold'); s.value = '0.85'; s.dispatchEvent(new Event('input')); return true;");
    let shown = d.wait("the replay at 0.85", "const e = document.querySelector('#tune-alarms'); return e.dataset.threshold === '0.85' ? e.textContent : '';");
    let k = d
        .js("return +document.querySelector('#tune-k').value;")
        .as_u64()
        .unwrap();
    let n = d
        .js("return +document.querySelector('#tune-n').value;")
        .as_u64()
        .unwrap();
    let api = http(f.addr, "POST", "/api/tuning/replay", None, Some(&json!({"camera": "tower1", "class": "smoke", "threshold": 0.85, "persistence": {"k": k, "n": n}}).to_string())).json();
    assert_eq!(
        shown.as_str().unwrap(),
        api["alarms"].to_string(),
        "UI shows the replay result"
    );
    assert_ne!(
        first.split('@').next().unwrap(),
        shown.as_str().unwrap(),
        "moving the slider changed the count ({first})"
    );

    d.js("document.querySelector('#tune-comment').value = 'dust from the quarry'; return true;");
    d.click("#tune-apply");
    d.wait(
        "the apply confirmation",
        "return document.querySelector('#tune-msg').textContent.includes('Applied');",
    );
    d.wait(
        "the audit row",
        "return document.querySelectorAll('#audit tbody tr').length >= 1;",
    );
    d.screenshot("ui-tuning.png");
    let cfg = http(f.addr, "GET", "/api/config", None, None).json();
    let t = cfg["rules"]["cameras"]["tower1"]["classes"]["smoke"]["threshold"]
        .as_f64()
        .unwrap();
    assert!((t - 0.85).abs() < 1e-6, "applied threshold {t}");
    assert_eq!(f.applied.load(std::sync::atomic::Ordering::SeqCst), 1);

    // Exclusion masks: false alarms clustered at the left edge of tower1's view.
    for (i, x) in [100.0f32, 130.0, 160.0].into_iter().enumerate() {
        let id = format!("dust-{i}");
        let at = now - chrono::Duration::minutes(10 + 5 * i as i64);
        let mut inc = smoke_incident(&id, "tower1", at, 0.6);
        inc.events[0].bbox = Some(lookout_core::BBox::new(x - 30.0, 380.0, x + 30.0, 440.0));
        f.alerts.record_incident(&inc, None).unwrap();
        f.alerts
            .transition(&id, lookout_core::IncidentState::FalseAlarm, "ana", "dust")
            .unwrap();
    }
    let api = http(
        f.addr,
        "GET",
        "/api/tuning/masks?camera=tower1&class=smoke",
        None,
        None,
    )
    .json();
    let removed = api["proposals"][0]["false_alarms_removed"].clone();
    assert_eq!(removed, 3, "{api}");
    d.click("#mask-propose");
    d.wait(
        "the drawn mask proposal",
        "return document.querySelectorAll('#mask-svg polygon.proposal-poly').length === 1 && document.querySelectorAll('#mask-svg rect').length >= 4;",
    );
    let shown = d.js("return document.querySelector('.proposal .removed').textContent;");
    assert_eq!(shown, removed.to_string(), "UI shows the API's proposal");
    d.screenshot("ui-masks.png");
    d.click(".mask-apply");
    d.wait(
        "the mask confirmation",
        "return document.querySelector('#mask-msg').textContent.includes('Mask applied');",
    );
    let cfg = http(f.addr, "GET", "/api/config", None, None).json();
    let masks = &cfg["rules"]["cameras"]["tower1"]["masks"];
    assert_eq!(masks.as_array().map(Vec::len), Some(1), "{masks}");
    assert_eq!(masks[0]["polygon"], api["proposals"][0]["polygon"]);
    assert_eq!(cfg["overlay"]["author"], "root");
    assert_eq!(f.applied.load(std::sync::atomic::Ordering::SeqCst), 2);
}
