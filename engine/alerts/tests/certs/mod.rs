//! A throwaway test PKI made with the `openssl` command (Debian package openssl, installed
//! by scripts/setup.sh): a private CA, a server certificate for IP 127.0.0.1 and a client
//! certificate, all signed by it. Shared by the TLS tests (HTTPS webhooks, MQTT over TLS).
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

/// Runs `openssl` in `dir` with whitespace-separated arguments.
pub fn openssl(dir: &Path, args: &str) {
    let args: Vec<&str> = args.split_whitespace().collect();
    let out = Command::new("openssl")
        .args(&args)
        .current_dir(dir)
        .output()
        .expect("the `openssl` command (Debian package openssl, see scripts/setup.sh)");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const EC: &str = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";

/// A private CA (`ca.pem`, key `ca.key`) and a server certificate for IP 127.0.0.1 signed
/// by it (`server.pem`, key `server.key`), written into `dir`.
pub fn make_certs(dir: &Path) {
    openssl(
        dir,
        &format!(
            "req -x509 {EC} -keyout ca.key -out ca.pem -days 2 -subj /CN=lookout-test-site-ca \
             -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign"
        ),
    );
    openssl(
        dir,
        &format!("req {EC} -keyout server.key -out server.csr -subj /CN=127.0.0.1"),
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write server.ext");
    openssl(
        dir,
        "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem \
         -days 2 -extfile server.ext",
    );
}

/// A client certificate (`client.pem`, key `client.key`, CN `cn`) signed by the CA that
/// [`make_certs`] made in `dir`.
pub fn make_client_cert(dir: &Path, cn: &str) {
    openssl(
        dir,
        &format!("req {EC} -keyout client.key -out client.csr -subj /CN={cn}"),
    );
    std::fs::write(
        dir.join("client.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n\
         extendedKeyUsage=clientAuth\n",
    )
    .expect("write client.ext");
    openssl(
        dir,
        "x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem \
         -days 2 -extfile client.ext",
    );
}
