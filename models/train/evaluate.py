"""Measure smoke/fire ONNX detectors with onnxruntime (Lookout's own model and a YOLOv8 baseline).

Metrics (per class, IoU >= 0.5):
  AP50            VOC all-points AP; detections matched greedily by descending score to the
                  unmatched ground-truth box of highest IoU; every detection on a negative
                  image is a false positive.
  image_recall@t  share of images with at least one box of the class in which a detection of that
                  class with score >= t overlaps a ground-truth box with IoU >= 0.5
                  ("any" variant: any detection of the class with score >= t, located or not).
  neg_hit@t       share of negative images (no boxes) with any detection (any class) >= t.

Both model kinds emit YOLOv8-layout tensors [batch, 4 + nc, N] (cx, cy, w, h in input pixels,
per-class scores); they differ only in preprocessing:
  lookout     416x416 letterbox (grey 114, centred), BGR, (x - mean) / std (NanoDet values)
  yolov8      640x640 letterbox (grey 114, centred), RGB / 255

Usage:  python evaluate.py --model models/smoke-fire.onnx --kind lookout --out runs/eval.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import cv2
import numpy as np

from data import letterbox, load_furg_frames, load_val_samples, load_yolo_split, shared_root
from model import MEAN_BGR, STD_BGR

CONF_THRESH = 0.01
NMS_IOU = 0.5
MAX_DET = 100


# ---------------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------------


def nms(boxes: np.ndarray, scores: np.ndarray, iou_thr: float) -> list[int]:
    order = scores.argsort()[::-1]
    keep = []
    while order.size:
        i = order[0]
        keep.append(int(i))
        if order.size == 1:
            break
        rest = order[1:]
        xx1 = np.maximum(boxes[i, 0], boxes[rest, 0])
        yy1 = np.maximum(boxes[i, 1], boxes[rest, 1])
        xx2 = np.minimum(boxes[i, 2], boxes[rest, 2])
        yy2 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.clip(xx2 - xx1, 0, None) * np.clip(yy2 - yy1, 0, None)
        area_i = (boxes[i, 2] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 1])
        area_r = (boxes[rest, 2] - boxes[rest, 0]) * (boxes[rest, 3] - boxes[rest, 1])
        iou = inter / (area_i + area_r - inter + 1e-9)
        order = rest[iou <= iou_thr]
    return keep


def decode_yolov8(out: np.ndarray, conf: float = CONF_THRESH) -> np.ndarray:
    """[4 + nc, N] -> detections [k, 6] = x1, y1, x2, y2, score, class (input pixels)."""
    out = out.T
    boxes = np.concatenate([out[:, :2] - out[:, 2:4] / 2, out[:, :2] + out[:, 2:4] / 2], 1)
    dets = []
    for c in range(out.shape[1] - 4):
        s = out[:, 4 + c]
        m = s >= conf
        if not m.any():
            continue
        b, sc = boxes[m], s[m]
        keep = nms(b, sc, NMS_IOU)
        dets.append(np.concatenate([b[keep], sc[keep, None], np.full((len(keep), 1), c)], 1))
    if not dets:
        return np.zeros((0, 6), np.float32)
    d = np.concatenate(dets, 0)
    return d[d[:, 4].argsort()[::-1][:MAX_DET]]


class OnnxDetector:
    def __init__(self, path: str, kind: str, threads: int = 2):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        self.input = self.sess.get_inputs()[0].name
        self.kind = kind
        self.size = 416 if kind == "lookout" else 640
        self.infer_seconds = 0.0
        self.frames = 0

    def preprocess(self, img_bgr: np.ndarray):
        canvas, r, (dx, dy) = letterbox(img_bgr, self.size)
        if self.kind == "lookout":
            x = (canvas.astype(np.float32) - np.array(MEAN_BGR, np.float32)) / np.array(STD_BGR, np.float32)
        else:
            x = canvas[..., ::-1].astype(np.float32) / 255.0
        return x.transpose(2, 0, 1)[None], r, dx, dy

    def __call__(self, img_bgr: np.ndarray) -> np.ndarray:
        """Detections [k, 6] in original image pixels."""
        x, r, dx, dy = self.preprocess(img_bgr)
        t = time.perf_counter()
        out = self.sess.run(None, {self.input: np.ascontiguousarray(x)})[0][0]
        self.infer_seconds += time.perf_counter() - t
        self.frames += 1
        d = decode_yolov8(out)
        d[:, [0, 2]] = (d[:, [0, 2]] - dx) / r
        d[:, [1, 3]] = (d[:, [1, 3]] - dy) / r
        return d


# ---------------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------------


def _iou_one(box: np.ndarray, gts: np.ndarray) -> np.ndarray:
    lt = np.maximum(box[:2], gts[:, :2])
    rb = np.minimum(box[2:4], gts[:, 2:4])
    inter = np.clip(rb - lt, 0, None).prod(1)
    a = (box[2] - box[0]) * (box[3] - box[1])
    b = (gts[:, 2] - gts[:, 0]) * (gts[:, 3] - gts[:, 1])
    return inter / (a + b - inter + 1e-9)


def ap50(dets: list[np.ndarray], gts: list[np.ndarray], cls: int) -> float:
    """VOC all-points AP at IoU 0.5. dets[i]: [k,6]; gts[i]: [n,5] (class, x1,y1,x2,y2)."""
    records = []  # (score, image, box)
    n_gt = 0
    gt_by_img = []
    for i, (d, g) in enumerate(zip(dets, gts)):
        gc = g[g[:, 0] == cls, 1:5]
        gt_by_img.append(gc)
        n_gt += len(gc)
        for row in d[d[:, 5] == cls]:
            records.append((row[4], i, row[:4]))
    if n_gt == 0:
        return float("nan")
    records.sort(key=lambda r: -r[0])
    used = [np.zeros(len(g), bool) for g in gt_by_img]
    tp = np.zeros(len(records))
    for k, (_, i, box) in enumerate(records):
        g = gt_by_img[i]
        if len(g) == 0:
            continue
        ious = _iou_one(box, g)
        ious[used[i]] = -1
        j = int(ious.argmax())
        if ious[j] >= 0.5:
            used[i][j] = True
            tp[k] = 1
    ctp = np.cumsum(tp)
    cfp = np.cumsum(1 - tp)
    rec = ctp / n_gt
    prec = ctp / np.maximum(ctp + cfp, 1e-9)
    mrec = np.concatenate([[0.0], rec, [1.0]])
    mpre = np.concatenate([[0.0], prec, [0.0]])
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    idx = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(((mrec[idx + 1] - mrec[idx]) * mpre[idx + 1]).sum())


def image_recall(dets, gts, cls: int, thr: float, located: bool = True) -> float:
    hit = tot = 0
    for d, g in zip(dets, gts):
        gc = g[g[:, 0] == cls, 1:5]
        if len(gc) == 0:
            continue
        tot += 1
        dc = d[(d[:, 5] == cls) & (d[:, 4] >= thr)]
        if located:
            hit += any((_iou_one(row[:4], gc) >= 0.5).any() for row in dc)
        else:
            hit += len(dc) > 0
    return hit / tot if tot else float("nan")


def negative_hit(dets, gts, thr: float, cls: int | None = None) -> float:
    hit = tot = 0
    for d, g in zip(dets, gts):
        if len(g):
            continue
        tot += 1
        m = d[:, 4] >= thr
        if cls is not None:
            m &= d[:, 5] == cls
        hit += bool(m.any())
    return hit / tot if tot else float("nan")


def best_f1(dets, gts, cls: int) -> tuple[float, float]:
    """Score threshold with the best box-level F1 (IoU >= 0.5) and that F1."""
    best = (0.5, 0.0)
    n_gt = sum(int((g[:, 0] == cls).sum()) for g in gts)
    for thr in np.arange(0.1, 0.9, 0.05):
        tp = fp = 0
        for d, g in zip(dets, gts):
            gc = g[g[:, 0] == cls, 1:5]
            used = np.zeros(len(gc), bool)
            for row in d[(d[:, 5] == cls) & (d[:, 4] >= thr)]:
                if len(gc):
                    ious = _iou_one(row[:4], gc)
                    ious[used] = -1
                    j = int(ious.argmax())
                    if ious[j] >= 0.5:
                        used[j] = True
                        tp += 1
                        continue
                fp += 1
        f1 = 2 * tp / max(2 * tp + fp + (n_gt - tp), 1)
        if f1 > best[1]:
            best = (round(float(thr), 2), round(f1, 4))
    return best


def summarize(dets, gts) -> dict:
    out = {"images": len(gts), "negatives": int(sum(len(g) == 0 for g in gts))}
    for c, name in enumerate(("smoke", "fire")):
        if sum(int((g[:, 0] == c).sum()) for g in gts) == 0:
            continue
        out[f"{name}_ap50"] = round(ap50(dets, gts, c), 4)
        for thr in (0.3, 0.5):
            out[f"{name}_image_recall@{thr}"] = round(image_recall(dets, gts, c, thr), 4)
        out[f"{name}_image_recall_any@0.5"] = round(image_recall(dets, gts, c, 0.5, located=False), 4)
        out[f"{name}_best_f1_threshold"], out[f"{name}_best_f1"] = best_f1(dets, gts, c)
    if out["negatives"]:
        for thr in (0.3, 0.5):
            out[f"neg_hit@{thr}"] = round(negative_hit(dets, gts, thr), 4)
        out["neg_hit_smoke@0.5"] = round(negative_hit(dets, gts, 0.5, 0), 4)
    return out


# ---------------------------------------------------------------------------------------------
# Evaluation sets
# ---------------------------------------------------------------------------------------------


def eval_sets(root: Path) -> dict[str, list]:
    ds = root / "datasets"
    return {
        # Tower smoke (non-commercial labels: evaluation only) + fixed-camera negatives.
        "tower": load_yolo_split(ds / "hpwren-smoke-dev", "hpwren") + load_yolo_split(ds / "dfire-negatives/eval", "dfire-eval"),
        "wildfire_test": load_yolo_split(ds / "wildfire-fire-smoke/test", "wildfire"),
        "cctv_test": load_yolo_split(ds / "cctv-fire-smoke/test", "cctv"),
        "furg_450_898": load_furg_frames(ds / "furg-house6", 450, 898, 3),
        # Validation splits (used for model selection and for the default thresholds).
        "val": load_val_samples(root),
    }


def run(model_path: str, kind: str, sets: dict[str, list]) -> dict:
    det = OnnxDetector(model_path, kind)
    results = {}
    for name, samples in sets.items():
        dets = [det(s.image) for s in samples]
        results[name] = summarize(dets, [s.boxes for s in samples])
    results["seconds_per_image"] = round(det.infer_seconds / max(det.frames, 1), 4)
    results["sha256"] = hashlib.sha256(Path(model_path).read_bytes()).hexdigest()
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--kind", choices=["lookout", "yolov8"], default="lookout")
    ap.add_argument("--sets", default="tower,wildfire_test,cctv_test,furg_450_898,val")
    ap.add_argument("--out")
    args = ap.parse_args()
    sets = {k: v for k, v in eval_sets(shared_root()).items() if k in args.sets.split(",")}
    res = run(args.model, args.kind, sets)
    print(json.dumps(res, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
