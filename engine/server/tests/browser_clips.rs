//! An incident's clip in the UI, in headless Chromium against a real server: the MP4 (an
//! H.264 file made here with ffmpeg, where the engine's clip writer puts it) is served with
//! range requests, plays in the incident view (its time advances, the screenshot shows
//! video pixels), and the recorded frame results are drawn over it and as a timeline.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use common::*;
use lookout_core::{BBox, ClipInfo, Detection, FrameResult, StageMsg};

/// A GET with a `Range` header: (status, head, body).
fn get_range(addr: SocketAddr, path: &str, range: &str) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nRange: {range}\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head, buf[end + 4..].to_vec())
}

#[test]
fn ui_incident_clip_plays_with_its_boxes_timeline() {
    let f = start();
    let base = format!("http://{}", f.addr);
    let t0 = chrono::Utc::now() - chrono::Duration::minutes(5);
    let inc = smoke_incident("clip-1", "tower1", t0 + chrono::Duration::seconds(2), 0.9);
    f.alerts.record_incident(&inc, None).unwrap();

    // The clip where the clip writer puts it, and its description.
    let path = f.alerts.clip_path("clip-1");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let out = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
        ])
        .args(["testsrc=size=640x360:rate=25", "-t", "6", "-c:v", "libx264"])
        .args(["-pix_fmt", "yuv420p", "-g", "25", "-movflags", "+faststart"])
        .arg(&path)
        .output()
        .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info = ClipInfo {
        incident: "clip-1".into(),
        camera: "tower1".into(),
        at: t0 + chrono::Duration::seconds(2),
        start: t0,
        duration_s: 6.0,
        codec: "video/x-h264".into(),
        remuxed: true,
        packets: 150,
        bytes: 0,
    };
    std::fs::write(
        path.with_extension("json"),
        serde_json::to_vec(&info).unwrap(),
    )
    .unwrap();
    // Frame results during the clip: a plume growing for 12 analysed frames.
    for i in 0..12u64 {
        let g = i as f32 * 8.0;
        f.alerts
            .record_frame_result(&StageMsg::Frame(FrameResult {
                camera: "tower1".into(),
                seq: 10_000 + i,
                captured_at: t0 + chrono::Duration::milliseconds(i as i64 * 500),
                preset: None,
                width: 640,
                height: 360,
                model: "smoke".into(),
                detections: vec![Detection {
                    class: "smoke".into(),
                    class_id: 0,
                    score: 0.4 + i as f32 * 0.04,
                    bbox: BBox::new(200.0 - g, 150.0 - g, 300.0 + g, 220.0 + g),
                    role: None,
                }],
            }))
            .unwrap();
    }

    // The API: boxes timeline in clip time, the clip whole and in ranges.
    let tl = http(
        f.addr,
        "GET",
        "/api/incidents/clip-1/clip/boxes",
        None,
        None,
    );
    assert_eq!(tl.status, 200, "{}", tl.text());
    let tl = tl.json();
    assert_eq!(tl["frames"].as_array().unwrap().len(), 12, "{tl}");
    assert_eq!(tl["frames"][3]["t"], 1.5);
    assert_eq!(tl["clip"]["camera"], "tower1");
    let file = std::fs::read(&path).unwrap();
    let whole = http(f.addr, "GET", "/api/incidents/clip-1/clip", None, None);
    assert_eq!(whole.status, 200);
    assert_eq!(whole.body, file);
    assert!(whole
        .headers
        .to_ascii_lowercase()
        .contains("accept-ranges: bytes"));
    let (st, head, body) = get_range(f.addr, "/api/incidents/clip-1/clip", "bytes=100-199");
    assert_eq!(st, 206, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("content-range: bytes 100-199/{}", file.len())),
        "{head}"
    );
    assert_eq!(body, file[100..200]);
    let (st, _, body) = get_range(f.addr, "/api/incidents/clip-1/clip", "bytes=-50");
    assert_eq!((st, body.as_slice()), (206, &file[file.len() - 50..]));
    let (st, head, _) = get_range(
        f.addr,
        "/api/incidents/clip-1/clip",
        &format!("bytes={}-", file.len()),
    );
    assert_eq!(st, 416, "{head}");
    let none = http(f.addr, "GET", "/api/incidents/past-5/clip", None, None);
    assert_eq!(none.status, 404, "an incident without a clip");
    assert_eq!(none.json()["error"]["code"], "not_found");
    let none = http(f.addr, "GET", "/api/incidents/nope/clip/boxes", None, None);
    assert_eq!(none.status, 404, "no such incident");

    // The UI: open the incident; the clip plays with the boxes over it.
    let d = Driver::start();
    d.goto(&format!("{base}/"));
    d.wait(
        "the incident row",
        "return !!document.querySelector('tr[data-id=\"clip-1\"]');",
    );
    d.click("tr[data-id=\"clip-1\"]");
    d.wait(
        "the clip playing",
        "const v = document.querySelector('#clip-video'); return !!v && !v.paused && v.readyState >= 3 && v.currentTime > 0.8;",
    );
    let t1 = d
        .js("return document.querySelector('#clip-video').currentTime;")
        .as_f64()
        .unwrap();
    let t2 = d
        .wait(
            "the clip's time to advance",
            &format!("const t = document.querySelector('#clip-video').currentTime; return t > {t1} + 0.3 || t < {t1} - 1 ? t : '';"),
        )
        .as_f64()
        .unwrap();
    assert!(t2 != t1, "{t1} → {t2}");
    let v = d.js("const v = document.querySelector('#clip-video'); return [v.videoWidth, v.videoHeight, v.duration];");
    assert_eq!(
        (v[0].as_u64(), v[1].as_u64()),
        (Some(640), Some(360)),
        "{v}"
    );
    assert!((v[2].as_f64().unwrap() - 6.0).abs() < 0.2, "{v}");

    // Boxes over the video: the overlay has drawn the frame's box (pixels in the smoke
    // colour), and the timeline has a bar per analysed frame.
    let drawn = d.wait(
        "boxes drawn over the video",
        "const c = document.querySelector('#clip-boxes'); if (!c || !c.width || c.dataset.boxes !== '1') return ''; \
         const p = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0; \
         for (let i = 0; i < p.length; i += 4) if (p[i + 3] > 200 && p[i] > 200 && p[i + 1] > 200 && p[i + 2] > 200) n++; return n > 100 ? n : '';",
    );
    assert!(drawn.as_u64().unwrap() > 100, "box outline pixels: {drawn}");
    let bars = d.js(
        "const c = document.querySelector('#clip-timeline'); const g = c.getContext('2d'); \
         const p = g.getImageData(0, 0, c.width, c.height).data; const cols = new Set(); \
         for (let x = 0; x < c.width; x++) { const i = ((c.height - 2) * c.width + x) * 4; if (p[i] === 0xe0 && p[i + 1] === 0xe0 && p[i + 2] === 0xe0) cols.add(x); } \
         return [c.dataset.frames, cols.size];",
    );
    assert_eq!(bars[0], "12", "{bars}");
    assert!(
        bars[1].as_u64().unwrap() >= 12,
        "timeline bar columns: {bars}"
    );

    // The screenshot shows video content where the video element is (the test pattern's
    // colours, not a black or empty box).
    d.js("document.querySelector('#clip-video').pause(); return true;");
    let rect = d.js("const r = document.querySelector('#clip-video').getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom, window.devicePixelRatio];");
    let r: Vec<f64> = rect
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let png = d.screenshot("ui-incident-clip.png");
    let shot = image::load_from_memory(&png).unwrap().to_rgb8();
    let mut colours = std::collections::HashSet::new();
    let (x0, y0, x1, y1) = (r[0] * r[4], r[1] * r[4], r[2] * r[4], r[3] * r[4]);
    assert!(x1 - x0 > 100.0 && y1 - y0 > 50.0, "video element {r:?}");
    for j in 0..20 {
        for i in 0..20 {
            let x = x0 + (x1 - x0) * (i as f64 + 0.5) / 20.0;
            let y = y0 + (y1 - y0) * 0.6 * (j as f64 + 0.5) / 20.0;
            if (x as u32) < shot.width() && (y as u32) < shot.height() {
                let p = shot.get_pixel(x as u32, y as u32).0;
                colours.insert([p[0] / 32, p[1] / 32, p[2] / 32]);
            }
        }
    }
    assert!(
        colours.len() >= 6,
        "the video area shows {} colour classes: {colours:?}",
        colours.len()
    );
}

/// An H.264 MP4 of the test pattern at `path`, and its description.
fn make_clip(path: &std::path::Path, info: &ClipInfo, size: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let out = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg(format!("testsrc=size={size}:rate=25"))
        .args(["-t", "4", "-c:v", "libx264", "-pix_fmt", "yuv420p"])
        .args(["-g", "25", "-movflags", "+faststart"])
        .arg(path)
        .output()
        .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(
        path.with_extension("json"),
        serde_json::to_vec(info).unwrap(),
    )
    .unwrap();
}

#[test]
fn a_multi_camera_incident_has_a_clip_per_camera_and_the_ui_picks_one() {
    let f = start();
    let base = format!("http://{}", f.addr);
    let t0 = chrono::Utc::now() - chrono::Duration::minutes(5);
    // Fusion joined the events of two cameras into one incident.
    let mut inc = smoke_incident("multi-1", "tower1", t0 + chrono::Duration::seconds(2), 0.9);
    let mut second = inc.events[0].clone();
    second.id = "multi-1-smoke-2".into();
    second.camera = "tower2".into();
    second.first_seen = t0 + chrono::Duration::seconds(3);
    inc.events.push(second);
    inc.cameras.push("tower2".into());
    f.alerts.record_incident(&inc, None).unwrap();

    // Where the clip writer puts them: the first camera's at the incident's clip path,
    // the other's beside it; different sizes tell them apart in the browser.
    let info = |camera: &str, at_s: i64| ClipInfo {
        incident: "multi-1".into(),
        camera: camera.into(),
        at: t0 + chrono::Duration::seconds(at_s),
        start: t0,
        duration_s: 4.0,
        codec: "video/x-h264".into(),
        remuxed: true,
        packets: 100,
        bytes: 0,
    };
    let first = f.alerts.clip_path("multi-1");
    let other = f.alerts.camera_clip_path("multi-1", "tower2");
    assert_ne!(first, other);
    make_clip(&first, &info("tower1", 2), "640x360");
    make_clip(&other, &info("tower2", 3), "320x240");

    // The list, each clip by camera, the old URL still the first camera's.
    let list = http(f.addr, "GET", "/api/incidents/multi-1/clips", None, None);
    assert_eq!(list.status, 200, "{}", list.text());
    let list = list.json();
    let cams: Vec<&str> = list["clips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["camera"].as_str().unwrap())
        .collect();
    assert_eq!(cams, ["tower1", "tower2"], "{list}");
    let get = |p: &str| http(f.addr, "GET", p, None, None);
    assert_eq!(
        get("/api/incidents/multi-1/clip").body,
        std::fs::read(&first).unwrap()
    );
    assert_eq!(
        get("/api/incidents/multi-1/clip?camera=tower1").body,
        std::fs::read(&first).unwrap()
    );
    let r = get("/api/incidents/multi-1/clip?camera=tower2");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, std::fs::read(&other).unwrap());
    let (st, head, body) = get_range(
        f.addr,
        "/api/incidents/multi-1/clip?camera=tower2",
        "bytes=10-19",
    );
    assert_eq!((st, body.as_slice()), (206, &r.body[10..20]), "{head}");
    let b = get("/api/incidents/multi-1/clip/boxes?camera=tower2").json();
    assert_eq!(b["clip"]["camera"], "tower2", "{b}");
    let none = get("/api/incidents/multi-1/clip?camera=tower9");
    assert_eq!(none.status, 404);
    assert!(none.text().contains("tower9"), "{}", none.text());
    assert_eq!(get("/api/incidents/multi-1/clip?cam=tower2").status, 422);
    assert_eq!(get("/api/incidents/nope/clips").status, 404);
    let empty = get("/api/incidents/past-5/clips");
    assert_eq!(empty.status, 200);
    assert_eq!(empty.json()["clips"], serde_json::json!([]));

    // The UI: the first camera's clip plays; the picker switches to the other camera's.
    let d = Driver::start();
    d.goto(&format!("{base}/"));
    d.wait(
        "the incident row",
        "return !!document.querySelector('tr[data-id=\"multi-1\"]');",
    );
    d.click("tr[data-id=\"multi-1\"]");
    let playing = |cam: &str, w: u32| {
        d.wait(
            &format!("{cam}'s clip playing"),
            &format!(
                "const v = document.querySelector('#clip-video'); return !!v && v.dataset.camera === '{cam}' && !v.paused && v.readyState >= 3 && v.currentTime > 0.3 && v.videoWidth === {w};"
            ),
        );
    };
    playing("tower1", 640);
    let options =
        d.js("return [...document.querySelectorAll('#clip-camera option')].map(o => o.value);");
    assert_eq!(options, serde_json::json!(["tower1", "tower2"]));
    d.js("const s = document.querySelector('#clip-camera'); s.value = 'tower2'; s.dispatchEvent(new Event('change')); return true;");
    playing("tower2", 320);
    assert_eq!(
        d.js("return document.querySelectorAll('#detail section.clip').length;"),
        1,
        "the clip section is replaced, not added"
    );
    assert!(d
        .js("return document.querySelector('#detail section.clip h4').textContent;")
        .as_str()
        .is_some_and(|t| t.contains("tower2")));
    d.screenshot("ui-incident-clip-cameras.png");
}
