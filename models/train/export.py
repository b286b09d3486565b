"""Ship the trained detector: models/smoke-fire.onnx, smoke-fire.toml (manifest), smoke-fire.md (card).

Picks the best of runs/{finetune2,finetune,head}/best.onnx by validation score, checks
that the ONNX has a dynamic batch axis and the [batch, 6, N] output, copies it to models/, and
writes the manifest and model card. Measured numbers come from runs/eval_lookout.json and
runs/eval_reference.json (written by `train.sh eval`); without them the card says "not measured".
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from model import CLASS_NAMES, MEAN_BGR, STD_BGR

HERE = Path(__file__).resolve().parent
MODELS = HERE.parent
RUNS = HERE / "runs"
FALLBACK_THRESHOLDS = (0.35, 0.4)  # used until the model has been measured


def default_thresholds(ev: dict | None) -> tuple[float, float]:
    """Per-class thresholds with the best box F1 on the validation splits (never on test data)."""
    val = (ev or {}).get("val")
    if not val:
        return FALLBACK_THRESHOLDS
    return tuple(float(val.get(f"{n}_best_f1_threshold", d)) for n, d in zip(CLASS_NAMES, FALLBACK_THRESHOLDS))


def pick_checkpoint() -> tuple[str, Path, dict]:
    best = None
    for stage in ("finetune2", "finetune", "head"):
        ck, onnx_path = RUNS / stage / "best.pt", RUNS / stage / "best.onnx"
        if ck.exists() and onnx_path.exists():
            info = torch.load(ck, map_location="cpu", weights_only=False)
            if best is None or info["val"]["score"] > best[2]["val"]["score"]:
                best = (stage, onnx_path, {"val": info["val"], "epoch": info["epoch"]})
    if best is None:
        raise SystemExit("no trained checkpoint under runs/: run `train.sh head` first")
    return best


def check_onnx(path: Path) -> dict:
    m = onnx.load(str(path))
    inp = m.graph.input[0]
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    out_dims = [d.dim_param or d.dim_value for d in m.graph.output[0].type.tensor_type.shape.dim]
    assert inp.name == "images" and dims[1:] == [3, 416, 416] and isinstance(dims[0], str), dims
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for b in (1, 3):
        out = sess.run(None, {"images": np.zeros((b, 3, 416, 416), np.float32)})[0]
        assert out.shape == (b, 4 + len(CLASS_NAMES), out_dims[2]), out.shape
    opset = max(o.version for o in m.opset_import if o.domain in ("", "ai.onnx"))
    return {"input": dims, "output": out_dims, "opset": opset}


def load_json(name: str) -> dict | None:
    p = RUNS / name
    return json.loads(p.read_text()) if p.exists() else None


def fmt(v) -> str:
    return "–" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))


def toml_accuracy(ev: dict | None) -> str:
    """[accuracy] entries: data set -> numbers (free-form, shown by the engine, never interpreted)."""
    if not ev:
        return '"not-measured" = { note = "run models/train/train.sh eval, then export" }\n'
    t, w, c, f = (ev.get(k, {}) for k in ("tower", "wildfire_test", "cctv_test", "furg_450_898"))
    rows = [
        ("hpwren-smoke-dev + dfire-negatives/eval", {
            "smoke AP50": t.get("smoke_ap50"),
            "smoke image_recall@0.5": t.get("smoke_image_recall@0.5"),
            "negatives hit@0.5": t.get("neg_hit@0.5"),
        }),
        ("wildfire-fire-smoke/test", {"smoke AP50": w.get("smoke_ap50"), "fire AP50": w.get("fire_ap50")}),
        ("cctv-fire-smoke/test", {"smoke AP50": c.get("smoke_ap50"), "fire AP50": c.get("fire_ap50")}),
        ("furg-house6 frames 450-898", {"fire AP50": f.get("fire_ap50")}),
        ("cpu", {"seconds per image (2 threads, batch 1)": ev.get("seconds_per_image")}),
    ]
    lines = []
    for name, vals in rows:
        inner = ", ".join(f'"{k}" = {v}' for k, v in vals.items() if v is not None)
        if inner:
            lines.append(f'"{name}" = {{ {inner}, source = "models/train/evaluate.py" }}')
    return "\n".join(lines) + "\n"


def write_manifest(sha: str, ev: dict | None):
    thr = default_thresholds(ev)
    text = f'''# Lookout smoke/fire detector manifest (written by models/train/export.py).
name = "smoke-fire"
file = "smoke-fire.onnx"
sha256 = "{sha}"
source_url = "https://github.com/lookout-engine/lookout/raw/main/models/smoke-fire.onnx"
licence = "Apache-2.0"
description = """
Lookout's own smoke and fire detector: NanoDet-Plus-m-1.5x backbone and PAN neck (Apache-2.0,
COCO-pretrained) with a new 2-class GFL head, trained on CPU by models/train/ on permissively
licensed data (CC BY 4.0 Roboflow "try20" and "fire-wrpgm" v8, D-Fire CC0, NEMO Apache-2.0,
FURG CC0). Decode is inside the graph: YOLOv8 layout. See smoke-fire.md."""

[input]
tensor = "images"
width = 416
height = 416
batch = "dynamic"
channels = "bgr"         # B, G, R planes, NCHW
scale = 1.0              # 0..255 pixel values, then (x - mean) / std per channel (BGR order)
mean = [{", ".join(str(v) for v in MEAN_BGR)}]
std = [{", ".join(str(v) for v in STD_BGR)}]
resize = "letterbox"     # r = min(416/w, 416/h), centred, remaining border filled with pad_value
pad_value = 114

[output]
layout = "yolov8"        # [batch, 4 + nc, 3549]: cx, cy, w, h in input pixels, then per-class sigmoid scores; no objectness; NMS not included

[classes]
names = ["{CLASS_NAMES[0]}", "{CLASS_NAMES[1]}"]
thresholds = [{thr[0]}, {thr[1]}]  # best box F1 on the validation splits

[accuracy]
{toml_accuracy(ev)}'''
    (MODELS / "smoke-fire.toml").write_text(text)


def metrics_table(own: dict | None, ref: dict | None) -> str:
    if not own:
        return "Not measured yet: run `bash models/train/train.sh eval` and `... export`.\n"
    rows = [
        ("tower", "smoke_ap50", "Smoke AP50 — HPWREN towers + D-Fire eval negatives"),
        ("tower", "smoke_image_recall@0.5", "Smoke image recall @0.5 (box located, IoU ≥ 0.5)"),
        ("tower", "smoke_image_recall_any@0.5", "Smoke image recall @0.5 (any smoke box in the image)"),
        ("tower", "smoke_image_recall@0.3", "Smoke image recall @0.3 (located)"),
        ("tower", "neg_hit@0.5", "Negatives hit @0.5 (any class), 50 D-Fire eval images"),
        ("tower", "neg_hit@0.3", "Negatives hit @0.3 (any class)"),
        ("wildfire_test", "smoke_ap50", "Smoke AP50 — wildfire-fire-smoke/test"),
        ("wildfire_test", "fire_ap50", "Fire AP50 — wildfire-fire-smoke/test"),
        ("cctv_test", "smoke_ap50", "Smoke AP50 — cctv-fire-smoke/test"),
        ("cctv_test", "fire_ap50", "Fire AP50 — cctv-fire-smoke/test"),
        ("furg_450_898", "fire_ap50", "Fire AP50 — FURG house6 frames 450–898 (every 3rd)"),
        (None, "seconds_per_image", "Seconds per image (onnxruntime, 2 threads, batch 1)"),
    ]
    out = ["| metric | Lookout smoke-fire (416) | reference YOLOv8 (640, AGPL, not shipped) |", "|---|---|---|"]
    for group, key, label in rows:
        a = own.get(key) if group is None else own.get(group, {}).get(key)
        b = None if not ref else (ref.get(key) if group is None else ref.get(group, {}).get(key))
        out.append(f"| {label} | {fmt(a)} | {fmt(b)} |")
    if ref:
        t_own, t_ref = own.get("tower", {}), ref.get("tower", {})
        ap_ok = t_own.get("smoke_ap50", 0) > t_ref.get("smoke_ap50", 1)
        neg_ok = t_own.get("neg_hit@0.5", 1) < t_ref.get("neg_hit@0.5", 0)
        verdict = "reached" if ap_ok and neg_ok else "NOT reached"
        out.append(
            f"\nGoal (beat the reference's tower smoke AP50 with fewer negatives hit at 0.5): **{verdict}** "
            f"— smoke AP50 {fmt(t_own.get('smoke_ap50'))} vs {fmt(t_ref.get('smoke_ap50'))}, "
            f"negatives hit {fmt(t_own.get('neg_hit@0.5'))} vs {fmt(t_ref.get('neg_hit@0.5'))}."
        )
    return "\n".join(out) + "\n"


def write_card(stage: str, info: dict, sha: str, size: int, onnx_info: dict, own, ref):
    history = {}
    for s in ("head", "finetune", "finetune2"):
        p = RUNS / s / "history.json"
        if p.exists():
            h = json.loads(p.read_text())
            history[s] = (len(h), sum(r["train_seconds"] for r in h))
    durations = "\n".join(
        f"- `{s}`: {n} epochs, {sec / 60:.0f} min of training (plus 2–4 min of validation and export per epoch)"
        for s, (n, sec) in history.items()
    ) or "- not recorded"
    template = (HERE / "model_card_template.md").read_text()
    card = template.format(
        sha=sha,
        size_mb=f"{size / 1e6:.1f}",
        opset=onnx_info["opset"],
        stage=stage,
        epoch=info["epoch"],
        val=(f'smoke AP50 {info["val"]["smoke_ap50"]:.3f}, fire AP50 {info["val"]["fire_ap50"]:.3f} '
             f'(wildfire-fire-smoke/val + cctv-fire-smoke/val + nemo-tower-sample/val, {info["val"]["images"]} images)'),
        durations=durations,
        metrics=metrics_table(own, ref),
    )
    (MODELS / "smoke-fire.md").write_text(card)


def main():
    stage, onnx_path, info = pick_checkpoint()
    onnx_info = check_onnx(onnx_path)
    dst = MODELS / "smoke-fire.onnx"
    shutil.copyfile(onnx_path, dst)
    data = dst.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    assert len(data) <= 10_000_000, len(data)
    own, ref = load_json("eval_lookout.json"), load_json("eval_reference.json")
    if own and own.get("sha256") not in (None, sha):
        own = None  # measured a different file: do not publish stale numbers
    write_manifest(sha, own)
    write_card(stage, info, sha, len(data), onnx_info, own, ref)
    print(f"shipped {stage} epoch {info['epoch']} -> {dst} ({len(data)} bytes, sha256 {sha})")


if __name__ == "__main__":
    main()
