//! `[server.map] tile_url` in headless Chromium: the basemap comes straight from a tile
//! server (here one on 127.0.0.1 started by the test, drawing each tile in its own colour),
//! the page's Content-Security-Policy lets exactly that origin's images in, and the
//! screenshot shows every visible tile's colour where Leaflet placed it.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::*;

/// The colour of tile `z/x/y`: neighbours always differ.
fn tile_rgb(z: u32, x: u32, y: u32) -> [u8; 3] {
    [
        (40 + (x * 67 + z * 13) % 180) as u8,
        (40 + (y * 89 + z * 29) % 180) as u8,
        (40 + (x * 31 + y * 17 + z * 7) % 180) as u8,
    ]
}

/// A tile server on 127.0.0.1: `GET /tiles/{z}/{x}/{y}.png` → a solid 256×256 PNG of
/// [`tile_rgb`]; anything else 404. Returns its port, the requests served and the paths.
fn tile_server() -> (u16, Arc<AtomicUsize>, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let served = Arc::new(AtomicUsize::new(0));
    let paths = Arc::new(Mutex::new(Vec::new()));
    let (s, p) = (served.clone(), paths.clone());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let (s, p) = (s.clone(), p.clone());
            std::thread::spawn(move || {
                let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(10)));
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    return;
                }
                // Skip the headers.
                let mut h = String::new();
                while reader.read_line(&mut h).is_ok_and(|n| n > 2) {
                    h.clear();
                }
                let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                let zxy: Option<Vec<u32>> = path
                    .strip_prefix("/tiles/")
                    .and_then(|r| r.strip_suffix(".png"))
                    .map(|r| r.split('/').filter_map(|n| n.parse().ok()).collect());
                let resp = match zxy {
                    Some(v) if v.len() == 3 => {
                        let img = image::RgbImage::from_pixel(
                            256,
                            256,
                            image::Rgb(tile_rgb(v[0], v[1], v[2])),
                        );
                        let mut png = std::io::Cursor::new(Vec::new());
                        img.write_to(&mut png, image::ImageFormat::Png).unwrap();
                        let png = png.into_inner();
                        s.fetch_add(1, Ordering::SeqCst);
                        p.lock().unwrap().push(path);
                        let mut r = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            png.len()
                        )
                        .into_bytes();
                        r.extend_from_slice(&png);
                        r
                    }
                    _ => {
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            .to_vec()
                    }
                };
                let _ = conn.write_all(&resp);
            });
        }
    });
    (port, served, paths)
}

#[test]
fn ui_map_draws_the_tiles_of_a_configured_tile_url() {
    let (port, served, paths) = tile_server();
    let dir = tempfile::tempdir().unwrap();
    let f = start_in(
        dir,
        &format!(
            "{CONFIG}\n[server.map]\ntile_url = \"http://127.0.0.1:{port}/tiles/{{z}}/{{x}}/{{y}}.png\"\nattribution = \"Local test tiles\"\n"
        ),
    );
    let info = http(f.addr, "GET", "/api/map", None, None).json();
    assert_eq!(info["basemap"], "url", "{info}");
    // The page lets that origin's images in, and no other.
    let page = http(f.addr, "GET", "/", None, None);
    let csp = page
        .headers
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-security-policy:")
                .map(str::to_string)
        })
        .expect("a CSP header");
    assert!(
        csp.contains(&format!("img-src 'self' blob: http://127.0.0.1:{port}")),
        "{csp}"
    );

    let d = Driver::start();
    d.goto(&format!("http://{}/", f.addr));
    d.click(".tab[data-view=\"map\"]");
    d.wait(
        "the tiles from the tile server",
        "if (!mapState.map) return false; const t = [...document.querySelectorAll('#map img.leaflet-tile')]; \
         return t.length >= 4 && t.every((i) => i.classList.contains('leaflet-tile-loaded') && i.complete && i.naturalWidth === 256) \
           && !document.querySelector('#map .leaflet-zoom-anim') && document.querySelectorAll('#map path.incident').length >= 1;",
    );
    std::thread::sleep(std::time::Duration::from_millis(800)); // tile fade-in
    assert!(
        served.load(Ordering::SeqCst) >= 4,
        "tiles served: {:?}",
        paths.lock().unwrap()
    );
    let attribution =
        d.js("return document.querySelector('#map .leaflet-control-attribution').textContent;");
    assert!(
        attribution.as_str().unwrap().contains("Local test tiles"),
        "{attribution}"
    );

    // The basemap alone: every visible tile shows its own colour where it is drawn.
    let dpr = d.js("return window.devicePixelRatio;").as_f64().unwrap();
    let visible = d.js(
        "document.querySelectorAll('#map .leaflet-overlay-pane, #map .leaflet-tooltip-pane, #map .leaflet-control-container').forEach((e) => e.style.visibility = 'hidden'); \
         const m = document.querySelector('#map').getBoundingClientRect(); \
         const z = Math.round(mapState.map.getZoom()); \
         return [...document.querySelectorAll('#map img.leaflet-tile')].map((i) => { const r = i.getBoundingClientRect(); \
           const k = i.src.match(/\\/tiles\\/(\\d+)\\/(\\d+)\\/(\\d+)\\.png$/); \
           return k ? [+k[1], +k[2], +k[3], Math.max(r.left, m.left + 2), Math.max(r.top, m.top + 2), Math.min(r.right, m.right - 2), Math.min(r.bottom, m.bottom - 2)] : null; }) \
           .filter((t) => t && t[0] === z && t[5] - t[3] > 24 && t[6] - t[4] > 24);",
    );
    let png = d.screenshot("ui-map-tile-url.png");
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
}
