#!/usr/bin/env bash
# End-to-end throughput: analysed frames/s of `lookout run` with 8 file streams, against the
# raw ONNX Runtime throughput of the same model and session options measured right before
# and after in the same script (Python onnxruntime on a constant tensor, 2 threads).
# Usage: bash benches/e2e/run.sh [SECONDS]   (needs a release build and benches/infer/.venv)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/env.sh
secs="${1:-60}"
py=benches/infer/.venv/bin/python
raw() {
  "$py" benches/infer/baseline.py --mode ort --streams 1 --frames 100 2>/dev/null |
    python3 -c 'import json,sys; print(json.loads(sys.stdin.read().strip().splitlines()[-1])["fps"])'
}
before=$(raw)
data=$(mktemp -d)
target/release/lookout --log-json run --config benches/e2e/8-streams.toml --run-for "$secs" --data-dir "$data" 2>"$data/log" >/dev/null
engine=$(grep -Eo '"frames_per_second":[0-9.]+' "$data/log" | tail -1 | cut -d: -f2)
after=$(raw)
echo "raw ORT frames/s: before $before, after $after"
echo "engine analysed frames/s (8 streams): $engine"
python3 -c "b,a,e=float('$before' or 0),float('$after' or 0),float('$engine' or 0); m=(b+a)/2; print(f'ratio engine/raw = {e/m:.3f}' if m else 'raw ORT figure missing')"
