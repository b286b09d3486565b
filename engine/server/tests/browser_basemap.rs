//! The map's two engine-side basemaps in headless Chromium: a PMTiles archive (written by
//! the PMTiles project's Python writer from PNG tiles generated here) drawn tile by tile
//! where Leaflet placed each, and, with no basemap configured, the embedded Natural Earth
//! coastlines drawn where land meets sea (and land filled, open sea not).

mod common;

use std::path::Path;

use common::*;

/// The colour of fixture tile `z/x/y`: neighbours always differ.
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

/// A solid PNG of [`tile_rgb`] for every tile over 44..46 N, 6..8 E at zooms 0..=11 (the
/// fixture cameras' area), as `z/x/y.png`, then a PMTiles archive of them by the
/// third-party writer (`extra`: more writer options). Returns how many tiles.
fn write_archive(dir: &Path, out: &Path, extra: &[&str]) -> usize {
    let mut n = 0;
    for z in 0..=11u32 {
        let (x0, y0) = tile_xy(z, 46.0, 6.0);
        let (x1, y1) = tile_xy(z, 44.0, 8.0);
        for x in x0..=x1 {
            std::fs::create_dir_all(dir.join(format!("{z}/{x}"))).unwrap();
            for y in y0..=y1 {
                let img = image::RgbImage::from_pixel(256, 256, image::Rgb(tile_rgb(z, x, y)));
                img.save(dir.join(format!("{z}/{x}/{y}.png"))).unwrap();
                n += 1;
            }
        }
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let py = manifest.join("../../.venv/bin/python");
    let o = std::process::Command::new(&py)
        .arg(manifest.join("tests/write_pmtiles.py"))
        .arg(dir)
        .arg(out)
        .args(["--attribution", "Fixture PMTiles"])
        .args(extra)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/setup.sh)", py.display()));
    assert!(
        o.status.success(),
        "the pmtiles writer failed (run scripts/setup.sh): {}",
        String::from_utf8_lossy(&o.stderr)
    );
    n
}

fn close(a: [u8; 3], b: [u8; 3], tol: u8) -> bool {
    a.iter().zip(b).all(|(p, q)| p.abs_diff(q) <= tol)
}

#[test]
fn ui_map_draws_the_tiles_of_a_pmtiles_archive() {
    let dir = tempfile::tempdir().unwrap();
    let tiles = write_archive(
        &dir.path().join("tiles"),
        &dir.path().join("basemap.pmtiles"),
        &[],
    );
    assert!(tiles > 200, "{tiles} fixture tiles");
    let f = start_in(
        dir,
        &format!("{CONFIG}\n[server.map]\npmtiles = \"basemap.pmtiles\"\n"),
    );
    let info = http(f.addr, "GET", "/api/map", None, None).json();
    assert_eq!(info["basemap"], "pmtiles", "{info}");
    assert_eq!(info["max_zoom"], 11, "{info}");

    let d = Driver::start();
    d.goto(&format!("http://{}/", f.addr));
    d.click(".tab[data-view=\"map\"]");
    d.wait(
        "the PMTiles tiles",
        "if (!mapState.map) return false; const z = Math.min(Math.round(mapState.map.getZoom()), 11); \
         const t = document.querySelectorAll(`#map img[data-z=\"${z}\"]`); \
         return t.length >= 4 && [...t].every((i) => i.classList.contains('leaflet-tile-loaded') && i.complete) \
           && !document.querySelector('#map .leaflet-zoom-anim') && document.querySelectorAll('#map path.incident').length >= 1;",
    );
    std::thread::sleep(std::time::Duration::from_millis(800)); // tile fade-in
    let attribution =
        d.js("return document.querySelector('#map .leaflet-control-attribution').textContent;");
    assert!(
        attribution.as_str().unwrap().contains("Fixture PMTiles"),
        "{attribution}"
    );
    assert_eq!(
        d.js("return document.querySelectorAll('#map .leaflet-land-pane path').length;"),
        0,
        "no offline coastlines under a basemap"
    );

    // The basemap alone: every visible tile shows its own colour where it is drawn.
    let dpr = d.js("return window.devicePixelRatio;").as_f64().unwrap();
    let visible = d.js(
        "document.querySelectorAll('#map .leaflet-overlay-pane, #map .leaflet-tooltip-pane, #map .leaflet-control-container').forEach((e) => e.style.visibility = 'hidden'); \
         const m = document.querySelector('#map').getBoundingClientRect(); \
         const z = Math.min(Math.round(mapState.map.getZoom()), 11); \
         return [...document.querySelectorAll(`#map img[data-z=\"${z}\"]`)].map((i) => { const r = i.getBoundingClientRect(); \
           return [+i.dataset.z, +i.dataset.x, +i.dataset.y, Math.max(r.left, m.left + 2), Math.max(r.top, m.top + 2), Math.min(r.right, m.right - 2), Math.min(r.bottom, m.bottom - 2)]; }) \
           .filter((t) => t[5] - t[3] > 24 && t[6] - t[4] > 24);",
    );
    let png = d.screenshot("ui-map-pmtiles.png");
    let shot = image::load_from_memory(&png).unwrap().to_rgb8();
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
                close(got, want, 3),
                "tile {v:?} at ({px}, {py}): {got:?}, want {want:?}"
            );
        }
    }
}

/// The map's background (sea) and the land fill, from app.css / app.js.
const SEA: [u8; 3] = [0x10, 0x16, 0x1c];
const LAND: [u8; 3] = [0x1b, 0x24, 0x2d];

#[test]
fn ui_map_without_basemap_draws_the_coastlines_where_land_meets_sea() {
    let f = start();
    let info = http(f.addr, "GET", "/api/map", None, None).json();
    assert_eq!(info["basemap"], "none", "{info}");
    assert!(info["coastlines"]["missing"].is_null(), "{info}");

    let d = Driver::start();
    d.goto(&format!("http://{}/", f.addr));
    d.click(".tab[data-view=\"map\"]");
    d.wait(
        "the offline map",
        "return !!(mapState.map && mapState.land && document.querySelectorAll('#map path.graticule').length >= 4);",
    );
    // Iberia: Portugal's Atlantic coast and Spain's Mediterranean one cross 40° N at
    // 8.90° W (near Figueira da Foz) and 0.03° E (Castellón), Natural Earth 1:50m.
    d.js("mapState.map.setView([40, -4], 6, { animate: false }); return true;");
    d.wait(
        "the coastlines at the new view",
        "return !document.querySelector('#map .leaflet-zoom-anim') && mapState.map.getZoom() === 6 \
           && document.querySelectorAll('#map .leaflet-land-pane path.land').length >= 1;",
    );
    std::thread::sleep(std::time::Duration::from_millis(500));
    let attribution =
        d.js("return document.querySelector('#map .leaflet-control-attribution').textContent;");
    assert!(
        attribution.as_str().unwrap().contains("Natural Earth"),
        "{attribution}"
    );
    let msg = d.js("return document.querySelector('#map-msg').textContent;");
    assert!(msg.as_str().unwrap().contains("coastlines"), "{msg}");
    let dpr = d.js("return window.devicePixelRatio;").as_f64().unwrap();
    // The land alone: graticule, cameras, labels and controls hidden.
    let at = d.js(
        "document.querySelectorAll('#map .leaflet-overlay-pane, #map .leaflet-marker-pane, #map .leaflet-tooltip-pane, #map .leaflet-control-container').forEach((e) => e.style.visibility = 'hidden'); \
         const m = document.querySelector('#map').getBoundingClientRect(); \
         const p = (lat, lon) => { const c = mapState.map.latLngToContainerPoint([lat, lon]); return [m.left + c.x, m.top + c.y]; }; \
         return { madrid: p(40.42, -3.70), zaragoza: p(41.65, -0.88), atlantic: p(40, -11), balearic: p(40, 1.5), \
                  row_w: p(40, -10.5), row_e: p(40, 1.8), pt: p(40, -8.903), es: p(40, 0.03), deg: p(40, -3)[0] - p(40, -4)[0] };",
    );
    let png = d.screenshot("ui-map-coastlines.png");
    let shot = image::load_from_memory(&png).unwrap().to_rgb8();
    let px = |k: &str| -> (f64, f64) {
        (
            at[k][0].as_f64().unwrap() * dpr,
            at[k][1].as_f64().unwrap() * dpr,
        )
    };
    let get = |(x, y): (f64, f64)| shot.get_pixel(x as u32, y as u32).0;
    for k in ["madrid", "zaragoza"] {
        assert!(close(get(px(k)), LAND, 2), "{k} is land: {:?}", get(px(k)));
    }
    for k in ["atlantic", "balearic"] {
        assert!(
            close(get(px(k)), SEA, 2),
            "{k} is open sea: {:?}",
            get(px(k))
        );
    }
    // Along 40° N from 10.5° W to 1.8° E: coastline pixels (far brighter than land or sea)
    // only at the two coasts, and at both.
    let deg = at["deg"].as_f64().unwrap() * dpr;
    let tol = 0.15 * deg;
    let coasts = [px("pt").0, px("es").0];
    let (x0, x1, y) = (px("row_w").0 as u32, px("row_e").0 as u32, px("pt").1);
    let mut hits = [0usize; 2];
    let mut strays = Vec::new();
    for x in x0..=x1 {
        // The 1-pixel stroke, anti-aliased: look one device pixel above and below too.
        let lit = (-1i32..=1).any(|dy| {
            let c = shot.get_pixel(x, (y as i32 + dy) as u32).0;
            c[2] > 0x48 && c[1] > 0x40
        });
        if !lit {
            continue;
        }
        match coasts.iter().position(|c| (f64::from(x) - c).abs() <= tol) {
            Some(i) => hits[i] += 1,
            None => strays.push(x),
        }
    }
    assert!(
        hits[0] > 0 && hits[1] > 0,
        "coastline pixels at the Portuguese and Spanish coasts (x {coasts:?}, ±{tol:.1} px): {hits:?}"
    );
    assert!(
        strays.is_empty(),
        "coastline pixels away from the coasts on 40° N (open sea or inland): {strays:?}"
    );
}

#[test]
fn ui_map_falls_back_to_the_coastlines_and_says_why_for_a_vector_archive() {
    let dir = tempfile::tempdir().unwrap();
    write_archive(
        &dir.path().join("tiles"),
        &dir.path().join("vector.pmtiles"),
        &["--tile-type", "mvt"],
    );
    let f = start_in(
        dir,
        &format!("{CONFIG}\n[server.map]\npmtiles = \"vector.pmtiles\"\n"),
    );
    let d = Driver::start();
    d.goto(&format!("http://{}/", f.addr));
    d.click(".tab[data-view=\"map\"]");
    let msg = d.wait(
        "the offline map with the reason",
        "return mapState.map && mapState.land && document.querySelectorAll('#map .leaflet-land-pane path.land').length >= 1 \
           ? document.querySelector('#map-msg').textContent : '';",
    );
    let msg = msg.as_str().unwrap();
    assert!(
        msg.contains("vector.pmtiles") && msg.contains("vector tiles (MVT)"),
        "{msg}"
    );
    assert!(msg.contains("offline basemap"), "{msg}");
    assert_eq!(
        d.js("return document.querySelectorAll('#map img').length;"),
        0,
        "no tiles requested from an archive the engine refused"
    );
    d.screenshot("ui-map-pmtiles-refused.png");
}
