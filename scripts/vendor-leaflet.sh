#!/usr/bin/env bash
# Vendors Leaflet (BSD-2-Clause, https://leafletjs.com), the web UI's map library, from the
# npm registry: the pinned tarball is downloaded once, its sha256 checked, and leaflet.js,
# leaflet.css, images/ and LICENSE are unpacked into .runtime/leaflet-<version>/ (git-ignored).
# engine/server embeds them at build time (its build script says so when they are missing);
# nothing is fetched at run time. Run by scripts/setup.sh; idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
LEAFLET_VERSION=1.9.4
LEAFLET_SHA256=84c65a256e50657896f54c33bd857b6849ebe94c817803be818bf32a3dde0b77
DEST=".runtime/leaflet-$LEAFLET_VERSION"
log() { printf '[setup] %s\n' "$*" >&2; }
if [ -f "$DEST/leaflet.js" ] && [ -f "$DEST/leaflet.css" ] && [ -f "$DEST/images/layers.png" ]; then
  log "Leaflet $LEAFLET_VERSION present in $DEST."
  exit 0
fi
log "Vendoring Leaflet $LEAFLET_VERSION from registry.npmjs.org into $DEST"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
curl -fsSL --retry 3 -o "$tmp/leaflet.tgz" \
  "https://registry.npmjs.org/leaflet/-/leaflet-$LEAFLET_VERSION.tgz"
got="$(sha256sum "$tmp/leaflet.tgz" | cut -d' ' -f1)"
if [ "$got" != "$LEAFLET_SHA256" ]; then
  log "ERROR: leaflet-$LEAFLET_VERSION.tgz has sha256 $got, expected $LEAFLET_SHA256"
  exit 1
fi
tar -xzf "$tmp/leaflet.tgz" -C "$tmp" package/LICENSE package/dist/leaflet.js \
  package/dist/leaflet.css package/dist/images
mkdir -p "$DEST.tmp"
cp -r "$tmp/package/dist/leaflet.js" "$tmp/package/dist/leaflet.css" "$tmp/package/dist/images" \
  "$tmp/package/LICENSE" "$DEST.tmp/"
rm -rf "$DEST"
mv "$DEST.tmp" "$DEST"
log "Leaflet $LEAFLET_VERSION vendored."
