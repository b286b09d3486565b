//! The HTTP API against a real server on 127.0.0.1:0 with a seeded SQLite store and the
//! real rules replay.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

fn post(f: &Fixture, path: &str, token: Option<&str>, body: Value) -> Resp {
    http(f.addr, "POST", path, token, Some(&body.to_string()))
}

fn err_code(r: &Resp) -> String {
    r.json()["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn incidents_transitions_auth_and_validation() {
    let f = start();
    let a = f.addr;
    let r = http(a, "GET", "/health", None, None);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "ok");

    let now = chrono::Utc::now();
    f.alerts
        .record_incident(
            &smoke_incident("live-1", "tower1", now, 0.8),
            Some(&frame("tower1", 9, now)),
        )
        .unwrap();
    let list = http(a, "GET", "/api/incidents?state=new", None, None).json();
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["live-1"]);
    let all = http(
        a,
        "GET",
        "/api/incidents?kind=fire&camera=tower1&limit=10",
        None,
        None,
    )
    .json();
    assert_eq!(all.as_array().unwrap().len(), 4);
    let bad = http(a, "GET", "/api/incidents?state=burning&limit=0", None, None);
    assert_eq!(bad.status, 422);
    let bj = bad.json();
    let fields: Vec<&str> = bj["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&"state") && fields.contains(&"limit"),
        "{fields:?}"
    );

    let path = "/api/incidents/live-1/transition";
    // Writes need a token, and the right role.
    let r = post(&f, path, None, json!({"to": "acknowledged"}));
    assert_eq!((r.status, err_code(&r).as_str()), (401, "unauthorized"));
    let r = post(
        &f,
        path,
        Some("not-a-real-token-xyz"),
        json!({"to": "acknowledged"}),
    );
    assert_eq!(r.status, 401);
    let r = post(&f, path, Some(VIEWER), json!({"to": "acknowledged"}));
    assert_eq!((r.status, err_code(&r).as_str()), (403, "forbidden"));
    // Body validation: clear 4xx JSON errors.
    let r = http(a, "POST", path, Some(OPERATOR), Some("{not json"));
    assert_eq!((r.status, err_code(&r).as_str()), (400, "bad_json"));
    let r = post(&f, path, Some(OPERATOR), json!({"to": "burning"}));
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["error"]["fields"][0]["path"], "to");
    let r = post(
        &f,
        path,
        Some(OPERATOR),
        json!({"to": "acknowledged", "colour": "red"}),
    );
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("unknown field"), "{}", r.text());
    let r = post(
        &f,
        "/api/incidents/nope/transition",
        Some(OPERATOR),
        json!({"to": "acknowledged"}),
    );
    assert_eq!((r.status, err_code(&r).as_str()), (404, "not_found"));

    // Live updates: an SSE client sees the transition.
    let mut sse = std::net::TcpStream::connect(a).unwrap();
    sse.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    sse.write_all(format!("GET /api/live HTTP/1.1\r\nHost: {a}\r\n\r\n").as_bytes())
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));

    let r = post(
        &f,
        path,
        Some(OPERATOR),
        json!({"to": "acknowledged", "comment": "on it"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["state"], "acknowledged");
    let r = post(&f, path, Some(OPERATOR), json!({"to": "new"}));
    assert_eq!(
        (r.status, err_code(&r).as_str()),
        (409, "invalid_transition")
    );
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("allowed from acknowledged: confirmed, false_alarm, closed"));
    let r = post(
        &f,
        "/api/incidents/live-1/comment",
        Some(OPERATOR),
        json!({"comment": "smoke column growing"}),
    );
    assert_eq!(r.status, 200);
    let r = post(
        &f,
        "/api/incidents/live-1/comment",
        Some(OPERATOR),
        json!({"comment": "  "}),
    );
    assert_eq!(r.status, 422);

    let mut reader = BufReader::new(sse);
    let end = Instant::now() + Duration::from_secs(10);
    let mut seen = false;
    let mut line = String::new();
    while Instant::now() < end && !seen {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        if let Some(d) = line.strip_prefix("data: ") {
            let v: Value = serde_json::from_str(d.trim()).unwrap();
            seen = v["type"] == "incident" && v["id"] == "live-1" && v["state"] == "acknowledged";
        }
    }
    assert!(seen, "the SSE stream announced the transition");

    // The detail records who did what, and links the snapshot.
    let d = http(a, "GET", "/api/incidents/live-1", None, None).json();
    let t = &d["transitions"];
    assert_eq!(t[0]["actor"], "ana");
    assert_eq!(t[0]["comment"], "on it");
    assert_eq!(t[1]["comment"], "smoke column growing");
    let snap = d["snapshots"][0]["id"].as_i64().unwrap();
    let img = http(a, "GET", &format!("/api/snapshots/{snap}"), None, None);
    assert_eq!(img.status, 200);
    assert!(img.headers.contains("image/jpeg"));
    assert_eq!(&img.body[..2], &[0xFF, 0xD8]);
    assert!(
        d.get("path").is_none() && !d.to_string().contains(f.dir.path().to_str().unwrap()),
        "no file paths leak"
    );

    // Cameras with live status and the latest frame.
    let cams = http(a, "GET", "/api/cameras", None, None).json();
    assert_eq!(cams[0]["id"], "tower1");
    assert_eq!(cams[0]["fps"], 2.0);
    assert_eq!(cams[0]["zones"][0]["name"], "ridge");
    assert_eq!(cams[0]["latest"]["width"], 1280);
    let jpg = http(a, "GET", "/api/cameras/tower1/frame.jpg", None, None);
    assert_eq!((jpg.status, &jpg.body[..2]), (200, &[0xFF, 0xD8][..]));
    assert_eq!(
        http(a, "GET", "/api/cameras/tower2/frame.jpg", None, None).status,
        404
    );

    // GeoJSON parses and holds incidents and cameras.
    let g = http(a, "GET", "/api/geojson", None, None);
    assert!(g.headers.contains("application/geo+json"));
    let g = g.json();
    assert_eq!(g["type"], "FeatureCollection");
    let kinds: Vec<&str> = g["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["properties"]["feature"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"incident") && kinds.iter().filter(|k| **k == "camera").count() == 2);
    // Each feature once (cameras were listed twice, in two vocabularies), one schema.
    let ids: Vec<&str> = g["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap())
        .collect();
    let unique: std::collections::BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "duplicate features: {ids:?}");
    assert!(g["features"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["properties"].get("layer").is_none()));

    // Metrics.
    let m = http(a, "GET", "/metrics", None, None).text();
    assert!(
        m.contains("lookout_outbox_backlog{sink=\"dispatch\"}"),
        "{m}"
    );
    assert!(m.contains("lookout_camera_fps{camera=\"tower1\"} 2"));

    // Unknown endpoints are JSON 404s.
    let r = http(a, "GET", "/api/nope", None, None);
    assert_eq!((r.status, err_code(&r).as_str()), (404, "not_found"));
}

#[test]
fn config_redacted_tuning_replay_and_apply() {
    let f = start();
    let a = f.addr;
    let c = http(a, "GET", "/api/config", None, None);
    assert_eq!(c.status, 200);
    let text = c.text();
    for secret in [OPERATOR, VIEWER, ADMIN, "webhook-secret-value-1234"] {
        assert!(
            !text.contains(secret),
            "secret {secret} leaked in /api/config"
        );
    }
    let cfg = c.json();
    assert_eq!(cfg["server"]["users"][1]["token"], "***");
    assert_eq!(cfg["server"]["users"][1]["name"], "ana");

    // Replay: a lower threshold raises more alarms; recall counts the confirmed fires.
    let replay = |thr: f64, k: u32, n: u32| -> Value {
        let r = http(a, "POST", "/api/tuning/replay", None, Some(&json!({"camera": "tower1", "class": "smoke", "threshold": thr, "persistence": {"k": k, "n": n}}).to_string()));
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    };
    let low = replay(0.25, 3, 5);
    let mid = replay(0.5, 3, 5);
    let high = replay(0.85, 3, 5);
    assert_eq!(low["frames"], EPISODES.len() as u64 * 100);
    assert_eq!(low["confirmed"], 2);
    let alarms = |v: &Value| v["alarms"].as_u64().unwrap();
    assert!(
        alarms(&low) > alarms(&mid) && alarms(&mid) > alarms(&high),
        "{low} {mid} {high}"
    );
    assert!(alarms(&high) >= 1);
    assert_eq!(low["caught"], 2);
    assert_eq!(high["caught"], 1, "only the 0.92 fire clears 0.85");
    assert!(low["alarms_per_day"].as_f64().unwrap() > 0.0);
    // Smoke is not a [rules.verify] class here: no verification summary.
    assert!(low["verification"].is_null(), "{low}");

    let bad = http(a, "POST", "/api/tuning/replay", None, Some(&json!({"camera": "nope", "class": "smoke", "threshold": 1.5, "persistence": {"k": 6, "n": 5}}).to_string()));
    assert_eq!(bad.status, 422);
    let paths: Vec<String> = bad.json()["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(paths, vec!["camera", "threshold", "persistence.k"]);

    // Apply: admin only, validated, hot-reloaded through the callback, audited, visible.
    let body = json!({"camera": "tower1", "class": "smoke", "threshold": 0.6, "persistence": {"k": 2, "n": 4}, "comment": "fewer alarms from dust"}).to_string();
    assert_eq!(
        http(a, "POST", "/api/tuning/apply", Some(OPERATOR), Some(&body)).status,
        403
    );
    assert_eq!(f.applied.count(), 0);
    let r = http(a, "POST", "/api/tuning/apply", Some(ADMIN), Some(&body));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["author"], "root");
    assert_eq!(f.applied.count(), 1);
    let applied = f.applied.last().unwrap();
    assert_eq!(
        applied.cameras["tower1"].classes["smoke"].threshold,
        Some(0.6)
    );
    let cfg = http(a, "GET", "/api/config", None, None).json();
    let smoke = &cfg["rules"]["cameras"]["tower1"]["classes"]["smoke"];
    assert!(
        (smoke["threshold"].as_f64().unwrap() - 0.6).abs() < 1e-6,
        "{smoke}"
    );
    assert_eq!(smoke["persistence"], json!({"k": 2, "n": 4}));
    assert_eq!(cfg["overlay_version"], 1);
    let cur = http(
        a,
        "GET",
        "/api/tuning/current?camera=tower1&class=smoke",
        None,
        None,
    )
    .json();
    assert!((cur["threshold"].as_f64().unwrap() - 0.6).abs() < 1e-6);
    let hist = http(a, "GET", "/api/config/history", None, None).json();
    assert_eq!(hist[0]["author"], "root");
    assert_eq!(hist[0]["comment"], "fewer alarms from dust");
    assert_eq!(
        hist[0]["body"]["change"]["threshold"]
            .as_f64()
            .map(|t| (t * 100.0).round()),
        Some(60.0)
    );

    // A whole rules section: validated against the running config before it is applied.
    let r = http(
        a,
        "PUT",
        "/api/config/rules",
        Some(ADMIN),
        Some(&json!({"rules": {"cameras": {"ghost": {}}}, "comment": "x"}).to_string()),
    );
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(
        r.json()["error"]["fields"][0]["path"],
        "rules.cameras.ghost"
    );
    let r = http(
        a,
        "PUT",
        "/api/config/rules",
        Some(ADMIN),
        Some(&json!({"rules": {"quiet_s": "long"}}).to_string()),
    );
    assert_eq!(r.status, 422);
    assert!(r.json()["error"]["fields"][0]["path"]
        .as_str()
        .unwrap()
        .starts_with("rules.quiet_s"));
    let r = http(
        a,
        "PUT",
        "/api/config/rules",
        Some(ADMIN),
        Some(&json!({"rules": {"quiet_s": 45.0}, "comment": "longer quiet"}).to_string()),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(f.applied.count(), 2);
    assert_eq!(
        http(a, "GET", "/api/config", None, None).json()["rules"]["quiet_s"],
        45.0
    );

    // A partial change (merge patch): only the named key changes, the rest of the running
    // rules is kept; a patch whose result does not parse is refused with its path.
    let before = http(a, "GET", "/api/config", None, None).json()["rules"].clone();
    let r = http(
        a,
        "PATCH",
        "/api/config/rules",
        Some(ADMIN),
        Some(&json!({"patch": {"quiet_s": 50.0}, "comment": "a bit longer"}).to_string()),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(f.applied.count(), 3);
    let after = http(a, "GET", "/api/config", None, None).json()["rules"].clone();
    assert_eq!(after["quiet_s"], 50.0);
    let mut expected = before.clone();
    expected["quiet_s"] = json!(50.0);
    assert_eq!(after, expected, "nothing but quiet_s changed");
    let hist = http(a, "GET", "/api/config/history", None, None).json();
    assert_eq!(hist[0]["comment"], "a bit longer");
    assert_eq!(hist[0]["body"]["change"]["kind"], "patch");
    let r = http(
        a,
        "PATCH",
        "/api/config/rules",
        Some(ADMIN),
        Some(&json!({"patch": {"quiet_s": "long"}}).to_string()),
    );
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.json()["error"]["fields"][0]["path"]
        .as_str()
        .unwrap()
        .starts_with("rules.quiet_s"));
    let r = http(
        a,
        "PATCH",
        "/api/config/rules",
        Some(ADMIN),
        Some(&json!({"patch": [1]}).to_string()),
    );
    assert_eq!(r.status, 422, "{}", r.text());
    let r = http(
        a,
        "PATCH",
        "/api/config/rules",
        None,
        Some(&json!({"patch": {"quiet_s": 1.0}}).to_string()),
    );
    assert_eq!(r.status, 401, "writes need a token");
    assert_eq!(f.applied.count(), 3);
}
