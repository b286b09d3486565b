#!/usr/bin/env bash
# Runs the whole test suite: installs what it needs, checks formatting and lints, then runs
# every crate's tests against real GStreamer, ONNX Runtime, RTSP, MQTT, SQLite and Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. scripts/env.sh
start=$(date +%s)
cargo fmt --all -- --check
cargo clippy --locked --workspace --all-targets -- -D warnings
# Licences compatible with shipping under Apache-2.0, banned crates, crates.io only (deny.toml).
cargo deny --locked check licenses bans sources
cargo test --locked --workspace --no-fail-fast 2>&1 | tee target/test-output.log
echo "[test] finished in $(( $(date +%s) - start )) s"
