//! Embeds Leaflet (the web UI's map library), vendored from the npm registry by
//! `scripts/vendor-leaflet.sh` (run by `scripts/setup.sh`) into `.runtime/leaflet-<version>/`,
//! or from `LOOKOUT_LEAFLET_DIR`. When it is missing the build goes on with a warning and
//! the server answers 503 for `/vendor/leaflet/...` saying how to vendor it (the rest of the
//! UI works; the map view shows the same message).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

const FILES: &[&str] = &[
    "leaflet.js",
    "leaflet.css",
    "LICENSE",
    "images/layers.png",
    "images/layers-2x.png",
    "images/marker-icon.png",
    "images/marker-icon-2x.png",
    "images/marker-shadow.png",
];

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let root = manifest.join("../..");
    let script = root.join("scripts/vendor-leaflet.sh");
    println!("cargo:rerun-if-env-changed=LOOKOUT_LEAFLET_DIR");
    println!("cargo:rerun-if-changed={}", script.display());
    let version = std::fs::read_to_string(&script)
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("LEAFLET_VERSION=")
                    .map(|v| v.trim().to_string())
            })
        })
        .unwrap_or_else(|| "unknown".into());
    let dir = std::env::var_os("LOOKOUT_LEAFLET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".runtime").join(format!("leaflet-{version}")));
    println!("cargo:rerun-if-changed={}", dir.display());
    let missing: Vec<&str> = FILES
        .iter()
        .copied()
        .filter(|f| !dir.join(f).is_file())
        .collect();
    let mut out = String::new();
    let _ = writeln!(out, "/// The vendored Leaflet's version.");
    let _ = writeln!(out, "pub const LEAFLET_VERSION: &str = {version:?};");
    if missing.is_empty() {
        let _ = writeln!(
            out,
            "/// Leaflet's files, by path under `/vendor/leaflet/`."
        );
        let _ = writeln!(out, "pub static LEAFLET_FILES: &[(&str, &[u8])] = &[");
        for f in FILES {
            let p = abs(&dir.join(f));
            println!("cargo:rerun-if-changed={}", p.display());
            let _ = writeln!(
                out,
                "    ({f:?}, include_bytes!({:?})),",
                p.display().to_string()
            );
        }
        let _ = writeln!(out, "];");
        let _ = writeln!(out, "/// Why Leaflet is not embedded (`None`: it is).");
        let _ = writeln!(out, "pub const LEAFLET_MISSING: Option<&str> = None;");
    } else {
        let why = format!(
            "Leaflet {version} was not embedded in this build ({} has no {}): run scripts/setup.sh (it vendors Leaflet from the npm registry) and rebuild",
            dir.display(),
            missing.join(", ")
        );
        println!("cargo:warning={why}");
        let _ = writeln!(
            out,
            "/// Leaflet's files, by path under `/vendor/leaflet/`."
        );
        let _ = writeln!(out, "pub static LEAFLET_FILES: &[(&str, &[u8])] = &[];");
        let _ = writeln!(out, "/// Why Leaflet is not embedded (`None`: it is).");
        let _ = writeln!(
            out,
            "pub const LEAFLET_MISSING: Option<&str> = Some({why:?});"
        );
    }
    let dest = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default()).join("leaflet.rs");
    if let Err(e) = std::fs::write(&dest, out) {
        panic!("cannot write {}: {e}", dest.display());
    }
}

fn abs(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}
