//! A minimal HTTP/1.1 client for `http://` webhooks: one request per connection
//! (`Connection: close`), a timeout around the whole exchange, the status code back.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A parsed `http://host[:port][/path]` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// Host name or address.
    pub host: String,
    /// Port (80 when not written).
    pub port: u16,
    /// Path with query, starting with `/`.
    pub path: String,
}

impl HttpUrl {
    /// Parses a plain-HTTP URL; the error says what is wrong.
    pub fn parse(url: &str) -> Result<HttpUrl, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| "only http:// URLs are supported".to_string())?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.contains('@') {
            return Err("credentials in the URL are not supported; use `token`".into());
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => (
                h.to_string(),
                p.parse::<u16>()
                    .map_err(|_| format!("invalid port {p:?} in the URL"))?,
            ),
            _ => (authority.to_string(), 80),
        };
        if host.is_empty() {
            return Err("the URL has no host".into());
        }
        Ok(HttpUrl {
            host,
            port,
            path: path.to_string(),
        })
    }
}

/// POSTs `body` as JSON and returns the response status code.
pub async fn post_json(
    url: &HttpUrl,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> Result<u16, String> {
    tokio::time::timeout(timeout, exchange(url, headers, body))
        .await
        .map_err(|_| format!("no response within {:.1} s", timeout.as_secs_f64()))?
}

async fn exchange(url: &HttpUrl, headers: &[(&str, &str)], body: &[u8]) -> Result<u16, String> {
    let mut s = TcpStream::connect((url.host.as_str(), url.port))
        .await
        .map_err(|e| format!("connect to {}:{}: {e}", url.host, url.port))?;
    let _ = s.set_nodelay(true);
    let mut req = format!(
        "POST {} HTTP/1.1\r\nHost: {}:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\nUser-Agent: lookout\r\n",
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
    s.write_all(&buf).await.map_err(|e| format!("send: {e}"))?;
    let mut resp = Vec::with_capacity(256);
    let mut chunk = [0u8; 1024];
    loop {
        let n = s
            .read(&mut chunk)
            .await
            .map_err(|e| format!("receive: {e}"))?;
        if n == 0 {
            break;
        }
        resp.extend_from_slice(&chunk[..n]);
        if resp.windows(2).any(|w| w == b"\r\n") || resp.len() > 16 * 1024 {
            break;
        }
    }
    let line = resp.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    match (
        parts.next(),
        parts.next().and_then(|c| c.parse::<u16>().ok()),
    ) {
        (Some(v), Some(code)) if v.starts_with("HTTP/1.") => Ok(code),
        _ => Err(format!("not an HTTP response: {:?}", line.trim())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let u = HttpUrl::parse("http://127.0.0.1:9000/hook?x=1").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("127.0.0.1", 9000, "/hook?x=1")
        );
        let u = HttpUrl::parse("http://example").unwrap();
        assert_eq!((u.port, u.path.as_str()), (80, "/"));
        assert!(HttpUrl::parse("https://x").is_err());
        assert!(HttpUrl::parse("http://u:p@x/").is_err());
        assert!(HttpUrl::parse("http://x:notaport/").is_err());
    }
}
