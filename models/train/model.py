"""Lookout smoke/fire detector: NanoDet-Plus-m-1.5x backbone + PAN neck with a new 2-class head.

The pretrained backbone and neck come from the Apache-2.0 NanoDet-Plus ONNX file (OpenCV Zoo
`object_detection_nanodet_2022nov.onnx`). We cut that graph at the three neck outputs
(strides 8, 16, 32), convert the sub-graph to PyTorch with `onnx2torch`, and make the result
batch-agnostic: onnx2torch keeps the ONNX file's hard-coded batch size 1 in the ShuffleNetV2
channel-shuffle Reshape nodes and in the PAN Resize `sizes`, so we swap those modules for
equivalents that read the batch size from the input.

The head mirrors NanoDet's per-level head (2 x [depthwise 3x3 + pointwise 1x1, LeakyReLU 0.1])
and is initialised from the pretrained head towers and box-regression channels; only the class
outputs (2 channels: smoke, fire) start from scratch.

`ExportWrapper` puts the whole decode inside the graph so the ONNX output is YOLOv8-style
`[batch, 4 + nc, N]`: cx, cy, w, h in input pixels, then per-class sigmoid scores.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
from onnx import numpy_helper

INPUT_SIZE = 416
STRIDES = (8, 16, 32)
REG_MAX = 7  # GFL distribution has REG_MAX + 1 = 8 bins per side
NUM_CLASSES = 2
CLASS_NAMES = ("smoke", "fire")
# NanoDet normalisation (BGR order, applied to 0..255 pixels).
MEAN_BGR = (103.53, 116.28, 123.675)
STD_BGR = (57.375, 57.12, 58.395)

# Names of the neck outputs inside the NanoDet-Plus ONNX graph (stride 8, 16, 32) and its input.
_ONNX_INPUT = "input.1"
_NECK_OUTPUTS = ("733", "753", "773")


class _BatchReshape(nn.Module):
    """Replacement for onnx2torch's OnnxReshape whose target shape hard-codes batch 1."""

    def __init__(self, shape: list[int]):
        super().__init__()
        assert shape[0] == 1, shape
        self.tail = tuple(int(s) for s in shape[1:])

    def forward(self, x: torch.Tensor, _onnx_shape: torch.Tensor) -> torch.Tensor:
        return x.reshape((x.shape[0],) + self.tail)


class _BilinearResize(nn.Module):
    """Replacement for onnx2torch's OnnxResize with fixed `sizes` [1, C, H, W].

    The ONNX node is mode=linear, coordinate_transformation_mode=pytorch_half_pixel, which is
    exactly F.interpolate(bilinear, align_corners=False).
    """

    def __init__(self, size_hw: tuple[int, int]):
        super().__init__()
        self.size_hw = (int(size_hw[0]), int(size_hw[1]))

    def forward(self, x, _roi=None, _scales=None, _sizes=None):
        return F.interpolate(x, size=self.size_hw, mode="bilinear", align_corners=False)


def build_backbone_neck(nanodet_onnx: str, tmp_dir: str) -> nn.Module:
    """Backbone + PAN neck of NanoDet-Plus as a batch-agnostic torch module.

    Returns a module mapping [B,3,416,416] (normalised BGR) -> [P3, P4, P5] with 96 channels
    at strides 8, 16, 32.
    """
    from onnx2torch import convert

    sub_path = f"{tmp_dir}/nanodet_neck.onnx"
    onnx.utils.extract_model(nanodet_onnx, sub_path, [_ONNX_INPUT], list(_NECK_OUTPUTS))
    net = convert(sub_path)

    # Map every FX call of a Reshape/Resize module to its constant shape argument, then swap
    # the module for a batch-agnostic one.
    for node in net.graph.nodes:
        if node.op != "call_module":
            continue
        mod = net.get_submodule(node.target)
        kind = type(mod).__name__
        if kind not in ("OnnxReshape", "OnnxResize"):
            continue
        const_arg = node.args[1] if kind == "OnnxReshape" else node.args[3]
        assert const_arg.op == "get_attr", (node.target, const_arg)
        value = net.get_submodule(".".join(const_arg.target.split(".")[:-1]))
        value = getattr(value, const_arg.target.split(".")[-1]).tolist()
        if kind == "OnnxReshape":
            net.add_submodule(node.target, _BatchReshape(value))
        else:
            net.add_submodule(node.target, _BilinearResize((value[2], value[3])))
    net.recompile()
    return net


def early_layer_parameters(backbone_neck: nn.Module, until_stride: int = 16) -> list[nn.Parameter]:
    """Parameters of the layers before the first block working at `until_stride`.

    until_stride=16: stem + ShuffleNetV2 stage 2 (the `finetune` stage keeps these frozen: generic
    edge/texture filters, and back-propagating through the high-resolution layers is the most
    expensive part on a CPU). until_stride=8: the stem only (conv1 + max-pool; `finetune2`).
    """
    params = []
    for node in backbone_neck.graph.nodes:
        if node.op != "call_module":
            continue
        mod = backbone_neck.get_submodule(node.target)
        if isinstance(mod, _BatchReshape) and mod.tail[-1] == INPUT_SIZE // until_stride:
            break
        params.extend(mod.parameters(recurse=True))
    return params


def _dw_pw(channels: int) -> list[nn.Module]:
    """Depthwise 3x3 + pointwise 1x1, each followed by LeakyReLU(0.1) (BN already folded)."""
    return [
        nn.Conv2d(channels, channels, 3, padding=1, groups=channels),
        nn.LeakyReLU(0.1, inplace=True),
        nn.Conv2d(channels, channels, 1),
        nn.LeakyReLU(0.1, inplace=True),
    ]


class GFLHead(nn.Module):
    """Per-level NanoDet head: tower -> (class logits [nc], box distribution [4*(REG_MAX+1)])."""

    def __init__(self, num_classes: int = NUM_CLASSES, channels: int = 96, num_levels: int = 3):
        super().__init__()
        self.num_classes = num_classes
        self.towers = nn.ModuleList(
            nn.Sequential(*_dw_pw(channels), *_dw_pw(channels)) for _ in range(num_levels)
        )
        self.cls_out = nn.ModuleList(nn.Conv2d(channels, num_classes, 1) for _ in range(num_levels))
        self.reg_out = nn.ModuleList(
            nn.Conv2d(channels, 4 * (REG_MAX + 1), 1) for _ in range(num_levels)
        )
        prior_prob = 0.01  # focal-loss style bias init: every location starts as background
        for conv in self.cls_out:
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.constant_(conv.bias, -math.log((1 - prior_prob) / prior_prob))

    def load_nanodet_head(self, nanodet_onnx: str) -> None:
        """Copy tower and box-regression weights from the pretrained COCO head."""
        model = onnx.load(nanodet_onnx)
        inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
        nodes = list(model.graph.node)
        start = next(i for i, n in enumerate(nodes) if _NECK_OUTPUTS[-1] in n.output) + 1
        convs = [n for n in nodes[start:] if n.op_type == "Conv"]
        assert len(convs) == 15, len(convs)  # 3 levels x (4 tower convs + 1 output conv)
        for level in range(3):
            level_convs = convs[level * 5 : level * 5 + 5]
            tower_convs = [m for m in self.towers[level] if isinstance(m, nn.Conv2d)]
            for conv, node in zip(tower_convs, level_convs[:4]):
                conv.weight.data.copy_(torch.from_numpy(inits[node.input[1]].copy()))
                conv.bias.data.copy_(torch.from_numpy(inits[node.input[2]].copy()))
            w = inits[level_convs[4].input[1]]  # [80 + 32, 96, 1, 1]: COCO classes then box bins
            b = inits[level_convs[4].input[2]]
            self.reg_out[level].weight.data.copy_(torch.from_numpy(w[80:].copy()))
            self.reg_out[level].bias.data.copy_(torch.from_numpy(b[80:].copy()))

    def forward(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns class logits [B, N, nc] and box distributions [B, N, 32], levels concatenated."""
        cls_all, reg_all = [], []
        for level, x in enumerate(feats):
            t = self.towers[level](x)
            cls_all.append(self.cls_out[level](t).flatten(2))
            reg_all.append(self.reg_out[level](t).flatten(2))
        return torch.cat(cls_all, 2).transpose(1, 2), torch.cat(reg_all, 2).transpose(1, 2)


class SmokeFireNet(nn.Module):
    def __init__(self, backbone_neck: nn.Module, head: GFLHead):
        super().__init__()
        self.backbone_neck = backbone_neck
        self.head = head

    def forward(self, x: torch.Tensor):
        feats = self.backbone_neck(x)
        return self.head(list(feats))


def make_priors(input_size: int = INPUT_SIZE) -> torch.Tensor:
    """Anchor points [N, 3] = (cx, cy, stride), level-major, row-major, like the head output.

    Centre convention of the NanoDet ONNX file: grid * stride + 0.5 * (stride - 1).
    """
    rows = []
    for s in STRIDES:
        n = math.ceil(input_size / s)
        ys, xs = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
        cx = xs.flatten().float() * s + 0.5 * (s - 1)
        cy = ys.flatten().float() * s + 0.5 * (s - 1)
        rows.append(torch.stack([cx, cy, torch.full_like(cx, float(s))], 1))
    return torch.cat(rows, 0)


def distribution_to_distance(reg: torch.Tensor) -> torch.Tensor:
    """[.., 4*(REG_MAX+1)] logits -> [.., 4] expected distances in stride units."""
    shape = reg.shape[:-1]
    prob = reg.reshape(*shape, 4, REG_MAX + 1).softmax(-1)
    bins = torch.arange(REG_MAX + 1, dtype=reg.dtype, device=reg.device)
    return (prob * bins).sum(-1)


def decode_boxes(reg: torch.Tensor, priors: torch.Tensor) -> torch.Tensor:
    """Box distributions [B, N, 32] -> boxes x1, y1, x2, y2 [B, N, 4] in input pixels."""
    dist = distribution_to_distance(reg) * priors[:, 2:3]
    c = priors[:, :2]
    return torch.cat([c - dist[..., :2], c + dist[..., 2:]], -1)


class ExportWrapper(nn.Module):
    """Inference graph: normalised BGR [B,3,416,416] -> [B, 4 + nc, N] (YOLOv8 layout)."""

    def __init__(self, net: SmokeFireNet):
        super().__init__()
        self.net = net
        priors = make_priors()
        self.register_buffer("centres", priors[:, :2].clone())
        self.register_buffer("strides", priors[:, 2:3].clone())
        self.register_buffer("bins", torch.arange(REG_MAX + 1, dtype=torch.float32))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        cls_logits, reg = self.net(images)  # [B, N, nc], [B, N, 32]
        n = reg.shape[1]
        prob = reg.reshape(-1, n, 4, REG_MAX + 1).softmax(-1)
        dist = (prob * self.bins).sum(-1) * self.strides  # [B, N, 4] = l, t, r, b in pixels
        x1y1 = self.centres - dist[..., :2]
        x2y2 = self.centres + dist[..., 2:]
        cxcy = (x1y1 + x2y2) * 0.5
        wh = x2y2 - x1y1
        out = torch.cat([cxcy, wh, cls_logits.sigmoid()], -1)  # [B, N, 4 + nc]
        return out.transpose(1, 2)


def build_model(nanodet_onnx: str, tmp_dir: str) -> SmokeFireNet:
    head = GFLHead()
    head.load_nanodet_head(nanodet_onnx)
    return SmokeFireNet(build_backbone_neck(nanodet_onnx, tmp_dir), head)


def preprocess_bgr(img_bgr: np.ndarray) -> np.ndarray:
    """Normalise a 416x416 uint8 BGR image to the network's [3, H, W] float input."""
    x = (img_bgr.astype(np.float32) - np.array(MEAN_BGR, np.float32)) / np.array(STD_BGR, np.float32)
    return x.transpose(2, 0, 1)
