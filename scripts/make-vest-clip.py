#!/usr/bin/env python3
"""Builds the role test clip: three pedestrians wearing safety vests we paint on them.

    .venv/bin/python scripts/make-vest-clip.py OUT_DIR

Needs numpy and Pillow (both in the project's .venv, see scripts/setup.sh), ffmpeg and
$LOOKOUT_SHARED/datasets/pennfudan-person (research/evaluation use only: so is the clip,
which is built locally and never committed). Deterministic.

What the clip is made of:
* Background: the plant-gate clip's static view (scripts/make-samples.sh): the left half of
  the facade of Penn-Fudan FudanPed00013 (its walker patched with the glass beside it),
  mirrored into the right half, 640 x 480.
* People: the plant-gate clip's three Penn-Fudan pedestrians (FudanPed00030, 00020, 00031)
  cut out along their labelled boxes, 250 px tall. On each we paint a safety vest: a
  quadrilateral over the torso (hand-placed per person, shoulders to hips) filled with a
  saturated vest colour whose brightness follows the garment underneath (shading and folds
  kept: each pixel is the vest colour in linear light times the original's relative
  luminance), soft edges, two silver-grey reflective stripes, and not painted where
  something lies over the torso (a's red backpack, b's black bag strap stay on top).
  a and c get an orange vest (#ff7900, "visitors"), b a blue one (#1f4fd0, "operators").
* Motion (10 fps, 40 s, H.264, no cut): operator b stands at x = 0.85 (of the width) from
  the start; 0-4 s visitor a walks in from the left to x = 0.18 and stays there alone;
  0-5 s visitor c walks in from the right, passing behind b, to x = 0.62 and stays beside
  him (feet about 150 px apart) to the end.

OUT_DIR/vests.mkv is the clip; OUT_DIR/sprites/{a,b,c}.png are the painted people and
OUT_DIR/sprites/{a,b,c}-plain.png the same crops unpainted (the colour classifier's unit
tests measure them); OUT_DIR/sprites/roles.txt says which role each painted one wears.
A clip built by an older version of this script (its `.version` file differs) is rebuilt.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

VERSION = "2"
W, H, FPS, SECONDS = 640, 480, 10, 40
ORANGE = (0xFF, 0x79, 0x00)
BLUE = (0x1F, 0x4F, 0xD0)
# Sprite: (still, labelled box with margin x, y, w, h), vest quad (relative x, y corners:
# left shoulder, right shoulder, right hip, left hip), vest colour, role.
PEOPLE = {
    "a": ("FudanPed00030.jpg", (51, 79, 163, 301),
          [(0.40, 0.19), (0.64, 0.19), (0.68, 0.55), (0.36, 0.55)], ORANGE, "visitor"),
    "b": ("FudanPed00020.jpg", (333, 94, 180, 289),
          [(0.40, 0.18), (0.66, 0.18), (0.70, 0.55), (0.42, 0.55)], BLUE, "operator"),
    "c": ("FudanPed00031.jpg", (292, 117, 157, 293),
          [(0.39, 0.18), (0.62, 0.18), (0.63, 0.58), (0.41, 0.58)], ORANGE, "visitor"),
}


def to_linear(c):
    c = c / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def to_srgb(c):
    c = np.clip(c, 0.0, 1.0)
    return np.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1 / 2.4) - 0.055) * 255.0


def paint_vest(img, quad, colour):
    """The sprite with a shaded safety vest painted over the torso quad."""
    w, h = img.size
    rgb = np.asarray(img, dtype=np.float64)
    lin = to_linear(rgb)
    lum = lin @ np.array([0.2126, 0.7152, 0.0722])
    poly = Image.new("L", (w, h), 0)
    from PIL import ImageDraw
    ImageDraw.Draw(poly).polygon([(x * w, y * h) for x, y in quad], fill=255)
    inside = np.asarray(poly) > 0
    # What lies over the torso stays on top: a saturated red (backpack) or near-black
    # (bag strap) pixel is not painted.
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    red = (r > 90) & (r > 1.6 * g) & (r > 1.6 * b)
    dark = lum < 0.012
    paint = inside & ~red & ~dark
    alpha = np.asarray(
        Image.fromarray((paint * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(1.0)),
        dtype=np.float64) / 255.0
    # Shading: the garment's relative luminance, compressed so the vest stays saturated.
    ref = np.median(lum[paint]) if paint.any() else 0.2
    shade = np.clip(0.35 + 0.65 * lum / max(ref, 1e-3), 0.25, 1.25)
    vest = to_linear(np.array(colour, dtype=np.float64))[None, None, :] * shade[..., None]
    # Two reflective stripes across the vest (silver grey, shaded the same way).
    ys = np.arange(h)[:, None] / h
    top = min(y for _, y in quad)
    bottom = max(y for _, y in quad)
    for s in (0.62, 0.82):
        y0 = top + s * (bottom - top)
        band = (np.abs(ys - y0) < 0.012) & np.ones((1, w), dtype=bool)
        vest[band] = (0.55 * shade[band])[:, None]
    out = lin * (1 - alpha[..., None]) + vest * alpha[..., None]
    return Image.fromarray(to_srgb(out).round().astype(np.uint8))


def background(img_dir):
    src = Image.open(img_dir / "FudanPed00013.jpg").convert("RGB")
    left = src.crop((0, 0, 326, 498))
    patch = left.crop((226, 190, 248, 256))
    left.paste(patch, (250, 190))
    bg = Image.new("RGB", (652, 498))
    bg.paste(left, (0, 0))
    bg.paste(left.transpose(Image.FLIP_LEFT_RIGHT), (326, 0))
    return bg.resize((W, H), Image.BICUBIC)


def centre_at(t, keys):
    """Piecewise-linear centre (fraction of W) between (t, x) keyframes."""
    if t <= keys[0][0]:
        return keys[0][1]
    for (t0, x0), (t1, x1) in zip(keys, keys[1:]):
        if t < t1:
            return x0 + (x1 - x0) * (t - t0) / (t1 - t0)
    return keys[-1][1]


def main():
    out = Path(sys.argv[1])
    shared = Path(os.environ.get("LOOKOUT_SHARED", Path(__file__).resolve().parent / "../../shared"))
    img_dir = shared / "datasets/pennfudan-person/images"
    clip = out / "vests.mkv"
    stamp = out / "vests.mkv.version"
    if clip.exists() and stamp.exists() and stamp.read_text().strip() == VERSION:
        return
    sprites_dir = out / "sprites"
    sprites_dir.mkdir(parents=True, exist_ok=True)
    sprites = {}
    roles = []
    for name, (still, (x, y, w, h), quad, colour, role) in PEOPLE.items():
        crop = Image.open(img_dir / still).convert("RGB").crop((x, y, x + w, y + h))
        crop = crop.resize((round(w * 250 / h), 250), Image.BICUBIC)
        crop.save(sprites_dir / f"{name}-plain.png")
        vest = paint_vest(crop, quad, colour)
        vest.save(sprites_dir / f"{name}.png")
        sprites[name] = vest
        roles.append(f"{name} {role}")
    (sprites_dir / "roles.txt").write_text("\n".join(roles) + "\n")
    bg = background(img_dir)
    # (sprite, feet y, keyframes of the centre x as a fraction of W)
    moves = [
        ("a", 458, [(0, -0.2), (4, 0.18)]),
        ("c", 462, [(0, 1.25), (5, 0.62)]),
        ("b", 455, [(0, 0.85)]),
    ]
    tmp = out / "vests.tmp.mkv"
    enc = subprocess.Popen(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
         "-s", f"{W}x{H}", "-r", str(FPS), "-i", "-", "-c:v", "libx264", "-g", "20",
         "-pix_fmt", "yuv420p", str(tmp)],
        stdin=subprocess.PIPE)
    for f in range(FPS * SECONDS):
        t = f / FPS
        frame = bg.copy()
        for name, feet, keys in moves:
            s = sprites[name]
            x = round(centre_at(t, keys) * W - s.width / 2)
            frame.paste(s, (x, feet - s.height))
        enc.stdin.write(frame.tobytes())
    enc.stdin.close()
    if enc.wait() != 0:
        sys.exit("ffmpeg failed to encode the clip")
    tmp.replace(clip)
    stamp.write_text(VERSION + "\n")
    print(f"[samples] built {clip}", file=sys.stderr)


if __name__ == "__main__":
    main()
