#!/usr/bin/env bash
# End-to-end throughput of `lookout run` with 8 concurrent 720p file streams read as fast as
# possible, against raw ONNX Runtime and two plain-Python pipelines (see README.md).
# Usage: bash benches/e2e/run.sh [SECONDS per engine run, default 30] [REPEATS, default 3]
# Needs: cargo build --release -p lookout, and the bench venv of benches/infer/README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/env.sh
if [ ! -x target/release/lookout ]; then
  echo "build first: cargo build --release --locked -p lookout" >&2
  exit 2
fi
if [ ! -x benches/infer/.venv/bin/python ]; then
  echo "create the bench venv first (benches/infer/README.md)" >&2
  exit 2
fi
exec python3 benches/e2e/bench.py "${1:-30}" "${2:-3}"
