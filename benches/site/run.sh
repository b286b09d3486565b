#!/usr/bin/env bash
# The site-learning loop on a simulated tower site, measured: HPWREN tower frames stand for
# the verdicts a tower site would have collected (evaluation-only data: the candidate is
# measured and thrown away, never committed or shipped).
#
#   bash benches/site/run.sh [MINUTES (30)] [METHOD (deep)] [OUT (target/bench-site)]
#
# Split: the first 140 frames by sorted name are the site's training frames, the last 60 its
# held-out split (never fitted on). D-Fire train negatives are fitted on as the site's quiet
# frames; D-Fire eval negatives are only counted (hits at 0.5). The deep fit rehearses the
# base's own CC BY training splits (cctv-fire-smoke, wildfire-fire-smoke) so that it keeps
# fire, and the gate checks that on cctv-fire-smoke/test (--keep-eval). Prints gate.json
# (running vs candidate AP50 on the held-out split and the keep set) and the fit summary;
# the card is OUT/cand/site-model.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/env.sh
MINUTES="${1:-30}" METHOD="${2:-deep}" OUT="${3:-target/bench-site}"
SRC="$LOOKOUT_SHARED/datasets/hpwren-smoke-dev"
if [ ! -d "$SRC/images" ]; then
  echo "bench-site: $SRC is missing (lookout data status)" >&2
  exit 2
fi
rm -rf "$OUT"
for split in train val; do mkdir -p "$OUT/site/$split/images" "$OUT/site/$split/labels"; done
i=0
for img in $(ls "$SRC/images" | sort); do
  split=train; [ $i -ge 140 ] && split=val
  stem="${img%.*}"
  cp "$SRC/images/$img" "$OUT/site/$split/images/"
  cp "$SRC/labels/$stem.txt" "$OUT/site/$split/labels/"
  i=$((i + 1))
done
start=$(date +%s)
set +e
bash models/train/site.sh --data "$OUT/site" --base models/smoke-fire.toml --out "$OUT/cand" \
  --minutes "$MINUTES" --method "$METHOD" \
  --neg "$LOOKOUT_SHARED/datasets/dfire-negatives/train" \
  --neg-eval "$LOOKOUT_SHARED/datasets/dfire-negatives/eval" \
  --rehearse "$LOOKOUT_SHARED/datasets/cctv-fire-smoke/train" \
  --rehearse "$LOOKOUT_SHARED/datasets/wildfire-fire-smoke/train" \
  --keep-eval "$LOOKOUT_SHARED/datasets/cctv-fire-smoke/test" > "$OUT/site.log" 2>&1
rc=$?
set -e
tail -3 "$OUT/site.log" >&2
echo "{\"exit\": $rc, \"wall_s\": $(( $(date +%s) - start )), \"minutes\": $MINUTES, \"method\": \"$METHOD\", \"gate\": $(cat "$OUT/cand/gate.json" 2>/dev/null || echo null), \"fit\": $(cat "$OUT/cand/fit.json" 2>/dev/null || echo null)}"
