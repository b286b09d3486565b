"""Train Lookout's smoke/fire detector in two resumable stages.

  head      backbone + neck frozen (pretrained NanoDet-Plus, run without gradients); only the
            new 2-class head is trained.
  finetune  starts from the head stage's best checkpoint and trains ShuffleNet stages 3-4, the
            neck and the head (stem + stage 2 stay frozen), the pretrained part at 0.3 x the
            head's learning rate.
  finetune2 longer fine-tuning from the finetune stage's best (EMA) checkpoint: everything but
            the stem (and the first down-sampling block of stage 2) is trained, the pretrained
            part at 0.5 x the head's rate, warm-up + cosine over its epochs.
  finetune3 experiment (not shipped): from finetune2's best, same layers, with TowerTrainDataset
            (sky/horizon/cloud hard negatives and faint distant smoke on 640x480 tower views).

With --max-minutes the cosine schedule runs on whichever is further along, steps or wall time
(the box is shared, so an epoch's duration is not known in advance): the learning rate has
decayed when the budget runs out, and the last (possibly partial) epoch is validated and
checkpointed before the run stops. Without --max-minutes the schedule depends on steps only.

Each epoch writes runs/<stage>/last.pt (resume point: model, EMA, optimiser, epoch) and, when the
validation score improves, runs/<stage>/best.pt and an interim ONNX runs/<stage>/best.onnx.
Validation = mean of smoke and fire AP50 on the val splits (wildfire-fire-smoke, cctv-fire-smoke,
nemo-tower-sample), on the EMA weights. Every epoch also reports (not used for selection) the
tower-like split of data.build_tower_val (NEMO val + composites of val images) as "tower_val".

Usage:  python train.py --stage head      (add --resume to continue an interrupted run)
        python train.py --stage finetune
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import random
import time
from pathlib import Path

import numpy as np
import torch

from data import (TowerTrainDataset, TrainDataset, build_tower_val, collate, letterbox, load_train_samples,
                  load_val_samples, shared_root)
from evaluate import decode_yolov8, summarize
from loss import detection_loss
from model import NUM_CLASSES, ExportWrapper, build_model, early_layer_parameters, make_priors, preprocess_bgr

HERE = Path(__file__).resolve().parent

STAGES = {
    # epochs, base learning rate, learning-rate multiplier for the pretrained backbone + neck
    "head": dict(epochs=3, lr=2e-3, backbone_lr_mult=0.0, batch=16, warmup=115),
    "finetune": dict(epochs=2, lr=1e-3, backbone_lr_mult=0.3, batch=16, warmup=50),
    "finetune2": dict(epochs=4, lr=8e-4, backbone_lr_mult=0.5, batch=16, warmup=60, seed_offset=1),
    # Tower-oriented fine-tune: sky/horizon hard negatives + faint distant smoke (TowerTrainDataset).
    "finetune3": dict(epochs=3, lr=4e-4, backbone_lr_mult=0.5, batch=16, warmup=30, seed_offset=2, tower=True),
}
# Stage each stage starts from (its best EMA weights) and the stride before which layers stay
# frozen when the backbone is trained.
START_FROM = {"finetune": "head", "finetune2": "finetune", "finetune3": "finetune2"}
FROZEN_UNTIL_STRIDE = {"finetune": 16, "finetune2": 8, "finetune3": 8}
# Wall time kept back from --max-minutes for the final validation + checkpoint + ONNX export.
RESERVE_SECONDS = 240


def _worker_init(_worker_id: int):
    # One OpenCV thread per loader worker: the box has 2 cores and torch already uses them.
    import cv2

    cv2.setNumThreads(1)


def seed_everything(seed: int):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class EMA:
    """Exponential moving average of the weights (evaluated and exported)."""

    def __init__(self, model: torch.nn.Module, decay: float = 0.998):
        self.model = copy.deepcopy(model).eval()
        self.decay = decay
        self.updates = 0
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module):
        self.updates += 1
        d = self.decay * (1 - math.exp(-self.updates / 200))  # warm up the average
        msd = model.state_dict()
        for k, v in self.model.state_dict().items():
            if v.dtype.is_floating_point:
                v.mul_(d).add_(msd[k].detach(), alpha=1 - d)


@torch.no_grad()
def validate(model: torch.nn.Module, val_samples, batch: int = 16) -> dict:
    wrapper = ExportWrapper(model).eval()
    dets, gts = [], []
    for i in range(0, len(val_samples), batch):
        chunk = val_samples[i : i + batch]
        xs, metas = [], []
        for s in chunk:
            canvas, r, (dx, dy) = letterbox(s.image)
            xs.append(torch.from_numpy(preprocess_bgr(canvas)))
            metas.append((r, dx, dy))
        out = wrapper(torch.stack(xs)).numpy()
        for o, (r, dx, dy), s in zip(out, metas, chunk):
            d = decode_yolov8(o)
            d[:, [0, 2]] = (d[:, [0, 2]] - dx) / r
            d[:, [1, 3]] = (d[:, [1, 3]] - dy) / r
            dets.append(d)
            gts.append(s.boxes)
    res = summarize(dets, gts)
    aps = [res[k] for k in ("smoke_ap50", "fire_ap50") if k in res]  # tower-val has smoke only
    res["score"] = round(sum(aps) / max(1, len(aps)), 4)
    return res


def export_onnx(model: torch.nn.Module, path: Path):
    """Export with the decode inside the graph and a dynamic batch axis (opset 17)."""
    wrapper = ExportWrapper(copy.deepcopy(model)).eval()
    dummy = torch.zeros(2, 3, 416, 416)
    torch.onnx.export(
        wrapper,
        (dummy,),
        str(path),
        input_names=["images"],
        output_names=["output0"],
        dynamic_axes={"images": {0: "batch"}, "output0": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    # Give the output a fully static channel/anchor shape: [batch, 4 + nc, N].
    import onnx

    m = onnx.load(str(path))
    dims = m.graph.output[0].type.tensor_type.shape.dim
    dims[1].ClearField("dim_param")
    dims[1].dim_value = 4 + NUM_CLASSES
    dims[2].ClearField("dim_param")
    dims[2].dim_value = int(make_priors().shape[0])
    onnx.checker.check_model(m)
    onnx.save(m, str(path))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", choices=list(STAGES), required=True)
    ap.add_argument("--epochs", type=int, help="override the stage's epoch count")
    ap.add_argument("--resume", action="store_true", help="continue from runs/<stage>/last.pt")
    ap.add_argument("--seed", type=int, default=20261124)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-minutes", type=float, default=0, help="stop after this wall time (0 = no limit)")
    ap.add_argument("--runs", default=str(HERE / "runs"))
    args = ap.parse_args()

    cfg = dict(STAGES[args.stage])
    if args.epochs:
        cfg["epochs"] = args.epochs
    torch.set_num_threads(args.threads)
    # No OpenCV thread pool in the main process: it builds the tower-val composites with cv2
    # before the loader worker is forked, and a forked child of a process that has run an
    # OpenCV pool can deadlock (the loader then hangs before its first batch).
    import cv2

    cv2.setNumThreads(1)
    seed_everything(args.seed)
    out_dir = Path(args.runs) / args.stage
    out_dir.mkdir(parents=True, exist_ok=True)
    root = shared_root()
    nanodet = root / "models" / "nanodet-plus-m-1.5x_416.onnx"

    model = build_model(str(nanodet), str(out_dir))
    if args.stage in START_FROM:
        start_path = Path(args.runs) / START_FROM[args.stage] / "best.pt"
        start = torch.load(start_path, map_location="cpu", weights_only=False)
        model.load_state_dict(start["ema"])
        print(f"starting from {start_path} (epoch {start['epoch']}, val score {start['val']['score']})", flush=True)
    freeze = cfg["backbone_lr_mult"] == 0.0
    for p in model.backbone_neck.parameters():
        p.requires_grad_(not freeze)
    if not freeze:  # fine-tuning: the early layers stay frozen (see early_layer_parameters)
        for p in early_layer_parameters(model.backbone_neck, FROZEN_UNTIL_STRIDE[args.stage]):
            p.requires_grad_(False)

    groups = [{"params": list(model.head.parameters()), "lr_mult": 1.0}]
    if not freeze:
        trainable = [p for p in model.backbone_neck.parameters() if p.requires_grad]
        print(f"fine-tuning {sum(p.numel() for p in trainable)} backbone/neck parameters", flush=True)
        groups.append({"params": trainable, "lr_mult": cfg["backbone_lr_mult"]})
    opt = torch.optim.AdamW(groups, lr=cfg["lr"], weight_decay=0.05)
    ema = EMA(model)

    t0 = time.time()
    print(f"loading data from {root}", flush=True)
    train_samples = load_train_samples(root)
    val_samples = load_val_samples(root)
    # Tower-like validation (NEMO val + composites of val images only): reported every epoch,
    # not used for model selection (the selection score stays comparable with earlier stages).
    tower_val = build_tower_val(root, args.seed)
    print(f"train {len(train_samples)} samples, val {len(val_samples)} images, tower-val {len(tower_val)} "
          f"images ({time.time() - t0:.0f}s)", flush=True)
    # finetune2/3 draw fresh augmentations instead of repeating the previous stage's epochs.
    dataset_cls = TowerTrainDataset if cfg.get("tower") else TrainDataset
    dataset = dataset_cls(train_samples, seed=args.seed + cfg.get("seed_offset", 0))
    g = torch.Generator()
    g.manual_seed(args.seed)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=cfg["batch"], shuffle=True, num_workers=1, collate_fn=collate,
        drop_last=True, generator=g, worker_init_fn=_worker_init,
        # Fork the worker once, before any threaded compute: re-forking a process that has run
        # OpenMP/OpenCV thread pools can deadlock the child.
        persistent_workers=True,
    )

    start_epoch, best_score, history, spent = 0, -1.0, [], 0.0
    last = out_dir / "last.pt"
    if args.resume and last.exists():
        ck = torch.load(last, map_location="cpu", weights_only=False)
        model.load_state_dict(ck["model"])
        ema.model.load_state_dict(ck["ema"])
        ema.updates = ck["ema_updates"]
        opt.load_state_dict(ck["opt"])
        start_epoch, best_score, history = ck["epoch"] + 1, ck["best_score"], ck["history"]
        spent = ck.get("train_seconds_total", 0.0)
        g.manual_seed(args.seed + start_epoch)
        print(f"resumed at epoch {start_epoch}", flush=True)

    priors = make_priors()
    iters_per_epoch = len(loader)
    total_iters = cfg["epochs"] * iters_per_epoch
    warmup = cfg["warmup"]
    started = time.time()
    budget = args.max_minutes * 60 - RESERVE_SECONDS if args.max_minutes else 0.0
    out_of_time = False
    for epoch in range(start_epoch, cfg["epochs"]):
        dataset.set_epoch(epoch)
        model.train()
        if freeze:
            model.backbone_neck.eval()
        t_epoch = time.time()
        running = {}
        for it, (images, targets) in enumerate(loader):
            step = epoch * iters_per_epoch + it
            progress = step / total_iters
            if budget > 0:
                elapsed = spent + time.time() - started
                if elapsed >= budget:
                    out_of_time = True
                    break
                progress = max(progress, elapsed / budget)
            # Linear warm-up, then cosine decay to 5% of the base rate.
            lr = cfg["lr"] * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))
            if step < warmup:
                lr *= (step + 1) / warmup
            for grp in opt.param_groups:
                grp["lr"] = lr * grp["lr_mult"]
            if freeze:
                with torch.no_grad():
                    feats = model.backbone_neck(images)
                cls_logits, reg = model.head(list(feats))
            else:
                cls_logits, reg = model(images)
            loss, parts = detection_loss(cls_logits, reg, priors, targets, NUM_CLASSES)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            opt.step()
            ema.update(model)
            for k, v in {"loss": float(loss.detach()), **parts}.items():
                running[k] = running.get(k, 0.0) + v
            if it % 20 == 0:
                avg = {k: round(v / (it + 1), 4) for k, v in running.items()}
                print(f"epoch {epoch} it {it}/{iters_per_epoch} lr {lr:.2e} {avg} {time.time() - t_epoch:.0f}s", flush=True)
        train_time = time.time() - t_epoch
        done_iters = it + 1 if not out_of_time else it
        if done_iters == 0:
            break
        t_val = time.time()
        val = validate(ema.model, val_samples)
        tval = validate(ema.model, tower_val)
        rec = {"epoch": epoch, "iterations": done_iters, "train_seconds": round(train_time),
               "val_seconds": round(time.time() - t_val), "lr_end": float(f"{lr:.3g}"),
               "loss": {k: round(v / done_iters, 4) for k, v in running.items()}, "val": val,
               "tower_val": tval}
        history.append(rec)
        print(json.dumps(rec), flush=True)
        improved = val["score"] > best_score
        if improved:
            best_score = val["score"]
            torch.save({"ema": ema.model.state_dict(), "epoch": epoch, "val": val, "stage": args.stage}, out_dir / "best.pt")
            export_onnx(ema.model, out_dir / "best.onnx")
        # Every epoch's EMA weights, so any epoch can be exported later.
        torch.save({"ema": ema.model.state_dict(), "epoch": epoch, "val": val, "stage": args.stage}, out_dir / f"epoch{epoch}.pt")
        torch.save(
            {"model": model.state_dict(), "ema": ema.model.state_dict(), "ema_updates": ema.updates,
             "opt": opt.state_dict(), "epoch": epoch, "best_score": best_score, "history": history,
             "train_seconds_total": spent + time.time() - started},
            last,
        )
        (out_dir / "history.json").write_text(json.dumps(history, indent=1) + "\n")
        if out_of_time:
            print(f"stopping: --max-minutes {args.max_minutes} reached in epoch {epoch} after {done_iters} iterations", flush=True)
            break
    print(f"done: best val score {best_score:.4f}; wall {(time.time() - started) / 60:.1f} min", flush=True)


if __name__ == "__main__":
    main()
