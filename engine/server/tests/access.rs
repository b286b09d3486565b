//! Access control against the real router on 127.0.0.1: with `read_access = "token"`
//! every route found in the server's source or its OpenAPI description answers 401 without a token and 200 with a
//! viewer token (writes: 403 for a viewer); wrong tokens are rate-limited per address;
//! write bodies are bounded in size and JSON depth; security headers and CORS.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::*;
use lookout_server::auth::{is_public, LOCKOUT, MAX_FAILURES, MAX_JSON_DEPTH, READ_ONLY_POSTS};
use serde_json::json;

/// [`CONFIG`] with reads behind tokens, a small body limit and one CORS origin.
fn token_config() -> String {
    format!(
        "[server]\nread_access = \"token\"\nmax_body_bytes = 4096\n\
         cors_origins = [\"https://dash.example.org\"]\n{CONFIG}"
    )
}

/// Every `.route("PATH", get(..).post(..)...)` in the server's source and every operation of
/// its OpenAPI description: (path, methods).
fn routes_in_source() -> Vec<(String, Vec<String>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("rs") {
            continue;
        }
        let src = std::fs::read_to_string(&path).unwrap();
        let mut rest = src.as_str();
        while let Some(i) = rest.find(".route(\"") {
            rest = &rest[i + ".route(\"".len()..];
            let end = rest.find('"').unwrap();
            let route = rest[..end].to_string();
            // The call's text up to its closing parenthesis.
            let mut depth = 1;
            let mut len = 0;
            for (j, c) in rest.char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                if depth == 0 {
                    len = j;
                    break;
                }
            }
            let call = &rest[end..len];
            let methods: Vec<String> = ["get", "post", "put", "patch", "delete"]
                .iter()
                .filter(|m| {
                    call.match_indices(&format!("{m}(")).any(|(k, _)| {
                        k == 0
                            || !call.as_bytes()[k - 1].is_ascii_alphanumeric()
                                && call.as_bytes()[k - 1] != b'_'
                    })
                })
                .map(|m| m.to_uppercase())
                .collect();
            assert!(
                !methods.is_empty(),
                "no method found for route {route} in {}",
                path.display()
            );
            out.push((route, methods));
        }
    }
    // The API's routes are registered with their OpenAPI description: every path and
    // method it lists.
    let doc: serde_json::Value = serde_json::from_str(lookout_server::api::openapi_json()).unwrap();
    for (route, ops) in doc["paths"].as_object().unwrap() {
        let methods: Vec<String> = ops
            .as_object()
            .unwrap()
            .keys()
            .map(|m| m.to_uppercase())
            .collect();
        out.push((route.clone(), methods));
    }
    out.sort();
    out
}

/// One request; returns the status and the response head (the body is not read, so the
/// live stream can be checked too).
fn head(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    extra: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    for (k, v) in extra {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if method != "GET" {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "{method} {path}: closed before the response head");
        buf.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&buf).to_string();
    let head = text.split("\r\n\r\n").next().unwrap().to_ascii_lowercase();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head)
}

#[test]
fn every_route_needs_a_token_to_read_and_a_viewer_cannot_write() {
    // A one-tile MBTiles basemap, so the tile route has a tile to answer with.
    let dir = tempfile::tempdir().unwrap();
    let db = rusqlite::Connection::open(dir.path().join("t.mbtiles")).unwrap();
    db.execute_batch(
        "CREATE TABLE metadata (name TEXT, value TEXT);
         CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER, tile_data BLOB);
         INSERT INTO tiles VALUES (0, 0, 0, X'89504E470D0A1A0A');",
    )
    .unwrap();
    drop(db);
    // A model with a PR plot, so the plot route has one to answer with.
    std::fs::write(dir.path().join("pr.png"), b"\x89PNG\r\n\x1a\n").unwrap();
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/smoke-fire.toml");
    let f = start_in(
        dir,
        &format!(
            "{}\n[server.map]\nmbtiles = \"t.mbtiles\"\n[models.smoke]\nmanifest = \"{manifest}\"\npr_plot = \"pr.png\"\n",
            token_config()
        ),
    );
    let now = chrono::Utc::now();
    f.alerts
        .record_incident(
            &smoke_incident("acc-1", "tower1", now, 0.9),
            Some(&frame("tower1", 3, now)),
        )
        .unwrap();
    let detail = http(f.addr, "GET", "/api/incidents/acc-1", Some(VIEWER), None).json();
    let snapshot = detail["snapshots"][0]["id"].to_string();
    // A clip for it, where the clip writer puts one, so the clip routes answer.
    let clip = f.alerts.clip_path("acc-1");
    std::fs::create_dir_all(clip.parent().unwrap()).unwrap();
    std::fs::write(&clip, b"not really an mp4").unwrap();
    let info = lookout_core::ClipInfo {
        incident: "acc-1".into(),
        camera: "tower1".into(),
        at: now,
        start: now,
        duration_s: 1.0,
        codec: "video/x-h264".into(),
        remuxed: true,
        packets: 1,
        bytes: 17,
    };
    std::fs::write(
        clip.with_extension("json"),
        serde_json::to_vec(&info).unwrap(),
    )
    .unwrap();
    // Path parameters and queries that make each route answer 200.
    let sample = |route: &str| -> String {
        let path = route
            .replace("/api/incidents/{id}", "/api/incidents/acc-1")
            .replace("/api/snapshots/{id}", &format!("/api/snapshots/{snapshot}"))
            .replace("/api/cameras/{id}", "/api/cameras/tower1")
            .replace("/api/tiles/{z}/{x}/{y}", "/api/tiles/0/0/0")
            .replace("/vendor/leaflet/{*file}", "/vendor/leaflet/leaflet.js")
            .replace(
                "/vendor/coastlines/{*file}",
                "/vendor/coastlines/land-50m.json",
            )
            .replace("/api/tuning/pr/{model}", "/api/tuning/pr/smoke")
            .replace("/api/models/{name}", "/api/models/smoke-fire");
        assert!(
            !path.contains('{'),
            "route {route} has a path parameter: add a sample value for it in this test"
        );
        match path.as_str() {
            "/api/tuning/current" => "/api/tuning/current?camera=tower1&class=smoke".into(),
            "/api/tuning/curve" => "/api/tuning/curve?camera=tower1&class=smoke".into(),
            "/api/tuning/masks" => "/api/tuning/masks?camera=tower1".into(),
            _ => path,
        }
    };

    let routes = routes_in_source();
    assert!(routes.len() >= 25, "routes found in the source: {routes:?}");
    let mut reads = 0;
    let mut writes = 0;
    for (route, methods) in &routes {
        let path = sample(route.as_str());
        for m in methods {
            let (anon, h) = head(f.addr, m, &path, None, &[], "{}");
            if m == "GET" && is_public(&path) {
                assert_eq!(anon, 200, "GET {path} is public");
                continue;
            }
            assert_eq!(anon, 401, "{m} {path} without a token");
            assert!(h.contains("www-authenticate: bearer"), "{m} {path}: {h}");
            let (wrong, _) = head(f.addr, m, &path, Some("not-a-token-at-all"), &[], "{}");
            assert_eq!(wrong, 401, "{m} {path} with an unknown token");
            if m == "GET" {
                let (st, h) = head(f.addr, m, &path, Some(VIEWER), &[], "");
                // This server runs no inference: a model slot is unknown (past access).
                let expect = if path.starts_with("/api/models/") {
                    404
                } else {
                    200
                };
                assert_eq!(st, expect, "GET {path} with a viewer token: {h}");
                reads += 1;
            } else if READ_ONLY_POSTS.contains(&route.as_str()) {
                let body = json!({"camera": "tower1", "class": "smoke", "threshold": 0.5,
                    "persistence": {"k": 3, "n": 5}})
                .to_string();
                let (st, h) = head(f.addr, m, &path, Some(VIEWER), &[], &body);
                assert_eq!(st, 200, "{m} {path} (a read) with a viewer token: {h}");
            } else {
                let (st, _) = head(f.addr, m, &path, Some(VIEWER), &[], "{}");
                assert_eq!(st, 403, "{m} {path} with a viewer token");
                writes += 1;
            }
        }
    }
    assert!(reads >= 14 && writes >= 7, "reads {reads}, writes {writes}");
    // The live stream is what the UI reads; /metrics takes a bearer as Prometheus sends it.
    let (_, h) = head(f.addr, "GET", "/api/live", Some(VIEWER), &[], "");
    assert!(h.contains("content-type: text/event-stream"), "{h}");
    let m = http(f.addr, "GET", "/metrics", Some(VIEWER), None);
    assert!(
        m.text().contains("lookout_http_auth_failures_total "),
        "{}",
        m.text()
    );
    // Writes still work for the roles that may make them.
    let r = http(
        f.addr,
        "POST",
        "/api/incidents/acc-1/transition",
        Some(OPERATOR),
        Some(r#"{"to": "acknowledged"}"#),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = http(f.addr, "GET", "/api/me", Some(VIEWER), None).json();
    assert_eq!(r["role"], "viewer");
}

#[test]
fn security_headers_and_cors_only_for_configured_origins() {
    let f = start_in(tempfile::tempdir().unwrap(), &token_config());
    let (st, h) = head(f.addr, "GET", "/", None, &[], "");
    assert_eq!(st, 200);
    for want in [
        "content-security-policy: default-src 'none'; script-src 'self'; style-src 'self'",
        "frame-ancestors 'none'",
        "x-content-type-options: nosniff",
        "referrer-policy: no-referrer",
    ] {
        assert!(h.contains(want), "missing {want:?} in {h}");
    }
    assert!(
        !h.contains("strict-transport-security"),
        "no HSTS without TLS"
    );
    // The page loads only its own script and stylesheet: nothing inline for the CSP to block.
    let page = http(f.addr, "GET", "/", None, None).text();
    assert!(page.contains("<script src=\"/app.js\"></script>"));
    assert!(page.contains("<script src=\"/vendor/leaflet/leaflet.js\"></script>"));
    assert!(page.contains("<script src=\"/vendor/coastlines/topojson-client.min.js\"></script>"));
    assert!(!page.contains("<style") && !page.contains("style="));
    let handlers: Vec<&str> = page
        .split(" on")
        .skip(1)
        .filter(|rest| {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphabetic())
                .collect();
            !name.is_empty() && rest[name.len()..].starts_with('=')
        })
        .collect();
    assert!(handlers.is_empty(), "inline event handlers: {handlers:?}");
    assert_eq!(page.matches("<script").count(), 3);

    let origin = [("Origin", "https://dash.example.org")];
    let (st, h) = head(f.addr, "GET", "/api/cameras", Some(VIEWER), &origin, "");
    assert_eq!(st, 200);
    assert!(
        h.contains("access-control-allow-origin: https://dash.example.org"),
        "{h}"
    );
    let (st, h) = head(
        f.addr,
        "OPTIONS",
        "/api/incidents/acc-1/transition",
        None,
        &[
            ("Origin", "https://dash.example.org"),
            ("Access-Control-Request-Method", "POST"),
            (
                "Access-Control-Request-Headers",
                "authorization, content-type",
            ),
        ],
        "",
    );
    assert_eq!(st, 204, "preflight: {h}");
    assert!(h.contains("access-control-allow-headers: authorization, content-type"));
    let other = [("Origin", "https://evil.example.net")];
    let (_, h) = head(f.addr, "GET", "/api/cameras", Some(VIEWER), &other, "");
    assert!(!h.contains("access-control-allow-origin"), "{h}");

    // Not configured (the default): no CORS at all.
    let open = start();
    let (_, h) = head(open.addr, "GET", "/api/cameras", None, &origin, "");
    assert!(!h.contains("access-control-"), "{h}");
}

#[test]
fn wrong_tokens_are_rate_limited_per_address() {
    // Default config: loopback, reads open, so /metrics stays readable without a token.
    let f = start();
    for i in 1..MAX_FAILURES {
        let r = http(
            f.addr,
            "GET",
            "/api/me",
            Some("wrong-token-guess-1234"),
            None,
        );
        assert_eq!(r.status, 401, "failure {i}");
    }
    let r = http(
        f.addr,
        "GET",
        "/api/incidents",
        Some("wrong-token-guess-1234"),
        None,
    );
    assert_eq!(r.status, 429, "failure {MAX_FAILURES}: {}", r.text());
    let retry: u64 = r
        .headers
        .to_ascii_lowercase()
        .lines()
        .find_map(|l| {
            l.strip_prefix("retry-after:")
                .map(|v| v.trim().parse().unwrap())
        })
        .expect("Retry-After");
    assert!(retry > 0 && retry <= LOCKOUT.as_secs());
    // While locked out even the right token is refused, so guesses cannot be tested.
    assert_eq!(
        http(f.addr, "GET", "/api/me", Some(ADMIN), None).status,
        429
    );
    // Requests without a token are not affected.
    assert_eq!(http(f.addr, "GET", "/api/cameras", None, None).status, 200);
    let m = http(f.addr, "GET", "/metrics", None, None).text();
    assert!(
        m.contains(&format!(
            "lookout_http_auth_failures_total {MAX_FAILURES}\n"
        )),
        "{m}"
    );
    assert!(m.contains("lookout_http_auth_throttled_total 2\n"), "{m}");
    // Open reads: anyone reads without a token, but writes still need one.
    let r = http(
        f.addr,
        "POST",
        "/api/incidents/past-0/comment",
        None,
        Some(r#"{"comment":"x"}"#),
    );
    assert_eq!(r.status, 401);
}

#[test]
fn write_bodies_are_bounded_in_size_and_depth() {
    let f = start_in(tempfile::tempdir().unwrap(), &token_config());
    let path = "/api/incidents/past-0/comment";
    let deep = format!(
        "{{\"comment\": \"x\", \"extra\": {}1{}}}",
        "[".repeat(MAX_JSON_DEPTH + 1),
        "]".repeat(MAX_JSON_DEPTH + 1)
    );
    let r = http(f.addr, "POST", path, Some(OPERATOR), Some(&deep));
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "too_deep");
    // A body announced larger than the limit is refused before it is sent (the client
    // sends the head only, as one that waits for the answer would).
    let mut s = TcpStream::connect(f.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {OPERATOR}\r\n\
         Content-Type: application/json\r\nContent-Length: 8000\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    // Within the limits the write goes through.
    let r = http(
        f.addr,
        "POST",
        path,
        Some(OPERATOR),
        Some(r#"{"comment": "seen from tower 2"}"#),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn a_tile_url_basemap_is_allowed_by_the_csp_and_offered_to_the_ui() {
    let f = start_in(
        tempfile::tempdir().unwrap(),
        &format!(
            "{CONFIG}\n[server.map]\ntile_url = \"https://{{s}}.tiles.example.org/{{z}}/{{x}}/{{y}}.png\"\nattribution = \"© Example\"\n"
        ),
    );
    let (st, h) = head(f.addr, "GET", "/", None, &[], "");
    assert_eq!(st, 200);
    assert!(
        h.contains("img-src 'self' blob: https://*.tiles.example.org;"),
        "{h}"
    );
    let m = http(f.addr, "GET", "/api/map", None, None).json();
    assert_eq!(m["basemap"], "url", "{m}");
    assert_eq!(m["attribution"], "© Example", "{m}");
    // No MBTiles file: no tiles from the engine.
    assert_eq!(
        http(f.addr, "GET", "/api/tiles/0/0/0", None, None).status,
        404
    );
}
