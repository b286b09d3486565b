"""INT8 static quantisation of Lookout's detectors with ONNX Runtime.

Reads an FP32 manifest (`models/NAME.toml`), calibrates activation ranges on a fixed, ordered
list of permissively licensed *training* images, preprocessed exactly as the manifest says
(size, letterbox or stretch, channel order, mean/std), and writes

* the INT8 ONNX file (per-channel INT8 weights, UINT8 activations), and
* an INT8 manifest next to the FP32 one (same input/output/classes; new file, sha256,
  description; accuracy to be measured with `lookout eval`).

Deterministic: the calibration list is sorted and subsampled by a fixed stride, images are
read in that order, and calibration runs on one thread, so two runs on the same machine give
the same bytes (checked). Floating-point kernels differ between CPU instruction sets, so
another CPU may produce slightly different ranges and so another sha256: the committed INT8
files are the reference. Run through `quantize.sh`, which creates the
virtual environment. See models/README.md ("INT8 models").
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import tomllib
from pathlib import Path

import numpy as np
import onnx
from PIL import Image

from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
import onnxruntime
from onnxruntime.quantization.shape_inference import quant_pre_process
import onnxruntime.quantization.calibrate as _calibrate


class _OneThreadOrt:
    """onnxruntime as the calibrator sees it, with one intra-op thread: the calibration
    runs (and so the ranges and the output bytes) do not depend on the number of cores."""

    def __getattr__(self, name):
        return getattr(onnxruntime, name)

    @staticmethod
    def SessionOptions():  # noqa: N802 (mirrors the onnxruntime name)
        o = onnxruntime.SessionOptions()
        o.intra_op_num_threads = 1
        o.inter_op_num_threads = 1
        return o


_calibrate.onnxruntime = _OneThreadOrt()

# Calibration sources: training splits whose licence allows training a shipped model
# (datasets/README.md). Never evaluation-only data: not dfire-negatives/eval, not
# pennfudan-person, not hpwren-smoke-dev, not the val/test splits, not FURG frames >= 450.
# (folder, how many images, evenly spaced over the sorted file names)
CALIBRATION = [
    ("wildfire-fire-smoke/train/images", 64),  # CC BY 4.0
    ("cctv-fire-smoke/train/images", 48),  # CC BY 4.0
    ("dfire-negatives/train/images", 12),  # CC0
    ("nemo-tower-sample/train/images", 6),  # Apache-2.0
]


def calibration_files(shared: Path) -> list[Path]:
    """The fixed, ordered calibration list."""
    files: list[Path] = []
    for folder, count in CALIBRATION:
        d = shared / "datasets" / folder
        if not d.is_dir():
            sys.exit(f"calibration folder {d} is missing (set LOOKOUT_SHARED)")
        names = sorted(p for p in d.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        if not names:
            sys.exit(f"calibration folder {d} has no images")
        step = max(1, len(names) // count)
        files.extend(names[::step][:count])
    return files


def preprocess(path: Path, inp: dict) -> np.ndarray:
    """One image as the engine feeds it: [1, 3, H, W] float32 (see models/README.md)."""
    w_in, h_in = int(inp["width"]), int(inp["height"])
    img = Image.open(path).convert("RGB")
    w, h = img.size
    if inp.get("resize", "letterbox") == "letterbox":
        r = min(w_in / w, h_in / h)
        nw, nh = max(1, round(w * r)), max(1, round(h * r))
        pad = int(inp.get("pad_value", 114))
        canvas = Image.new("RGB", (w_in, h_in), (pad, pad, pad))
        canvas.paste(img.resize((nw, nh), Image.BILINEAR), ((w_in - nw) // 2, (h_in - nh) // 2))
        img = canvas
    else:
        img = img.resize((w_in, h_in), Image.BILINEAR)
    x = np.asarray(img, dtype=np.float32)  # H, W, RGB
    if inp.get("channels", "rgb") == "bgr":
        x = x[:, :, ::-1]
    scale = float(inp.get("scale", 1.0))
    mean = np.array(inp.get("mean", [0.0, 0.0, 0.0]), dtype=np.float32)
    std = np.array(inp.get("std", [1.0, 1.0, 1.0]), dtype=np.float32)
    x = (x * scale - mean) / std
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


class Reader(CalibrationDataReader):
    def __init__(self, files: list[Path], inp: dict):
        self.files = files
        self.inp = inp
        self.i = 0

    def get_next(self):
        if self.i >= len(self.files):
            return None
        x = preprocess(self.files[self.i], self.inp)
        self.i += 1
        return {self.inp["tensor"]: x}

    def rewind(self):
        self.i = 0


def tail_nodes(model: onnx.ModelProto) -> list[str]:
    """Nodes after the last convolution on every path: the output head's decode (softmax over
    distance bins, box arithmetic, sigmoid, the concatenation of pixel coordinates with
    0..1 scores) and output reshapes. They stay FP32: one UINT8 scale cannot hold both box
    coordinates in pixels and scores, and they are a tiny share of the compute."""
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in model.graph.node:
        for t in n.input:
            consumers.setdefault(t, []).append(n)
    memo: dict[str, bool] = {}

    def feeds_conv(n: onnx.NodeProto) -> bool:
        key = n.name
        if key in memo:
            return memo[key]
        memo[key] = False
        r = any(
            c.op_type == "Conv" or feeds_conv(c) for t in n.output for c in consumers.get(t, [])
        )
        memo[key] = r
        return r

    sys.setrecursionlimit(100000)
    return [n.name for n in model.graph.node if n.op_type != "Conv" and not feeds_conv(n)]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_manifest(fp32_manifest: Path, out_manifest: Path, onnx_file: Path, note: str, url: str | None):
    """The FP32 manifest with a new name, file, sha256, source_url and description. The FP32
    [accuracy] table is dropped; an existing INT8 manifest's [accuracy] table is kept when it
    describes the same bytes (the figures are measured with `lookout eval`, not here)."""
    kept: list[str] = []
    if out_manifest.is_file():
        old = out_manifest.read_text()
        if tomllib.loads(old).get("sha256") == sha256(onnx_file) and "\n[accuracy]" in old:
            kept = ["", "[accuracy]" + old.split("\n[accuracy]", 1)[1].rstrip("\n")]
    text = fp32_manifest.read_text()
    m = tomllib.loads(text)
    lines = text.splitlines()
    out: list[str] = []
    skip_desc = False
    in_accuracy = False
    for line in lines:
        s = line.strip()
        if skip_desc:
            if s.endswith('"""'):
                skip_desc = False
            continue
        if s.startswith("[") and not s.startswith("[["):
            in_accuracy = s == "[accuracy]"
        if in_accuracy:
            continue
        key = s.split("=", 1)[0].strip() if "=" in s and not s.startswith("#") else None
        if key == "name" and not out_has_table(out):
            out.append(f'name = {toml_str(m["name"] + "-int8")}')
        elif key == "file" and not out_has_table(out):
            out.append(f"file = {toml_str(onnx_file.name)}")
        elif key == "sha256" and not out_has_table(out):
            out.append(f'sha256 = "{sha256(onnx_file)}"')
        elif key == "source_url" and not out_has_table(out):
            if url:
                out.append(f"source_url = {toml_str(url)}")
        elif key == "description" and not out_has_table(out):
            out.append('description = """')
            out.extend(note.strip().splitlines())
            out[-1] += '"""'
            if s.count('"""') == 1:
                skip_desc = True
        elif s.startswith("# ") and not out and "Format" not in s:
            out.append(f"# INT8 (static quantisation) of {fp32_manifest.name}: written by models/quantize/quantize.py.")
        else:
            out.append(line)
    while out and not out[-1].strip():
        out.pop()
    out.extend(kept)
    out_manifest.write_text("\n".join(out) + "\n")
    # The result must still parse and keep the FP32 input/output/classes.
    back = tomllib.loads(out_manifest.read_text())
    for k in ("input", "output", "classes"):
        assert back[k] == m[k], k


def out_has_table(out: list[str]) -> bool:
    return any(line.strip().startswith("[") for line in out)


def main() -> None:
    here = Path(__file__).resolve().parent
    repo = here.parent.parent
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", type=Path, required=True, help="FP32 manifest, e.g. models/smoke-fire.toml")
    ap.add_argument("--out-manifest", type=Path, required=True, help="INT8 manifest to write")
    ap.add_argument("--out-onnx", type=Path, required=True, help="INT8 ONNX file to write")
    ap.add_argument("--format", choices=["qdq", "qoperator"], default="qdq")
    ap.add_argument("--method", choices=["minmax", "percentile", "entropy"], default="minmax")
    ap.add_argument("--calib", type=int, default=0, help="use only the first N calibration images (0 = all)")
    ap.add_argument("--source-url", default=None, help="source_url for the INT8 manifest (omitted if not given)")
    ap.add_argument("--reduce-range", action="store_true", help="7-bit weights (avoids U8S8 saturation on CPUs without VNNI)")
    ap.add_argument("--weights", choices=["int8", "uint8"], default="int8")
    ap.add_argument("--quantise-tail", action="store_true", help="also quantise the decode tail (for experiments)")
    args = ap.parse_args()

    shared = Path(os.environ.get("LOOKOUT_SHARED", repo.parent / "shared"))
    m = tomllib.loads(args.manifest.read_text())
    src = Path(m["file"])
    if not src.is_absolute():
        cands = [args.manifest.parent / src, shared / "models" / src]
        found = [c for c in cands if c.is_file()]
        if not found:
            sys.exit(f"{m['file']} not found in {[str(c) for c in cands]}")
        src = found[0]
    if sha256(src) != m["sha256"]:
        sys.exit(f"{src} has sha256 {sha256(src)}, but {args.manifest} says {m['sha256']}")

    files = calibration_files(shared)
    if args.calib:
        files = files[: args.calib]
    print(f"{m['name']}: {src} -> {args.out_onnx}; {args.format}, {args.method}, {len(files)} calibration images", flush=True)

    with tempfile.TemporaryDirectory(prefix="lookout-quant.") as tmp:
        pre = Path(tmp) / "pre.onnx"
        model = onnx.load(str(src))
        if model.opset_import[0].version < 13:
            # Per-channel DequantizeLinear needs opset 13.
            model = onnx.version_converter.convert_version(model, 13)
            # Opset 11 Resize nodes may pass empty `roi`/`scales` tensors next to `sizes`;
            # opset 13 wants absent inputs (""), else shape inference rejects the node.
            empty = {i.name for i in model.graph.initializer if len(i.dims) == 1 and i.dims[0] == 0}
            for n in model.graph.node:
                if n.op_type == "Resize" and len(n.input) == 4 and n.input[3]:
                    for k in (1, 2):
                        if n.input[k] in empty:
                            n.input[k] = ""
        # Old exporters list initializers as graph inputs too; then ORT treats them as
        # overridable and does not fold them. They are constants here.
        inits = {i.name for i in model.graph.initializer}
        keep = [i for i in model.graph.input if i.name not in inits]
        del model.graph.input[:]
        model.graph.input.extend(keep)
        src13 = Path(tmp) / "model.onnx"
        onnx.save(model, str(src13))
        quant_pre_process(str(src13), str(pre), skip_symbolic_shape=True)
        excluded = [] if args.quantise_tail else tail_nodes(onnx.load(str(pre)))
        print(f"  FP32 tail (not quantised): {len(excluded)} nodes", flush=True)
        method = {
            "minmax": CalibrationMethod.MinMax,
            "percentile": CalibrationMethod.Percentile,
            "entropy": CalibrationMethod.Entropy,
        }[args.method]
        quantize_static(
            str(pre),
            str(args.out_onnx),
            Reader(files, m["input"]),
            quant_format=QuantFormat.QDQ if args.format == "qdq" else QuantFormat.QOperator,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8 if args.weights == "int8" else QuantType.QUInt8,
            reduce_range=args.reduce_range,
            calibrate_method=method,
            nodes_to_exclude=excluded,
            extra_options={
                "CalibMaxIntermediateOutputs": 16,  # bound calibration memory
                "CalibMovingAverage": False,
            },
        )

    # Apache-2.0 4(b): a modified file carries a notice saying so, inside the file.
    q = onnx.load(str(args.out_onnx))
    q.doc_string = (
        f"Modified by the Lookout authors: INT8 static quantisation (models/quantize/quantize.py) of "
        f"{src.name} (sha256 {m['sha256']}, licence {m['licence']}). See NOTICE."
    )
    onnx.save(q, str(args.out_onnx))

    bits = "7-bit range (reduce_range)" if args.reduce_range else "8-bit range"
    note = f"""INT8 static quantisation of `{args.manifest.name}` ({m['name']}, sha256 {m['sha256'][:12]}…), a
modified version of that file made by models/quantize/quantize.py (see NOTICE): ONNX Runtime
{onnxruntime.__version__} quantize_static, {args.format.upper()} format, per-channel INT8 weights in {bits},
UINT8 activations, {args.method} calibration on {len(files)} permissively licensed training images
(fixed list); the decode tail stays FP32. Same input, output layout and classes as the FP32
model. Measured against it: models/README.md ("INT8 models")."""
    write_manifest(args.manifest, args.out_manifest, args.out_onnx, note, args.source_url)
    print(f"  wrote {args.out_onnx} ({args.out_onnx.stat().st_size / 1e6:.2f} MB, sha256 {sha256(args.out_onnx)})")
    print(f"  wrote {args.out_manifest}")


if __name__ == "__main__":
    main()
