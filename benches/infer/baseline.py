#!/usr/bin/env python3
"""Plain-Python baselines for Lookout's inference throughput (see README.md).

Modes:
  ort       onnxruntime alone on a constant input (the raw-runtime ceiling in Python)
  opencv    cv2.VideoCapture decodes every frame of N streams, numpy preprocessing,
            onnxruntime per frame, round-robin over the streams (the naive pipeline)
  pyav      PyAV with skip_frame="NONKEY": decode key frames only (the fair baseline for a
            watch tower that analyses one frame every few seconds)

Model: NanoDet-Plus 416 (BGR, plain resize, mean/std as in models/person-nanodet.toml),
intra-op threads 2, inter-op 1, graph optimisation all, no spinning: the engine's defaults.

`--every K` analyses every K-th decoded frame of each stream (the others are decoded and
thrown away, as `cv2.VideoCapture.read()` loops do to reach an analysis rate of
source fps / K); with PyAV NONKEY every key frame is analysed.

Prints one JSON line: {"mode", "frames" (analysed), "decoded", "seconds", "fps",
"cpu_seconds" (process CPU, all threads), "cpu_ms_per_frame", "decode_ms", "pre_ms",
"infer_ms"}.
"""
import argparse
import json
import os
import time

import numpy as np
import onnxruntime as ort

MEAN = np.array([103.53, 116.28, 123.675], dtype=np.float32)
STD = np.array([57.375, 57.12, 58.395], dtype=np.float32)
SIZE = 416


def session(path, threads, spin):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    # The engine's default ([inference] spin_wait = false): no busy-waiting between runs.
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "1" if spin else "0")
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def preprocess(bgr, resize):
    img = resize(bgr)
    x = (img.astype(np.float32) - MEAN) / STD
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def resizer():
    try:
        import cv2

        return lambda im: cv2.resize(im, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR)
    except ImportError:  # nearest-neighbour fallback, numpy only
        def nn(im):
            h, w = im.shape[:2]
            ys = (np.arange(SIZE) * h // SIZE).clip(0, h - 1)
            xs = (np.arange(SIZE) * w // SIZE).clip(0, w - 1)
            return im[ys][:, xs]

        return nn


def run_ort(sess, n):
    name = sess.get_inputs()[0].name
    x = np.full((1, 3, SIZE, SIZE), 0.3, dtype=np.float32)
    for _ in range(3):
        sess.run(None, {name: x})
    c = time.process_time()
    t = time.perf_counter()
    for _ in range(n):
        sess.run(None, {name: x})
    dt = time.perf_counter() - t
    return {"frames": n, "seconds": dt, "cpu_seconds": time.process_time() - c, "infer_ms": 1e3 * dt / n}


def run_streams(sess, opens, read, n):
    name = sess.get_inputs()[0].name
    rs = resizer()
    streams = [opens() for _ in range(args.streams)]
    dec = pre = inf = 0.0
    frames = decoded = 0
    c0 = time.process_time()
    t0 = time.perf_counter()
    while frames < n:
        for i, s in enumerate(streams):
            t = time.perf_counter()
            for _ in range(args.every):
                img = read(s)
                if img is None:  # loop the file
                    streams[i] = s = opens()
                    img = read(s)
                decoded += 1
            t1 = time.perf_counter()
            x = preprocess(img, rs)
            t2 = time.perf_counter()
            sess.run(None, {name: x})
            t3 = time.perf_counter()
            dec += t1 - t
            pre += t2 - t1
            inf += t3 - t2
            frames += 1
    dt = time.perf_counter() - t0
    return {
        "frames": frames,
        "decoded": decoded,
        "seconds": dt,
        "cpu_seconds": time.process_time() - c0,
        "decode_ms": 1e3 * dec / frames,
        "pre_ms": 1e3 * pre / frames,
        "infer_ms": 1e3 * inf / frames,
    }


def opencv_mode(sess, video, n):
    import cv2

    def opens():
        return cv2.VideoCapture(video)

    def read(cap):
        ok, img = cap.read()
        return img if ok else None

    return run_streams(sess, opens, read, n)


def pyav_mode(sess, video, n):
    import av

    def opens():
        c = av.open(video)
        st = c.streams.video[0]
        st.codec_context.skip_frame = "NONKEY"
        return iter(c.decode(st))

    def read(it):
        f = next(it, None)
        return None if f is None else f.to_ndarray(format="bgr24")

    return run_streams(sess, opens, read, n)


if __name__ == "__main__":
    shared = os.environ.get("LOOKOUT_SHARED", os.path.join(os.path.dirname(__file__), "../../../shared"))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=["ort", "opencv", "pyav"], default="ort")
    p.add_argument("--model", default=os.path.join(shared, "models/nanodet-plus-m-1.5x_416.onnx"))
    p.add_argument("--video", default=os.path.join(shared, "datasets/furg-house6/furg_house6.mp4"))
    p.add_argument("--streams", type=int, default=8)
    p.add_argument("--frames", type=int, default=200)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--spin", action="store_true", help="let ONNX Runtime threads busy-wait (its own default)")
    p.add_argument("--every", type=int, default=1, help="analyse every K-th decoded frame of a stream")
    args = p.parse_args()
    sess = session(args.model, args.threads, args.spin)
    if args.mode == "ort":
        r = run_ort(sess, args.frames)
    elif args.mode == "opencv":
        r = opencv_mode(sess, args.video, args.frames)
    else:
        r = pyav_mode(sess, args.video, args.frames)
    r["mode"] = args.mode
    r["fps"] = r["frames"] / r["seconds"]
    r["cpu_ms_per_frame"] = 1e3 * r["cpu_seconds"] / r["frames"]
    print(json.dumps(r))
