#!/usr/bin/env bash
# Installs everything Lookout needs on Debian 12, idempotently and cheaply when repeated:
#   - Debian packages: GStreamer 1.22 (dev + plugins base/good/bad/ugly/libav + rtsp-server),
#     ffmpeg, mosquitto (MQTT tests), chromium + chromium-driver (UI tests), openssl (test
#     certificates for HTTPS webhooks), build tools;
#   - the ONNX Runtime shared library from the PyPI wheel onnxruntime==1.31.* in a
#     project-local venv (.venv), linked at .runtime/libonnxruntime.so for `ort`'s
#     load-dynamic;
#   - checks that the shared data directory ($LOOKOUT_SHARED, default ../shared) is there.
# Nothing is downloaded from outside the package registries.
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
  ffmpeg mosquitto chromium chromium-driver
  openssl
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
lib="$(ls -d "$ROOT"/.venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.1* 2>/dev/null | head -1)"
if [ -z "$lib" ]; then
  log "ERROR: libonnxruntime.so not found in the onnxruntime wheel"
  exit 1
fi
mkdir -p .runtime
ln -sfn "$lib" .runtime/libonnxruntime.so

# Shared third-party data and models (never committed; read in place).
SHARED="${LOOKOUT_SHARED:-$ROOT/../shared}"
if [ ! -d "$SHARED/models" ] || [ ! -d "$SHARED/datasets" ]; then
  log "WARNING: shared data not found at $SHARED (set LOOKOUT_SHARED); demo cameras and model tests need it."
fi
log "Ready."
