#!/usr/bin/env bash
# Vendors the map's offline coastlines: Natural Earth's 1:50m land polygons (public domain,
# https://www.naturalearthdata.com) as TopoJSON from the npm package world-atlas (ISC), and
# topojson-client (ISC), which turns them into GeoJSON in the browser. Both pinned tarballs
# from the npm registry, sha256-checked, unpacked into .runtime/coastlines-<versions>/
# (git-ignored). engine/server embeds them at build time (its build script says so when they
# are missing); nothing is fetched at run time. Run by scripts/setup.sh; idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
WORLD_ATLAS_VERSION=2.0.2
WORLD_ATLAS_SHA256=032e7765f2ce00edaeafec23ff22bc3b77e42987c257da944cc585b452c05b97
TOPOJSON_CLIENT_VERSION=3.1.0
TOPOJSON_CLIENT_SHA256=889fadb422f6236d0f8337a236ce6499f258b75e44b81733b13bd971067322bf
DEST=".runtime/coastlines-$WORLD_ATLAS_VERSION-$TOPOJSON_CLIENT_VERSION"
log() { printf '[setup] %s\n' "$*" >&2; }
if [ -f "$DEST/land-50m.json" ] && [ -f "$DEST/topojson-client.min.js" ]; then
  log "Coastlines (world-atlas $WORLD_ATLAS_VERSION, topojson-client $TOPOJSON_CLIENT_VERSION) present in $DEST."
  exit 0
fi
log "Vendoring world-atlas $WORLD_ATLAS_VERSION and topojson-client $TOPOJSON_CLIENT_VERSION from registry.npmjs.org into $DEST"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
fetch() { # name version sha256
  curl -fsSL --retry 3 -o "$tmp/$1.tgz" "https://registry.npmjs.org/$1/-/$1-$2.tgz"
  local got
  got="$(sha256sum "$tmp/$1.tgz" | cut -d' ' -f1)"
  if [ "$got" != "$3" ]; then
    log "ERROR: $1-$2.tgz has sha256 $got, expected $3"
    exit 1
  fi
  mkdir -p "$tmp/$1"
  tar -xzf "$tmp/$1.tgz" -C "$tmp/$1"
}
fetch world-atlas "$WORLD_ATLAS_VERSION" "$WORLD_ATLAS_SHA256"
fetch topojson-client "$TOPOJSON_CLIENT_VERSION" "$TOPOJSON_CLIENT_SHA256"
mkdir -p "$DEST.tmp"
cp "$tmp/world-atlas/package/land-50m.json" "$DEST.tmp/"
cp "$tmp/world-atlas/package/LICENSE" "$DEST.tmp/LICENSE.world-atlas"
cp "$tmp/topojson-client/package/dist/topojson-client.min.js" "$DEST.tmp/"
cp "$tmp/topojson-client/package/LICENSE" "$DEST.tmp/LICENSE.topojson-client"
rm -rf "$DEST"
mv "$DEST.tmp" "$DEST"
log "Coastlines vendored."
