#!/usr/bin/env bash
# INT8 versions of the shipped detectors (ONNX Runtime static quantisation), reproducibly:
#   bash models/quantize/quantize.sh            # both models
#   bash models/quantize/quantize.sh smoke-fire # one of: smoke-fire person-nanodet
# Creates models/quantize/.venv from PyPI (requirements.txt) on first use, reads the
# calibration images from $LOOKOUT_SHARED/datasets (default ../shared), and writes
# models/NAME-int8.onnx + models/NAME-int8.toml. See models/README.md ("INT8 models").
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
export LOOKOUT_SHARED="${LOOKOUT_SHARED:-$ROOT/../shared}"
VENV="$HERE/.venv"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet -r "$HERE/requirements.txt"
fi
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(smoke-fire person-nanodet)
for name in "${models[@]}"; do
  case "$name" in
    smoke-fire) url="https://github.com/lookout-engine/lookout/raw/main/models/smoke-fire-int8.onnx" ;;
    person-nanodet) url="https://github.com/lookout-engine/lookout/raw/main/models/person-nanodet-int8.onnx" ;;
    *) echo "unknown model $name (smoke-fire | person-nanodet)" >&2; exit 2 ;;
  esac
  "$VENV/bin/python" "$HERE/quantize.py" \
    --manifest "$ROOT/models/$name.toml" \
    --out-manifest "$ROOT/models/$name-int8.toml" \
    --out-onnx "$ROOT/models/$name-int8.onnx" \
    --reduce-range --method percentile --source-url "$url"
done
