#!/usr/bin/env bash
# Builds the demo's derived sample clip from $LOOKOUT_SHARED (once).
#
#   bash scripts/make-samples.sh [OUT]      (default data/samples/plant-gate.mkv)
#
# plant-gate.mkv: a continuous 120 s clip of one fixed camera at a building entrance — one
# Penn-Fudan still (FudanPed00013, its walking person replaced by the mirrored other half of
# the symmetric facade) as the static background, with three pedestrians cut out of other
# Penn-Fudan stills walking in and out. Nothing cuts, so camera-health sees no `view_moved`,
# and the default config's personnel rules fire within two minutes:
#   0-20 s the guard (FudanPed00030) stands at the gate post (left half);
#  20-30 s he walks out to the right: the post is empty from ~23 s (`post_vacant` ~45 s);
#  62-70 s he walks back to the post; two visitors (FudanPed00020, FudanPed00031) walk in and
#          stay in the yard 74-100 s: three people where two are allowed (`over_occupancy`);
# 100-110 s the visitors leave; the clip ends as it began, so the loop is seamless.
# Penn-Fudan is for research/evaluation use: the clip is built locally and never committed.
# A clip built by an older version of this script (its `.version` file differs) is rebuilt.
set -euo pipefail
VERSION=2  # 2: a guard the person model scores ~0.83 standing (FudanPed00032's scored ~0.43)
out=$(realpath -m "${1:-$(dirname "$0")/../data/samples/plant-gate.mkv}")
cd "$(dirname "$0")/.."
. scripts/env.sh
img="$LOOKOUT_SHARED/datasets/pennfudan-person/images"
if { [ -s "$out" ] && [ "$(cat "$out.version" 2>/dev/null)" = "$VERSION" ]; } || [ ! -d "$img" ]; then
  exit 0
fi
mkdir -p "$(dirname "$out")"

# x of a sprite's left edge at time t: piecewise linear between "t:centre" keyframes, the
# centre as a fraction of the frame width (beyond 1: off-screen right).
path() {
  local expr="" close="" prev_t="" prev_c=""
  for kf in "$@"; do
    local t=${kf%%:*} c=${kf##*:}
    if [ -z "$prev_t" ]; then
      expr="if(lt(t,$t),$c,"
    else
      expr+="if(lt(t,$t),$prev_c+($c-$prev_c)*(t-$prev_t)/($t-$prev_t),"
    fi
    close+=")"
    prev_t=$t prev_c=$c
  done
  echo "W*(${expr}${prev_c}${close})-w/2"
}
guard=$(path 0:0.25 20:0.25 30:1.2 62:1.2 70:0.25)
visitor1=$(path 0:1.2 64:1.2 72:0.62 100:0.62 108:1.2)
visitor2=$(path 0:1.2 66:1.2 74:0.84 100:0.84 110:1.2)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Sprites: the labelled person boxes (labels/*.txt) with a small margin, 250 px tall.
ffmpeg -nostdin -loglevel error -y -i "$img/FudanPed00030.jpg" -vf "crop=163:301:51:79,scale=-2:250" "$tmp/a.png"
ffmpeg -nostdin -loglevel error -y -i "$img/FudanPed00020.jpg" -vf "crop=180:289:333:94,scale=-2:250" "$tmp/b.png"
ffmpeg -nostdin -loglevel error -y -i "$img/FudanPed00031.jpg" -vf "crop=157:293:292:117,scale=-2:250" "$tmp/c.png"
# Background: the left half of the facade (a door reflection of the walker patched with the
# glass beside it), mirrored into the right half.
ffmpeg -nostdin -loglevel error -y -i "$img/FudanPed00013.jpg" -filter_complex \
  "[0]crop=326:498:0:0,split[l0][p0];[p0]crop=22:66:226:190[p];[l0][p]overlay=250:190,split[l][r0];[r0]hflip[r];[l][r]hstack,scale=640:480,setsar=1" \
  "$tmp/bg.png"
ffmpeg -nostdin -loglevel error -y -loop 1 -framerate 10 -t 120 -i "$tmp/bg.png" \
  -loop 1 -framerate 10 -i "$tmp/a.png" -loop 1 -framerate 10 -i "$tmp/b.png" \
  -loop 1 -framerate 10 -i "$tmp/c.png" -filter_complex \
  "[0][2]overlay=x='$visitor1':y=458-h:eval=frame:shortest=1[v1];[v1][3]overlay=x='$visitor2':y=462-h:eval=frame:shortest=1[v2];[v2][1]overlay=x='$guard':y=455-h:eval=frame:shortest=1,format=yuv420p" \
  -c:v libx264 -g 20 -t 120 "$tmp/clip.mkv"
mv "$tmp/clip.mkv" "$out"
echo "$VERSION" > "$out.version"
echo "[samples] built $out" >&2
