#!/usr/bin/env bash
# Soak: runs `lookout run` (release) for MINUTES on a config (default: the embedded demo,
# configs/default.toml) in a fresh data directory, with a local webhook receiver added as a
# sink, and prints one JSON line: bytes/day per file kind, largest payloads, events started
# and health incidents per camera, RSS at start and end (see README.md).
# Usage: bash benches/soak/run.sh [MINUTES, default 6] [CONFIG]
# Needs: cargo build --release --locked -p lookout (or LOOKOUT_BIN=path/to/lookout).
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/env.sh
if [ ! -x "${LOOKOUT_BIN:-target/release/lookout}" ]; then
  echo "build first: cargo build --release --locked -p lookout (or set LOOKOUT_BIN)" >&2
  exit 2
fi
bash scripts/make-samples.sh
exec python3 benches/soak/soak.py "${1:-6}" "${2:-configs/default.toml}"
