//! Webhooks over HTTPS against real parts: a CA and a server certificate made by the
//! `openssl` command (installed by scripts/setup.sh), a real TLS receiver (rustls server) on
//! 127.0.0.1, SQLite on disk, configs parsed from TOML the way `lookout run` reads them.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lookout_alerts::http::{HttpUrl, WebhookClient};
use lookout_alerts::store::IncidentFilter;
use lookout_alerts::Alerts;
mod certs;
mod common;

use certs::make_certs;
use common::incident;
use ureq::rustls;
use ureq::rustls::pki_types::pem::PemObject;
use ureq::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// One request the receiver answered 200: (Idempotency-Key, Authorization, body JSON).
type Seen = Arc<Mutex<Vec<(String, String, serde_json::Value)>>>;

struct Receiver {
    port: u16,
    /// TCP connections accepted (TLS handshakes attempted).
    connections: Arc<AtomicUsize>,
    /// TCP connections ended (closed by either side).
    closed: Arc<AtomicUsize>,
    /// Complete requests answered 200.
    seen: Seen,
    /// How many of the next complete requests are answered 503.
    fail_next: Arc<AtomicUsize>,
    /// When set, the server closes each connection right after its answer without saying
    /// so (no `Connection: close`), as a server whose keep-alive timeout expired does.
    drop_after_answer: Arc<AtomicBool>,
}

/// What one connection's handler shares with the test.
#[derive(Clone)]
struct Shared {
    seen: Seen,
    fail_next: Arc<AtomicUsize>,
    drop_after_answer: Arc<AtomicBool>,
}

/// A temporary site directory with `certs/` made by openssl, an HTTPS receiver using them,
/// and its webhook URL.
fn site_with_receiver() -> (tempfile::TempDir, Receiver, String) {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    make_certs(&certs);
    let rx = https_receiver(&certs);
    let url = format!("https://127.0.0.1:{}/hook", rx.port);
    (dir, rx, url)
}

/// A real HTTPS webhook receiver on 127.0.0.1:0 presenting `server.pem`. It speaks
/// HTTP/1.1 with keep-alive: requests are answered one after another on a connection until
/// the client closes it (or says `Connection: close`).
fn https_receiver(certs: &Path) -> Receiver {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(certs.join("server.pem"))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
    let key = PrivateKeyDer::from_pem_file(certs.join("server.key")).unwrap();
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(
            rustls::crypto::ring::default_provider().into(),
        )
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let closed = Arc::new(AtomicUsize::new(0));
    let shared = Shared {
        seen: Arc::default(),
        fail_next: Arc::new(AtomicUsize::new(0)),
        drop_after_answer: Arc::new(AtomicBool::new(false)),
    };
    let (c2, d2, sh2) = (connections.clone(), closed.clone(), shared.clone());
    std::thread::spawn(move || {
        for sock in listener.incoming() {
            let Ok(sock) = sock else { return };
            c2.fetch_add(1, Ordering::SeqCst);
            let (config, sh, done) = (config.clone(), sh2.clone(), d2.clone());
            std::thread::spawn(move || {
                serve(sock, config, &sh);
                // The socket was dropped (closed) when `serve` returned.
                done.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    Receiver {
        port,
        connections,
        closed,
        seen: shared.seen,
        fail_next: shared.fail_next,
        drop_after_answer: shared.drop_after_answer,
    }
}

/// Serves the requests of one connection, one after another.
fn serve(sock: std::net::TcpStream, config: Arc<rustls::ServerConfig>, sh: &Shared) {
    let _ = sock.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = sock.set_write_timeout(Some(Duration::from_secs(5)));
    let Ok(conn) = rustls::ServerConnection::new(config) else {
        return;
    };
    let mut tls = rustls::StreamOwned::new(conn, sock);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let (head_end, len) = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
                let len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                break (i + 4, len);
            }
            // A client that rejects the certificate ends the handshake here with an error;
            // one that is done with a kept-alive connection closes it (0 bytes).
            let Ok(n) = tls.read(&mut chunk) else { return };
            if n == 0 {
                return;
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        while buf.len() < head_end + len {
            let Ok(n) = tls.read(&mut chunk) else { return };
            if n == 0 {
                return;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let header = |name: &str| {
            head.lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                })
                .unwrap_or_default()
        };
        let Ok(body) = serde_json::from_slice(&buf[head_end..head_end + len]) else {
            let _ = tls.write_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            return;
        };
        let fail = sh
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        let resp: &[u8] = if fail {
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"
        } else {
            sh.seen.lock().unwrap().push((
                header("idempotency-key"),
                header("authorization"),
                body,
            ));
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
        };
        if tls.write_all(resp).and_then(|_| tls.flush()).is_err() {
            return;
        }
        buf.drain(..head_end + len);
        if header("connection").eq_ignore_ascii_case("close")
            || sh.drop_after_answer.load(Ordering::SeqCst)
        {
            tls.conn.send_close_notify();
            let _ = tls.flush();
            return;
        }
    }
}

/// A config file in `dir` with one webhook sink; `ca_file` as written (relative paths
/// resolve against `dir`).
fn config(dir: &Path, url: &str, ca_file: Option<&str>) -> lookout_config::Config {
    let ca = ca_file
        .map(|f| format!("ca_file = {f:?}\n"))
        .unwrap_or_default();
    let text = format!(
        r#"
[engine]
data_dir = "data"

[alerts]
escalate_after_s = 3600

[[alerts.sinks]]
kind = "webhook"
name = "dispatch"
url = "{url}"
token = "s3cret"
timeout_s = 3
retry = {{ initial_s = 0.05, max_s = 0.2 }}
{ca}"#
    );
    let path = dir.join("lookout.toml");
    std::fs::write(&path, text).unwrap();
    match lookout_config::load(&path) {
        Ok(c) => c,
        Err(e) => panic!("config rejected: {e}"),
    }
}

fn backlog(a: &Alerts) -> u64 {
    a.backlog().unwrap().iter().map(|(_, n)| n).sum()
}

fn failures(a: &Alerts) -> u64 {
    a.sink_stats().iter().map(|(_, _, f)| f).sum()
}

async fn wait_until(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let end = Instant::now() + within;
    while !ok() {
        assert!(Instant::now() < end, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_webhook_needs_the_site_ca_and_keeps_its_backlog_until_trusted() {
    let (dir, rx, url) = site_with_receiver();
    let rt = tokio::runtime::Handle::current();

    // Without the site's CA the server is not trusted: every attempt fails in the TLS
    // handshake, is retried with backoff, and the notifications stay in the outbox.
    let cfg = config(dir.path(), &url, None);
    let mut a = Alerts::open(&cfg, &rt).unwrap();
    for i in 0..5 {
        a.record_incident(&incident(&format!("f{i}"), &format!("cam{i}"), 1, 0), None)
            .unwrap();
    }
    wait_until("3 attempts failed", Duration::from_secs(15), || {
        failures(&a) >= 3
    })
    .await;
    assert_eq!(backlog(&a), 5, "nothing delivered, nothing lost");
    assert!(
        rx.connections.load(Ordering::SeqCst) >= 3,
        "each retry reached the server"
    );
    assert!(
        rx.seen.lock().unwrap().is_empty(),
        "no request got past an untrusted certificate"
    );
    let left = a.shutdown(Duration::from_secs(1)).await;
    assert_eq!(left, vec![("dispatch".to_string(), 5)]);
    drop(a);

    // What the sink logs and stores for those attempts: a certificate error.
    let client =
        WebhookClient::new(&HttpUrl::parse(&url).unwrap(), None, Duration::from_secs(3)).unwrap();
    let err = client.post_json(&[], b"{}").await.unwrap_err();
    assert!(
        err.to_ascii_lowercase().contains("certificate"),
        "a certificate error, got: {err}"
    );
    assert!(!err.contains("/hook"), "the URL is not repeated: {err}");

    // Same data directory, now with `ca_file` (relative to the config file): the kept
    // backlog is delivered over HTTPS with its idempotency keys and the token. The
    // receiver answers the first two requests 503: an HTTP status, retried like any failure.
    rx.fail_next.store(2, Ordering::SeqCst);
    let cfg = config(dir.path(), &url, Some("certs/ca.pem"));
    let a = Alerts::open(&cfg, &rt).unwrap();
    wait_until("the backlog drained", Duration::from_secs(15), || {
        backlog(&a) == 0
    })
    .await;
    assert_eq!(rx.fail_next.load(Ordering::SeqCst), 0);
    assert!(failures(&a) >= 2, "the 503 answers were failed attempts");
    let seen = rx.seen.lock().unwrap().clone();
    let keys: BTreeSet<String> = seen.iter().map(|(k, _, _)| k.clone()).collect();
    let stored: BTreeSet<String> = a
        .store()
        .list_incidents(&IncidentFilter {
            limit: Some(100),
            ..Default::default()
        })
        .unwrap()
        .iter()
        .map(|s| format!("{}:{}", s.incident.id, s.incident.revision))
        .collect();
    assert_eq!(stored.len(), 5);
    assert_eq!(keys, stored, "every stored revision arrived, keyed");
    for (key, auth, body) in &seen {
        assert_eq!(auth, "Bearer s3cret");
        assert_eq!(body["key"].as_str(), Some(key.as_str()));
    }

    // The client reports the status code of an HTTPS answer, 5xx included.
    let client = WebhookClient::new(
        &HttpUrl::parse(&url).unwrap(),
        Some(&dir.path().join("certs/ca.pem")),
        Duration::from_secs(3),
    )
    .unwrap();
    rx.fail_next.store(1, Ordering::SeqCst);
    assert_eq!(client.post_json(&[], b"{}").await, Ok(503));
    assert_eq!(client.post_json(&[], b"{}").await, Ok(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_file_problems_name_the_sink_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    make_certs(dir.path());
    let rt = tokio::runtime::Handle::current();
    // The config check refuses such files (lookout-config's tests); a file can still go
    // missing or change after the check, so the engine reads it again when the sink
    // starts. The config is loaded with the good CA, then pointed at the bad file.
    let open_err = |ca: &str| {
        let mut cfg = config(dir.path(), "https://127.0.0.1:9/hook", Some("ca.pem"));
        if let lookout_config::alerts::SinkConfig::Webhook { ca_file, .. } =
            &mut cfg.alerts.sinks[0]
        {
            *ca_file = Some(ca.to_string());
        }
        match Alerts::open(&cfg, &rt) {
            Ok(_) => panic!("ca_file {ca} was accepted"),
            Err(e) => e.to_string(),
        }
    };
    let e = open_err("missing.pem");
    assert!(
        e.contains("dispatch") && e.contains("missing.pem") && e.contains("cannot read"),
        "{e}"
    );
    // A PEM file without a certificate (here: the server's private key).
    let e = open_err("server.key");
    assert!(
        e.contains("dispatch") && e.contains("server.key") && e.contains("no certificate"),
        "{e}"
    );
    // The CA itself works, written relative or absolute.
    let abs: PathBuf = dir.path().join("ca.pem");
    for ca in ["ca.pem", abs.to_str().unwrap()] {
        let cfg = config(dir.path(), "https://127.0.0.1:9/hook", Some(ca));
        assert!(Alerts::open(&cfg, &rt).is_ok(), "{ca}");
    }

    // Config check: ca_file on a plain-HTTP URL, and URLs of another scheme.
    let check = |url: &str, ca: Option<&str>| {
        let ca = ca.map(|f| format!("ca_file = {f:?}\n")).unwrap_or_default();
        let text = format!(
            "[[alerts.sinks]]\nkind = \"webhook\"\nname = \"dispatch\"\nurl = \"{url}\"\n{ca}"
        );
        match lookout_config::parse(&text, "t.toml", dir.path()) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    };
    let e = check("http://127.0.0.1:9/hook", Some("ca.pem"));
    assert!(
        e.contains("alerts.sinks[0].ca_file") && e.contains("https://"),
        "{e}"
    );
    let e = check("https://127.0.0.1:9/hook", Some("server.key"));
    assert!(
        e.contains("alerts.sinks[0].ca_file")
            && e.contains("server.key")
            && e.contains("no certificate"),
        "{e}"
    );
    let e = check("ftp://127.0.0.1/hook", None);
    assert!(e.contains("alerts.sinks[0].url"), "{e}");
    assert_eq!(check("https://127.0.0.1:9/hook", Some("ca.pem")), "");
    assert_eq!(check("http://127.0.0.1:9/hook", None), "");
}

/// An HTTPS sink keeps its connection alive: a backlog of N notifications is delivered over
/// one or two TCP connections (one TLS handshake each), not N. A kept connection that the
/// server closed meanwhile (its keep-alive timeout) is not reused: the next delivery opens
/// a new one and succeeds on its first attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_webhook_reuses_its_connection() {
    const N: usize = 40;
    let (dir, rx, url) = site_with_receiver();
    let rt = tokio::runtime::Handle::current();
    let cfg = config(dir.path(), &url, Some("certs/ca.pem"));
    let a = Alerts::open(&cfg, &rt).unwrap();
    let started = Instant::now();
    for i in 0..N {
        a.record_incident(&incident(&format!("k{i}"), &format!("cam{i}"), 1, 0), None)
            .unwrap();
    }
    wait_until("the backlog drained", Duration::from_secs(30), || {
        backlog(&a) == 0
    })
    .await;
    let took = started.elapsed();
    let keys: BTreeSet<String> = rx
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.0.clone())
        .collect();
    assert_eq!(keys.len(), N, "every notification arrived");
    let conns = rx.connections.load(Ordering::SeqCst);
    eprintln!(
        "{N} HTTPS deliveries over {conns} TCP connection(s) in {:.0} ms",
        took.as_secs_f64() * 1e3
    );
    assert!(
        conns <= 2,
        "{N} deliveries opened {conns} connections: the connection is not kept alive"
    );
    assert_eq!(failures(&a), 0);

    // The server now closes each connection after its answer, without saying so.
    rx.drop_after_answer.store(true, Ordering::SeqCst);
    for i in 0..3 {
        let before = rx.connections.load(Ordering::SeqCst);
        a.record_incident(
            &incident(&format!("late{i}"), &format!("late{i}"), 1, 0),
            None,
        )
        .unwrap();
        wait_until("delivered", Duration::from_secs(10), || {
            rx.seen.lock().unwrap().len() == N + i + 1
        })
        .await;
        // Every connection the server accepted is closed (the one just used included).
        wait_until("the server closed", Duration::from_secs(5), || {
            rx.closed.load(Ordering::SeqCst) == rx.connections.load(Ordering::SeqCst)
        })
        .await;
        // The first goes over the connection kept from the backlog; each later one finds
        // it closed by the server and opens a new one.
        let opened = rx.connections.load(Ordering::SeqCst) - before;
        assert_eq!(opened, usize::from(i > 0), "delivery {i}");
    }
    assert_eq!(
        failures(&a),
        0,
        "a connection closed by the server is not reused: no failed attempt"
    );
    assert_eq!(rx.seen.lock().unwrap().len(), N + 3);
    rx.drop_after_answer.store(false, Ordering::SeqCst);

    // The client on its own: 20 POSTs (some answered 503), one more connection.
    let client = WebhookClient::new(
        &HttpUrl::parse(&url).unwrap(),
        Some(&dir.path().join("certs/ca.pem")),
        Duration::from_secs(3),
    )
    .unwrap();
    let before = rx.connections.load(Ordering::SeqCst);
    rx.fail_next.store(5, Ordering::SeqCst);
    let mut codes = Vec::new();
    for _ in 0..20 {
        codes.push(client.post_json(&[], b"{}").await.unwrap());
    }
    assert_eq!(codes.iter().filter(|&&c| c == 503).count(), 5);
    assert_eq!(codes.iter().filter(|&&c| c == 200).count(), 15);
    let opened = rx.connections.load(Ordering::SeqCst) - before;
    eprintln!("20 HTTPS POSTs of one client over {opened} new connection(s)");
    assert_eq!(opened, 1, "20 POSTs, {opened} connections");
}
