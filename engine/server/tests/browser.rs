//! The web UI in headless Chromium, driven over WebDriver (chromedriver), against a real
//! server with a seeded store: an incident appears live, is acknowledged, the tuning slider
//! changes the alarm count to what the replay endpoint says, and "apply" changes /api/config;
//! a mask proposed from clustered false alarms is drawn, shows the API's count and applies.
//! Screenshots go to tests/artifacts/ (git-ignored).

mod common;

use common::*;
use serde_json::json;

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
    assert_eq!(f.applied.count(), 1);

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
    assert_eq!(f.applied.count(), 2);
}
