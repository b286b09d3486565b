#!/usr/bin/env bash
# Builds the demo's derived sample clips from $LOOKOUT_SHARED into data/samples/ (once).
#   people.mkv: Penn-Fudan pedestrian stills as a 2 fps H.264 clip (74 stills, 37 s).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
mkdir -p data/samples
out=data/samples/people.mkv
if [ ! -s "$out" ] && [ -d "$LOOKOUT_SHARED/datasets/pennfudan-person/images" ]; then
  ffmpeg -loglevel error -y -framerate 2 -pattern_type glob \
    -i "$LOOKOUT_SHARED/datasets/pennfudan-person/images/FudanPed000*.jpg" \
    -vf "scale=640:480:force_original_aspect_ratio=decrease,pad=640:480:(ow-iw)/2:(oh-ih)/2,setsar=1,format=yuv420p" \
    -c:v libx264 -g 10 "$out"
  echo "[samples] built $out" >&2
fi
