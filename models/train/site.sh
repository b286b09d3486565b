#!/usr/bin/env bash
# Site fine-tune, on CPU, within minutes: fit the running model to the site's own labelled
# frames, measure it against the running model on the site's held-out split, and offer it
# only if it is better (the gate).
#
#   bash models/train/site.sh --data DIR --base models/smoke-fire.toml --out OUT
#        [--minutes M (30)] [--method auto|deep|head] [--neg DIR]... [--neg-eval DIR]...
#        [--rehearse DIR]... [--keep-eval DIR]
#
# --method deep (site_deep.py): continues training the whole detector but its stem with the
# shipped model's objective; needs train.sh's environment (models/train/.venv: torch) and the
# pretrained NanoDet-Plus file in $LOOKOUT_SHARED/models. --method head (site.py): re-fits the
# class outputs only, with the project venv (no deep-learning framework). auto (default):
# deep when models/train/.venv has torch and the base was exported by models/train, else head.
# --rehearse (deep only): labelled sets the base learnt from, mixed in so the candidate keeps
# what the site's frames lack (fire, when a tower site only ever labelled smoke).
# --keep-eval: a labelled set the candidate must not forget: the gate also requires its mean
# AP50 there to stay within 0.05 of the running model's.
#
# DIR: a YOLO set with train/ and val/ (`lookout dataset export`). --neg: more verified
# negatives to fit on; --neg-eval: negatives to count false hits on (never fitted on).
# Writes OUT/site-model.onnx, OUT/site-model.toml, OUT/site-model.md (the model card, with
# before/after figures and the gate's verdict), OUT/gate.json. Exit 0: the candidate beats
# the running model and is offered; 3: it does not (kept in OUT, not offered); 2: bad input.
# Needs the project venv (scripts/setup.sh: onnxruntime, onnx, numpy, pillow) and a built
# `lookout` (LOOKOUT_BIN, else target/release or target/debug).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
PY="$REPO/.venv/bin/python"
DATA="" BASE="" OUT="" MINUTES=30 METHOD=auto
NEG=() NEG_EVAL=() REHEARSE=() KEEP_EVAL=""
while [ $# -gt 0 ]; do
  case "$1" in
    --data) DATA="$2"; shift 2 ;;
    --base) BASE="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --minutes) MINUTES="$2"; shift 2 ;;
    --method) METHOD="$2"; shift 2 ;;
    --neg) NEG+=(--neg "$2"); shift 2 ;;
    --neg-eval) NEG_EVAL+=(--neg "$2"); shift 2 ;;
    --rehearse) REHEARSE+=(--rehearse "$2"); shift 2 ;;
    --keep-eval) KEEP_EVAL="$2"; shift 2 ;;
    -h|--help) sed -n 2,28p "$0"; exit 0 ;;
    *) echo "site.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ -z "$DATA" ] || [ -z "$BASE" ] || [ -z "$OUT" ]; then
  echo "site.sh: --data, --base and --out are required (see --help)" >&2
  exit 2
fi
if [ ! -d "$DATA/val/images" ] || [ -z "$(ls -A "$DATA/val/images" 2>/dev/null)" ]; then
  echo "site.sh: $DATA/val/images is missing or empty: the gate needs held-out frames (export more scene moments, or lower --val-fraction's rounding by adding cameras/days)" >&2
  exit 2
fi
if [ ! -x "$PY" ] || ! "$PY" -c 'import onnx, onnxruntime, numpy, PIL' 2>/dev/null; then
  echo "site.sh: the project venv lacks onnx/onnxruntime/numpy/pillow: run bash scripts/setup.sh" >&2
  exit 2
fi
LOOKOUT="${LOOKOUT_BIN:-}"
if [ -z "$LOOKOUT" ]; then
  for c in "$REPO/target/release/lookout" "$REPO/target/debug/lookout"; do
    if [ -x "$c" ]; then LOOKOUT="$c"; break; fi
  done
fi
if [ -z "$LOOKOUT" ] || [ ! -x "$LOOKOUT" ]; then
  echo "site.sh: no lookout binary (cargo build --release --locked -p lookout, or set LOOKOUT_BIN)" >&2
  exit 2
fi
if [ -z "${ORT_DYLIB_PATH:-}" ] && [ -f "$REPO/scripts/env.sh" ]; then
  # shellcheck disable=SC1091
  . "$REPO/scripts/env.sh"
fi
mkdir -p "$OUT"

TRAIN_PY="$HERE/.venv/bin/python"
has_torch() { [ -x "$TRAIN_PY" ] && "$TRAIN_PY" -c 'import torch, onnx2torch, cv2' 2>/dev/null; }
case "$METHOD" in
  auto) if has_torch; then METHOD=deep-or-head; else METHOD=head; fi ;;
  deep)
    if ! has_torch; then
      echo "site.sh: --method deep needs the training environment (bash models/train/train.sh venv): models/train/.venv has no torch" >&2
      exit 2
    fi ;;
  head) ;;
  *) echo "site.sh: --method must be auto, deep or head (got $METHOD)" >&2; exit 2 ;;
esac
rm -f "$OUT/fit.json"
if [ "$METHOD" = deep ] || [ "$METHOD" = deep-or-head ]; then
  set +e
  "$TRAIN_PY" "$HERE/site_deep.py" --data "$DATA" --base "$BASE" --out "$OUT" --minutes "$MINUTES" "${NEG[@]}" "${REHEARSE[@]}"
  rc=$?
  set -e
  if [ $rc -ne 0 ]; then
    if [ "$METHOD" = deep-or-head ] && [ $rc -eq 2 ]; then
      echo "site.sh: the deep fit refused this base (above); re-fitting the class outputs instead" >&2
      METHOD=head
    else
      exit $rc
    fi
  fi
fi
if [ "$METHOD" = head ]; then
  if [ ${#REHEARSE[@]} -gt 0 ]; then
    echo "site.sh: --rehearse is used by the deep fit only; the class-output re-fit stays near the base by its L2 pull" >&2
  fi
  "$PY" "$HERE/site.py" --data "$DATA" --base "$BASE" --out "$OUT" --minutes "$MINUTES" "${NEG[@]}"
fi

names="$("$PY" -c 'import sys, tomllib; print(",".join(tomllib.load(open(sys.argv[1], "rb"))["classes"]["names"]))' "$BASE")"
"$LOOKOUT" eval --quiet --json --model "$BASE" --data "$DATA/val" --labels "$names" "${NEG_EVAL[@]}" > "$OUT/eval-base.json"
"$LOOKOUT" eval --quiet --json --model "$OUT/site-model.toml" --data "$DATA/val" --labels "$names" "${NEG_EVAL[@]}" > "$OUT/eval-site.json"
rm -f "$OUT/keep-base.json" "$OUT/keep-site.json"
if [ -n "$KEEP_EVAL" ]; then
  "$LOOKOUT" eval --quiet --json --model "$BASE" --data "$KEEP_EVAL" --labels "$names" > "$OUT/keep-base.json"
  "$LOOKOUT" eval --quiet --json --model "$OUT/site-model.toml" --data "$KEEP_EVAL" --labels "$names" > "$OUT/keep-site.json"
fi

"$PY" - "$OUT" "$BASE" "$DATA" "$MINUTES" "$KEEP_EVAL" <<'EOF'
import json, sys, time
from pathlib import Path
out, base, data, minutes, keep_eval = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
b = json.loads((out / "eval-base.json").read_text())
s = json.loads((out / "eval-site.json").read_text())
fit = json.loads((out / "fit.json").read_text())

def per_class(r):
    return {name: c for name, c in (r.get("classes") or {}).items() if c.get("positives", 0) > 0}

def neg_hits(r, key):
    n = r.get("negatives") or {}
    return n.get(key)

bc, sc = per_class(b), per_class(s)
classes = sorted(set(bc) & set(sc))
if not classes:
    print("site.sh: no class with held-out positives: the gate cannot decide", file=sys.stderr)
    sys.exit(2)
mean = lambda d: sum(d[c]["ap50"] for c in classes) / len(classes)
b_ap, s_ap = mean(bc), mean(sc)
b_neg, s_neg = neg_hits(b, "hit@0.5"), neg_hits(s, "hit@0.5")
better = s_ap > b_ap and (b_neg is None or s_neg is None or s_neg <= b_neg)
keep = None
if keep_eval:
    kb = per_class(json.loads((out / "keep-base.json").read_text()))
    ks = per_class(json.loads((out / "keep-site.json").read_text()))
    kc = sorted(set(kb) & set(ks))
    if kc:
        keep = {"set": keep_eval, "classes": {c: {"running": round(kb[c]["ap50"], 4), "candidate": round(ks[c]["ap50"], 4)} for c in kc},
                "mean_ap50": {"running": round(sum(kb[c]["ap50"] for c in kc) / len(kc), 4),
                              "candidate": round(sum(ks[c]["ap50"] for c in kc) / len(kc), 4)}}
        keep["kept"] = keep["mean_ap50"]["candidate"] >= keep["mean_ap50"]["running"] - 0.05
        better = better and keep["kept"]
gate = {
    "offered": better,
    "mean_ap50": {"running": round(b_ap, 4), "candidate": round(s_ap, 4)},
    "per_class_ap50": {c: {"running": round(bc[c]["ap50"], 4), "candidate": round(sc[c]["ap50"], 4)} for c in classes},
    "negatives_hit_at_0_5": {"running": b_neg, "candidate": s_neg},
    "val_images": s.get("images"),
    "method": fit["method"],
    "candidate_sha256": fit["sha256"],
    "keep": keep,
    "rule": "offered only if the candidate's mean AP50 over classes with held-out positives is higher, it hits no more negatives at 0.5, and (with --keep-eval) its mean AP50 on the keep set stays within 0.05 of the running model's",
}
(out / "gate.json").write_text(json.dumps(gate, indent=2))
rows = "\n".join(f"| {c} AP50 | {bc[c]['ap50']:.3f} | {sc[c]['ap50']:.3f} |" for c in classes)
neg_row = f"| negatives with a detection ≥ 0.5 | {b_neg} | {s_neg} |\n" if b_neg is not None else ""
if keep:
    neg_row += "".join(f"| {c} AP50 on `{keep_eval}` (must not be forgotten) | {v['running']:.3f} | {v['candidate']:.3f} |\n" for c, v in keep["classes"].items())
card = f"""# Site model (candidate)

Written by `models/train/site.sh` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.

* Base: `{base}` (sha256 `{fit['base_sha256']}`).
* Candidate: `site-model.onnx` (sha256 `{fit['sha256']}`): {fit['method_text']}, on
  {fit['train_images']} labelled site frames from `{data}/train`
  (plus negatives: {', '.join(fit['negatives']) or 'none'}; rehearsal: {', '.join(fit.get('rehearsal') or []) or 'none'}) in {fit['seconds']} s of a
  {minutes}-minute budget (`models/train/{'site_deep.py' if fit['method'] == 'deep' else 'site.py'}`).
* The training frames are the site's own: this model is for this site, and its licence
  follows the base model's and whatever the site's footage allows.

## Before / after on the site's held-out split (`{data}/val`, `lookout eval`)

| measure | running | candidate |
|---|---|---|
{rows}
{neg_row}
**Gate: {'offered' if better else 'not offered'}** ({gate['rule']}).
"""
(out / "site-model.md").write_text(card)
print(json.dumps(gate))
sys.exit(0 if better else 3)
EOF
