//! Embeds the web UI map's vendored parts, each from the npm registry by a script that
//! `scripts/setup.sh` runs:
//! * Leaflet (the map library), by `scripts/vendor-leaflet.sh` into
//!   `.runtime/leaflet-<version>/`, or from `LOOKOUT_LEAFLET_DIR`;
//! * the offline coastlines (Natural Earth land polygons as TopoJSON from `world-atlas`, and
//!   `topojson-client`), by `scripts/vendor-coastlines.sh` into
//!   `.runtime/coastlines-<versions>/`, or from `LOOKOUT_COASTLINES_DIR`.
//!
//! When either is missing the build goes on with a warning and the server answers 503 for
//! its files saying how to vendor them (the rest of the UI works; the map says the same).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

const LEAFLET_FILES: &[&str] = &[
    "leaflet.js",
    "leaflet.css",
    "LICENSE",
    "images/layers.png",
    "images/layers-2x.png",
    "images/marker-icon.png",
    "images/marker-icon-2x.png",
    "images/marker-shadow.png",
];

const COASTLINE_FILES: &[&str] = &[
    "land-50m.json",
    "topojson-client.min.js",
    "LICENSE.world-atlas",
    "LICENSE.topojson-client",
];

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let root = manifest.join("../..");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default());

    let script = root.join("scripts/vendor-leaflet.sh");
    let version = script_var(&script, "LEAFLET_VERSION");
    let dir = env_dir("LOOKOUT_LEAFLET_DIR")
        .unwrap_or_else(|| root.join(".runtime").join(format!("leaflet-{version}")));
    let mut out = String::new();
    let _ = writeln!(out, "/// The vendored Leaflet's version.");
    let _ = writeln!(out, "pub const LEAFLET_VERSION: &str = {version:?};");
    embed(
        &mut out,
        "LEAFLET",
        &format!("Leaflet {version} was"),
        "it vendors Leaflet from the npm registry",
        &dir,
        LEAFLET_FILES,
    );
    write(&out_dir.join("leaflet.rs"), &out);

    let script = root.join("scripts/vendor-coastlines.sh");
    let wa = script_var(&script, "WORLD_ATLAS_VERSION");
    let tc = script_var(&script, "TOPOJSON_CLIENT_VERSION");
    let dir = env_dir("LOOKOUT_COASTLINES_DIR")
        .unwrap_or_else(|| root.join(".runtime").join(format!("coastlines-{wa}-{tc}")));
    let mut out = String::new();
    let _ = writeln!(
        out,
        "/// The vendored world-atlas (Natural Earth land) version."
    );
    let _ = writeln!(out, "pub const WORLD_ATLAS_VERSION: &str = {wa:?};");
    let _ = writeln!(out, "/// The vendored topojson-client version.");
    let _ = writeln!(out, "pub const TOPOJSON_CLIENT_VERSION: &str = {tc:?};");
    embed(
        &mut out,
        "COASTLINES",
        &format!("The coastlines (world-atlas {wa}, topojson-client {tc}) were"),
        "it vendors them from the npm registry",
        &dir,
        COASTLINE_FILES,
    );
    write(&out_dir.join("coastlines.rs"), &out);
}

/// `NAME=value` from a vendoring script ("unknown" when absent).
fn script_var(script: &Path, name: &str) -> String {
    println!("cargo:rerun-if-changed={}", script.display());
    std::fs::read_to_string(script)
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix(&format!("{name}="))
                    .map(|v| v.trim().to_string())
            })
        })
        .unwrap_or_else(|| "unknown".into())
}

fn env_dir(var: &str) -> Option<PathBuf> {
    println!("cargo:rerun-if-env-changed={var}");
    std::env::var_os(var).map(PathBuf::from)
}

/// Writes `{PREFIX}_FILES` (path → bytes) and `{PREFIX}_MISSING` (why not embedded).
fn embed(out: &mut String, prefix: &str, what: &str, fix: &str, dir: &Path, files: &[&str]) {
    println!("cargo:rerun-if-changed={}", dir.display());
    let missing: Vec<&str> = files
        .iter()
        .copied()
        .filter(|f| !dir.join(f).is_file())
        .collect();
    let _ = writeln!(
        out,
        "/// The vendored files, by path under their `/vendor/` prefix."
    );
    let _ = writeln!(out, "pub static {prefix}_FILES: &[(&str, &[u8])] = &[");
    if missing.is_empty() {
        for f in files {
            let p = abs(&dir.join(f));
            println!("cargo:rerun-if-changed={}", p.display());
            let _ = writeln!(
                out,
                "    ({f:?}, include_bytes!({:?})),",
                p.display().to_string()
            );
        }
    }
    let _ = writeln!(out, "];");
    let _ = writeln!(out, "/// Why they are not embedded (`None`: they are).");
    if missing.is_empty() {
        let _ = writeln!(out, "pub const {prefix}_MISSING: Option<&str> = None;");
    } else {
        let why = format!(
            "{what} not embedded in this build ({} has no {}): run scripts/setup.sh ({fix}) and rebuild",
            dir.display(),
            missing.join(", ")
        );
        println!("cargo:warning={why}");
        let _ = writeln!(
            out,
            "pub const {prefix}_MISSING: Option<&str> = Some({why:?});"
        );
    }
}

fn write(dest: &Path, s: &str) {
    if let Err(e) = std::fs::write(dest, s) {
        panic!("cannot write {}: {e}", dest.display());
    }
}

fn abs(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}
