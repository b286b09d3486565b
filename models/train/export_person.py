#!/usr/bin/env python3
"""Re-export the NanoDet-Plus person detector at a larger input size with a dynamic batch.

The published NanoDet-Plus-m-1.5x ONNX file (OpenCV Zoo, Apache-2.0) is fixed at 416x416 and
batch 1: its channel-shuffle Reshape nodes and its PAN Resize nodes hard-code both. People on
plant CCTV are small and far, so a wider input helps (see models/README.md "People in wide
views"). This script converts the graph to PyTorch (`onnx2torch`, as model.py does for the
smoke/fire detector's backbone), swaps those modules for ones that read batch and spatial size
from their input, rebuilds the head from the file's own weights (towers, class and box
outputs: all 80 COCO classes), checks at 416 that the result matches ONNX Runtime on the
original file, and exports ONNX opset 17 at SIZE x SIZE with a dynamic batch axis and the
original output layout (per stride: sigmoid class scores [batch, N, 80], box distributions
[batch, N, 32]), plus a manifest models/person-nanodet-SIZE.toml.

No weight changes: the exported model is the published one at another input size.

Usage: models/train/.venv/bin/python models/train/export_person.py --size 640 [--size 832]
(the training environment: `bash models/train/train.sh venv`).
"""
from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn as nn
import torch.nn.functional as F
from onnx import numpy_helper

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))

from data import shared_root  # noqa: E402
from model import GFLHead, _NECK_OUTPUTS, _ONNX_INPUT  # noqa: E402

NANODET = "nanodet-plus-m-1.5x_416.onnx"
NANODET_SHA256 = "4b82da9944b88577175ee23a459dce2e26e6e4be573def65b1055dc2d9720186"
COCO = 80


class _ShapeReshape(nn.Module):
    """Channel-shuffle Reshape whose constant shape [1, ..., H, W] hard-codes batch and size:
    batch and the two spatial dimensions are read from the input instead."""

    def __init__(self, shape: list[int]):
        super().__init__()
        if shape[0] != 1 or len(shape) not in (4, 5):
            raise ValueError(f"unexpected Reshape constant {shape}")
        self.mid = tuple(int(s) for s in shape[1:-2])

    def forward(self, x: torch.Tensor, _onnx_shape: torch.Tensor) -> torch.Tensor:
        return x.reshape((x.shape[0],) + self.mid + (x.shape[-2], x.shape[-1]))


class _Upsample(nn.Module):
    """PAN Resize with constant `sizes` [1, C, H, W]: the same bilinear resize by its ratio.

    The ratio (the constant size over the input size at 416: up 2x on the top-down path,
    down 2x where the PAN's extra level is made) is learnt from one calibration pass at
    416, where the constant sizes hold; after that the output size follows the input."""

    def __init__(self, size_hw: tuple[int, int]):
        super().__init__()
        self.size_hw = size_hw
        self.ratio: tuple[int, int] | None = None  # input size at 416

    def forward(self, x, _roi=None, _scales=None, _sizes=None):
        if self.ratio is None:
            self.ratio = (x.shape[-2], x.shape[-1])
        (h, w), (h0, w0) = self.size_hw, self.ratio
        size = (x.shape[-2] * h // h0, x.shape[-1] * w // w0)
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def size_agnostic_neck(nanodet: Path, tmp: str) -> nn.Module:
    from onnx2torch import convert

    sub = f"{tmp}/neck.onnx"
    onnx.utils.extract_model(str(nanodet), sub, [_ONNX_INPUT], list(_NECK_OUTPUTS))
    net = convert(sub)
    for node in net.graph.nodes:
        if node.op != "call_module":
            continue
        mod = net.get_submodule(node.target)
        kind = type(mod).__name__
        if kind not in ("OnnxReshape", "OnnxResize"):
            continue
        const = node.args[1] if kind == "OnnxReshape" else node.args[3]
        owner = net.get_submodule(".".join(const.target.split(".")[:-1]))
        value = getattr(owner, const.target.split(".")[-1]).tolist()
        if kind == "OnnxReshape":
            net.add_submodule(node.target, _ShapeReshape(value))
        else:
            net.add_submodule(node.target, _Upsample((int(value[2]), int(value[3]))))
    net.recompile()
    with torch.no_grad():  # calibrate the resize ratios at the file's own size
        net(torch.zeros(1, 3, 416, 416))
    return net


class PersonNet(nn.Module):
    """Backbone + neck + the 80-class GFL head, outputs in the original file's layout."""

    def __init__(self, neck: nn.Module, head: GFLHead):
        super().__init__()
        self.neck, self.head = neck, head

    def forward(self, x: torch.Tensor):
        outs = []
        for level, f in enumerate(self.neck(x)):
            t = self.head.towers[level](f)
            outs.append(self.head.cls_out[level](t).sigmoid().flatten(2).transpose(1, 2))
            outs.append(self.head.reg_out[level](t).flatten(2).transpose(1, 2))
        return tuple(outs)


def load_head(head: GFLHead, nanodet: Path) -> None:
    head.load_nanodet_head(str(nanodet))  # towers + box outputs
    model = onnx.load(str(nanodet))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for level in range(3):
        w = inits[f"head.gfl_cls.{level}.weight"]
        b = inits[f"head.gfl_cls.{level}.bias"]
        head.cls_out[level].weight.data.copy_(torch.from_numpy(w[:COCO].copy()))
        head.cls_out[level].bias.data.copy_(torch.from_numpy(b[:COCO].copy()))


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_matches_original(net: PersonNet, nanodet: Path) -> float:
    """Largest difference from ONNX Runtime on the original file at 416 (random input)."""
    x = np.random.default_rng(1).normal(size=(1, 3, 416, 416)).astype(np.float32)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # the published file lists its weights as graph inputs: warned per weight
    sess = ort.InferenceSession(str(nanodet), opts, providers=["CPUExecutionProvider"])
    ref = sess.run(None, {_ONNX_INPUT: x})
    with torch.no_grad():
        got = [o.numpy() for o in net(torch.from_numpy(x))]
    worst = 0.0
    for g in got:
        match = [r for r in ref if r.shape == g.shape]
        # cls and reg outputs differ in their last dimension; a level's pair is unique.
        worst = max(worst, min(float(np.abs(g - r).max()) for r in match))
    return worst


MANIFEST = """# NanoDet-Plus-m-1.5x re-exported at {size} px with a dynamic batch, COCO 80 classes.
# Written by models/train/export_person.py from {src} (sha256 {src_sha}); the weights are
# the published ones, unchanged. Lookout uses it for `person` on wide views. Format: see
# models/README.md.
name = "person-nanodet-{size}"
file = "person-nanodet-{size}.onnx"
sha256 = "{sha}"
licence = "Apache-2.0"
description = \"\"\"
NanoDet-Plus-m-1.5x (RangiLyu/nanodet, via the OpenCV Zoo file), converted with onnx2torch
and re-exported at {size}x{size} with a dynamic batch axis by models/train/export_person.py
(matches the original to {diff:.1e} at 416). Plain resize (no letterbox), BGR, ImageNet-style
mean/std in 0..255 units. Larger input: small, far people are found more often, at about
({size}/416)^2 = {cost:.1f}x the compute per frame.\"\"\"

[input]
tensor = "images"
width = {size}
height = {size}
batch = "dynamic"
channels = "bgr"
scale = 1.0
mean = [103.53, 116.28, 123.675]
std = [57.375, 57.12, 58.395]
resize = "stretch"
pad_value = 0

[output]
layout = "nanodet"
strides = [8, 16, 32]
reg_max = 7
center_offset = 0.5

"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, action="append", required=True, help="input side (multiple of 32)")
    ap.add_argument("--out", type=Path, default=REPO / "models")
    a = ap.parse_args()
    nanodet = shared_root() / "models" / NANODET
    if not nanodet.is_file() or sha256(nanodet) != NANODET_SHA256:
        sys.exit(f"error: {nanodet}: missing or not the published file (sha256 {NANODET_SHA256})")
    base_toml = (REPO / "models" / "person-nanodet.toml").read_text()
    classes = base_toml[base_toml.index("[classes]"):]
    classes = classes.split("\n[accuracy]")[0].rstrip() + "\n"
    with tempfile.TemporaryDirectory() as tmp:
        neck = size_agnostic_neck(nanodet, tmp)
    head = GFLHead(num_classes=COCO)
    load_head(head, nanodet)
    net = PersonNet(neck, head).eval()
    diff = check_matches_original(net, nanodet)
    print(f"re-built graph vs the original at 416: max |diff| {diff:.2e}")
    if diff > 1e-3:
        sys.exit(f"error: the re-built graph differs from {nanodet} by {diff} at 416")
    for size in a.size:
        if size % 32:
            sys.exit(f"error: --size {size}: must be a multiple of 32")
        path = a.out / f"person-nanodet-{size}.onnx"
        names = [f"{k}{s}" for s in (8, 16, 32) for k in ("cls", "reg")]
        torch.onnx.export(net, (torch.zeros(2, 3, size, size),), str(path), input_names=["images"],
                          output_names=names, dynamic_axes={n: {0: "batch"} for n in ["images", *names]},
                          opset_version=17, dynamo=False)
        m = onnx.load(str(path))
        # Static anchor and channel dimensions (the engine matches outputs by shape).
        for out in m.graph.output:
            kind, stride = out.name[:3], int(out.name[3:])
            dims = out.type.tensor_type.shape.dim
            for d, v in ((dims[1], (size // stride) ** 2), (dims[2], COCO if kind == "cls" else 32)):
                d.ClearField("dim_param")
                d.dim_value = v
        m.doc_string = f"NanoDet-Plus-m-1.5x (Apache-2.0) re-exported at {size} px by Lookout's models/train/export_person.py"
        onnx.checker.check_model(m)
        onnx.save(m, str(path))
        digest = sha256(path)
        text = MANIFEST.format(size=size, src=NANODET, src_sha=NANODET_SHA256, sha=digest, diff=diff,
                               cost=(size / 416) ** 2)
        (a.out / f"person-nanodet-{size}.toml").write_text(text + classes)
        print(f"wrote {path} ({path.stat().st_size} bytes, sha256 {digest})")


if __name__ == "__main__":
    main()
