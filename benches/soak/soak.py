#!/usr/bin/env python3
"""Soak run of `lookout run`; prints one JSON line (see README.md). Standard library only.

Usage: soak.py MINUTES CONFIG   (run from the repository root, by run.sh)
"""
import gzip
import http.server
import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter, defaultdict

ROTATED = re.compile(r"^(?P<stem>.+)\.(\d{8}T\d{9}Z)\.jsonl(\.gz)?$")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Receiver(http.server.BaseHTTPRequestHandler):
    """A webhook receiver: answers 200 and keeps the largest body size."""

    largest = 0
    count = 0
    lock = threading.Lock()

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n)
        with Receiver.lock:
            Receiver.largest = max(Receiver.largest, len(body))
            Receiver.count += 1
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def soak_config(src, port, hook_port):
    """The config with a free server port and a webhook sink to the local receiver."""
    text = open(src).read()
    sink = (
        '[[alerts.sinks]]\nkind = "webhook"\nname = "soak-receiver"\n'
        f'url = "http://127.0.0.1:{hook_port}/hook"\n\n'
    )
    m = re.search(r"^\[server\]\s*$", text, re.M)
    if m:
        head, tail = text[: m.start()], text[m.start():]
        tail, n = re.subn(r"^port\s*=\s*\d+", f"port = {port}", tail, count=1, flags=re.M)
        if n == 0:
            tail = tail.replace("[server]", f"[server]\nport = {port}", 1)
        return head + sink + tail
    return text + "\n" + sink + f"[server]\nport = {port}\n"


def rss_kib(pid):
    """(VmRSS, RssAnon, RssFile) in KiB: anonymous memory is what a leak grows; file-backed
    pages include the database's memory-mapped pages, which grow with the file and are
    reclaimable."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k = line.split(":")[0]
                if k in ("VmRSS", "RssAnon", "RssFile"):
                    out[k] = int(line.split()[1])
    except OSError:
        return None
    if "VmRSS" not in out:
        return None
    return (out["VmRSS"], out.get("RssAnon"), out.get("RssFile"))


def lines_of(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        for line in f:
            yield line


def log_files(data, stem):
    """The live log `stem.jsonl` and its rotated copies under `data`."""
    out = []
    for name in os.listdir(data):
        m = ROTATED.match(name)
        if name == f"{stem}.jsonl" or (m and m.group("stem") == stem):
            out.append(os.path.join(data, name))
    return out


def settled_bytes(path):
    """Bytes of the data directory with the database's write-ahead log folded in: a passive
    checkpoint (which never blocks the engine) copies the log into the database file, and
    the log and shared-memory files, whose size follows the checkpoint cycle rather than the
    data, are left out."""
    db = os.path.join(path, "lookout.db")
    if os.path.exists(db):
        try:
            c = sqlite3.connect(db, timeout=5)
            c.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            c.close()
        except sqlite3.Error:
            pass
    total = 0
    for d, _, files in os.walk(path):
        for name in files:
            if name.endswith("-wal") or name.endswith("-shm"):
                continue
            try:
                total += os.path.getsize(os.path.join(d, name))
            except OSError:
                pass  # rotated or deleted meanwhile
    return total


def kind_of(rel):
    top = rel.split(os.sep)[0]
    if top.startswith("lookout.db"):
        return "database"
    if top in ("snapshots", "cap", "geojson"):
        return top
    m = ROTATED.match(top)
    if m:
        return m.group("stem") + ".jsonl"
    if top.endswith(".jsonl"):
        return top
    return "other"


def main():
    minutes = float(sys.argv[1])
    config = sys.argv[2]
    seconds = minutes * 60.0
    root = os.getcwd()
    stamp = time.strftime("%Y%m%dT%H%M%S")
    data = os.path.join(root, "data", "soak", stamp)
    os.makedirs(data)
    log_path = os.path.join(root, "data", "soak", f"{stamp}.log")
    hook_port, port = free_port(), free_port()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", hook_port), Receiver)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    # Next to the original: relative paths resolve against the config file's directory.
    cfg_dir = os.path.dirname(os.path.abspath(config))
    tmp_cfg = os.path.join(cfg_dir, f".soak-{os.getpid()}.toml")
    with open(tmp_cfg, "w") as f:
        f.write(soak_config(config, port, hook_port))
    print(f"[soak] {minutes} min of {config}, data in {data}, log {log_path}", file=sys.stderr)
    samples = []
    try:
        with open(log_path, "w") as log:
            t0 = time.monotonic()
            p = subprocess.Popen(
                [os.environ.get("LOOKOUT_BIN", "target/release/lookout"), "run", "--config", tmp_cfg, "--data-dir", data, "--run-for", str(seconds)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            disk = None
            warm_at = min(60.0, seconds / 6)
            warm_bytes = None  # (seconds since start, bytes of the data directory)
            while p.poll() is None:
                now = time.monotonic() - t0
                if warm_bytes is None and now >= warm_at:
                    warm_bytes = (now, settled_bytes(data))
                r = rss_kib(p.pid)
                if r is not None:
                    samples.append((time.monotonic() - t0, r))
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/disk", timeout=2) as resp:
                        disk = json.loads(resp.read())
                except (OSError, ValueError):
                    pass
                time.sleep(5)
            elapsed = time.monotonic() - t0
    finally:
        os.unlink(tmp_cfg)
        srv.shutdown()
    if p.returncode != 0:
        print(f"[soak] lookout exited with {p.returncode}; see {log_path}", file=sys.stderr)

    # Bytes per kind of file, extrapolated to a day of the configured run time.
    by_kind = Counter()
    for d, _, files in os.walk(data):
        for name in files:
            path = os.path.join(d, name)
            by_kind[kind_of(os.path.relpath(path, data))] += os.path.getsize(path)
    per_day = {k: round(v * 86400.0 / seconds) for k, v in sorted(by_kind.items())}
    per_day["total"] = sum(per_day.values())

    largest_line = max((len(l) - 1 for f in log_files(data, "alerts") for l in lines_of(f)), default=0)
    cap_dir = os.path.join(data, "cap")
    largest_cap = max((os.path.getsize(os.path.join(cap_dir, n)) for n in os.listdir(cap_dir)), default=0) if os.path.isdir(cap_dir) else 0

    events_started = defaultdict(Counter)
    for f in log_files(data, "events"):
        for l in lines_of(f):
            try:
                e = json.loads(l)
            except ValueError:
                continue
            if e.get("phase") == "start":
                events_started[e.get("camera")][e.get("kind")] += 1

    health = defaultdict(Counter)
    incidents = Counter()
    db = os.path.join(data, "lookout.db")
    if os.path.exists(db):
        c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        for kind, body in c.execute("SELECT kind, data FROM incidents"):
            incidents[kind] += 1
            if kind == "camera_health":
                inc = json.loads(body)
                evs = inc.get("events")
                kinds = {e.get("kind") for e in evs if isinstance(e, dict)} if isinstance(evs, list) else set()
                for cam in inc.get("cameras", []):
                    for k in kinds or {"camera_health"}:
                        health[cam][k] += 1
        c.close()

    warm = [r for t, r in samples if t >= min(60.0, seconds / 6)]
    # The mean of the first and last few warm samples (a single sample is noisy).
    def ends(i):
        k = max(1, min(6, len(warm) // 10))
        first = [w[i] for w in warm[:k] if w[i] is not None]
        last = [w[i] for w in warm[-k:] if w[i] is not None]
        return (round(sum(first) / len(first)) if first else None, round(sum(last) / len(last)) if last else None)
    out = {
        "minutes": minutes,
        "config": config,
        "exit_code": p.returncode,
        "elapsed_s": round(elapsed, 1),
        "bytes_per_day": per_day,
        # Steady growth: what the data directory gained from the end of the warm-up to the
        # end, per day (start-up writes once: schema, the FIRMS file's hotspots, the first
        # incidents' snapshots; a short run's bytes_per_day counts them many times over).
        "growth_per_day_after_warm_up": (
            round((settled_bytes(data) - warm_bytes[1]) * 86400.0 / max(1.0, elapsed - warm_bytes[0]))
            if warm_bytes else None
        ),
        "bytes": dict(sorted(by_kind.items())),
        "largest_payload_bytes": {
            "alerts_jsonl_line": largest_line,
            "cap_file": largest_cap,
            "webhook_body": Receiver.largest,
        },
        "webhook_posts": Receiver.count,
        "events_started": {cam: dict(k) for cam, k in sorted(events_started.items())},
        "incidents": dict(sorted(incidents.items())),
        "health_incidents": {cam: dict(k) for cam, k in sorted(health.items())},
        "rss_kib": {
            "start": ends(0)[0],
            "end": ends(0)[1],
            "max": max((r[0] for _, r in samples), default=None),
            "anon_start": ends(1)[0],
            "anon_end": ends(1)[1],
            "file_start": ends(2)[0],
            "file_end": ends(2)[1],
            "warm_up_s": round(min(60.0, seconds / 6)),
        },
        "engine_disk_usage": disk,
        "data_dir": os.path.relpath(data, root),
    }
    print(json.dumps(out, sort_keys=False))


if __name__ == "__main__":
    main()
