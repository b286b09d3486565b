#!/usr/bin/env python3
"""Deep site fine-tune: continue training the running smoke/fire detector on one site's own
labelled frames (`lookout dataset export`), on CPU, within a wall-time budget.

Where `site.py` re-fits only the class outputs (no deep-learning framework), this trains the
head towers, the box regression, the neck and the later backbone stages too, with the
objective the shipped model was trained with (`loss.py`: dynamic soft-label assignment, QFL,
DFL, GIoU). It needs the training environment of `train.sh` (torch, onnx2torch, opencv) and
the pretrained NanoDet-Plus file only for the graph's structure; every weight is then loaded
from the running model's ONNX file, so the fit starts exactly where the running model is.

Only a base exported by `models/train` (tensor names `net.backbone_neck.*`, `net.head.*`)
can be continued this way; any other base is refused with a clear message (use site.py).

Augmentation follows the site's own view: the frames are letterboxed as at inference, zoomed
in and out a little (0.8-1.6x), shifted, flipped and photometrically jittered.

Rehearsal: a site's frames hold only what the site saw (often smoke and no flames), and a
network trained on them alone forgets the rest (measured: fire AP50 on CCTV test frames fell
from 0.59 to 0.05). `--rehearse DIR` (labelled YOLO splits the base was trained on, e.g.
cctv-fire-smoke/train) mixes those frames back in: half of the samples are the site's frames
with boxes, a fifth its negatives, the rest rehearsal. The learning rate warms up, then follows a
cosine over the wall-time budget; the weights' moving average (EMA) is what is exported.

Writes OUT/site-model.onnx, OUT/site-model.toml and OUT/fit.json, like site.py, so site.sh's
gate and model card work the same for both.

Usage (see site.sh): site_deep.py --data DIR --base models/smoke-fire.toml --out OUT
                                  [--minutes M] [--neg DIR]...
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import random
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import onnx
import torch
from onnx import numpy_helper

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from data import PAD_VALUE, Sample, letterbox, load_yolo_split, photometric, shared_root  # noqa: E402
from loss import detection_loss  # noqa: E402
from model import INPUT_SIZE, NUM_CLASSES, ExportWrapper, build_model, early_layer_parameters, make_priors, preprocess_bgr  # noqa: E402
from train import EMA, export_onnx, seed_everything  # noqa: E402


def _site_helpers():
    """site.py's manifest helpers (loaded by path: `site` is also a standard module name)."""
    spec = importlib.util.spec_from_file_location("lookout_site_fit", HERE / "site.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def fail(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(2)


def load_negatives(d: Path) -> list[Sample]:
    """A folder of images, or a YOLO split (images/ + labels/) whose labels are ignored only
    when absent: a negatives folder must hold no objects."""
    folder = d / "images" if (d / "images").is_dir() else d
    if not folder.is_dir():
        fail(f"--neg {d}: not a folder")
    out = []
    for p in sorted(folder.iterdir()):
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is None:
            continue
        out.append(Sample(img, np.zeros((0, 5), np.float32), f"neg:{d.name}"))
    if not out:
        fail(f"--neg {d}: no readable images")
    return out


class SiteDataset(torch.utils.data.Dataset):
    """Augmented 416x416 views of the site's frames, as the running model sees them."""

    def __init__(self, positives: list[Sample], negatives: list[Sample], rehearsal: list[Sample],
                 seed: int, length: int):
        self.pos, self.neg, self.rehearsal = positives, negatives, rehearsal
        self.seed, self.length = seed, length
        self.epoch = 0

    def _pool(self, rng: random.Random) -> list[Sample]:
        r = rng.random()
        if self.rehearsal and r >= 0.7:
            return self.rehearsal
        if self.neg and (r >= 0.5 or not self.pos):
            return self.neg
        return self.pos

    def __len__(self):
        return self.length

    def __getitem__(self, index: int):
        rng = random.Random((self.seed * 1_000_003 + self.epoch) * 1_000_003 + index)
        pool = self._pool(rng)
        s = pool[rng.randrange(len(pool))]
        S = INPUT_SIZE
        h, w = s.image.shape[:2]
        scale = S / max(h, w) * rng.uniform(0.8, 1.6)
        nw, nh = max(1, int(w * scale)), max(1, int(h * scale))
        img = cv2.resize(s.image, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        boxes = s.boxes.copy()
        boxes[:, 1:] *= scale
        lo_x, hi_x = min(0.0, S - nw), max(0.0, S - nw)
        lo_y, hi_y = min(0.0, S - nh), max(0.0, S - nh)
        if len(boxes):
            # Keep the boxes inside the view when zoomed in, where the view allows it.
            kx = (max(lo_x, -boxes[:, 1].min()), min(hi_x, S - boxes[:, 3].max()))
            ky = (max(lo_y, -boxes[:, 2].min()), min(hi_y, S - boxes[:, 4].max()))
            if kx[0] <= kx[1]:
                lo_x, hi_x = kx
            if ky[0] <= ky[1]:
                lo_y, hi_y = ky
        ox, oy = int(rng.uniform(lo_x, hi_x)), int(rng.uniform(lo_y, hi_y))
        canvas = np.full((S, S, 3), PAD_VALUE, np.uint8)
        sx1, sy1 = max(0, -ox), max(0, -oy)
        dx1, dy1 = max(0, ox), max(0, oy)
        cw, ch = min(nw - sx1, S - dx1), min(nh - sy1, S - dy1)
        if cw > 0 and ch > 0:
            canvas[dy1 : dy1 + ch, dx1 : dx1 + cw] = img[sy1 : sy1 + ch, sx1 : sx1 + cw]
        if len(boxes):
            boxes[:, [1, 3]] += ox
            boxes[:, [2, 4]] += oy
        if rng.random() < 0.5:
            canvas = canvas[:, ::-1].copy()
            if len(boxes):
                boxes[:, [1, 3]] = S - boxes[:, [3, 1]]
        canvas = photometric(canvas, rng)
        if len(boxes):
            boxes[:, 1:] = boxes[:, 1:].clip(0, S)
            keep = ((boxes[:, 3] - boxes[:, 1]) >= 3) & ((boxes[:, 4] - boxes[:, 2]) >= 3)
            boxes = boxes[keep]
        return torch.from_numpy(preprocess_bgr(canvas)), torch.from_numpy(boxes.astype(np.float32))


def _collate(batch):
    return torch.stack([b[0] for b in batch]), [b[1] for b in batch]


def load_base(wrapper: ExportWrapper, onnx_path: Path) -> None:
    """Every weight of `wrapper` from the running model's ONNX initializers (same names)."""
    model = onnx.load(str(onnx_path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    params = dict(wrapper.named_parameters())
    missing = [k for k in params if k not in inits]
    if missing:
        fail(f"{onnx_path}: not a model exported by models/train ({len(missing)} of {len(params)} "
             f"weights missing, e.g. `{missing[0]}`): continue it with the head re-fit (--method head)")
    # Buffers the export folded away (the graph's constant shapes) keep the structure's values.
    for k, v in wrapper.state_dict().items():
        if k not in inits:
            continue
        arr = inits[k]
        if tuple(arr.shape) != tuple(v.shape):
            fail(f"{onnx_path}: tensor `{k}` has shape {tuple(arr.shape)}, expected {tuple(v.shape)}")
        with torch.no_grad():
            v.copy_(torch.from_numpy(arr.copy()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, type=Path, help="YOLO set with train/ and val/ (lookout dataset export)")
    ap.add_argument("--base", required=True, type=Path, help="manifest of the running model")
    ap.add_argument("--out", required=True, type=Path, help="output folder (site-model.toml, .onnx, fit.json)")
    ap.add_argument("--minutes", type=float, default=30.0, help="wall-time budget of the fit (default 30)")
    ap.add_argument("--neg", type=Path, action="append", default=[], help="more verified negatives (folders of images)")
    ap.add_argument("--rehearse", type=Path, action="append", default=[],
                    help="labelled YOLO splits the base learnt from, mixed in so it keeps what the site's frames lack")
    ap.add_argument("--lr", type=float, default=6e-4, help="head learning rate (backbone/neck at 0.5x)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--freeze-until-stride", type=int, default=8, choices=(8, 16),
                    help="layers before this stride stay frozen (8: the stem only; 16: stem + stage 2)")
    ap.add_argument("--seed", type=int, default=20261207)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    t0 = time.monotonic()
    helpers = _site_helpers()
    manifest = helpers.load_manifest(a.base)
    onnx_path = helpers.locate_onnx(manifest, a.base)
    names = list(manifest["classes"]["names"])
    if names[:NUM_CLASSES] != ["smoke", "fire"]:
        fail(f"{a.base}: classes {names}: the deep fit continues a smoke/fire model exported by models/train")
    nanodet = shared_root() / "models" / "nanodet-plus-m-1.5x_416.onnx"
    if not nanodet.is_file():
        fail(f"{nanodet}: the pretrained NanoDet-Plus file (the graph's structure) is missing: set LOOKOUT_SHARED")
    train_dir = a.data / "train"
    if not (train_dir / "images").is_dir():
        fail(f"{train_dir}/images: missing (export the site's frames with `lookout dataset export`)")

    torch.set_num_threads(a.threads)
    cv2.setNumThreads(1)
    seed_everything(a.seed)
    with tempfile.TemporaryDirectory() as tmp:
        net = build_model(str(nanodet), tmp)
    wrapper = ExportWrapper(net)
    load_base(wrapper, onnx_path)

    site = load_yolo_split(train_dir, "site")
    positives = [s for s in site if len(s.boxes)]
    negatives = [s for s in site if not len(s.boxes)]
    for d in a.neg:
        negatives += load_negatives(d)
    if not positives:
        fail(f"{train_dir}: no frame with a box: nothing to learn from")
    rehearsal = []
    for d in a.rehearse:
        if not (d / "images").is_dir():
            fail(f"--rehearse {d}: no images/ folder (a YOLO split with images/ and labels/)")
        rehearsal += load_yolo_split(d, f"rehearse:{d.name}")
    n_boxes = sum(len(s.boxes) for s in positives)
    print(f"site fit: {len(positives)} frames with {n_boxes} boxes, {len(negatives)} negatives, {len(rehearsal)} rehearsal frames; "
          f"budget {a.minutes} min", file=sys.stderr, flush=True)

    for p in net.backbone_neck.parameters():
        p.requires_grad_(True)
    for p in early_layer_parameters(net.backbone_neck, a.freeze_until_stride):
        p.requires_grad_(False)
    backbone = [p for p in net.backbone_neck.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(
        [{"params": list(net.head.parameters()), "lr_mult": 1.0}, {"params": backbone, "lr_mult": 0.5}],
        lr=a.lr, weight_decay=0.05)
    ema = EMA(net, decay=0.99)
    priors = make_priors()
    # Wall-time budget: keep back time for the export (and the gate site.sh runs after).
    budget = max(20.0, a.minutes * 60 - 45 - (time.monotonic() - t0))
    warmup = 20
    epoch_len = max(a.batch * 4, 2 * len(positives))  # one pass: each site frame ~once
    dataset = SiteDataset(positives, negatives, rehearsal, a.seed, epoch_len)
    started = time.monotonic()
    step, epoch, running, n_run = 0, 0, 0.0, 0
    out_of_time = False
    net.train()
    while not out_of_time:
        dataset.epoch = epoch
        g = torch.Generator()
        g.manual_seed(a.seed + epoch)
        loader = torch.utils.data.DataLoader(dataset, batch_size=a.batch, shuffle=True, num_workers=0,
                                             collate_fn=_collate, drop_last=True, generator=g)
        for images, targets in loader:
            elapsed = time.monotonic() - started
            if elapsed >= budget:
                out_of_time = True
                break
            lr = a.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, elapsed / budget))))
            if step < warmup:
                lr *= (step + 1) / warmup
            for grp in opt.param_groups:
                grp["lr"] = lr * grp["lr_mult"]
            cls_logits, reg = net(images)
            loss, _parts = detection_loss(cls_logits, reg, priors, targets, NUM_CLASSES)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 10.0)
            opt.step()
            ema.update(net)
            running += float(loss.detach())
            n_run += 1
            step += 1
            if step % 20 == 0:
                print(f"  step {step} epoch {epoch} lr {lr:.2e} loss {running / n_run:.4f} "
                      f"{elapsed:.0f}s/{budget:.0f}s", file=sys.stderr, flush=True)
                running, n_run = 0.0, 0
        epoch += 1
    if step == 0:
        fail(f"the {a.minutes}-minute budget left no time for a single step: give --minutes more")

    a.out.mkdir(parents=True, exist_ok=True)
    out_onnx = a.out / "site-model.onnx"
    export_onnx(ema.model, out_onnx)
    m = onnx.load(str(out_onnx))
    m.doc_string = f"Lookout site model: {onnx_path.name} fine-tuned on a site's labelled frames by models/train/site_deep.py."
    onnx.save(m, str(out_onnx))
    digest = helpers.sha256(out_onnx)
    helpers.write_manifest(a.base, a.out, digest, f"{a.base.name} fine-tuned by models/train/site_deep.py on {a.data}")
    summary = {
        "method": "deep",
        "method_text": (f"the base fine-tuned (head, neck and backbone after stride {a.freeze_until_stride}) "
                        f"for {step} steps of {a.batch} ({epoch} passes)"),
        "base": str(a.base),
        "base_sha256": helpers.sha256(onnx_path),
        "site_model": str(out_onnx),
        "sha256": digest,
        "train_images": len(site),
        "train_boxes": n_boxes,
        "negatives": [str(d) for d in a.neg],
        "rehearsal": [str(d) for d in a.rehearse],
        "steps": step,
        "seconds": round(time.monotonic() - t0, 1),
    }
    (a.out / "fit.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
