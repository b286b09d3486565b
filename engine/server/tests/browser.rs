//! The web UI in headless Chromium, driven over WebDriver (chromedriver), against a real
//! server with a seeded store: an incident appears live, is acknowledged, the tuning slider
//! changes the alarm count to what the replay endpoint says, and "apply" changes /api/config;
//! a mask proposed from clustered false alarms is drawn, shows the API's count and applies;
//! the map (Leaflet) draws an MBTiles basemap generated here, the cameras' cones and the
//! incidents, and an incident clicked on the map opens its detail.
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
    d.wait("the map", "return document.querySelectorAll('#map path.cone').length >= 2 && !!document.querySelector('#map path.incident') && !!document.querySelector('#map path.bearing');");
    // No [server.map]: the offline graticule, labelled, and no tiles.
    let grat = d.wait(
        "the offline graticule",
        "const n = document.querySelectorAll('#map path.graticule').length, l = [...document.querySelectorAll('#map .grat-label')].map((e) => e.textContent);          return n >= 4 && l.length >= 4 ? [n, l, document.querySelectorAll('#map img').length] : '';",
    );
    let labels: Vec<String> = grat[1]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect();
    assert!(
        labels.iter().any(|l| l.ends_with("°N")) && labels.iter().any(|l| l.ends_with("°E")),
        "{labels:?}"
    );
    assert_eq!(grat[2], 0, "no basemap tiles offline");
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

/// The colour of fixture tile `z/x/y` (XYZ): neighbours, and a tile and its TMS mirror
/// (`2^z - 1 - y`), always differ.
fn tile_rgb(z: u32, x: u32, y: u32) -> [u8; 3] {
    [
        (40 + (x * 67 + z * 13) % 180) as u8,
        (40 + (y * 89 + z * 29) % 180) as u8,
        (40 + (x * 31 + y * 17 + z * 7) % 180) as u8,
    ]
}

fn tile_xy(z: u32, lat: f64, lon: f64) -> (u32, u32) {
    let n = f64::from(1u32 << z);
    let x = (lon + 180.0) / 360.0 * n;
    let r = lat.to_radians();
    let y = (1.0 - (r.tan() + 1.0 / r.cos()).ln() / std::f64::consts::PI) / 2.0 * n;
    (x as u32, y as u32)
}

/// An MBTiles file (the spec's schema: `metadata`, `tiles` with TMS rows) with a solid PNG
/// tile of [`tile_rgb`] for every tile over 44..46 N, 6..8 E at zooms 0..=11 (0/0/0 as
/// JPEG, to check the content type). Returns how many tiles it holds.
fn write_mbtiles(path: &std::path::Path) -> usize {
    let db = rusqlite::Connection::open(path).unwrap();
    db.execute_batch(
        "CREATE TABLE metadata (name TEXT, value TEXT);
         CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER, tile_data BLOB);
         CREATE UNIQUE INDEX tile_index ON tiles (zoom_level, tile_column, tile_row);
         INSERT INTO metadata VALUES ('name', 'fixture'), ('format', 'png'), ('minzoom', '0'),
           ('maxzoom', '11'), ('bounds', '6,44,8,46'), ('attribution', 'Fixture tiles');",
    )
    .unwrap();
    let mut n = 0;
    for z in 0..=11u32 {
        let (x0, y0) = tile_xy(z, 46.0, 6.0);
        let (x1, y1) = tile_xy(z, 44.0, 8.0);
        for x in x0..=x1 {
            for y in y0..=y1 {
                let img = image::RgbImage::from_pixel(256, 256, image::Rgb(tile_rgb(z, x, y)));
                let mut bytes = std::io::Cursor::new(Vec::new());
                let format = if z == 0 {
                    image::ImageFormat::Jpeg
                } else {
                    image::ImageFormat::Png
                };
                img.write_to(&mut bytes, format).unwrap();
                db.execute(
                    "INSERT INTO tiles VALUES (?1, ?2, ?3, ?4)",
                    (z, x, (1u32 << z) - 1 - y, bytes.into_inner()),
                )
                .unwrap();
                n += 1;
            }
        }
    }
    n
}

#[test]
fn ui_map_draws_mbtiles_basemap_cameras_incidents_and_hotspots() {
    let dir = tempfile::tempdir().unwrap();
    let tiles = write_mbtiles(&dir.path().join("basemap.mbtiles"));
    assert!(tiles > 200, "{tiles} fixture tiles");
    let f = start_in(
        dir,
        &format!("{CONFIG}\n[server.map]\nmbtiles = \"basemap.mbtiles\"\n"),
    );
    let now = chrono::Utc::now();
    // A second fire, triangulated with an uncertainty ellipse, and two hotspots of different
    // ages near it.
    let mut located = smoke_incident("map-2", "tower2", now, 0.8);
    located.location = Some(lookout_core::Location {
        point: lookout_core::GeoPoint::new(45.03, 7.13),
        method: lookout_core::LocationMethod::Triangulated,
        ellipse: Some(lookout_core::UncertaintyEllipse {
            semi_major_m: 1500.0,
            semi_minor_m: 600.0,
            orientation_deg: 30.0,
        }),
    });
    f.alerts.record_incident(&located, None).unwrap();
    for (hours, lon) in [(1, 7.15), (30, 7.16)] {
        f.alerts
            .record_hotspot(&lookout_core::Hotspot {
                source: lookout_core::HotspotSource::ViirsSnpp,
                location: lookout_core::GeoPoint::new(45.04, lon),
                scan_km: 0.4,
                track_km: 0.4,
                acquired_at: now - chrono::Duration::hours(hours),
                confidence: lookout_core::HotspotConfidence::Nominal,
                frp: Some(12.0),
                brightness_k: None,
                daynight: Some('D'),
                fire_type: Some(0),
            })
            .unwrap();
    }

    // The tiles over HTTP: XYZ rows flipped to the file's TMS rows, types by content, 404s.
    let info = http(f.addr, "GET", "/api/map", None, None).json();
    assert_eq!(info["basemap"], "mbtiles", "{info}");
    assert_eq!(info["max_zoom"], 11, "{info}");
    let (x, y) = tile_xy(11, 45.0, 7.0);
    let t = http(f.addr, "GET", &format!("/api/tiles/11/{x}/{y}"), None, None);
    assert_eq!(t.status, 200);
    assert!(
        t.headers.contains("content-type: image/png"),
        "{}",
        t.headers
    );
    let px = image::load_from_memory(&t.body).unwrap().to_rgb8();
    assert_eq!(
        px.get_pixel(128, 128).0,
        tile_rgb(11, x, y),
        "XYZ {x}/{y} at zoom 11"
    );
    let t = http(f.addr, "GET", "/api/tiles/0/0/0", None, None);
    assert!(
        t.headers.contains("content-type: image/jpeg"),
        "{}",
        t.headers
    );
    for missing in [
        "/api/tiles/11/0/0",
        "/api/tiles/40/0/0",
        "/api/tiles/3/9/1",
        "/api/tiles/a/b/c",
    ] {
        assert_eq!(
            http(f.addr, "GET", missing, None, None).status,
            404,
            "{missing}"
        );
    }
    let js = http(f.addr, "GET", "/vendor/leaflet/leaflet.js", None, None);
    assert_eq!(js.status, 200, "{}", js.text());
    assert!(js.text().contains("Leaflet"));

    let d = Driver::start();
    d.goto(&format!("http://{}/", f.addr));
    d.click(".tab[data-view=\"map\"]");
    // Every tile of the current zoom loaded, no zoom animation running.
    d.wait(
        "the basemap tiles",
        "if (!mapState.map) return false; const z = Math.min(Math.round(mapState.map.getZoom()), 11); \
         const t = document.querySelectorAll(`#map img[data-z=\"${z}\"]`); \
         return t.length >= 4 && [...t].every((i) => i.classList.contains('leaflet-tile-loaded') && i.complete) \
           && !document.querySelector('#map .leaflet-zoom-anim') && document.querySelectorAll('#map path.incident').length === 4;",
    );
    std::thread::sleep(std::time::Duration::from_millis(800)); // tile fade-in
    let counts = d.js(
        "const n = (s) => document.querySelectorAll('#map ' + s).length; \
         return [n('path.camera'), n('path.cone'), n('path.heading'), n('path.incident'), n('path.ellipse'), n('path.bearing'), \
                 n('path.hotspot.age-0'), n('path.hotspot.age-3'), n('.cam-label')];",
    );
    // The fixture's three judged fires (one spot) and map-2.
    assert_eq!(
        counts,
        json!([2, 2, 2, 4, 1, 4, 1, 1, 2]),
        "cameras, cones, headings, incidents, ellipse, bearings, hotspots by age, labels"
    );
    let fills = d.js("return [...document.querySelectorAll('#map path.hotspot')].map((p) => p.getAttribute('fill')).sort();");
    assert_eq!(
        fills,
        json!(["#9a8f80", "#ff2d20"]),
        "hotspots coloured by age"
    );

    // The basemap alone (overlays hidden): every visible tile shows its own colour where
    // it is drawn.
    let dpr = d.js("return window.devicePixelRatio;").as_f64().unwrap();
    let visible = d.js(
        "document.querySelectorAll('#map .leaflet-overlay-pane, #map .leaflet-tooltip-pane, #map .leaflet-control-container').forEach((e) => e.style.visibility = 'hidden'); \
         const m = document.querySelector('#map').getBoundingClientRect(); \
         const z = Math.min(Math.round(mapState.map.getZoom()), 11); \
         return [...document.querySelectorAll(`#map img[data-z=\"${z}\"]`)].map((i) => { const r = i.getBoundingClientRect(); \
           return [+i.dataset.z, +i.dataset.x, +i.dataset.y, Math.max(r.left, m.left + 2), Math.max(r.top, m.top + 2), Math.min(r.right, m.right - 2), Math.min(r.bottom, m.bottom - 2)]; }) \
           .filter((t) => t[5] - t[3] > 24 && t[6] - t[4] > 24);",
    );
    let png = d.screenshot("ui-map-basemap.png");
    let shot = image::load_from_memory(&png).unwrap().to_rgb8();
    let close = |a: [u8; 3], b: [u8; 3]| a.iter().zip(b).all(|(p, q)| p.abs_diff(q) <= 3);
    let visible = visible.as_array().unwrap();
    assert!(visible.len() >= 4, "tiles in view: {visible:?}");
    for t in visible {
        let v: Vec<f64> = t
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_f64().unwrap())
            .collect();
        let want = tile_rgb(v[0] as u32, v[1] as u32, v[2] as u32);
        for (fx, fy) in [(0.5, 0.5), (0.2, 0.2), (0.8, 0.8)] {
            let px = ((v[3] + (v[5] - v[3]) * fx) * dpr) as u32;
            let py = ((v[4] + (v[6] - v[4]) * fy) * dpr) as u32;
            let got = shot.get_pixel(px, py).0;
            assert!(
                close(got, want),
                "tile {v:?} at ({px}, {py}): {got:?}, want {want:?}"
            );
        }
    }

    // With the overlays: the camera markers and fires drawn where their DOM says.
    let centres = d.js(
        "document.querySelectorAll('#map .leaflet-overlay-pane, #map .leaflet-tooltip-pane, #map .leaflet-control-container').forEach((e) => e.style.visibility = ''); \
         const c = (s) => [...document.querySelectorAll('#map ' + s)].map((p) => { const r = p.getBoundingClientRect(); return [(r.left + r.right) / 2, (r.top + r.bottom) / 2]; }); \
         return [c('path.camera'), c('path.incident')];",
    );
    let png = d.screenshot("ui-map-mbtiles.png");
    let shot = image::load_from_memory(&png).unwrap().to_rgb8();
    for (i, colour) in [(0, [0x5a, 0xc8, 0xfa]), (1, [0xff, 0x3b, 0x30])] {
        for c in centres[i].as_array().unwrap() {
            let (x, y) = (c[0].as_f64().unwrap() * dpr, c[1].as_f64().unwrap() * dpr);
            let got = shot.get_pixel(x as u32, y as u32).0;
            assert!(
                close(got, colour),
                "marker at ({x}, {y}): {got:?}, want {colour:?}"
            );
        }
    }

    // An incident on the map opens its detail.
    d.click("#map path.incident[data-incident=\"map-2\"]");
    let shown = d.wait(
        "the incident detail from the map",
        "const r = document.querySelector('#incidents tr.sel'); return document.querySelector('#view-incidents').classList.contains('active') && r && document.querySelector('#detail h3') ? r.dataset.id : '';",
    );
    assert_eq!(shown, "map-2");
}

#[test]
fn ui_tuning_curve_is_the_replay_and_its_handle_drags_the_threshold() {
    let f = start();
    let d = Driver::start();
    d.goto(&format!("http://{}/", f.addr));
    d.click(".tab[data-view=\"tuning\"]");
    let n = d.wait(
        "the tuning curve",
        "const n = document.querySelectorAll('#tune-curve circle.pt').length; return document.querySelector('#tune-curve circle.handle') && n ? n : '';",
    );
    let (k, nn) = (
        d.js("return +document.querySelector('#tune-k').value;"),
        d.js("return +document.querySelector('#tune-n').value;"),
    );
    let api = http(
        f.addr,
        "GET",
        &format!("/api/tuning/curve?camera=tower1&class=smoke&k={k}&n={nn}"),
        None,
        None,
    )
    .json();
    let points = api["points"].as_array().unwrap();
    assert_eq!(n, points.len(), "{api}");
    for bad in [
        "/api/tuning/curve?camera=tower1&class=smoke&k=3",
        "/api/tuning/curve?camera=nope&class=smoke",
        "/api/tuning/curve?camera=tower1&class=smoke&k=6&n=5",
    ] {
        assert_eq!(http(f.addr, "GET", bad, None, None).status, 422, "{bad}");
    }
    assert!(points.len() >= 10, "{api}");
    // The fixture's episodes score 0.3 .. 0.92 (two confirmed): more alarms and more recall
    // at lower thresholds, none above 0.92; the running threshold is a point too.
    let at = |t: f64| {
        points
            .iter()
            .find(|p| (p["threshold"].as_f64().unwrap() - t).abs() < 1e-3)
            .unwrap()
    };
    assert_eq!(at(0.2)["alarms"], 6, "{api}");
    assert_eq!(at(0.2)["recall"], 1.0, "{api}");
    let running = api["current"].as_f64().unwrap();
    assert_eq!(at(running)["alarms"], 4, "{api}");
    assert_eq!(at(0.9)["alarms"], 1, "{api}");
    assert_eq!(at(0.9)["recall"], 0.5, "{api}");
    assert_eq!(at(0.95)["alarms"], 0, "{api}");
    // Each drawn point is the API's point, placed by its values: x grows with alarms/day,
    // y (down) shrinks with recall.
    let drawn = d.js(
        "return [...document.querySelectorAll('#tune-curve circle.pt')].map((c) => [+c.dataset.threshold, +c.dataset.alarmsPerDay, c.dataset.recall === '' ? null : +c.dataset.recall, +c.getAttribute('cx'), +c.getAttribute('cy')]);",
    );
    let drawn = drawn.as_array().unwrap();
    for (p, c) in points.iter().zip(drawn) {
        assert!((p["threshold"].as_f64().unwrap() - c[0].as_f64().unwrap()).abs() < 1e-3);
        assert!((p["alarms_per_day"].as_f64().unwrap() - c[1].as_f64().unwrap()).abs() < 1e-6);
        assert_eq!(p["recall"].as_f64(), c[2].as_f64(), "{p} {c}");
    }
    for a in drawn {
        for b in drawn {
            let (ax, bx) = (a[1].as_f64().unwrap(), b[1].as_f64().unwrap());
            let (ar, br) = (a[2].as_f64().unwrap(), b[2].as_f64().unwrap());
            if ax < bx {
                assert!(a[3].as_f64() < b[3].as_f64(), "x order: {a} {b}");
            }
            if ar < br {
                assert!(a[4].as_f64() > b[4].as_f64(), "y order: {a} {b}");
            }
        }
    }
    // The running threshold is ringed.
    let current = http(
        f.addr,
        "GET",
        "/api/tuning/current?camera=tower1&class=smoke",
        None,
        None,
    )
    .json();
    let ring =
        d.js("return document.querySelector('#tune-curve circle.current').dataset.threshold;");
    assert_eq!(
        ring,
        format!("{:.2}", current["threshold"].as_f64().unwrap())
    );

    // In the screenshot: the handle's colour at its centre, the curve's along a segment.
    d.js("document.querySelector('#tune-curve').scrollIntoView({block: 'center'}); return 1;");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let geo = d.js(
        "const c = (e) => { const r = e.getBoundingClientRect(); return [(r.left + r.right) / 2, (r.top + r.bottom) / 2]; }; \
         const pts = [...document.querySelectorAll('#tune-curve circle.pt')]; \
         const lo = pts.find((p) => p.dataset.threshold === '0.20'), hi = pts.find((p) => p.dataset.threshold === '0.95'); \
         return [c(document.querySelector('#tune-curve circle.handle')), c(lo), c(hi), window.devicePixelRatio];",
    );
    let xy = |v: &serde_json::Value| (v[0].as_f64().unwrap(), v[1].as_f64().unwrap());
    let dpr = geo[3].as_f64().unwrap();
    let png = d.screenshot("ui-tuning-curve.png");
    let shot = image::load_from_memory(&png).unwrap().to_rgb8();
    let near = |x: f64, y: f64, want: [u8; 3], r: i64| {
        (-r..=r).any(|dy| {
            (-r..=r).any(|dx| {
                let (px, py) = ((x * dpr) as i64 + dx, (y * dpr) as i64 + dy);
                let p = shot.get_pixel(px as u32, py as u32).0;
                p.iter().zip(want).all(|(a, b)| a.abs_diff(b) <= 12)
            })
        })
    };
    let (hx, hy) = xy(&geo[0]);
    assert!(
        near(hx, hy, [0x5a, 0xc8, 0xfa], 1),
        "handle colour at ({hx}, {hy})"
    );
    let (lx, ly) = xy(&geo[1]);
    assert!(
        near(lx, ly, [0xff, 0x8a, 0x3d], 1),
        "point 0.2 colour at ({lx}, {ly})"
    );

    // Drag the handle to the 0.95 point (no alarms): the slider follows and the replay of
    // that setting is shown.
    let (tx, ty) = xy(&geo[2]);
    d.cmd(
        "POST",
        "/actions",
        json!({"actions": [{"type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"}, "actions": [
            {"type": "pointerMove", "duration": 0, "origin": "viewport", "x": hx.round() as i64, "y": hy.round() as i64},
            {"type": "pointerDown", "button": 0},
            {"type": "pointerMove", "duration": 150, "origin": "viewport", "x": ((hx + tx) / 2.0).round() as i64, "y": ((hy + ty) / 2.0).round() as i64},
            {"type": "pointerMove", "duration": 150, "origin": "viewport", "x": tx.round() as i64, "y": ty.round() as i64},
            {"type": "pointerUp", "button": 0}]}]}),
    );
    let shown = d.wait(
        "the replay at the dragged threshold",
        "const e = document.querySelector('#tune-alarms'); return document.querySelector('#tune-threshold').value === '0.95' && e.dataset.threshold === '0.95' ? e.textContent : '';",
    );
    let replay = http(f.addr, "POST", "/api/tuning/replay", None, Some(&json!({"camera": "tower1", "class": "smoke", "threshold": 0.95, "persistence": {"k": k, "n": nn}}).to_string())).json();
    assert_eq!(shown, replay["alarms"].to_string());
    assert_eq!(shown, "0");
    let handle = d.js("const h = document.querySelector('#tune-curve circle.handle'), p = [...document.querySelectorAll('#tune-curve circle.pt')].find((p) => p.dataset.threshold === '0.95'); return [h.dataset.threshold, h.getAttribute('cx') === p.getAttribute('cx') && h.getAttribute('cy') === p.getAttribute('cy')];");
    assert_eq!(handle, json!(["0.95", true]));
    d.screenshot("ui-tuning-curve-dragged.png");
}
