//! HTTPS (`server.tls`) on 127.0.0.1 with CAs made in the test by the `openssl` command
//! (installed by scripts/setup.sh): the API over TLS with HSTS, a certificate swapped on
//! disk and served without a restart, and the errors for a missing, unreadable or
//! mismatched certificate/key naming the file.

mod common;
// The `openssl` runner of the shared test PKI (its fixed-name certificates are not used here).
#[path = "../../alerts/tests/certs/mod.rs"]
mod certs;

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use certs::openssl;
use common::*;

/// A CA `<name>-ca.pem` and a certificate for IP 127.0.0.1 signed by it (`<name>.pem`,
/// key `<name>.key`), written into `dir`.
fn make_certs(dir: &Path, name: &str) {
    const EC: &str = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    openssl(
        dir,
        &format!(
            "req -x509 {EC} -keyout {name}-ca.key -out {name}-ca.pem -days 2 -subj /CN=lookout-test-{name}-ca \
             -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign"
        ),
    );
    openssl(
        dir,
        &format!("req {EC} -keyout {name}.key -out {name}.csr -subj /CN=127.0.0.1"),
    );
    std::fs::write(
        dir.join(format!("{name}.ext")),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &format!(
            "x509 -req -in {name}.csr -CA {name}-ca.pem -CAkey {name}-ca.key -CAcreateserial \
             -out {name}.pem -days 2 -extfile {name}.ext"
        ),
    );
}

/// A client that trusts only `ca` (a new connection per request, so each one sees the
/// certificate served at that time; open connections keep theirs).
fn client(ca: &Path) -> ureq::Agent {
    let tls = lookout_alerts::http::tls_config(Some(ca)).unwrap();
    ureq::AgentBuilder::new()
        .tls_config(tls)
        .max_idle_connections(0)
        .timeout(Duration::from_secs(10))
        .build()
}

fn tls_config(cert: &str, key: &str) -> String {
    format!("[server]\ntls = {{ cert = \"{cert}\", key = \"{key}\" }}\n{CONFIG}")
}

#[test]
fn https_with_hsts_and_a_certificate_swapped_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    make_certs(dir.path(), "one");
    make_certs(dir.path(), "two");
    std::fs::copy(dir.path().join("one.pem"), dir.path().join("server.pem")).unwrap();
    std::fs::copy(dir.path().join("one.key"), dir.path().join("server.key")).unwrap();
    let (ca1, ca2) = (dir.path().join("one-ca.pem"), dir.path().join("two-ca.pem"));
    let f = start_in(dir, &tls_config("server.pem", "server.key"));
    let url = format!("https://{}/api/cameras", f.addr);
    let (c1, c2) = (client(&ca1), client(&ca2));

    let r = c1.get(&url).call().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.header("strict-transport-security"),
        Some("max-age=31536000")
    );
    let cams: serde_json::Value = serde_json::from_str(&r.into_string().unwrap()).unwrap();
    assert_eq!(cams.as_array().unwrap().len(), 2);
    assert!(
        c2.get(&url).call().is_err(),
        "CA two does not trust certificate one"
    );
    // Plain HTTP on the TLS port gets no answer from the API.
    let mut s = std::net::TcpStream::connect(f.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /api/cameras HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    assert!(!answer.starts_with(b"HTTP/1.1 200"));

    // Swap in certificate two (key first, then the certificate, each by rename as
    // certificate tools do); the running server picks it up.
    let d = f.dir.path();
    std::fs::copy(d.join("two.key"), d.join("server.key.new")).unwrap();
    std::fs::rename(d.join("server.key.new"), d.join("server.key")).unwrap();
    std::fs::copy(d.join("two.pem"), d.join("server.pem.new")).unwrap();
    std::fs::rename(d.join("server.pem.new"), d.join("server.pem")).unwrap();
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        match c2.get(&url).call() {
            Ok(r) => {
                assert_eq!(r.status(), 200);
                break;
            }
            Err(e) => assert!(Instant::now() < end, "certificate two never served: {e}"),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        c1.get(&url).call().is_err(),
        "certificate one is no longer served"
    );
    // A half-done swap (a key that does not match) keeps the certificate in force.
    std::fs::copy(d.join("one.key"), d.join("server.key.new")).unwrap();
    std::fs::rename(d.join("server.key.new"), d.join("server.key")).unwrap();
    std::thread::sleep(lookout_server::tls::RELOAD_POLL * 3);
    assert_eq!(c2.get(&url).call().unwrap().status(), 200);
}

#[test]
fn unusable_certificates_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    make_certs(dir.path(), "one");
    make_certs(dir.path(), "two");
    let errors = |cfg: &str| -> String {
        lookout_config::parse(cfg, "site.toml", dir.path())
            .unwrap_err()
            .to_string()
    };
    // At config check: missing, unreadable (a directory), not PEM.
    let e = errors(&tls_config("missing.pem", "one.key"));
    assert!(
        e.contains("server.tls.cert") && e.contains("missing.pem: not found"),
        "{e}"
    );
    std::fs::create_dir(dir.path().join("adir")).unwrap();
    let e = errors(&tls_config("one.pem", "adir"));
    assert!(
        e.contains("server.tls.key") && e.contains("adir: cannot read it"),
        "{e}"
    );
    let e = errors(&tls_config("one.ext", "one.key"));
    assert!(e.contains("one.ext: holds no PEM certificate"), "{e}");

    // At start: a key that is not the certificate's.
    let cfg =
        lookout_config::parse(&tls_config("one.pem", "two.key"), "site.toml", dir.path()).unwrap();
    let (rt, alerts) = open_alerts(&cfg);
    let state = lookout_server::ServerState::new(alerts, cfg);
    let err = rt
        .block_on(lookout_server::start(state, "127.0.0.1:0".parse().unwrap()))
        .err()
        .expect("a mismatched key must not start");
    let msg = err.to_string();
    assert!(
        msg.contains("two.key")
            && msg.contains("does not match the certificate")
            && msg.contains("one.pem"),
        "{msg}"
    );
    // The loader names the file for a corrupt certificate too.
    std::fs::write(
        dir.path().join("bad.pem"),
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let e = lookout_server::tls::load(&dir.path().join("bad.pem"), &dir.path().join("one.key"))
        .unwrap_err();
    assert!(e.file.ends_with("bad.pem"), "{e}");
}
