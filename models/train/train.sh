#!/usr/bin/env bash
# One command to (re)build Lookout's smoke/fire detector on a CPU box.
#
#   bash models/train/train.sh            # all steps: venv, head, finetune, export, evaluate
#   bash models/train/train.sh venv       # the training environment only (models/train/.venv)
#   bash models/train/train.sh head       # stage 1: frozen backbone + neck, new head only
#   bash models/train/train.sh finetune   # stage 2: stages 3-4 + neck + head, from stage 1's best
#   bash models/train/train.sh finetune2  # stage 3: all but the stem, from stage 2's best,
#                                         #   stops within FINETUNE2_MAX_MINUTES (default 95) wall
#   bash models/train/train.sh finetune3  # experiment (not shipped): tower hard negatives + faint
#                                         #   distant smoke, from finetune2's best, FINETUNE3_MAX_MINUTES (45)
#   bash models/train/train.sh export     # copy the best ONNX to models/, write manifest + card
#   bash models/train/train.sh eval       # measure the shipped ONNX (and the baseline, if present)
#
# Stages resume from runs/<stage>/last.pt when re-run. Reference data and the pretrained
# NanoDet-Plus file are read from $LOOKOUT_SHARED (default: ../shared next to the repository).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
export LOOKOUT_SHARED="${LOOKOUT_SHARED:-$REPO/../shared}"
VENV="$HERE/.venv"
PY="$VENV/bin/python"
NICE="nice -n 10"

setup() {
  if [ ! -x "$PY" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --upgrade pip
    "$VENV/bin/pip" install -r "$HERE/requirements.txt"
  fi
}

stage() {
  local name="$1"
  shift
  local resume=""
  [ -f "$HERE/runs/$name/last.pt" ] && resume="--resume"
  (cd "$HERE" && $NICE "$PY" train.py --stage "$name" $resume "$@" 2>&1 | tee -a "$HERE/runs/$name.log")
}

export_model() {
  (cd "$HERE" && "$PY" export.py)
}

evaluate() {
  (cd "$HERE" && $NICE "$PY" evaluate.py --model "$REPO/models/smoke-fire.onnx" --kind lookout --out runs/eval_lookout.json)
  local ref="$LOOKOUT_SHARED/models/reference-yolov8-smoke-fire_640.onnx"
  if [ -f "$ref" ] && [ ! -f "$HERE/runs/eval_reference.json" ]; then
    (cd "$HERE" && $NICE "$PY" evaluate.py --model "$ref" --kind yolov8 --out runs/eval_reference.json)
  fi
}

mkdir -p "$HERE/runs"
setup
case "${1:-all}" in
  venv) ;;  # the environment only (site.sh --method deep uses it)
  head) stage head ;;
  finetune) stage finetune ;;
  finetune2) stage finetune2 --max-minutes "${FINETUNE2_MAX_MINUTES:-95}" ;;
  finetune3) stage finetune3 --max-minutes "${FINETUNE3_MAX_MINUTES:-45}" ;;
  export) export_model ;;
  eval) evaluate ;;
  all) stage head; stage finetune; stage finetune2 --max-minutes "${FINETUNE2_MAX_MINUTES:-95}"
       export_model; evaluate; export_model ;;
  *) echo "unknown step: $1" >&2; exit 2 ;;
esac
