//! Cameras from the web UI, in headless Chromium over WebDriver, against a real server with
//! a real store: an admin adds a camera with the form (a bad URL is refused with the error
//! next to the URL field, as the config loader words it), disables a file camera from its
//! card, edits the added one, then draws a zone on a camera's live frame by clicking its
//! corners and saves it. The store holds the added camera in
//! the cameras record and the zone in the rules overlay, and the screenshot shows the
//! polygon where it was clicked.

mod common;

use common::*;
use serde_json::Value;

/// Sets a form field of the camera form.
fn set(d: &Driver, name: &str, value: &str) {
    d.js(&format!(
        "const e = document.querySelector('#cam-form [name=\"{name}\"]'); e.value = {}; e.dispatchEvent(new Event('change')); return true;",
        Value::String(value.into())
    ));
}

#[test]
fn ui_admin_adds_a_camera_and_draws_a_zone_on_its_live_frame() {
    let f = start();
    let base = format!("http://{}", f.addr);
    let d = Driver::start();
    d.goto(&format!("{base}/"));
    d.js(&format!(
        "sessionStorage.setItem('lookout.token', '{ADMIN}'); return true;"
    ));
    d.goto(&format!("{base}/"));
    d.click(".tab[data-view=\"cameras\"]");
    d.wait(
        "the camera cards",
        "return document.querySelectorAll('#grid .cam').length === 2;",
    );

    // Add a camera with a URL that is not RTSP: refused, the error beside the URL field.
    d.click("#cam-add");
    set(&d, "id", "gate3");
    set(&d, "name", "Gate 3");
    set(&d, "source.kind", "rtsp");
    set(&d, "source.url", "http://10.0.0.9/stream");
    set(&d, "fps", "1");
    set(&d, "geo.lat", "45.05");
    set(&d, "geo.lon", "7.05");
    set(&d, "geo.hfov_deg", "70");
    d.click("#cam-save");
    let err = d.wait(
        "the URL field's error",
        "return document.querySelector('#cam-form .err[data-for=\"source.url\"]').textContent;",
    );
    assert!(err.as_str().unwrap().contains("not a valid URL"), "{err}");
    assert_eq!(
        d.js("return document.querySelector('#cam-form .err[data-for=\"fps\"]').textContent;"),
        ""
    );
    d.screenshot("ui-camera-form-error.png");
    assert!(lookout_server::camera_edit::latest(f.alerts.store())
        .unwrap()
        .is_none());

    // Fixed: saved, listed as added in the UI.
    set(&d, "source.url", "rtsp://10.0.0.9:554/stream1");
    d.click("#cam-save");
    d.wait(
        "the saved message and the new card",
        "return document.querySelector('#cam-msg').textContent.includes('saved as config version') && !!document.querySelector('#grid .cam[data-cam=\"gate3\"]');",
    );
    let msg = d.js("return document.querySelector('#cam-msg').textContent;");
    assert!(
        msg.as_str().unwrap().contains("applies at the next start"),
        "{msg}"
    );
    let rec = lookout_server::camera_edit::latest(f.alerts.store())
        .unwrap()
        .expect("a cameras record");
    assert_eq!(rec.author, "root");
    let added = &rec.body["added"];
    assert_eq!(added.as_array().unwrap().len(), 1, "{}", rec.body);
    assert_eq!(added[0]["id"], "gate3");
    assert_eq!(added[0]["source"]["url"], "rtsp://10.0.0.9:554/stream1");
    assert_eq!(added[0]["fps"], 1.0);
    assert_eq!(added[0]["geo"]["hfov_deg"], 70.0);
    d.wait(
        "the origin of the new card",
        "return document.querySelector('#grid .cam[data-cam=\"gate3\"] .origin').textContent === 'added in the UI';",
    );

    // Disable a file camera from its card: a merge patch of that camera alone.
    d.click("#grid .cam[data-cam=\"tower2\"] .cam-toggle");
    d.wait(
        "tower2 disabled",
        "return document.querySelector('#cam-msg').textContent.includes('Camera tower2 disabled') && document.querySelector('#grid .cam[data-cam=\"tower2\"] .cam-toggle').textContent === 'Enable';",
    );
    let rec = lookout_server::camera_edit::latest(f.alerts.store())
        .unwrap()
        .unwrap();
    assert_eq!(
        rec.body["edits"]["tower2"],
        serde_json::json!({"enabled": false})
    );
    assert_eq!(
        rec.body["added"][0]["id"], "gate3",
        "the added camera stays"
    );
    // Edit the added camera with the form: only what changed is sent.
    d.click("#grid .cam[data-cam=\"gate3\"] .cam-edit");
    d.wait(
        "the edit form filled in",
        "return document.querySelector('#cam-form [name=\"source.url\"]').value === 'rtsp://10.0.0.9:554/stream1';",
    );
    set(&d, "fps", "0.5");
    d.click("#cam-save");
    d.wait(
        "the edit saved",
        "return document.querySelector('#cam-form').hidden && document.querySelector('#cam-msg').textContent.includes('Camera gate3 saved');",
    );
    let rec = lookout_server::camera_edit::latest(f.alerts.store())
        .unwrap()
        .unwrap();
    assert_eq!(rec.body["change"]["patch"], serde_json::json!({"fps": 0.5}));
    assert_eq!(rec.body["added"][0]["fps"], 0.5);
    assert_eq!(
        rec.body["added"][0]["source"]["url"],
        "rtsp://10.0.0.9:554/stream1"
    );

    // The zone editor on tower1's live frame: click four corners.
    d.click("#grid .cam[data-cam=\"tower1\"] .cam-zones");
    d.wait(
        "the live frame in the zone editor",
        "const i = document.querySelector('#zone-img'); return i.complete && i.naturalWidth === 320;",
    );
    d.js("document.querySelector('#zone-editor').scrollIntoView(); return true;");
    let corners = [(0.2, 0.3), (0.6, 0.3), (0.6, 0.8), (0.2, 0.8)];
    for (x, y) in corners {
        d.js(&format!(
            "const s = document.querySelector('#zone-svg'); const r = s.getBoundingClientRect();
             s.dispatchEvent(new MouseEvent('click', {{ bubbles: true, clientX: r.left + {x} * r.width, clientY: r.top + {y} * r.height }}));
             return true;"
        ));
    }
    d.wait(
        "four points and the polygon",
        "return document.querySelectorAll('#zone-svg circle.zone-pt').length === 4 && !!document.querySelector('#zone-svg polygon.zone-new');",
    );
    // The polygon is drawn where it was clicked: magenta inside, the frame outside.
    let rect = d.js(
        "const r = document.querySelector('#zone-svg').getBoundingClientRect(); return [r.left, r.top, r.width, r.height, window.devicePixelRatio];",
    );
    let r: Vec<f64> = rect
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let png = d.screenshot("ui-zone-editor.png");
    let shot = image::load_from_memory(&png).unwrap().to_rgb8();
    let at = |fx: f64, fy: f64| {
        let px = ((r[0] + fx * r[2]) * r[4]) as u32;
        let py = ((r[1] + fy * r[3]) * r[4]) as u32;
        shot.get_pixel(px, py).0
    };
    let magenta = |p: [u8; 3]| p[0] as i32 > p[1] as i32 + 40 && p[2] as i32 > p[1] as i32 + 40;
    for (x, y) in [(0.4, 0.55), (0.25, 0.35), (0.55, 0.75)] {
        let p = at(x, y);
        assert!(magenta(p), "inside the drawn zone at ({x}, {y}): {p:?}");
    }
    for (x, y) in [(0.8, 0.55), (0.4, 0.9), (0.1, 0.5)] {
        let p = at(x, y);
        assert!(!magenta(p), "outside the drawn zone at ({x}, {y}): {p:?}");
    }

    // Name and save: a rules change (the zone list of tower1) in the config history.
    d.js("document.querySelector('#zone-name').value = 'gate'; return true;");
    d.click("#zone-save");
    d.wait(
        "the zone saved",
        "return document.querySelector('#zone-msg').textContent.includes('Zone gate saved');",
    );
    let ov = lookout_server::overlay::latest(f.alerts.store())
        .unwrap()
        .expect("a rules overlay");
    assert_eq!(ov.author, "root");
    let zones = ov.body["patch"]["cameras"]["tower1"]["zones"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", ov.body))
        .clone();
    let names: Vec<&str> = zones.iter().map(|z| z["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["ridge", "gate"], "the file's zone is kept");
    let poly: Vec<(f64, f64)> = zones[1]["polygon"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_f64().unwrap(), p[1].as_f64().unwrap()))
        .collect();
    assert_eq!(poly.len(), 4);
    for ((gx, gy), (wx, wy)) in poly.iter().zip(corners) {
        assert!((gx - wx).abs() < 0.01 && (gy - wy).abs() < 0.01, "{poly:?}");
    }
    // The running rules have it (what the cameras view draws).
    let cams = http(f.addr, "GET", "/api/cameras", Some(ADMIN), None).json();
    let t1 = cams
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "tower1")
        .unwrap();
    assert_eq!(t1["zones"].as_array().unwrap().len(), 2, "{t1}");
    d.screenshot("ui-zone-saved.png");
}
