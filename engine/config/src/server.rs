//! `[server]`: the HTTP API, live updates and the operator web UI.
//!
//! ```toml
//! [server]
//! bind = "0.0.0.0"           # beyond loopback: reads need a token unless read_access = "open"
//! port = 8443
//! tls = { cert = "tls/lookout.pem", key = "tls/lookout.key" }
//!
//! [[server.users]]
//! name = "duty-officer"
//! role = "operator"
//! token = "${LOOKOUT_OPERATOR_TOKEN}"
//! ```
//!
//! Tokens are hashed (SHA-256) when the config is parsed ([`ServerConfig::seal`]) and the
//! plain text is dropped: the process keeps only the hashes, and dumps show the `${ENV}`
//! reference or `***`.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::env::Secret;
use crate::validate::{ValidationContext, Validator};

/// `[server]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Serve the API and UI. Default true.
    pub enabled: bool,
    /// Address to bind. Default `127.0.0.1` (this machine only); use `0.0.0.0` only behind
    /// a firewall or reverse proxy.
    pub bind: String,
    /// TCP port. Default 8080; 0 picks a free port (tests).
    pub port: u16,
    /// Named users. Every write (incident transitions, comments, config changes) needs
    /// `Authorization: Bearer <token>` of a user whose role allows it, and records that
    /// user's name; reads need a token of any role when [`ServerConfig::read_access`] is
    /// `token`.
    pub users: Vec<UserConfig>,
    /// Who may read (the API's GETs, snapshots, live frames, the live stream, `/metrics`).
    /// Unset: `open` on a loopback bind, `token` otherwise; a parsed config always holds
    /// the effective value (so `check-config --dump` shows it).
    pub read_access: Option<ReadAccess>,
    /// HTTPS: the certificate chain and private key (PEM files, relative to the config
    /// file). Reloaded when either file changes; HSTS is sent while it is on.
    pub tls: Option<TlsConfig>,
    /// Web origins (`https://host:port`) allowed to call the API from a browser page they
    /// serve (CORS). Empty (default): no CORS headers, so only the engine's own UI can.
    pub cors_origins: Vec<String>,
    /// Largest accepted request body in bytes. Default 1 MiB.
    pub max_body_bytes: usize,
    /// Days of recorded frame results the tuning replay looks back over. Default 7.
    pub tuning_window_days: f64,
    /// `[server.map]`: the web UI map's basemap (a tile URL, a local MBTiles file, or
    /// none: the offline graticule).
    pub map: MapConfig,
}

/// `[server.map]`: where the web UI's map takes its basemap from. Neither key set: the map
/// draws a graticule under the cameras and incidents (works offline).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MapConfig {
    /// An XYZ tile URL template the browser loads tiles from, e.g.
    /// `https://tile.openstreetmap.org/{z}/{x}/{y}.png` (`{s}` for subdomains a, b, c).
    /// Its origin is added to the page's Content-Security-Policy `img-src`.
    pub tile_url: Option<String>,
    /// Attribution shown in the map's corner (tile providers' terms usually ask for it).
    pub attribution: Option<String>,
    /// A local MBTiles file (SQLite, raster PNG/JPEG/WebP tiles), relative to the config
    /// file, served by the engine at `/api/tiles/{z}/{x}/{y}`.
    pub mbtiles: Option<String>,
    /// A local PMTiles v3 archive (raster PNG/JPEG/WebP tiles), relative to the config
    /// file, served like `mbtiles`. Opened when the server starts: a missing, damaged or
    /// vector-tile archive is logged naming the file and the map falls back to the offline
    /// basemap (the engine runs on).
    pub pmtiles: Option<String>,
}

impl MapConfig {
    /// The `img-src` source a tile URL's images come from (`scheme://host[:port]`, with a
    /// `{s}.` subdomain placeholder as `*.`), `None` for an unusable URL.
    pub fn tile_origin(url: &str) -> Option<String> {
        let (scheme, rest) = url.split_once("://")?;
        if scheme != "https" && scheme != "http" {
            return None;
        }
        let host = rest.split('/').next()?;
        let host = host
            .strip_prefix("{s}.")
            .map_or_else(|| host.to_string(), |h| format!("*.{h}"));
        let ok = !host.is_empty()
            && host
                .trim_start_matches("*.")
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
        ok.then(|| format!("{scheme}://{host}"))
    }

    fn validate(&self, v: &mut Validator) {
        if let Some(u) = &self.tile_url {
            v.check(
                Self::tile_origin(u).is_some(),
                "server.map.tile_url",
                "must be an http(s) URL whose host is a plain name or address (optionally starting with {s}.), e.g. \"https://tile.openstreetmap.org/{z}/{x}/{y}.png\"",
            );
            v.check(
                ["{z}", "{x}", "{y}"].iter().all(|p| u.contains(p)),
                "server.map.tile_url",
                "must contain the placeholders {z}, {x} and {y}",
            );
            v.check(
                self.mbtiles.is_none(),
                "server.map.tile_url",
                "set either tile_url or mbtiles, not both",
            );
        }
        if let Some(a) = &self.attribution {
            v.check(
                a.len() <= 500,
                "server.map.attribution",
                "at most 500 bytes",
            );
        }
        if let Some(m) = &self.mbtiles {
            v.check(
                !m.trim().is_empty(),
                "server.map.mbtiles",
                "must not be empty",
            );
        }
        if let Some(p) = &self.pmtiles {
            v.check(
                !p.trim().is_empty(),
                "server.map.pmtiles",
                "must not be empty",
            );
            v.check(
                self.mbtiles.is_none() && self.tile_url.is_none(),
                "server.map.pmtiles",
                "set one basemap: pmtiles, mbtiles or tile_url, not two",
            );
        }
    }

    fn validate_files(&self, base_dir: &std::path::Path, v: &mut Validator) {
        let Some(m) = self.mbtiles.as_deref().filter(|m| !m.trim().is_empty()) else {
            return;
        };
        let path = base_dir.join(m);
        let shown = path.display();
        let mut head = [0u8; 16];
        let problem = match std::fs::File::open(&path)
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
        {
            Ok(()) if &head == b"SQLite format 3\0" => None,
            Ok(()) => Some(format!("{shown}: not an MBTiles file (no SQLite header)")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(format!(
                "{shown}: not found (a relative path resolves against the config file's directory)"
            )),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                Some(format!("{shown}: not an MBTiles file (too short)"))
            }
            Err(e) => Some(format!("{shown}: cannot read it: {e}")),
        };
        if let Some(p) = problem {
            v.error("server.map.mbtiles", p);
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            enabled: true,
            bind: "127.0.0.1".into(),
            port: 8080,
            users: Vec::new(),
            read_access: None,
            tls: None,
            cors_origins: Vec::new(),
            max_body_bytes: 1 << 20,
            tuning_window_days: 7.0,
            map: MapConfig::default(),
        }
    }
}

/// `server.read_access`: who may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadAccess {
    /// Anyone who can reach the address reads without a token.
    Open,
    /// Reads need `Authorization: Bearer <token>` of any role.
    Token,
}

impl ReadAccess {
    /// Lowercase name.
    pub fn as_str(&self) -> &'static str {
        match self {
            ReadAccess::Open => "open",
            ReadAccess::Token => "token",
        }
    }
}

/// `server.tls`: HTTPS with a certificate and key in PEM files.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, server certificate first (PEM), relative to the config file.
    pub cert: String,
    /// Its private key (PKCS#8, PKCS#1 or SEC1 PEM), relative to the config file.
    pub key: String,
}

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Read everything (a token is needed to read when `server.read_access = "token"`).
    Viewer,
    /// Also drive incidents: acknowledge, confirm, false alarm, close, reopen, comment.
    Operator,
    /// Also change thresholds and zones.
    Admin,
}

impl Role {
    /// Lowercase name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

/// `[[server.users]]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// Name recorded with every change this user makes.
    pub name: String,
    /// `viewer`, `operator` or `admin`.
    pub role: Role,
    /// Bearer token; write it as `${ENV_NAME}` so it never sits in the file. Never shown.
    /// After [`ServerConfig::seal`] only its `${ENV}` reference (or `***`) is left here.
    pub token: Secret,
    /// SHA-256 of the token, filled by [`ServerConfig::seal`]: what requests are checked
    /// against, so the plain token need not stay in memory.
    #[serde(skip)]
    pub token_sha256: [u8; 32],
}

impl UserConfig {
    /// A user whose token is already hashed (code that builds configs without parsing).
    pub fn new(name: impl Into<String>, role: Role, token: &str) -> UserConfig {
        let mut u = UserConfig {
            name: name.into(),
            role,
            token: Secret::literal(token),
            token_sha256: [0; 32],
        };
        u.seal();
        u
    }

    /// Hashes the token and drops its plain text (idempotent).
    fn seal(&mut self) {
        let shown = self.token.redacted();
        if self.token.expose() != shown {
            self.token_sha256 = token_sha256(self.token.expose());
            self.token = Secret::literal(shown);
        }
    }
}

/// The SHA-256 of a bearer token as presented in a request.
pub fn token_sha256(token: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(&Sha256::digest(token.as_bytes()));
    out
}

/// Is `ip` a loopback address (127.0.0.0/8, ::1, or ::ffff:127.x.y.z)?
pub fn is_loopback(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(a) => a.is_loopback(),
        std::net::IpAddr::V6(a) => {
            a.is_loopback() || a.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

impl ServerConfig {
    /// The effective read access: the written value, else `open` on a loopback bind and
    /// `token` on any other (or unparsable) address.
    pub fn effective_read_access(&self) -> ReadAccess {
        self.read_access.unwrap_or_else(|| match self.bind.parse() {
            Ok(ip) if is_loopback(ip) => ReadAccess::Open,
            _ => ReadAccess::Token,
        })
    }

    /// Does this config serve reads without a token beyond this machine (only when
    /// written explicitly; the engine logs a warning at start)?
    pub fn open_beyond_loopback(&self) -> bool {
        self.effective_read_access() == ReadAccess::Open
            && !self.bind.parse().is_ok_and(is_loopback)
    }

    /// After validation: fixes the effective [`ServerConfig::read_access`] and hashes every
    /// user's token, dropping the plain text (idempotent).
    pub fn seal(&mut self) {
        self.read_access = Some(self.effective_read_access());
        for u in &mut self.users {
            u.seal();
        }
    }

    /// Checks that the TLS files exist, are readable and hold PEM of the right kind, with
    /// errors on `server.tls.cert` / `server.tls.key` naming the file. (That the key
    /// matches the certificate is checked when the server starts.)
    pub fn validate_files(&self, base_dir: &std::path::Path, v: &mut Validator) {
        self.map.validate_files(base_dir, v);
        let Some(tls) = &self.tls else { return };
        for (key, file, marker, what) in [
            (
                "cert",
                &tls.cert,
                "-----BEGIN CERTIFICATE-----",
                "PEM certificate",
            ),
            ("key", &tls.key, "PRIVATE KEY-----", "PEM private key"),
        ] {
            let path = base_dir.join(file);
            let shown = path.display();
            let problem = match std::fs::read(&path) {
                Ok(b) if String::from_utf8_lossy(&b).contains(marker) => None,
                Ok(_) => Some(format!("{shown}: holds no {what}")),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(format!(
                    "{shown}: not found (a relative path resolves against the config file's directory)"
                )),
                Err(e) => Some(format!("{shown}: cannot read it: {e}")),
            };
            if let Some(m) = problem {
                v.error(format!("server.tls.{key}"), m);
            }
        }
    }

    /// Checks values and cross-references.
    pub fn validate(&self, v: &mut Validator, _ctx: &ValidationContext<'_>) {
        v.check(
            self.bind.parse::<std::net::IpAddr>().is_ok(),
            "server.bind",
            "must be an IP address such as 127.0.0.1 or 0.0.0.0",
        );
        v.range("server.max_body_bytes", self.max_body_bytes, 1024, 64 << 20);
        if let Some(t) = &self.tls {
            v.check(
                !t.cert.trim().is_empty(),
                "server.tls.cert",
                "must not be empty",
            );
            v.check(
                !t.key.trim().is_empty(),
                "server.tls.key",
                "must not be empty",
            );
        }
        if self.effective_read_access() == ReadAccess::Token && self.users.is_empty() {
            let (key, why) = if self.read_access.is_some() {
                ("server.read_access", "\"token\"")
            } else {
                (
                    "server.bind",
                    "a bind beyond loopback reads with a token (server.read_access = \"token\" by default), which",
                )
            };
            v.error(
                key,
                format!(
                    "{why} needs at least one [[server.users]] entry (role = \"viewer\" is enough to read); \
                     or write server.read_access = \"open\" to let anyone who reaches this address read"
                ),
            );
        }
        for (i, o) in self.cors_origins.iter().enumerate() {
            let ok = (o.starts_with("https://") || o.starts_with("http://"))
                && !o.ends_with('/')
                && o.split_once("://")
                    .is_some_and(|(_, h)| !h.is_empty() && !h.contains('/'));
            v.check(
                ok,
                format!("server.cors_origins[{i}]"),
                "must be an origin: scheme://host[:port], no path and no trailing slash (e.g. \"https://dashboard.example.org\")",
            );
        }
        v.range(
            "server.tuning_window_days",
            self.tuning_window_days,
            0.01,
            365.0,
        );
        self.map.validate(v);
        let mut names = std::collections::BTreeMap::new();
        let mut tokens = std::collections::BTreeMap::new();
        for (i, u) in self.users.iter().enumerate() {
            let p = format!("server.users[{i}]");
            v.check(
                !u.name.trim().is_empty(),
                format!("{p}.name"),
                "must not be empty",
            );
            if let Some(prev) = names.insert(u.name.clone(), i) {
                v.error(
                    format!("{p}.name"),
                    format!(
                        "user {:?} is already defined by server.users[{prev}]",
                        u.name
                    ),
                );
            }
            v.check(
                u.token.expose().len() >= 16,
                format!("{p}.token"),
                "must be at least 16 characters (write token = \"${LOOKOUT_..._TOKEN}\")",
            );
            if let Some(prev) = tokens.insert(u.token.expose().to_string(), i) {
                v.error(
                    format!("{p}.token"),
                    format!("the same token is already used by server.users[{prev}]"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER: &str =
        "[[server.users]]\nname = \"v\"\nrole = \"viewer\"\ntoken = \"viewer-token-000001\"\n";

    fn parse(src: &str) -> Result<crate::Config, crate::ConfigErrors> {
        crate::parse(src, "site.toml", std::path::Path::new("."))
    }

    #[test]
    fn read_access_defaults_by_bind_and_dumps_the_effective_value() {
        let cfg = parse(USER).unwrap();
        assert_eq!(cfg.server.read_access, Some(ReadAccess::Open));
        let lan = parse(&format!("[server]\nbind = \"0.0.0.0\"\n{USER}")).unwrap();
        assert_eq!(lan.server.read_access, Some(ReadAccess::Token));
        assert!(lan.redacted_toml().contains("read_access = \"token\""));
        assert!(!lan.server.open_beyond_loopback());
        let v6 = parse(&format!("[server]\nbind = \"::1\"\n{USER}")).unwrap();
        assert_eq!(v6.server.read_access, Some(ReadAccess::Open));
        // Open beyond loopback only when written.
        let open = parse("[server]\nbind = \"0.0.0.0\"\nread_access = \"open\"\n").unwrap();
        assert!(open.server.open_beyond_loopback());
        let tok = parse(&format!("[server]\nread_access = \"token\"\n{USER}")).unwrap();
        assert_eq!(tok.server.read_access, Some(ReadAccess::Token));
    }

    #[test]
    fn token_reads_need_a_user() {
        let e = parse("[server]\nbind = \"0.0.0.0\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("site.toml:2:") && e.contains("server.bind"),
            "{e}"
        );
        assert!(
            e.contains("[[server.users]]") && e.contains("read_access = \"open\""),
            "{e}"
        );
        let e = parse("[server]\nread_access = \"token\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("server.read_access"), "{e}");
        let e = parse("[server]\nread_access = \"maybe\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("open") && e.contains("token"), "{e}");
    }

    #[test]
    fn tokens_are_kept_as_hashes_only() {
        let cfg = parse(&format!(
            "{USER}[[server.users]]\nname = \"a\"\nrole = \"admin\"\ntoken = \"${{LOOKOUT_TEST_NO_SUCH_VAR:-admin-token-0000001}}\"\n"
        ))
        .unwrap();
        let [v, a] = &cfg.server.users[..] else {
            panic!("two users")
        };
        assert_eq!(v.token_sha256, token_sha256("viewer-token-000001"));
        assert_eq!(a.token_sha256, token_sha256("admin-token-0000001"));
        assert_ne!(v.token_sha256, a.token_sha256);
        let all = format!("{cfg:?}{}", cfg.redacted_toml());
        for u in &cfg.server.users {
            assert!(!u.token.expose().contains("token-0000"), "{:?}", u.token);
        }
        assert!(!all.contains("token-0000"), "{all}");
        let made = UserConfig::new("x", Role::Operator, "some-token-of-16+chars");
        assert_eq!(made.token_sha256, token_sha256("some-token-of-16+chars"));
    }

    #[test]
    fn cors_origins_are_origins() {
        assert!(parse("[server]\ncors_origins = [\"https://dash.example.org:8443\"]\n").is_ok());
        for bad in [
            "https://dash.example.org/",
            "dash.example.org",
            "https://a/b",
        ] {
            let e = parse(&format!("[server]\ncors_origins = [\"{bad}\"]\n"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("server.cors_origins[0]"), "{bad}: {e}");
        }
    }

    #[test]
    fn map_basemap_is_validated_with_located_errors() {
        let ok = parse(
            "[server.map]\ntile_url = \"https://{s}.tile.example.org/{z}/{x}/{y}.png\"\nattribution = \"© x\"\n",
        )
        .unwrap();
        let url = ok.server.map.tile_url.as_deref().unwrap();
        assert_eq!(
            MapConfig::tile_origin(url).as_deref(),
            Some("https://*.tile.example.org")
        );
        for (bad, want) in [
            (
                "tile_url = \"ftp://x.org/{z}/{x}/{y}\"",
                "must be an http(s) URL",
            ),
            (
                "tile_url = \"https://x.org/{z}/{x}.png\"",
                "{z}, {x} and {y}",
            ),
            (
                "tile_url = \"https://x.org/{z}/{x}/{y}\"\nmbtiles = \"m.mbtiles\"",
                "not both",
            ),
            ("mbtiles = \"no-such.mbtiles\"", "not found"),
            (
                "pmtiles = \"b.pmtiles\"\nmbtiles = \"m.mbtiles\"",
                "not two",
            ),
            (
                "pmtiles = \"b.pmtiles\"\ntile_url = \"https://x.org/{z}/{x}/{y}\"",
                "not two",
            ),
            ("pmtiles = \" \"", "must not be empty"),
            ("mbtiles = \"Cargo.toml\"", "not an MBTiles file"),
            ("basemap = \"x\"", "basemap"),
        ] {
            let e = crate::parse(
                &format!("[server]\nport = 1\n\n[server.map]\n{bad}\n"),
                "site.toml",
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")),
            )
            .unwrap_err()
            .to_string();
            assert!(e.contains("site.toml:5:"), "{bad}: {e}");
            assert!(e.contains(want), "{bad}: {e}");
        }
    }
}
