#!/usr/bin/env bash
# Runs the engine. Without arguments: the embedded default config (sample streams from
# $LOOKOUT_SHARED, sample hotspots, SQLite and snapshots in ./data, web UI on 127.0.0.1).
# Any arguments are passed to `lookout run` (e.g. --config configs/site.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. scripts/env.sh
bash scripts/make-samples.sh
cargo build --release --locked -p lookout
exec target/release/lookout run "$@"
