#!/usr/bin/env python3
"""Builds a plant-like person evaluation set from $LOOKOUT_SHARED (never committed).

    python3 scripts/make-plant-persons.py OUT [N]      (default N = 30)

OUT/images/plantNNN.jpg: wide fixed-camera views, 1920 x 1080. The background is a D-Fire
fixed outdoor camera frame (dfire-negatives/train, CC0: hillside, car park) scaled to
1080p; one to three small, far people (40-110 px tall, like workers seen across a plant
yard) are pasted into three fixed zones, the way duty posts and restricted areas are small
parts of a wide view. A person is a Penn-Fudan pedestrian (research/evaluation use only:
so is this set) cut out along its labelled box. OUT/labels/plantNNN.txt: YOLO person
boxes (class 0), exactly the pasted rectangles. The zones are printed as `--zone`
arguments of `lookout eval`. Deterministic (fixed seed); needs ffmpeg.
"""

import os
import random
import subprocess
import sys
from pathlib import Path

W, H = 1920, 1080
# Zones, x1, y1, x2, y2 relative: a gate post (left), a platform (right), a yard (bottom).
ZONES = [(0.08, 0.50, 0.24, 0.90), (0.55, 0.40, 0.70, 0.75), (0.36, 0.68, 0.52, 1.0)]


def main() -> None:
    out = Path(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    shared = Path(os.environ.get("LOOKOUT_SHARED", Path(__file__).resolve().parent / "../../shared"))
    bgs = sorted((shared / "datasets/dfire-negatives/train/images").glob("*.jpg"))
    ped = shared / "datasets/pennfudan-person"
    people = []
    for lbl in sorted((ped / "labels").glob("*.txt")):
        img = ped / "images" / (lbl.stem + ".jpg")
        probe = subprocess.run(
            ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
             "stream=width,height", "-of", "csv=p=0", str(img)],
            capture_output=True, text=True, check=True).stdout.strip().split(",")
        iw, ih = int(probe[0]), int(probe[1])
        for line in lbl.read_text().split("\n"):
            v = line.split()
            if len(v) != 5:
                continue
            cx, cy, bw, bh = (float(x) for x in v[1:])
            x, y = round((cx - bw / 2) * iw), round((cy - bh / 2) * ih)
            w, h = round(bw * iw), round(bh * ih)
            if h >= 150 and w >= 40:
                people.append((img, max(0, x), max(0, y), min(w, iw - x), min(h, ih - y)))
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    rng = random.Random(17)
    for i in range(n):
        bg = bgs[i % len(bgs)]
        k = rng.randint(1, 3)
        zones = rng.sample(ZONES, k)
        inputs = ["-i", str(bg)]
        graph = [f"[0]scale={W}:{H},setsar=1[b0]"]
        labels = []
        for j, z in enumerate(zones):
            img, x, y, w, h = rng.choice(people)
            th = rng.randint(40, 110)
            tw = max(2, round(th * w / h))
            zx1, zy1, zx2, zy2 = z[0] * W, z[1] * H, z[2] * W, z[3] * H
            px = rng.uniform(zx1, max(zx1, zx2 - tw))
            py = rng.uniform(zy1, max(zy1, zy2 - th))
            px, py = int(px), int(py)
            inputs += ["-i", str(img)]
            graph.append(f"[{j + 1}]crop={w}:{h}:{x}:{y},scale={tw}:{th}[p{j}]")
            graph.append(f"[b{j}][p{j}]overlay={px}:{py}[b{j + 1}]")
            labels.append(f"0 {(px + tw / 2) / W:.6f} {(py + th / 2) / H:.6f} {tw / W:.6f} {th / H:.6f}")
        name = f"plant{i:03d}"
        subprocess.run(
            ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *inputs, "-filter_complex",
             ";".join(graph), "-map", f"[b{k}]", "-q:v", "2", str(out / "images" / f"{name}.jpg")],
            check=True)
        (out / "labels" / f"{name}.txt").write_text("\n".join(labels) + "\n")
    print(" ".join(f"--zone {a},{b},{c},{d}" for a, b, c, d in ZONES))


if __name__ == "__main__":
    main()
