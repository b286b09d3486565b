//! A webhook's `ca_file` is checked when the config loads (what `lookout check-config`
//! runs): a missing file, or one without a PEM certificate, is a located error on the key
//! that names the file, instead of a surprise when the sink starts. Real files in a temp
//! directory; the valid certificate is made by the `openssl` command (installed by
//! scripts/setup.sh), as the alerts crate's HTTPS tests do.

use std::path::Path;
use std::process::Command;

/// Writes `lookout.toml` into `dir` with one https:// webhook (sink 0 is a JSONL sink, so
/// the webhook is `alerts.sinks[1]`) and loads it; the errors as printed, one a line.
fn check(dir: &Path, url: &str, ca_file: &str) -> Result<(), Vec<String>> {
    let text = format!(
        r#"[alerts]
cooldown_s = 600

[[alerts.sinks]]
kind = "jsonl"
name = "log"
path = "incidents.jsonl"

[[alerts.sinks]]
kind = "webhook"
name = "dispatch"
url = "{url}"
ca_file = {ca_file:?}
"#
    );
    let path = dir.join("lookout.toml");
    std::fs::write(&path, text).unwrap();
    match lookout_config::load(&path) {
        Ok(_) => Ok(()),
        Err(e) => Err(e.errors.iter().map(|e| e.to_string()).collect()),
    }
}

/// The one error of a rejected config.
fn one_error(r: Result<(), Vec<String>>) -> String {
    match r {
        Ok(()) => panic!("the config was accepted"),
        Err(mut e) => {
            assert_eq!(e.len(), 1, "{e:?}");
            e.remove(0)
        }
    }
}

const URL: &str = "https://127.0.0.1:9/hook";

#[test]
fn missing_or_non_pem_ca_file_is_a_located_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lookout.toml").display().to_string();
    // Line 13 column 1 is `ca_file = ...` in the text above.
    let at = format!("{file}:13:1: `alerts.sinks[1].ca_file`: ");

    let e = one_error(check(dir.path(), URL, "certs/missing.pem"));
    assert!(e.starts_with(&at), "{e}");
    assert!(
        e.contains(&dir.path().join("certs/missing.pem").display().to_string())
            && e.contains("not found"),
        "{e}"
    );

    // Garbage: not PEM at all.
    std::fs::write(
        dir.path().join("garbage.pem"),
        b"\x00\x01not a certificate\xff\n",
    )
    .unwrap();
    let e = one_error(check(dir.path(), URL, "garbage.pem"));
    assert!(e.starts_with(&at), "{e}");
    assert!(
        e.contains("garbage.pem") && e.contains("no certificate in it"),
        "{e}"
    );

    // PEM, but no certificate (a private key).
    std::fs::write(
        dir.path().join("key.pem"),
        "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let e = one_error(check(dir.path(), URL, "key.pem"));
    assert!(
        e.contains("key.pem") && e.contains("no certificate in it"),
        "{e}"
    );

    // A certificate block whose body is not base64, and a truncated one.
    std::fs::write(
        dir.path().join("broken.pem"),
        "-----BEGIN CERTIFICATE-----\nthis is not base64!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let e = one_error(check(dir.path(), URL, "broken.pem"));
    assert!(
        e.contains("broken.pem") && e.contains("not valid PEM"),
        "{e}"
    );
    std::fs::write(
        dir.path().join("cut.pem"),
        "-----BEGIN CERTIFICATE-----\nMIIBfTCCASOgAwIBAgIU\n",
    )
    .unwrap();
    let e = one_error(check(dir.path(), URL, "cut.pem"));
    assert!(e.contains("cut.pem") && e.contains("truncated"), "{e}");

    // A directory is not a file.
    std::fs::create_dir(dir.path().join("certs")).unwrap();
    let e = one_error(check(dir.path(), URL, "certs"));
    assert!(e.starts_with(&at) && e.contains("cannot read it"), "{e}");

    // On an http:// URL the file is not read: the one error is the scheme.
    let e = one_error(check(dir.path(), "http://127.0.0.1:9/hook", "missing.pem"));
    assert!(e.contains("applies only to https://"), "{e}");
}

#[test]
fn a_real_pem_certificate_passes_relative_or_absolute() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=lookout-test-site-ca",
        ])
        .current_dir(&certs)
        .output()
        .expect("the `openssl` command (Debian package openssl, see scripts/setup.sh)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(check(dir.path(), URL, "certs/ca.pem"), Ok(()));
    let abs = certs.join("ca.pem").display().to_string();
    assert_eq!(check(dir.path(), URL, &abs), Ok(()));
    // A bundle: the key and the certificate in one file, and two certificates.
    let key = std::fs::read_to_string(certs.join("ca.key")).unwrap();
    let cert = std::fs::read_to_string(certs.join("ca.pem")).unwrap();
    std::fs::write(certs.join("bundle.pem"), format!("{key}{cert}{cert}")).unwrap();
    assert_eq!(check(dir.path(), URL, "certs/bundle.pem"), Ok(()));
    // The same certificate with its last line cut off is refused.
    let cut = &cert[..cert.find("-----END").unwrap()];
    std::fs::write(certs.join("cut.pem"), cut).unwrap();
    let e = one_error(check(dir.path(), URL, "certs/cut.pem"));
    assert!(e.contains("cut.pem") && e.contains("truncated"), "{e}");
}
