#!/usr/bin/env python3
"""Site fine-tune: re-fit the class outputs of a NanoDet-style detector to one site's own
labelled frames (`lookout dataset export`), on CPU, in minutes, without a deep-learning
framework.

The backbone, neck, head towers and box regression stay frozen: ONNX Runtime computes the
head towers' features of every training image once, and the three 1x1 class convolutions
(`cls_out.{0,1,2}`, one per stride) are re-fitted as a logistic regression over those
features, started from the base model's weights and pulled back towards them (L2), so that
what the base model knows is kept where the site's frames say nothing. The new weights are
written into a copy of the ONNX file; a manifest and a model card with before/after figures
(`lookout eval` on the site's validation split) go beside it.

Usage (see site.sh): site.py --data DIR --base models/smoke-fire.toml --out OUT
                             [--minutes M] [--neg DIR]...
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper
from PIL import Image

LEVELS = 3
# Box sizes (longest side, input pixels) each stride level learns from; overlapping, as
# NanoDet's assigner lets neighbouring levels share mid-sized objects.
LEVEL_RANGE = [(0, 128), (32, 256), (96, 10_000)]
# Share of a box (around its centre) whose cells are positives.
CENTER = float(os.environ.get("SITE_CENTER", "0.5"))


def fail(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(2)


def load_manifest(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            m = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        fail(f"{path}: {e}")
    for key in ("file", "input", "classes"):
        if key not in m:
            fail(f"{path}: no `{key}`")
    return m


def locate_onnx(manifest: dict, manifest_path: Path) -> Path:
    f = Path(manifest["file"])
    cands = [f] if f.is_absolute() else [manifest_path.parent / f]
    shared = os.environ.get("LOOKOUT_SHARED")
    if shared and not f.is_absolute():
        cands.append(Path(shared) / "models" / f)
    for c in cands:
        if c.is_file():
            return c
    fail(f"{manifest_path}: model file {manifest['file']} not found (looked in {', '.join(map(str, cands))})")
    raise AssertionError


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Preprocess:
    """The manifest's input recipe (letterbox or stretch, BGR/RGB, mean/std)."""

    def __init__(self, spec: dict):
        self.w, self.h = int(spec["width"]), int(spec["height"])
        self.bgr = spec.get("channels", "rgb") == "bgr"
        self.scale = float(spec.get("scale", 1.0))
        self.mean = np.array(spec.get("mean", [0, 0, 0]), np.float32).reshape(3, 1, 1)
        self.std = np.array(spec.get("std", [1, 1, 1]), np.float32).reshape(3, 1, 1)
        self.letterbox = spec.get("resize", "stretch") == "letterbox"
        self.pad = float(spec.get("pad_value", 0))

    def __call__(self, img: Image.Image):
        """Returns the input tensor and the map from normalised image coordinates to input
        pixels: x_in = x * sx + ox."""
        img = img.convert("RGB")
        iw, ih = img.size
        if self.letterbox:
            r = min(self.w / iw, self.h / ih)
            nw, nh = max(1, round(iw * r)), max(1, round(ih * r))
            ox, oy = (self.w - nw) // 2, (self.h - nh) // 2
            canvas = Image.new("RGB", (self.w, self.h), (int(self.pad),) * 3)
            canvas.paste(img.resize((nw, nh), Image.BILINEAR), (ox, oy))
            sx, sy = nw, nh
        else:
            canvas = img.resize((self.w, self.h), Image.BILINEAR)
            ox = oy = 0
            sx, sy = self.w, self.h
        a = np.asarray(canvas, np.float32).transpose(2, 0, 1)
        if self.bgr:
            a = a[::-1]
        a = (a * self.scale - self.mean) / self.std
        return a[None].astype(np.float32), (sx, sy, ox, oy)


def write_manifest(base: Path, out: Path, digest: str, what: str) -> None:
    """OUT/site-model.toml: the base manifest pointing at site-model.onnx, without the base's
    source URL and measured figures (they are not this model's)."""
    with open(base, "rb") as f:
        text = f.read().decode()
    lines = []
    for line in text.splitlines():
        if line.startswith("name = "):
            line = 'name = "site-model"'
        elif line.startswith("file = "):
            line = 'file = "site-model.onnx"'
        elif line.startswith("sha256 = "):
            line = f'sha256 = "{digest}"'
        elif line.startswith("source_url = "):
            continue
        lines.append(line)
    body = "\n".join(lines)
    if "\n[accuracy]" in body:
        body = body.split("\n[accuracy]")[0].rstrip() + "\n"
    header = f"# Site model: {what} ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}).\n# For this site only: its training frames are the site's own.\n"
    (out / "site-model.toml").write_text(header + body)


def head_convs(model: onnx.ModelProto, n_classes: int):
    """The class-output 1x1 convolutions, finest stride first: (node, weight name, bias name)."""
    inits = {i.name: i for i in model.graph.initializer}
    found = []
    for n in model.graph.node:
        if n.op_type == "Conv" and "cls_out" in n.name and len(n.input) == 3:
            w = inits.get(n.input[1])
            if w is not None and list(w.dims)[:1] == [n_classes]:
                found.append(n)
    found.sort(key=lambda n: n.name)
    if len(found) != LEVELS:
        fail(f"expected {LEVELS} class-output convolutions (cls_out.*) with {n_classes} outputs, found {len(found)}: this script fits NanoDet-style heads only")
    return [(n, n.input[1], n.input[2]) for n in found]


def read_labels(path: Path, n_classes: int):
    boxes = []
    if path.is_file():
        for ln, line in enumerate(path.read_text().splitlines(), 1):
            p = line.split()
            if not p:
                continue
            try:
                c, cx, cy, w, h = int(p[0]), *map(float, p[1:5])
            except (ValueError, IndexError):
                print(f"warning: {path}:{ln}: not `class cx cy w h`, skipped", file=sys.stderr)
                continue
            if 0 <= c < n_classes:
                boxes.append((c, cx, cy, w, h))
    return boxes


def images_of(d: Path):
    img_dir = d / "images" if (d / "images").is_dir() else d
    return sorted(p for p in img_dir.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


def collect(session, feat_names, pre, images, label_dir, n_classes, rng, neg_keep):
    """Features and targets of every anchor (all positives, a sample of negatives)."""
    X = [[] for _ in range(LEVELS)]
    Y = [[] for _ in range(LEVELS)]
    Wt = [[] for _ in range(LEVELS)]
    for k, path in enumerate(images):
        try:
            img = Image.open(path)
            tensor, (sx, sy, ox, oy) = pre(img)
        except OSError as e:
            print(f"warning: {path}: {e}; skipped", file=sys.stderr)
            continue
        feats = session.run(feat_names, {session.get_inputs()[0].name: tensor})
        boxes = read_labels(label_dir / (path.stem + ".txt"), n_classes) if label_dir else []
        # Boxes in input pixels.
        bx = [(c, (cx - w / 2) * sx + ox, (cy - h / 2) * sy + oy, (cx + w / 2) * sx + ox, (cy + h / 2) * sy + oy) for c, cx, cy, w, h in boxes]
        for lvl, f in enumerate(feats):
            _, ch, gh, gw = f.shape
            stride = pre.h / gh
            cys, cxs = np.mgrid[0:gh, 0:gw]
            px = (cxs + 0.5) * stride
            py = (cys + 0.5) * stride
            y = np.zeros((gh, gw, n_classes), np.float32)
            lo, hi = LEVEL_RANGE[lvl]
            for c, x1, y1, x2, y2 in bx:
                side = max(x2 - x1, y2 - y1)
                # Centre sampling: only cells near the box's centre learn it (their frozen
                # box regression reaches the box's edges best).
                mx, my = (x1 + x2) / 2, (y1 + y2) / 2
                rx, ry = CENTER * (x2 - x1) / 2, CENTER * (y2 - y1) / 2
                inside = (np.abs(px - mx) <= rx) & (np.abs(py - my) <= ry)
                if lo <= side <= hi:
                    y[inside, c] = 1.0
                    # A box smaller than a cell still owns the cell holding its centre.
                    gx = min(gw - 1, max(0, int(((x1 + x2) / 2) / stride)))
                    gy = min(gh - 1, max(0, int(((y1 + y2) / 2) / stride)))
                    y[gy, gx, c] = 1.0
            fv = f[0].reshape(ch, -1).T
            yv = y.reshape(-1, n_classes)
            pos = yv.max(1) > 0
            keep = pos | (rng.random(len(yv)) < neg_keep)
            X[lvl].append(fv[keep])
            Y[lvl].append(yv[keep])
            Wt[lvl].append(np.where(pos[keep], 1.0, 1.0 / neg_keep).astype(np.float32))
        if (k + 1) % 25 == 0:
            print(f"  features: {k + 1}/{len(images)} images", file=sys.stderr)
    return [(np.concatenate(X[l]), np.concatenate(Y[l]), np.concatenate(Wt[l])) for l in range(LEVELS)]


def fit(X, Y, Wt, w0, b0, deadline, l2, epochs, pos_weight):
    """Weighted logistic regression, Adam, from (w0, b0), L2 towards them."""
    w, b = w0.copy(), b0.copy()
    mw, vw, mb, vb = np.zeros_like(w), np.zeros_like(w), np.zeros_like(b), np.zeros_like(b)
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    n = len(X)
    sw = Wt * np.where(Y.max(1) > 0, pos_weight, 1.0)
    sw = (sw / sw.mean()).astype(np.float32)
    t = 0
    batch = 4096
    rng = np.random.default_rng(0)
    for ep in range(epochs):
        order = rng.permutation(n)
        for s in range(0, n, batch):
            idx = order[s:s + batch]
            z = X[idx] @ w.T + b
            p = 1 / (1 + np.exp(-np.clip(z, -30, 30)))
            g = (p - Y[idx]) * sw[idx, None]
            gw = g.T @ X[idx] / len(idx) + l2 * (w - w0)
            gb = g.mean(0) + l2 * (b - b0)
            t += 1
            mw = b1 * mw + (1 - b1) * gw
            vw = b2 * vw + (1 - b2) * gw * gw
            mb = b1 * mb + (1 - b1) * gb
            vb = b2 * vb + (1 - b2) * gb * gb
            w -= lr * (mw / (1 - b1 ** t)) / (np.sqrt(vw / (1 - b2 ** t)) + eps)
            b -= lr * (mb / (1 - b1 ** t)) / (np.sqrt(vb / (1 - b2 ** t)) + eps)
        if time.monotonic() > deadline:
            print(f"  time budget reached after {ep + 1} epochs", file=sys.stderr)
            break
    return w, b


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, type=Path, help="YOLO set with train/ and val/ (lookout dataset export)")
    ap.add_argument("--base", required=True, type=Path, help="manifest of the running model")
    ap.add_argument("--out", required=True, type=Path, help="output folder (site-model.toml, .onnx, .md)")
    ap.add_argument("--minutes", type=float, default=30.0, help="wall-time budget of the fit (default 30)")
    ap.add_argument("--neg", type=Path, action="append", default=[], help="more verified negatives (folders of images), e.g. the site's quiet days")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--l2", type=float, default=1e-3)
    ap.add_argument("--neg-keep", type=float, default=0.05, help="share of negative anchors sampled")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    t0 = time.monotonic()
    if a.minutes <= 0:
        fail("--minutes must be > 0")
    train = a.data / "train"
    if not (train / "images").is_dir():
        fail(f"{train}/images: not found (expected the layout of `lookout dataset export`)")
    base = load_manifest(a.base)
    names = list(base["classes"]["names"])
    onnx_path = locate_onnx(base, a.base)
    model = onnx.load(str(onnx_path))
    convs = head_convs(model, len(names))
    inits = {i.name: i for i in model.graph.initializer}

    # A copy of the graph that also outputs the class convolutions' input features.
    feat_names = [n.input[0] for n, _, _ in convs]
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    for fname in feat_names:
        probe.graph.output.append(onnx.helper.make_tensor_value_info(fname, onnx.TensorProto.FLOAT, None))
    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    sess = ort.InferenceSession(probe.SerializeToString(), so, providers=["CPUExecutionProvider"])
    pre = Preprocess(base["input"])
    rng = np.random.default_rng(0)

    imgs = images_of(train)
    if not imgs:
        fail(f"{train}/images has no images")
    print(f"site fine-tune: {len(imgs)} training images, base {a.base} ({onnx_path.name})", file=sys.stderr)
    data = collect(sess, feat_names, pre, imgs, train / "labels", len(names), rng, a.neg_keep)
    for d in a.neg:
        negs = images_of(d)
        print(f"  + {len(negs)} negatives from {d}", file=sys.stderr)
        extra = collect(sess, feat_names, pre, negs, None, len(names), rng, a.neg_keep)
        data = [(np.concatenate([x, ex]), np.concatenate([y, ey]), np.concatenate([w, ew])) for (x, y, w), (ex, ey, ew) in zip(data, extra)]
    budget_end = t0 + a.minutes * 60
    new = {}
    for lvl, ((node, wname, bname), (X, Y, Wt)) in enumerate(zip(convs, data)):
        w0 = numpy_helper.to_array(inits[wname]).reshape(len(names), -1).astype(np.float32)
        b0 = numpy_helper.to_array(inits[bname]).astype(np.float32)
        npos = int((Y.max(1) > 0).sum())
        pos_weight = float(os.environ.get("SITE_POS_WEIGHT", "1.0"))
        # Each level gets its share of what is left of the budget.
        deadline = time.monotonic() + max(1.0, (budget_end - time.monotonic()) / (LEVELS - lvl))
        w, b = fit(X, Y, Wt, w0, b0, deadline, a.l2, a.epochs, pos_weight)
        print(f"  level {lvl} ({node.name}): {len(X)} anchors, {npos} positive, |dw| {np.abs(w - w0).mean():.4f}", file=sys.stderr)
        new[wname] = w.reshape(numpy_helper.to_array(inits[wname]).shape)
        new[bname] = b
    for i, init in enumerate(model.graph.initializer):
        if init.name in new:
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(new[init.name].astype(np.float32), init.name))
    a.out.mkdir(parents=True, exist_ok=True)
    out_onnx = a.out / "site-model.onnx"
    model.doc_string = (model.doc_string or "") + f"\nClass outputs re-fitted to a site's labelled frames by Lookout's models/train/site.py from {onnx_path.name}."
    onnx.save(model, str(out_onnx))
    digest = sha256(out_onnx)
    write_manifest(a.base, a.out, digest, f"{a.base.name}'s class outputs re-fitted by models/train/site.py on {a.data}")
    summary = {
        "method": "head",
        "method_text": "the base with its class outputs re-fitted",
        "base": str(a.base),
        "base_sha256": sha256(onnx_path),
        "site_model": str(out_onnx),
        "sha256": digest,
        "train_images": len(imgs),
        "negatives": [str(d) for d in a.neg],
        "seconds": round(time.monotonic() - t0, 1),
    }
    (a.out / "fit.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
