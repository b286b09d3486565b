//! Who may do what, in one middleware layer ([`guard`]) over every route, so a route added
//! later cannot forget it:
//!
//! * **Reads** (GET/HEAD of everything but [`PUBLIC_PATHS`] and [`PUBLIC_PREFIXES`], and
//!   the read-only POSTs in [`READ_ONLY_POSTS`]) need a token of any role when `server.read_access = "token"`.
//! * **Writes** (every other method) need a token of role operator or above (a viewer gets
//!   403); handlers that need admin check it again ([`crate::api`]).
//! * A token that is sent is always checked, even where none is needed. Tokens are kept as
//!   SHA-256 hashes ([`lookout_config::server::ServerConfig::seal`]) and compared in
//!   constant time against every user.
//! * Failed authentications are counted per client address ([`Limiter`]): after
//!   [`MAX_FAILURES`] in a row the address gets 429 with `Retry-After` for [`LOCKOUT`] on
//!   every request that carries a token (right or wrong, so the lockout cannot be used to
//!   test guesses). Failures and lockouts are counted in `/metrics` and logged without the
//!   token.
//! * Write bodies are read here, up to `server.max_body_bytes` (413 beyond), and JSON nested
//!   deeper than [`MAX_JSON_DEPTH`] is refused (400) before any handler parses it.
//! * Every response carries the security headers (a Content-Security-Policy that allows
//!   only the engine's own scripts, styles, images (and the tiles of `server.map.tile_url`),
//!   media (incident clips, as `blob:` URLs)
//!   and connections, `frame-ancestors 'none'`, `X-Content-Type-Options`, `Referrer-Policy`), HSTS when TLS is on, and CORS
//!   headers only for the origins in `server.cors_origins`.
//!
//! Behind a reverse proxy every client has the proxy's address: the limiter then counts
//! them together (forwarded-for headers are not trusted).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use lookout_config::server::{token_sha256, ReadAccess, Role, ServerConfig};

use crate::api::ApiError;
use crate::ServerState;

/// Paths anyone may GET: the UI's page, script and stylesheet (they hold no data, and the
/// page must load to ask for a token) and `/health` (liveness probes).
pub const PUBLIC_PATHS: &[&str] = &["/", "/app.js", "/app.css", "/health"];

/// Path prefixes anyone may GET: the vendored map library and offline coastlines (no data,
/// like the page).
pub const PUBLIC_PREFIXES: &[&str] = &["/vendor/leaflet/", "/vendor/coastlines/"];

/// Is `path` readable without a token ([`PUBLIC_PATHS`], [`PUBLIC_PREFIXES`])?
pub fn is_public(path: &str) -> bool {
    PUBLIC_PATHS.contains(&path) || PUBLIC_PREFIXES.iter().any(|p| path.starts_with(p))
}

/// POST routes that only read (a what-if replay): they need what a GET needs.
pub const READ_ONLY_POSTS: &[&str] = &["/api/tuning/replay"];

/// Failed authentications in a row from one address before it is locked out.
pub const MAX_FAILURES: u32 = 20;

/// How long a locked-out address gets 429 for every request with a token.
pub const LOCKOUT: Duration = Duration::from_secs(60);

/// Deepest JSON nesting accepted in a request body (the deepest API body, a rules patch
/// with a zone polygon, nests 8 deep).
pub const MAX_JSON_DEPTH: usize = 32;

/// Addresses the limiter remembers at most (beyond, those not locked out are forgotten).
const MAX_TRACKED: usize = 10_000;

/// The Content-Security-Policy; `{tiles}` is the origin of `server.map.tile_url` (images
/// of the map's basemap) or nothing.
const CSP: &str =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:{tiles}; \
                   media-src 'self' blob:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

fn csp(cfg: &ServerConfig) -> HeaderValue {
    let tiles = cfg
        .map
        .tile_url
        .as_deref()
        .and_then(lookout_config::server::MapConfig::tile_origin)
        .map(|o| format!(" {o}"))
        .unwrap_or_default();
    HeaderValue::from_str(&CSP.replace("{tiles}", &tiles))
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"))
}

/// The client's address, from the accepted connection (plain TCP or TLS).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

impl Connected<axum::serve::IncomingStream<'_, tokio::net::TcpListener>> for ClientAddr {
    fn connect_info(s: axum::serve::IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        ClientAddr(*s.remote_addr())
    }
}

impl Connected<axum::serve::IncomingStream<'_, crate::tls::TlsListener>> for ClientAddr {
    fn connect_info(s: axum::serve::IncomingStream<'_, crate::tls::TlsListener>) -> Self {
        ClientAddr(*s.remote_addr())
    }
}

/// A configured user, as the server keeps it: name, role and the token's hash.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Recorded with every change the user makes.
    pub name: String,
    /// What the user may do.
    pub role: Role,
    sha256: [u8; 32],
}

/// The access rules of a running server, built once from `[server]`.
#[derive(Debug)]
pub struct Access {
    users: Vec<Principal>,
    read_access: ReadAccess,
    tls: bool,
    cors: Vec<HeaderValue>,
    max_body: usize,
    limiter: Limiter,
    csp: HeaderValue,
}

impl Access {
    /// The rules of a (parsed, so sealed) `[server]` section.
    pub fn new(cfg: &ServerConfig) -> Access {
        Access {
            users: cfg
                .users
                .iter()
                .map(|u| Principal {
                    name: u.name.clone(),
                    role: u.role,
                    sha256: u.token_sha256,
                })
                .collect(),
            read_access: cfg.effective_read_access(),
            tls: cfg.tls.is_some(),
            cors: cfg
                .cors_origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok())
                .collect(),
            max_body: cfg.max_body_bytes,
            limiter: Limiter::default(),
            csp: csp(cfg),
        }
    }

    /// The effective read access.
    pub fn read_access(&self) -> ReadAccess {
        self.read_access
    }

    /// The user whose token this is. The token's hash is compared with every user's in
    /// constant time (no early exit), so timing tells nothing about near misses.
    pub fn verify(&self, token: &str) -> Option<&Principal> {
        if token.is_empty() {
            return None;
        }
        let h = token_sha256(token);
        let mut found = None;
        for u in &self.users {
            if ct_eq(&h, &u.sha256) {
                found = Some(u);
            }
        }
        found
    }
}

fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a
        .iter()
        .zip(b)
        .fold(0u8, |acc, (x, y)| acc | std::hint::black_box(x ^ y));
    diff == 0
}

/// The bearer token of a request: `None` without an `Authorization` header, `Some("")`
/// for a header that is not `Bearer <token>`.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let h = headers.get(header::AUTHORIZATION)?;
    Some(
        h.to_str()
            .ok()
            .and_then(|s| {
                let (scheme, rest) = s.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then_some(rest.trim())
            })
            .unwrap_or(""),
    )
}

/// Failed authentications per client address (IPv6 by /64: one host usually holds a
/// whole /64).
#[derive(Debug, Default)]
pub struct Limiter {
    map: Mutex<HashMap<IpAddr, Strikes>>,
}

#[derive(Debug, Clone, Copy)]
struct Strikes {
    failures: u32,
    locked_until: Option<Instant>,
    last: Instant,
}

fn limiter_key(ip: Option<IpAddr>) -> IpAddr {
    match ip {
        Some(IpAddr::V6(a)) => match a.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = a.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        Some(v4) => v4,
        None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    }
}

impl Limiter {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Strikes>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `Err(seconds to wait)` while the address is locked out.
    pub fn check(&self, ip: Option<IpAddr>, now: Instant) -> Result<(), u64> {
        let mut m = self.lock();
        let key = limiter_key(ip);
        if let Some(s) = m.get(&key) {
            if let Some(until) = s.locked_until {
                if until > now {
                    return Err((until - now).as_secs().max(1));
                }
                m.remove(&key);
            }
        }
        Ok(())
    }

    /// Records a failure; `Some(seconds)` when this one locked the address out.
    pub fn failed(&self, ip: Option<IpAddr>, now: Instant) -> Option<u64> {
        let mut m = self.lock();
        if m.len() >= MAX_TRACKED {
            let stale = now.checked_sub(LOCKOUT).unwrap_or(now);
            m.retain(|_, s| s.locked_until.is_some_and(|u| u > now) || s.last > stale);
            if m.len() >= MAX_TRACKED {
                m.retain(|_, s| s.locked_until.is_some_and(|u| u > now));
            }
        }
        let s = m.entry(limiter_key(ip)).or_insert(Strikes {
            failures: 0,
            locked_until: None,
            last: now,
        });
        s.failures += 1;
        s.last = now;
        if s.failures >= MAX_FAILURES {
            s.locked_until = Some(now + LOCKOUT);
            return Some(LOCKOUT.as_secs());
        }
        None
    }

    /// A success ends the run of failures.
    pub fn succeeded(&self, ip: Option<IpAddr>) {
        let key = limiter_key(ip);
        let mut m = self.lock();
        if m.get(&key).is_some_and(|s| s.locked_until.is_none()) {
            m.remove(&key);
        }
    }
}

/// What a request needs.
fn needs(access: &Access, method: &Method, path: &str) -> Option<Role> {
    let safe = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    if safe && is_public(path) {
        None
    } else if safe || (*method == Method::POST && READ_ONLY_POSTS.contains(&path)) {
        (access.read_access == ReadAccess::Token).then_some(Role::Viewer)
    } else {
        Some(Role::Operator)
    }
}

fn unauthorized(message: &str) -> Response {
    let mut r = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

fn too_many(retry_after: u64) -> Response {
    let mut r = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_failures",
        format!("too many failed authentications from this address; retry in {retry_after} s"),
    )
    .into_response();
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    r
}

/// Authenticates and authorizes a request: `Some` is the refusal to send instead.
fn admit(
    s: &ServerState,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    client: Option<IpAddr>,
) -> Option<Response> {
    let a = &s.access;
    let need = needs(a, method, path);
    let Some(token) = bearer(headers) else {
        return match need {
            None => None,
            Some(Role::Viewer) => Some(unauthorized(
                "this engine needs a token to read: send Authorization: Bearer <token> (any role)",
            )),
            Some(_) => Some(unauthorized(
                "this endpoint changes state: send Authorization: Bearer <token>",
            )),
        };
    };
    let now = Instant::now();
    if let Err(wait) = a.limiter.check(client, now) {
        s.metrics.auth_throttled.fetch_add(1, Relaxed);
        return Some(too_many(wait));
    }
    let Some(user) = a.verify(token) else {
        s.metrics.auth_failures.fetch_add(1, Relaxed);
        let shown = client.map(|c| c.to_string()).unwrap_or_default();
        if let Some(wait) = a.limiter.failed(client, now) {
            s.metrics.auth_throttled.fetch_add(1, Relaxed);
            tracing::warn!(client = %shown, %method, path, failures = MAX_FAILURES, lockout_s = wait,
                "Too many failed authentications; locking the client out.");
            return Some(too_many(wait));
        }
        tracing::warn!(client = %shown, %method, path, "Authentication failed: unknown token.");
        return Some(unauthorized("unknown token"));
    };
    a.limiter.succeeded(client);
    match need {
        Some(role) if user.role < role => Some(
            ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "user {:?} has role {}; this needs {}",
                    user.name,
                    user.role.as_str(),
                    role.as_str()
                ),
            )
            .into_response(),
        ),
        _ => None,
    }
}

/// Nesting depth of JSON text above `max` (brackets inside strings do not count)?
pub fn too_deep(body: &[u8], max: usize) -> bool {
    let (mut depth, mut in_str, mut esc) = (0usize, false, false);
    for &c in body {
        if in_str {
            if esc {
                esc = false;
            } else if c == b'\\' {
                esc = true;
            } else if c == b'"' {
                in_str = false;
            }
            continue;
        }
        match c {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Reads a write's body within the size limit and checks its JSON depth.
async fn bounded_body(req: Request, max: usize) -> Result<Request, Response> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the request body is larger than server.max_body_bytes ({max} bytes)"),
        )
        .into_response()
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, max)
        .await
        .map_err(|_| too_large())?;
    if too_deep(&bytes, MAX_JSON_DEPTH) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "too_deep",
            format!("the JSON body nests deeper than {MAX_JSON_DEPTH} levels"),
        )
        .into_response());
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// The allowed origin of a cross-origin request, if it is configured.
fn cors_origin<'a>(a: &'a Access, headers: &HeaderMap) -> Option<&'a HeaderValue> {
    let o = headers.get(header::ORIGIN)?;
    a.cors.iter().find(|c| *c == o)
}

fn finish(mut r: Response, a: &Access, cors: Option<&HeaderValue>) -> Response {
    let h = r.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, a.csp.clone());
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if a.tls {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    if !a.cors.is_empty() {
        h.append(header::VARY, HeaderValue::from_static("origin"));
    }
    if let Some(o) = cors {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o.clone());
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("retry-after"),
        );
    }
    r
}

/// The middleware over every route (see the module docs).
pub async fn guard(State(s): State<ServerState>, req: Request, next: Next) -> Response {
    let a = s.access.clone();
    let cors = cors_origin(&a, req.headers()).cloned();
    if req.method() == Method::OPTIONS
        && cors.is_some()
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        let mut r = StatusCode::NO_CONTENT.into_response();
        let h = r.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, PUT, PATCH"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization, content-type"),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        return finish(r, &a, cors.as_ref());
    }
    let client = req
        .extensions()
        .get::<ConnectInfo<ClientAddr>>()
        .map(|c| c.0 .0.ip());
    let method = req.method().clone();
    if let Some(r) = admit(&s, &method, req.uri().path(), req.headers(), client) {
        return finish(r, &a, cors.as_ref());
    }
    let req = if matches!(method, Method::GET | Method::HEAD | Method::OPTIONS) {
        req
    } else {
        match bounded_body(req, a.max_body).await {
            Ok(r) => r,
            Err(r) => return finish(r, &a, cors.as_ref()),
        }
    };
    finish(next.run(req).await, &a, cors.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_depth_ignores_brackets_in_strings() {
        assert!(!too_deep(br#"{"a": [[1, 2]], "b": "[[[[[[["}"#, 3));
        assert!(too_deep(br#"{"a": [[[1]]]}"#, 3));
        assert!(!too_deep(br#"{"a": "\"[[[[", "b": [1]}"#, 2));
        let deep = "[".repeat(MAX_JSON_DEPTH + 1);
        assert!(too_deep(deep.as_bytes(), MAX_JSON_DEPTH));
        assert!(!too_deep(
            "[".repeat(MAX_JSON_DEPTH).as_bytes(),
            MAX_JSON_DEPTH
        ));
    }

    #[test]
    fn limiter_locks_after_max_failures_and_forgets_on_success() {
        let l = Limiter::default();
        let ip = Some("10.1.2.3".parse().unwrap());
        let other = Some("10.1.2.4".parse().unwrap());
        let t0 = Instant::now();
        for _ in 0..MAX_FAILURES - 2 {
            assert_eq!(l.failed(ip, t0), None);
        }
        l.succeeded(ip);
        for _ in 0..MAX_FAILURES - 1 {
            assert_eq!(l.failed(ip, t0), None);
        }
        assert!(l.check(ip, t0).is_ok());
        assert_eq!(l.failed(ip, t0), Some(LOCKOUT.as_secs()));
        assert_eq!(l.check(ip, t0), Err(LOCKOUT.as_secs()));
        assert!(l.check(other, t0).is_ok(), "other addresses are not locked");
        // A success during the lockout does not lift it; the lockout ends by itself.
        l.succeeded(ip);
        assert!(l.check(ip, t0 + Duration::from_secs(1)).is_err());
        assert!(l.check(ip, t0 + LOCKOUT + Duration::from_secs(1)).is_ok());
        assert_eq!(l.failed(ip, t0 + LOCKOUT + Duration::from_secs(1)), None);
    }

    #[test]
    fn ipv6_clients_are_counted_per_64() {
        let a = limiter_key(Some("2001:db8:1:2:aaaa::1".parse().unwrap()));
        let b = limiter_key(Some("2001:db8:1:2:bbbb::9".parse().unwrap()));
        let c = limiter_key(Some("2001:db8:1:3::1".parse().unwrap()));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(
            limiter_key(Some("::ffff:10.0.0.1".parse().unwrap())),
            limiter_key(Some("10.0.0.1".parse().unwrap()))
        );
    }

    #[test]
    fn bearer_parsing() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc "),
        );
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer xyz"),
        );
        assert_eq!(bearer(&h), Some("xyz"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic Zm9v"),
        );
        assert_eq!(bearer(&h), Some(""));
    }
}
