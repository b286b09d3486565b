//! The systemd unit (configs/systemd/lookout.service) is one systemd accepts: offline
//! `systemd-analyze verify` (Debian package systemd) with the unit's binary path pointed at
//! the binary under test, and that binary takes the unit's command line.

mod common;
use common::repo;

use std::process::Command;

#[test]
fn the_service_unit_verifies_and_its_command_line_parses() {
    let unit = std::fs::read_to_string(repo().join("configs/systemd/lookout.service"))
        .expect("configs/systemd/lookout.service");
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("an ExecStart line");
    let args: Vec<&str> = exec.split_whitespace().collect();
    assert_eq!(args[0], "/usr/local/bin/lookout", "{exec}");
    for want in [
        "Restart=on-failure",
        "User=lookout",
        "EnvironmentFile=/etc/lookout/lookout.env",
        "StateDirectory=lookout",
        "StandardOutput=journal",
    ] {
        assert!(unit.lines().any(|l| l == want), "{want} missing");
    }

    // systemd checks the unit, and that its command exists and is executable.
    let tmp = tempfile::tempdir().expect("temp dir");
    let here = tmp.path().join("lookout.service");
    std::fs::write(
        &here,
        unit.replace("/usr/local/bin/lookout", env!("CARGO_BIN_EXE_lookout")),
    )
    .expect("write the unit");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&here)
        .output()
        .expect("systemd-analyze (Debian package systemd, see scripts/setup.sh)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.trim().is_empty(), "{err}");

    // The binary takes the unit's arguments (`run --help` instead of starting).
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lookout"));
    let run = args.iter().position(|a| *a == "run").expect("run");
    cmd.args(&args[1..=run]).arg("--help");
    let help = cmd.output().expect("lookout runs");
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.status.success(),
        "{exec}: {}",
        String::from_utf8_lossy(&help.stderr)
    );
    for flag in args[run + 1..].iter().filter(|a| a.starts_with("--")) {
        assert!(text.contains(flag), "`lookout run` has no {flag}:\n{text}");
    }
    // The environment file example names what the engine reads.
    let env = std::fs::read_to_string(repo().join("configs/systemd/lookout.env.example"))
        .expect("configs/systemd/lookout.env.example");
    for key in ["ORT_DYLIB_PATH=", "LOOKOUT_SHARED=", "LOOKOUT_LOG="] {
        assert!(env.lines().any(|l| l.starts_with(key)), "{key} missing");
    }
}
