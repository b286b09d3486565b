"""Data loading and augmentation for the Lookout smoke/fire detector.

Class map everywhere: 0 = smoke, 1 = fire. Labels are YOLO text files (`class cx cy w h`,
normalised) next to `images/`; the FURG house6 video has OpenCV-XML flame rectangles.

Training sources (only permissively licensed, only training splits):
  wildfire-fire-smoke/train (CC BY 4.0), cctv-fire-smoke/train (CC BY 4.0),
  dfire-negatives/train (CC0, hard negatives), nemo-tower-sample/train (Apache-2.0),
  furg-house6 frames 0-449 (CC0, flame boxes -> fire).
Validation: wildfire-fire-smoke/val, cctv-fire-smoke/val, nemo-tower-sample/val.
Never used for training here: hpwren-smoke-dev (non-commercial), dfire-negatives/eval,
furg-house6 frames 450-898, pennfudan-person.

The augmentation teaches what a watch-tower camera sees: smoke that is small and far away
(mosaics, downscaled pastes onto wide landscapes), haze and low contrast, sky/cloud/landscape
crops with nothing in them (hard negatives), and fish-eye-like radial distortion.
"""

from __future__ import annotations

import os
import random
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from model import INPUT_SIZE, preprocess_bgr

PAD_VALUE = 114
FURG_TRAIN_LAST_FRAME = 449  # frames 450-898 are held out for testing
FURG_FRAME_STEP = 5  # consecutive video frames are near-duplicates


def shared_root() -> Path:
    """Directory with the reference datasets/models: $LOOKOUT_SHARED or ../shared from the repo."""
    env = os.environ.get("LOOKOUT_SHARED")
    if env:
        return Path(env)
    repo_root = Path(__file__).resolve().parents[2]
    return (repo_root / ".." / "shared").resolve()


@dataclass
class Sample:
    """One decoded image (BGR uint8) with boxes [n, 5] = class, x1, y1, x2, y2 in pixels."""

    image: np.ndarray
    boxes: np.ndarray
    source: str


def _read_yolo_labels(path: Path, w: int, h: int) -> np.ndarray:
    rows = []
    if path.exists():
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) != 5:
                continue
            c, cx, cy, bw, bh = int(parts[0]), *map(float, parts[1:])
            rows.append([c, (cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h])
    return np.array(rows, np.float32).reshape(-1, 5)


def load_yolo_split(split_dir: Path, source: str) -> list[Sample]:
    """Images of `split_dir/images` with labels from `split_dir/labels` (missing = negative)."""
    out = []
    for img_path in sorted((split_dir / "images").iterdir()):
        img = cv2.imread(str(img_path), cv2.IMREAD_COLOR)
        if img is None:
            continue
        h, w = img.shape[:2]
        boxes = _read_yolo_labels(split_dir / "labels" / (img_path.stem + ".txt"), w, h)
        out.append(Sample(img, boxes, source))
    return out


def load_furg_frames(folder: Path, first: int, last: int, step: int) -> list[Sample]:
    """Frames [first, last] (every `step`-th) of furg_house6.mp4 with XML flame boxes as fire."""
    rects: dict[int, list[list[float]]] = {}
    root = ET.parse(folder / "furg_house6.xml").getroot()
    for frame in root.find("frames"):
        idx = int(frame.find("frameNumber").text)
        rects[idx] = []
        ann = frame.find("annotations")
        if ann is None:
            continue
        for r in ann:
            x, y, w, h = map(float, r.text.split())
            rects[idx].append([1, x, y, x + w, y + h])
    cap = cv2.VideoCapture(str(folder / "furg_house6.mp4"))
    out, idx = [], 0
    while idx <= last:
        ok, frame = cap.read()
        if not ok:
            break
        if idx >= first and (idx - first) % step == 0:
            boxes = np.array(rects.get(idx, []), np.float32).reshape(-1, 5)
            out.append(Sample(frame, boxes, "furg-house6"))
        idx += 1
    cap.release()
    return out


def load_train_samples(root: Path) -> list[Sample]:
    """Training set with per-source repetition (small, valuable sources are repeated)."""
    ds = root / "datasets"
    plan = [  # (samples, repeat)
        (load_yolo_split(ds / "wildfire-fire-smoke/train", "wildfire"), 1),
        (load_yolo_split(ds / "cctv-fire-smoke/train", "cctv"), 1),
        (load_yolo_split(ds / "dfire-negatives/train", "dfire-neg"), 3),
        (load_yolo_split(ds / "nemo-tower-sample/train", "nemo"), 8),
        (load_furg_frames(ds / "furg-house6", 0, FURG_TRAIN_LAST_FRAME, FURG_FRAME_STEP), 1),
    ]
    out = []
    for samples, rep in plan:
        out.extend(samples * rep)
    return out


def load_val_samples(root: Path) -> list[Sample]:
    ds = root / "datasets"
    return (
        load_yolo_split(ds / "wildfire-fire-smoke/val", "wildfire")
        + load_yolo_split(ds / "cctv-fire-smoke/val", "cctv")
        + load_yolo_split(ds / "nemo-tower-sample/val", "nemo")
    )


# ---------------------------------------------------------------------------------------------
# Geometry helpers
# ---------------------------------------------------------------------------------------------


def letterbox(img: np.ndarray, size: int = INPUT_SIZE, pad: int = PAD_VALUE):
    """Aspect-preserving resize into a centred size x size canvas. Returns canvas, scale, (dx, dy)."""
    h, w = img.shape[:2]
    r = min(size / w, size / h)
    nw, nh = int(round(w * r)), int(round(h * r))
    dx, dy = (size - nw) // 2, (size - nh) // 2
    canvas = np.full((size, size, 3), pad, np.uint8)
    canvas[dy : dy + nh, dx : dx + nw] = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return canvas, r, (dx, dy)


def _paste(canvas, img, boxes, scale, ox, oy, region=None, min_keep=0.3):
    """Resize `img` by `scale`, paste at (ox, oy) clipped to `region` (x1, y1, x2, y2).

    Returns the transformed boxes that keep at least `min_keep` of their area after clipping.
    """
    H, W = canvas.shape[:2]
    rx1, ry1, rx2, ry2 = region if region is not None else (0, 0, W, H)
    h, w = img.shape[:2]
    nw, nh = max(1, int(round(w * scale))), max(1, int(round(h * scale)))
    small = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    x1, y1 = max(ox, rx1), max(oy, ry1)
    x2, y2 = min(ox + nw, rx2), min(oy + nh, ry2)
    if x2 > x1 and y2 > y1:
        canvas[y1:y2, x1:x2] = small[y1 - oy : y2 - oy, x1 - ox : x2 - ox]
    if len(boxes) == 0:
        return boxes.reshape(-1, 5)
    b = boxes.copy()
    b[:, 1:] = b[:, 1:] * scale
    b[:, [1, 3]] += ox
    b[:, [2, 4]] += oy
    area0 = (b[:, 3] - b[:, 1]) * (b[:, 4] - b[:, 2])
    b[:, [1, 3]] = b[:, [1, 3]].clip(x1, x2) if x2 > x1 else 0
    b[:, [2, 4]] = b[:, [2, 4]].clip(y1, y2) if y2 > y1 else 0
    area1 = (b[:, 3] - b[:, 1]) * (b[:, 4] - b[:, 2])
    return b[area1 >= min_keep * np.maximum(area0, 1e-6)]


def fisheye(img: np.ndarray, boxes: np.ndarray, k: float):
    """Barrel (fish-eye-like) distortion with strength k; corners stay in place."""
    H, W = img.shape[:2]
    cx, cy = (W - 1) / 2, (H - 1) / 2
    f = np.hypot(cx, cy)
    u, v = np.meshgrid(np.arange(W, dtype=np.float32), np.arange(H, dtype=np.float32))
    xd, yd = (u - cx) / f, (v - cy) / f
    gain = (1 + k * (xd * xd + yd * yd)) / (1 + k)
    map_x = (cx + xd * gain * f).astype(np.float32)
    map_y = (cy + yd * gain * f).astype(np.float32)
    out = cv2.remap(img, map_x, map_y, cv2.INTER_LINEAR, borderValue=(PAD_VALUE,) * 3)
    new = []
    for c, x1, y1, x2, y2 in boxes:
        inside = (map_x >= x1) & (map_x <= x2) & (map_y >= y1) & (map_y <= y2)
        ys, xs = np.nonzero(inside)
        if len(xs):
            new.append([c, xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    return out, np.array(new, np.float32).reshape(-1, 5)


# ---------------------------------------------------------------------------------------------
# Photometric helpers
# ---------------------------------------------------------------------------------------------


def photometric(img: np.ndarray, rng: random.Random) -> np.ndarray:
    """Colour, contrast, haze, blur, grey and noise jitter for outdoor cameras."""
    # HSV jitter through lookup tables.
    hue, sat, val = rng.uniform(-6, 6), rng.uniform(0.6, 1.4), rng.uniform(0.65, 1.35)
    hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
    x = np.arange(256, dtype=np.float32)
    lut_h = ((x + hue) % 180).astype(np.uint8)
    lut_s = np.clip(x * sat, 0, 255).astype(np.uint8)
    lut_v = np.clip(x * val, 0, 255).astype(np.uint8)
    hsv = cv2.merge((cv2.LUT(hsv[..., 0], lut_h), cv2.LUT(hsv[..., 1], lut_s), cv2.LUT(hsv[..., 2], lut_v)))
    img = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
    f = img.astype(np.float32)
    if rng.random() < 0.5:  # contrast / brightness
        alpha, beta = rng.uniform(0.6, 1.3), rng.uniform(-30, 30)
        f = (f - 128) * alpha + 128 + beta
    if rng.random() < 0.3:  # atmospheric haze: blend towards a bright airlight colour
        airlight = rng.uniform(160, 240)
        t = rng.uniform(0.45, 0.9)
        if rng.random() < 0.5:  # denser haze towards the top (distance) of the frame
            ramp = np.linspace(1.0, 0.0, f.shape[0], dtype=np.float32)[:, None, None]
            t_map = 1 - (1 - t) * ramp
            f = f * t_map + airlight * (1 - t_map)
        else:
            f = f * t + airlight * (1 - t)
    if rng.random() < 0.2:  # sensor noise
        f = f + np.random.default_rng(rng.randrange(1 << 30)).normal(0, rng.uniform(2, 8), f.shape)
    img = np.clip(f, 0, 255).astype(np.uint8)
    if rng.random() < 0.15:
        img = cv2.GaussianBlur(img, (rng.choice([3, 5]),) * 2, 0)
    if rng.random() < 0.07:  # night / IR-like grey frames
        img = cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    return img


# ---------------------------------------------------------------------------------------------
# Training dataset
# ---------------------------------------------------------------------------------------------


class TrainDataset(torch.utils.data.Dataset):
    """Random augmented 416x416 samples. Deterministic given (seed, epoch, index)."""

    def __init__(self, samples: list[Sample], seed: int, size: int = INPUT_SIZE):
        self.samples = samples
        self.size = size
        self.seed = seed
        # Shared-memory epoch counter: persistent loader workers see set_epoch() updates.
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()
        self.with_objects = [i for i, s in enumerate(samples) if len(s.boxes)]
        self.smoke_objects = [
            (i, j) for i, s in enumerate(samples) for j, b in enumerate(s.boxes) if b[0] == 0
        ]
        self.fire_objects = [
            (i, j) for i, s in enumerate(samples) for j, b in enumerate(s.boxes) if b[0] == 1
        ]

    def __len__(self):
        return len(self.samples)

    def set_epoch(self, epoch: int):
        self._epoch[0] = epoch

    @property
    def epoch(self) -> int:
        return int(self._epoch[0])

    # -- modes -------------------------------------------------------------------------------

    def _single(self, s: Sample, rng: random.Random):
        """Scale jitter + random placement; pad grey like the inference letterbox."""
        S = self.size
        h, w = s.image.shape[:2]
        scale = S / max(h, w) * rng.uniform(0.55, 1.5)
        nw, nh = w * scale, h * scale
        ox = int(rng.uniform(min(0, S - nw), max(0, S - nw)))
        oy = int(rng.uniform(min(0, S - nh), max(0, S - nh)))
        canvas = np.full((S, S, 3), PAD_VALUE, np.uint8)
        return canvas, _paste(canvas, s.image, s.boxes, scale, ox, oy)

    def _mosaic(self, s: Sample, rng: random.Random, grid: int):
        """grid x grid mosaic: objects become smaller, context changes."""
        S = self.size
        canvas = np.full((S, S, 3), PAD_VALUE, np.uint8)
        # Jittered cut points.
        cuts = [0] + sorted(int(S * (k / grid + rng.uniform(-0.08, 0.08))) for k in range(1, grid)) + [S]
        boxes = []
        for gy in range(grid):
            for gx in range(grid):
                t = s if (gx == 0 and gy == 0) else self.samples[rng.randrange(len(self.samples))]
                x1, x2, y1, y2 = cuts[gx], cuts[gx + 1], cuts[gy], cuts[gy + 1]
                cw, ch = x2 - x1, y2 - y1
                h, w = t.image.shape[:2]
                scale = max(cw / w, ch / h) * rng.uniform(0.8, 1.4)
                ox = x1 + int(rng.uniform(cw - w * scale, 0))
                oy = y1 + int(rng.uniform(ch - h * scale, 0))
                boxes.append(_paste(canvas, t.image, t.boxes, scale, ox, oy, (x1, y1, x2, y2)))
        return canvas, np.concatenate(boxes, 0)

    def _far_paste(self, s: Sample, rng: random.Random):
        """Paste 1-3 small, feathered smoke/fire crops onto a landscape: distant plumes."""
        canvas, boxes = self._single(s, rng)
        S = self.size
        new = [boxes]
        for _ in range(rng.randint(1, 3)):
            pool = self.smoke_objects if (rng.random() < 0.75 or not self.fire_objects) else self.fire_objects
            if not pool:
                break
            i, j = pool[rng.randrange(len(pool))]
            src = self.samples[i]
            c, x1, y1, x2, y2 = src.boxes[j]
            bw, bh = x2 - x1, y2 - y1
            if bw < 4 or bh < 4:
                continue
            m = 0.15  # context margin around the object
            H, W = src.image.shape[:2]
            cx1, cy1 = int(max(0, x1 - m * bw)), int(max(0, y1 - m * bh))
            cx2, cy2 = int(min(W, x2 + m * bw)), int(min(H, y2 + m * bh))
            crop = src.image[cy1:cy2, cx1:cx2]
            target = rng.uniform(10, 70)  # object's longer side on the 416 canvas, in pixels
            scale = target / max(bw, bh)
            pw, ph = max(2, int(crop.shape[1] * scale)), max(2, int(crop.shape[0] * scale))
            if pw >= S or ph >= S:
                continue
            patch = cv2.resize(crop, (pw, ph), interpolation=cv2.INTER_AREA).astype(np.float32)
            # Feathered alpha: opaque inside the object box, fading out over the margin.
            alpha = np.zeros((ph, pw), np.float32)
            ix1, iy1 = int((x1 - cx1) * scale), int((y1 - cy1) * scale)
            ix2, iy2 = int(np.ceil((x2 - cx1) * scale)), int(np.ceil((y2 - cy1) * scale))
            alpha[iy1:iy2, ix1:ix2] = 1.0
            k = max(3, (min(pw, ph) // 4) | 1)
            alpha = cv2.GaussianBlur(alpha, (k, k), 0)[..., None] * rng.uniform(0.75, 1.0)
            px = rng.randrange(0, S - pw)
            py = int(rng.uniform(0, 0.75) * (S - ph))  # mostly the upper part: horizon / sky
            region = canvas[py : py + ph, px : px + pw].astype(np.float32)
            canvas[py : py + ph, px : px + pw] = (patch * alpha + region * (1 - alpha)).astype(np.uint8)
            new.append(np.array([[c, px + ix1, py + iy1, px + min(ix2, pw), py + min(iy2, ph)]], np.float32))
        return canvas, np.concatenate(new, 0)

    def _negative_crop(self, s: Sample, rng: random.Random):
        """A crop that avoids every labelled object: sky, clouds, terrain, buildings."""
        h, w = s.image.shape[:2]
        for _ in range(20):
            cw = int(w * rng.uniform(0.25, 0.7))
            ch = int(min(h, cw * rng.uniform(0.6, 1.0)))
            x1, y1 = rng.randrange(0, w - cw + 1), rng.randrange(0, h - ch + 1)
            b = s.boxes
            overlap = (b[:, 1] < x1 + cw) & (b[:, 3] > x1) & (b[:, 2] < y1 + ch) & (b[:, 4] > y1)
            if not overlap.any():
                crop = s.image[y1 : y1 + ch, x1 : x1 + cw]
                canvas, _, _ = letterbox(crop, self.size)
                return canvas, np.zeros((0, 5), np.float32)
        return self._single(s, rng)

    # -- main --------------------------------------------------------------------------------

    def __getitem__(self, index: int):
        rng = random.Random((self.seed * 1_000_003 + self.epoch) * 1_000_003 + index)
        s = self.samples[index]
        r = rng.random()
        if r < 0.30:
            img, boxes = self._single(s, rng)
        elif r < 0.55:
            img, boxes = self._mosaic(s, rng, 2)
        elif r < 0.65:
            img, boxes = self._mosaic(s, rng, 3)
        elif r < 0.87:
            img, boxes = self._far_paste(s, rng)
        else:
            img, boxes = self._negative_crop(s, rng)
        return self._finish(img, boxes, rng)

    def _finish(self, img, boxes, rng):
        """Augmentation every mode shares: fish-eye, flip, photometric; drops tiny boxes."""
        if rng.random() < 0.2:
            img, boxes = fisheye(img, boxes, rng.uniform(0.15, 0.5))
        if rng.random() < 0.5:
            img = img[:, ::-1].copy()
            if len(boxes):
                boxes[:, [1, 3]] = self.size - boxes[:, [3, 1]]
        img = photometric(img, rng)
        if len(boxes):
            boxes[:, 1:] = boxes[:, 1:].clip(0, self.size)
            keep = ((boxes[:, 3] - boxes[:, 1]) >= 3) & ((boxes[:, 4] - boxes[:, 2]) >= 3)
            boxes = boxes[keep]
        return torch.from_numpy(preprocess_bgr(img)), torch.from_numpy(boxes.astype(np.float32))


def collate(batch):
    images = torch.stack([b[0] for b in batch])
    return images, [b[1] for b in batch]


# ---------------------------------------------------------------------------------------------
# Tower-like samples (stage finetune3): sky/horizon hard negatives and faint distant smoke
# ---------------------------------------------------------------------------------------------

TOWER_W, TOWER_H = 640, 480  # HPWREN-like tower frame size the composites are built at


def _box_free_crop(s: Sample, rng: random.Random, top_bias: bool, tries: int = 30):
    """A 4:3 crop of `s` that overlaps no labelled box, biased to the top (sky + horizon).

    Returns the crop (BGR) or None. With `top_bias` the crop starts in the upper fifth of the
    image, so it holds sky, clouds, the horizon and some terrain, like a tower camera's view.
    """
    h, w = s.image.shape[:2]
    b = s.boxes
    for _ in range(tries):
        cw = int(w * rng.uniform(0.35, 1.0))
        ch = int(cw * 0.75)
        if ch > h:
            ch = h
            cw = min(w, int(ch / 0.75))
        if cw < 32 or ch < 24:
            return None
        x1 = rng.randrange(0, w - cw + 1)
        y_max = h - ch
        y1 = rng.randrange(0, max(1, int(y_max * 0.2)) + 1) if top_bias else rng.randrange(0, y_max + 1)
        y1 = min(y1, y_max)
        overlap = (b[:, 1] < x1 + cw) & (b[:, 3] > x1) & (b[:, 2] < y1 + ch) & (b[:, 4] > y1)
        if not overlap.any():
            return s.image[y1 : y1 + ch, x1 : x1 + cw]
    return None


def _synthetic_clouds(img: np.ndarray, rng: random.Random) -> np.ndarray:
    """Overlay soft, wide, bright cloud/haze banks on the upper part of a frame (hard negative)."""
    H, W = img.shape[:2]
    nrng = np.random.default_rng(rng.randrange(1 << 30))
    gh, gw = rng.randint(2, 5), rng.randint(5, 12)  # coarse grid: wide, flat structures
    noise = nrng.random((gh, gw)).astype(np.float32)
    field = cv2.resize(noise, (W, H), interpolation=cv2.INTER_CUBIC)
    thr = rng.uniform(0.45, 0.7)
    mask = np.clip((field - thr) / (1 - thr), 0, 1)
    band = np.linspace(1.0, 0.0, H, dtype=np.float32) ** rng.uniform(0.7, 2.0)  # mostly the sky
    mask = cv2.GaussianBlur(mask * band[:, None], (0, 0), rng.uniform(3, 12))
    mask = (mask * rng.uniform(0.4, 0.9))[..., None]
    colour = np.array([rng.uniform(200, 250)] * 3, np.float32) + np.array(
        [rng.uniform(-10, 10) for _ in range(3)], np.float32
    )
    out = img.astype(np.float32) * (1 - mask) + colour * mask
    return np.clip(out, 0, 255).astype(np.uint8)


OUTDOOR_SOURCES = ("wildfire", "dfire-neg", "nemo")  # cctv/furg are mostly indoor or street


def _sky_like(crop: np.ndarray) -> bool:
    """True when the top fifth of the crop is bright-ish and smooth (sky or cloud, not walls)."""
    top = cv2.cvtColor(crop[: max(4, crop.shape[0] // 5)], cv2.COLOR_BGR2GRAY)
    texture = float(np.abs(cv2.Laplacian(top, cv2.CV_32F)).mean())
    return float(top.mean()) > 70 and texture < 6.0


def tower_background(samples: list[Sample], rng: random.Random, clouds_p: float = 0.4):
    """A box-free, sky-and-horizon 4:3 view resized to a tower frame (640x480), or None.

    Outdoor sources only; up to 12 tries for a crop whose top looks like sky (`_sky_like`),
    then any box-free outdoor crop.
    """
    outdoor = [s for s in samples if s.source in OUTDOOR_SOURCES] or samples
    fallback = None
    for t in range(16):
        s = outdoor[rng.randrange(len(outdoor))]
        crop = _box_free_crop(s, rng, top_bias=rng.random() < 0.75)
        if crop is None:
            continue
        if t < 12 and not _sky_like(crop):
            fallback = crop if fallback is None else fallback
            continue
        break
    else:
        crop = fallback
    if crop is not None:
        bg = cv2.resize(crop, (TOWER_W, TOWER_H), interpolation=cv2.INTER_AREA
                        if crop.shape[1] > TOWER_W else cv2.INTER_LINEAR)
        if rng.random() < clouds_p:
            bg = _synthetic_clouds(bg, rng)
        return bg
    return None


def paste_faint_smoke(bg: np.ndarray, samples: list[Sample], smoke_objects: list[tuple[int, int]],
                      rng: random.Random, n: int, size_px=(16, 110), alpha=(0.3, 0.8)):
    """Paste `n` small, faint, feathered smoke crops near the horizon band of a tower frame.

    Sizes are the plume's longer side in frame pixels (HPWREN plumes: 20-100 px of 640); the
    alpha is low and the patch is blended towards the sky colour (haze), so plumes are faint.
    Returns (image, boxes [k, 5]).
    """
    H, W = bg.shape[:2]
    out = bg.copy()
    boxes = []
    for _ in range(n):
        if not smoke_objects:
            break
        i, j = smoke_objects[rng.randrange(len(smoke_objects))]
        src = samples[i]
        _c, x1, y1, x2, y2 = src.boxes[j]
        bw, bh = x2 - x1, y2 - y1
        if bw < 6 or bh < 6:
            continue
        m = 0.12
        sh, sw = src.image.shape[:2]
        cx1, cy1 = int(max(0, x1 - m * bw)), int(max(0, y1 - m * bh))
        cx2, cy2 = int(min(sw, x2 + m * bw)), int(min(sh, y2 + m * bh))
        crop = src.image[cy1:cy2, cx1:cx2]
        scale = rng.uniform(*size_px) / max(bw, bh)
        pw, ph = max(2, int(crop.shape[1] * scale)), max(2, int(crop.shape[0] * scale))
        if pw >= W // 2 or ph >= H // 2:
            continue
        patch = cv2.resize(crop, (pw, ph), interpolation=cv2.INTER_AREA).astype(np.float32)
        a = np.zeros((ph, pw), np.float32)
        ix1, iy1 = int((x1 - cx1) * scale), int((y1 - cy1) * scale)
        ix2, iy2 = int(np.ceil((x2 - cx1) * scale)), int(np.ceil((y2 - cy1) * scale))
        a[iy1:iy2, ix1:ix2] = 1.0
        k = max(3, (min(pw, ph) // 3) | 1)
        a = cv2.GaussianBlur(a, (k, k), 0)[..., None] * rng.uniform(*alpha)
        px = rng.randrange(0, W - pw)
        # Plume base on the horizon band (35-70 % of the frame height), rising into the sky.
        base = int(rng.uniform(0.35, 0.7) * H)
        py = int(np.clip(base - ph, 0, H - ph))
        region = out[py : py + ph, px : px + pw].astype(np.float32)
        haze = rng.uniform(0.0, 0.5)  # wash the plume out towards the local sky colour
        patch = patch * (1 - haze) + region.mean(axis=(0, 1)) * haze
        out[py : py + ph, px : px + pw] = np.clip(patch * a + region * (1 - a), 0, 255).astype(np.uint8)
        bx1, by1 = px + ix1, py + iy1
        bx2, by2 = px + min(ix2, pw), py + min(iy2, ph)
        if bx2 - bx1 >= 4 and by2 - by1 >= 4:
            boxes.append([0, bx1, by1, bx2, by2])
    return out, np.array(boxes, np.float32).reshape(-1, 5)


def smoke_object_index(samples: list[Sample]) -> list[tuple[int, int]]:
    return [(i, j) for i, s in enumerate(samples) for j, b in enumerate(s.boxes) if b[0] == 0]


def build_tower_val(root: Path, seed: int = 20261124, n_smoke: int = 90, n_neg: int = 40) -> list[Sample]:
    """Tower-like validation set from VALIDATION images only (never hpwren / eval negatives).

    = the real NEMO val tower frames + `n_smoke` 640x480 composites (box-free sky/horizon views
    of val images with 1-2 faint distant smoke plumes cut from val smoke boxes) + `n_neg` such
    views with nothing pasted (sky/cloud negatives, 40 % with synthetic cloud banks).
    Deterministic for a given seed.
    """
    val = load_val_samples(root)
    nemo = [s for s in val if s.source == "nemo"]
    smoke = smoke_object_index(val)
    rng = random.Random(seed * 7 + 3)
    out = [Sample(s.image, s.boxes, "tower-val-nemo") for s in nemo]
    while len(out) < len(nemo) + n_smoke:
        bg = tower_background(val, rng)
        if bg is None:
            continue
        img, boxes = paste_faint_smoke(bg, val, smoke, rng, rng.randint(1, 2))
        if len(boxes):
            out.append(Sample(img, boxes, "tower-val-synth"))
    while len(out) < len(nemo) + n_smoke + n_neg:
        bg = tower_background(val, rng)
        if bg is not None:
            out.append(Sample(bg, np.zeros((0, 5), np.float32), "tower-val-neg"))
    return out


def write_split(samples: list[Sample], out_dir: Path, neg_dir: Path | None = None):
    """Write samples as a YOLO split (images/ + labels/) that `lookout eval --data` reads.

    With `neg_dir`, samples without boxes go to `neg_dir/images` instead (for `--neg`).
    """
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    (out_dir / "labels").mkdir(parents=True, exist_ok=True)
    for k, s in enumerate(samples):
        name = f"{s.source}-{k:04d}"
        if neg_dir is not None and len(s.boxes) == 0:
            (neg_dir / "images").mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(neg_dir / "images" / f"{name}.jpg"), s.image, [cv2.IMWRITE_JPEG_QUALITY, 92])
            continue
        cv2.imwrite(str(out_dir / "images" / f"{name}.jpg"), s.image, [cv2.IMWRITE_JPEG_QUALITY, 92])
        h, w = s.image.shape[:2]
        lines = []
        for c, x1, y1, x2, y2 in s.boxes:
            lines.append(f"{int(c)} {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} {(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}")
        (out_dir / "labels" / f"{name}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))


class TowerTrainDataset(TrainDataset):
    """TrainDataset plus tower-like modes (stage finetune3).

    Mode mix per sample: 20 % single, 15 % 2x2 mosaic, 5 % 3x3 mosaic, 12 % far paste (as
    before), 18 % faint distant smoke on a sky/horizon tower view, 8 % plain negative crop,
    22 % sky/horizon hard negative (box-free 4:3 tower views of training images, 40 % with
    synthetic cloud banks), letterboxed like a 640x480 tower frame.
    """

    def __getitem__(self, index: int):
        rng = random.Random((self.seed * 1_000_003 + self.epoch) * 1_000_003 + index)
        s = self.samples[index]
        r = rng.random()
        if r < 0.20:
            img, boxes = self._single(s, rng)
        elif r < 0.35:
            img, boxes = self._mosaic(s, rng, 2)
        elif r < 0.40:
            img, boxes = self._mosaic(s, rng, 3)
        elif r < 0.52:
            img, boxes = self._far_paste(s, rng)
        elif r < 0.60:
            img, boxes = self._negative_crop(s, rng)
        else:
            bg = tower_background(self.samples, rng)
            if bg is None:
                img, boxes = self._negative_crop(s, rng)
            else:
                if r < 0.78:
                    bg, boxes = paste_faint_smoke(bg, self.samples, self.smoke_objects, rng, rng.randint(1, 3))
                else:
                    boxes = np.zeros((0, 5), np.float32)
                img, sc, (dx, dy) = letterbox(bg, self.size)
                if len(boxes):
                    boxes = boxes.copy()
                    boxes[:, 1:] *= sc
                    boxes[:, [1, 3]] += dx
                    boxes[:, [2, 4]] += dy
        return self._finish(img, boxes, rng)


if __name__ == "__main__":
    import argparse

    _ap = argparse.ArgumentParser(description="write the tower-like validation split for `lookout eval`")
    _ap.add_argument("--write-tower-val", required=True, help="output directory (images/ + labels/)")
    _ap.add_argument("--neg-dir", help="write the box-free composites here (for `lookout eval --neg`)")
    _ap.add_argument("--seed", type=int, default=20261124)
    _a = _ap.parse_args()
    _samples = build_tower_val(shared_root(), _a.seed)
    write_split(_samples, Path(_a.write_tower_val), Path(_a.neg_dir) if _a.neg_dir else None)
    print(f"wrote {len(_samples)} images to {_a.write_tower_val}" + (f" and {_a.neg_dir}" if _a.neg_dir else ""))
