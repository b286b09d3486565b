//! The webhook client: HTTP/1.1 POST to `http://` or `https://` URLs, a timeout around the
//! whole exchange, the status code back.
//!
//! * `http://`: a minimal async HTTP/1.1 exchange on tokio (no thread hop: the cheapest
//!   path for local receivers and the outbox benchmark). The connection is kept alive
//!   between POSTs (one per sink) unless the server answers `Connection: close` or sends a
//!   body without a length; a kept connection the server closed meanwhile is noticed
//!   before reuse, and a reused one that fails before any answer is retried once on a new
//!   connection. IPv6 literals (`http://[::1]:8080/`) are connected to without brackets.
//! * `https://`: `ureq` (blocking, run on tokio's blocking pool) with rustls + ring, the same
//!   small TLS stack the FIRMS client uses, no OpenSSL. Servers are verified against the
//!   bundled Mozilla roots (`webpki-roots`, so it works offline) plus, optionally, a site's
//!   own CA certificates from a PEM file (`ca_file`). Verification is never disabled. The
//!   connection is kept alive between POSTs (one agent per sink, one idle connection kept),
//!   so a backlog drains without a TCP and TLS handshake per notification; a kept
//!   connection the server has closed meanwhile is noticed before it is reused.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use ureq::rustls;
use ureq::rustls::pki_types::pem::PemObject;
use ureq::rustls::pki_types::CertificateDer;

/// A checked `http://` or `https://host[:port][/path]` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// True for `https://`.
    pub tls: bool,
    /// Host name or address (IPv6 literals keep their brackets).
    pub host: String,
    /// Port (80 or 443 when not written).
    pub port: u16,
    /// Path with query, starting with `/`.
    pub path: String,
}

impl HttpUrl {
    /// Parses an HTTP or HTTPS URL; the error says what is wrong (it never repeats the URL,
    /// which may carry a secret in its path).
    pub fn parse(url: &str) -> Result<HttpUrl, String> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err("the URL must start with http:// or https://".into());
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_string()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_string()),
        };
        if authority.contains('@') {
            return Err("credentials in the URL are not supported; use `token`".into());
        }
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.starts_with('[') || h.ends_with(']') => (
                h.to_string(),
                p.parse::<u16>()
                    .map_err(|_| format!("invalid port {p:?} in the URL"))?,
            ),
            _ => (authority.to_string(), default_port),
        };
        if host.is_empty() || host == "[]" {
            return Err("the URL has no host".into());
        }
        Ok(HttpUrl {
            tls,
            host,
            port,
            path,
        })
    }

    /// The URL as sent (scheme, host, port and path).
    pub fn to_url(&self) -> String {
        format!(
            "{}://{}:{}{}",
            if self.tls { "https" } else { "http" },
            self.host,
            self.port,
            self.path
        )
    }
}

/// Reads the CA certificates of a PEM file (one or more `-----BEGIN CERTIFICATE-----`
/// blocks). The error names the file and says what is wrong.
pub fn load_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = std::fs::read(path)
        .map_err(|e| format!("ca_file {}: cannot read it: {e}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("ca_file {}: not valid PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "ca_file {}: no certificate in it (expected PEM \"-----BEGIN CERTIFICATE-----\" blocks)",
            path.display()
        ));
    }
    Ok(certs)
}

/// The TLS client configuration: Mozilla roots plus the certificates of `ca_file`.
pub fn tls_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_file {
        for (i, cert) in load_ca_file(path)?.into_iter().enumerate() {
            roots.add(cert).map_err(|e| {
                format!(
                    "ca_file {}: certificate #{} cannot be used as a CA: {e}",
                    path.display(),
                    i + 1
                )
            })?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(
        rustls::crypto::ring::default_provider().into(),
    )
    .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
    .map_err(|e| format!("TLS setup: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

/// What a receiver answered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// `Retry-After` (seconds or an HTTP date), when sent.
    pub retry_after: Option<Duration>,
    /// The start of the body (at most [`BODY_EXCERPT`] bytes, lossy UTF-8).
    pub body: String,
}

/// How much of a response body is kept (for dead letters).
pub const BODY_EXCERPT: usize = 512;

/// A webhook target: where to POST and how long one attempt may take.
#[derive(Clone)]
pub struct WebhookClient {
    url: HttpUrl,
    /// For `https://`: the agent (with its TLS trust and its pool of kept-alive
    /// connections, shared by clones) and the URL string it is given.
    tls: Option<(ureq::Agent, String)>,
    timeout: Duration,
    /// For `http://`: the kept-alive connection (shared by clones).
    conn: Arc<tokio::sync::Mutex<Option<BufReader<TcpStream>>>>,
    /// For `http://`: connections opened so far (tests, keep-alive check).
    opened: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for WebhookClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a secret (e.g. chat webhooks keep their token in the path).
        f.debug_struct("WebhookClient")
            .field("tls", &self.url.tls)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl WebhookClient {
    /// A client for `url`; for `https://`, `ca_file` adds a site's CA certificates to the
    /// Mozilla roots (an error for `http://`).
    pub fn new(
        url: &HttpUrl,
        ca_file: Option<&Path>,
        timeout: Duration,
    ) -> Result<WebhookClient, String> {
        let tls = if url.tls {
            let agent = ureq::AgentBuilder::new()
                .tls_config(tls_config(ca_file)?)
                .timeout(timeout)
                .redirects(0)
                // Keep-alive: one sink delivers one notification at a time to one host.
                .max_idle_connections(IDLE_CONNECTIONS)
                .max_idle_connections_per_host(IDLE_CONNECTIONS)
                .user_agent("lookout")
                .build();
            Some((agent, url.to_url()))
        } else if ca_file.is_some() {
            return Err("ca_file applies only to https:// URLs".into());
        } else {
            None
        };
        Ok(WebhookClient {
            url: url.clone(),
            tls,
            timeout,
            conn: Arc::new(tokio::sync::Mutex::new(None)),
            opened: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        })
    }

    /// POSTs `body` as JSON and returns the response status code (4xx/5xx included); an
    /// error means no HTTP response came back (connection, TLS, timeout).
    pub async fn post_json(&self, headers: &[(&str, &str)], body: &[u8]) -> Result<u16, String> {
        self.post(headers, body).await.map(|r| r.status)
    }

    /// Plain-HTTP connections opened so far (one for many POSTs while the server keeps
    /// the connection alive; always 0 for `https://`).
    pub fn connections_opened(&self) -> u64 {
        self.opened.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// POSTs `body` as JSON and returns the status, `Retry-After` and the start of the
    /// body (4xx/5xx included); an error means no HTTP response came back (connection,
    /// TLS, timeout).
    pub async fn post(
        &self,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<HttpResponse, String> {
        let Some((agent, url)) = &self.tls else {
            let mut conn = self.conn.lock().await;
            let r = tokio::time::timeout(
                self.timeout,
                post_plain(&self.url, &mut conn, &self.opened, headers, body),
            )
            .await;
            return match r {
                Ok(r) => r,
                Err(_) => {
                    // Half an exchange may be left on the connection.
                    *conn = None;
                    Err(self.late())
                }
            };
        };
        let (agent, url) = (agent.clone(), url.clone());
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let body = body.to_vec();
        let job = tokio::task::spawn_blocking(move || {
            let mut req = agent.post(&url).set("Content-Type", "application/json");
            for (k, v) in &headers {
                req = req.set(k, v);
            }
            match req.send_bytes(&body) {
                Ok(resp) | Err(ureq::Error::Status(_, resp)) => Ok(drain(resp)),
                Err(ureq::Error::Transport(t)) => Err(describe(&t)),
            }
        });
        match tokio::time::timeout(self.timeout, job).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => Err(format!("the request task failed: {e}")),
            Err(_) => Err(self.late()),
        }
    }

    fn late(&self) -> String {
        format!("no response within {:.1} s", self.timeout.as_secs_f64())
    }
}

/// Idle HTTPS connections an agent (a sink) keeps for the next POST.
const IDLE_CONNECTIONS: usize = 2;

/// A response body longer than this is not read: its connection is closed instead of kept.
const MAX_DRAINED_BODY: u64 = 64 * 1024;

/// Reads a response's body (keeping its start), so that its connection goes back to the
/// agent's pool (ureq keeps a connection only once its response was read to the end).
fn drain(resp: ureq::Response) -> HttpResponse {
    use std::io::Read;
    let status = resp.status();
    let retry_after = resp.header("Retry-After").and_then(parse_retry_after);
    let mut reader = resp.into_reader().take(MAX_DRAINED_BODY);
    let mut head = Vec::with_capacity(BODY_EXCERPT);
    let _ = (&mut reader)
        .take(BODY_EXCERPT as u64)
        .read_to_end(&mut head);
    let _ = std::io::copy(&mut reader, &mut std::io::sink());
    HttpResponse {
        status,
        retry_after,
        body: String::from_utf8_lossy(&head).into_owned(),
    }
}

/// `Retry-After`: delta-seconds or an HTTP date (RFC 9110 §10.2.3); capped at one day.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    let d = if let Ok(s) = v.parse::<u64>() {
        Duration::from_secs(s)
    } else {
        let t = chrono::DateTime::parse_from_rfc2822(v).ok()?;
        (t.with_timezone(&chrono::Utc) - chrono::Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO)
    };
    Some(d.min(Duration::from_secs(86_400)))
}

/// One plain-HTTP POST on the kept connection (opened when there is none, or when the
/// server closed it): a reused connection that fails before any answer is retried once on
/// a new one (the server may have closed it just as the request went out).
async fn post_plain(
    url: &HttpUrl,
    conn: &mut Option<BufReader<TcpStream>>,
    opened: &std::sync::atomic::AtomicU64,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<HttpResponse, String> {
    let mut req = format!(
        "POST {} HTTP/1.1\r\nHost: {}:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nUser-Agent: lookout\r\n",
        url.path,
        url.host,
        url.port,
        body.len()
    );
    for (k, v) in headers {
        req.push_str(k);
        req.push_str(": ");
        req.push_str(v);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    let mut buf = req.into_bytes();
    buf.extend_from_slice(body);
    if let Some(c) = conn.as_mut() {
        if still_open(c) {
            match exchange(c, &buf).await {
                Ok((resp, keep)) => {
                    if !keep {
                        *conn = None;
                    }
                    return Ok(resp);
                }
                Err(Exchange::BeforeAnswer(_)) => {}
                Err(Exchange::Answer(e)) => {
                    *conn = None;
                    return Err(e);
                }
            }
        }
        *conn = None;
    }
    // Brackets belong in the Host header only.
    let host = url.host.trim_start_matches('[').trim_end_matches(']');
    let s = TcpStream::connect((host, url.port))
        .await
        .map_err(|e| format!("connect to {}:{}: {e}", url.host, url.port))?;
    opened.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let _ = s.set_nodelay(true);
    let mut c = BufReader::new(s);
    match exchange(&mut c, &buf).await {
        Ok((resp, keep)) => {
            if keep {
                *conn = Some(c);
            }
            Ok(resp)
        }
        Err(Exchange::BeforeAnswer(e) | Exchange::Answer(e)) => Err(e),
    }
}

/// Whether a kept connection is still usable: nothing to read and not closed.
fn still_open(c: &BufReader<TcpStream>) -> bool {
    if !c.buffer().is_empty() {
        return false;
    }
    let mut probe = [0u8; 1];
    matches!(c.get_ref().try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

/// How an exchange failed.
enum Exchange {
    /// Nothing came back (a reused connection may just have been closed: retry).
    BeforeAnswer(String),
    /// The answer was cut or malformed.
    Answer(String),
}

/// Longest response head (status line and headers) read.
const MAX_HEAD: usize = 16 * 1024;

/// Sends one request and reads the whole answer; returns it and whether the connection
/// may be kept.
async fn exchange(
    c: &mut BufReader<TcpStream>,
    req: &[u8],
) -> Result<(HttpResponse, bool), Exchange> {
    c.get_mut()
        .write_all(req)
        .await
        .map_err(|e| Exchange::BeforeAnswer(format!("send: {e}")))?;
    let mut line = String::new();
    let n = c
        .read_line(&mut line)
        .await
        .map_err(|e| Exchange::BeforeAnswer(format!("receive: {e}")))?;
    if n == 0 {
        return Err(Exchange::BeforeAnswer(
            "receive: the server closed the connection without an answer".into(),
        ));
    }
    let mut parts = line.split_whitespace();
    let (version, status) = match (
        parts.next(),
        parts.next().and_then(|c| c.parse::<u16>().ok()),
    ) {
        (Some(v), Some(code)) if v.starts_with("HTTP/1.") => (v.to_string(), code),
        _ => {
            return Err(Exchange::Answer(format!(
                "not an HTTP response: {:?}",
                line.trim()
            )))
        }
    };
    let mut keep = version == "HTTP/1.1";
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut retry_after = None;
    let mut head = line.len();
    loop {
        line.clear();
        let n = c
            .read_line(&mut line)
            .await
            .map_err(|e| Exchange::Answer(format!("receive: {e}")))?;
        head += n;
        if n == 0 || head > MAX_HEAD {
            return Err(Exchange::Answer(
                "receive: the response head is cut or too long".into(),
            ));
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        let v = v.trim();
        if k.eq_ignore_ascii_case("content-length") {
            length = v.parse().ok();
        } else if k.eq_ignore_ascii_case("transfer-encoding") {
            chunked = v.to_ascii_lowercase().contains("chunked");
        } else if k.eq_ignore_ascii_case("connection") {
            let v = v.to_ascii_lowercase();
            if v.contains("close") {
                keep = false;
            } else if v.contains("keep-alive") {
                keep = true;
            }
        } else if k.eq_ignore_ascii_case("retry-after") {
            retry_after = parse_retry_after(v);
        }
    }
    let mut body = Vec::new();
    let no_body = status == 204 || status == 304 || (100..200).contains(&status);
    if no_body {
    } else if chunked {
        loop {
            line.clear();
            c.read_line(&mut line)
                .await
                .map_err(|e| Exchange::Answer(format!("receive: {e}")))?;
            let size = u64::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| Exchange::Answer("receive: bad chunk size".into()))?;
            if size == 0 {
                // Trailers, then the empty line.
                loop {
                    line.clear();
                    let n = c
                        .read_line(&mut line)
                        .await
                        .map_err(|e| Exchange::Answer(format!("receive: {e}")))?;
                    if n == 0 || line.trim_end().is_empty() {
                        break;
                    }
                }
                break;
            }
            read_body(c, size, &mut body).await?;
            line.clear();
            c.read_line(&mut line)
                .await
                .map_err(|e| Exchange::Answer(format!("receive: {e}")))?;
        }
    } else if let Some(n) = length.filter(|n| *n <= MAX_DRAINED_BODY) {
        read_body(c, n, &mut body).await?;
    } else if length.is_some() {
        // Too long to drain: keep its start, drop the connection.
        keep = false;
        let _ = (&mut *c)
            .take(BODY_EXCERPT as u64)
            .read_to_end(&mut body)
            .await;
    } else {
        // The body ends when the server closes the connection.
        keep = false;
        let _ = (&mut *c)
            .take(MAX_DRAINED_BODY)
            .read_to_end(&mut body)
            .await;
    }
    body.truncate(BODY_EXCERPT);
    Ok((
        HttpResponse {
            status,
            retry_after,
            body: String::from_utf8_lossy(&body).into_owned(),
        },
        keep,
    ))
}

/// Reads `n` body bytes, keeping the first [`BODY_EXCERPT`]. A body over
/// [`MAX_DRAINED_BODY`] is an error (the connection is then dropped).
async fn read_body(
    c: &mut BufReader<TcpStream>,
    n: u64,
    keep: &mut Vec<u8>,
) -> Result<(), Exchange> {
    if n > MAX_DRAINED_BODY {
        return Err(Exchange::Answer(format!(
            "receive: a response body of {n} bytes is too long"
        )));
    }
    let mut buf = vec![0u8; n as usize];
    c.read_exact(&mut buf)
        .await
        .map_err(|e| Exchange::Answer(format!("receive: {e}")))?;
    let room = BODY_EXCERPT.saturating_sub(keep.len());
    keep.extend_from_slice(&buf[..room.min(buf.len())]);
    Ok(())
}

/// A transport error without its URL (which may carry a secret).
fn describe(t: &ureq::Transport) -> String {
    let mut s = t.kind().to_string();
    if let Some(m) = t.message() {
        s.push_str(": ");
        s.push_str(m);
    }
    let mut src = std::error::Error::source(t);
    while let Some(e) = src {
        let text = e.to_string();
        if !s.ends_with(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        src = e.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let u = HttpUrl::parse("http://127.0.0.1:9000/hook?x=1").unwrap();
        assert_eq!(
            (u.tls, u.host.as_str(), u.port, u.path.as_str()),
            (false, "127.0.0.1", 9000, "/hook?x=1")
        );
        let u = HttpUrl::parse("http://example").unwrap();
        assert_eq!((u.port, u.path.as_str()), (80, "/"));
        let u = HttpUrl::parse("https://example.org/a").unwrap();
        assert_eq!(
            (u.tls, u.port, u.to_url().as_str()),
            (true, 443, "https://example.org:443/a")
        );
        let u = HttpUrl::parse("https://[::1]:8443?q").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("[::1]", 8443, "/?q")
        );
        let u = HttpUrl::parse("https://[::1]/x").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("[::1]", 443));
        assert!(HttpUrl::parse("ftp://x").is_err());
        assert!(HttpUrl::parse("https://").is_err());
        assert!(HttpUrl::parse("http://u:p@x/").is_err());
        assert!(HttpUrl::parse("http://x:notaport/").is_err());
    }

    #[test]
    fn ca_file_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let e = tls_config(Some(&missing)).unwrap_err();
        assert!(
            e.contains("missing.pem") && e.contains("cannot read"),
            "{e}"
        );
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = tls_config(Some(&empty)).unwrap_err();
        assert!(
            e.contains("empty.pem") && e.contains("no certificate"),
            "{e}"
        );
        let bad = dir.path().join("bad.pem");
        std::fs::write(
            &bad,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let e = tls_config(Some(&bad)).unwrap_err();
        assert!(e.contains("bad.pem") && e.contains("cannot be used"), "{e}");
        assert!(tls_config(None).is_ok());
        let plain = HttpUrl::parse("http://127.0.0.1:9/").unwrap();
        let e = WebhookClient::new(&plain, Some(&bad), Duration::from_secs(1)).unwrap_err();
        assert!(e.contains("https://"), "{e}");
    }
}
