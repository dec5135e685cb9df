#!/usr/bin/env python3
"""Soak: the whole demo (synthetic camera, demo engine, overlay video, ROS 2 topics on DDS,
ZeroMQ with a subscriber, MCAP split by size) for a long run, watched from outside.

Every 10 s it reads the run's resident memory, open file descriptors and threads from /proc;
at the end it reads every MCAP part back with mcap-ros2-support and opens the overlay video.
It prints a table and writes ``soak.json`` in the output folder; the exit status is 1 when a
limit is broken: memory growth after the warm-up of 5 MB or more (the median of the last five
minutes against that of the first five after it), a change in descriptors or
threads after the warm-up, an MCAP part that does not read to its end, a failed run.

    make soak                      # 30 minutes (README, "It never falls over")
    python scripts/soak.py --minutes 2 --out /tmp/soak
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RSS_GROWTH_MAX_MB = 5.0


def proc_stats(pid: int) -> dict:
    status = Path(f"/proc/{pid}/status").read_text()
    field = {line.split(":")[0]: line.split(":")[1].strip() for line in status.splitlines() if ":" in line}
    return {"rss_mb": int(field["VmRSS"].split()[0]) / 1024, "threads": int(field["Threads"]),
            "fds": len(os.listdir(f"/proc/{pid}/fd"))}


def read_mcap(path) -> dict:
    """Messages per file, decoded to the end by an independent reader (mcap-ros2-support)."""
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    n = 0
    try:
        with open(path, "rb") as fh:
            for _ in make_reader(fh, decoder_factories=[DecoderFactory()]).iter_decoded_messages():
                n += 1
    except Exception as exc:  # noqa: BLE001 - the report says which file and why
        return {"file": Path(path).name, "messages": n, "ok": False, "error": str(exc)}
    return {"file": Path(path).name, "messages": n, "ok": n > 0}


def video_frames(path) -> int:
    import cv2

    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--warm-up", type=float, default=None, metavar="MINUTES",
                    help="not counted for growth (default: a tenth of the run, at most 3 minutes)")
    ap.add_argument("--out", default=None, help="folder for the recording, video and report (default: a new one)")
    ap.add_argument("--split-mb", type=float, default=50.0, help="MCAP part size")
    args = ap.parse_args(argv)
    out = Path(args.out or tempfile.mkdtemp(prefix="avstream-soak-"))
    out.mkdir(parents=True, exist_ok=True)
    seconds = args.minutes * 60
    warm = 60 * (args.warm_up if args.warm_up is not None else min(3.0, args.minutes / 10))
    with socket.socket() as sock:  # a free port: a soak beside another avstream
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "avstream", "run", "--duration", f"{seconds:g}", "--record", str(out / "rec.mcap"),
           "--record-split-mb", f"{args.split_mb:g}", "--overlay", str(out / "overlay.mp4"),
           "--zmq", f"tcp://127.0.0.1:{port}", "--no-status", "--jsonl", str(out / "run.jsonl")]
    engine = ROOT / "engines" / "demo_av.onnx"
    if engine.exists():
        cmd += ["--engine", str(engine)]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with open(out / "stderr.txt", "w") as err:
        run = subprocess.Popen(cmd, cwd=str(ROOT), env=env, stdout=subprocess.DEVNULL, stderr=err)
        echo = subprocess.Popen([sys.executable, "-m", "avstream", "echo", f"tcp://127.0.0.1:{port}", "--seconds",
                                 f"{seconds + 120:g}"], cwd=str(ROOT), env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        samples = []
        t0 = time.monotonic()
        while run.poll() is None:
            try:
                samples.append({"t": round(time.monotonic() - t0, 1), **proc_stats(run.pid)})
            except (FileNotFoundError, ProcessLookupError):
                break
            time.sleep(10.0)
        rc = run.wait()
        echo.terminate()
        echo.wait(30)
    after = [s for s in samples if s["t"] >= warm]
    base = after[0] if after else None
    last = [s for s in after if s["t"] <= seconds - 5]  # not the shutdown
    report = {"minutes": args.minutes, "warm_up_s": warm, "returncode": rc, "samples": samples}
    if base and last:
        # growth: the median of the last window against the median of the first one after the
        # warm-up (windows of 5 minutes, or a third of what was measured): the heap breathes by a
        # few MB from one sample to the next, a leak moves the whole band
        k = max(1, min(30, len(last) // 3))
        first_mb = float(np.median([s["rss_mb"] for s in last[:k]]))
        end_mb = float(np.median([s["rss_mb"] for s in last[-k:]]))
        report.update(rss_start_mb=round(first_mb, 1), rss_end_mb=round(end_mb, 1),
                      rss_growth_mb=round(end_mb - first_mb, 2),
                      rss_range_mb=[round(min(s["rss_mb"] for s in last), 1), round(max(s["rss_mb"] for s in last), 1)],
                      fds=sorted({s["fds"] for s in last}), threads=sorted({s["threads"] for s in last}))
    parts = sorted(out.glob("rec_*.mcap"), key=lambda p: int(p.stem.split("_")[-1]))
    report["mcap"] = [read_mcap(p) for p in parts]
    report["overlay_frames"] = video_frames(out / "overlay.mp4") if (out / "overlay.mp4").exists() else 0
    try:
        report["summary"] = json.loads((out / "run.jsonl").read_text().splitlines()[-1])["summary"]
    except (OSError, IndexError, ValueError, KeyError):
        report["summary"] = None
    (out / "soak.json").write_text(json.dumps(report, indent=1))

    broken = []
    if rc != 0:
        broken.append(f"the run exited with {rc} (see {out / 'stderr.txt'})")
    if "rss_growth_mb" not in report:
        broken.append("too short to measure after the warm-up")
    else:
        if report["rss_growth_mb"] >= RSS_GROWTH_MAX_MB:
            broken.append(f"memory grew {report['rss_growth_mb']} MB after the warm-up")
        if len(report["fds"]) > 1:
            broken.append(f"open descriptors changed: {report['fds']}")
        if len(report["threads"]) > 1:
            broken.append(f"threads changed: {report['threads']}")
    if not parts or not all(p["ok"] for p in report["mcap"]):
        broken.append("an MCAP part did not read back: " + json.dumps([p for p in report["mcap"] if not p["ok"]]))
    s = report["summary"] or {}
    print(f"soak {args.minutes:g} min ({out})")
    print("| measure | value |\n|---|---|")
    for k, v in [("updates", s.get("updates")), ("skipped updates", s.get("skipped_updates")),
                 ("dropped blocks", s.get("dropped_blocks")),
                 ("RSS after warm-up -> end, window medians (MB)",
                  f"{report.get('rss_start_mb')} -> {report.get('rss_end_mb')}"),
                 ("RSS growth after warm-up (MB)", report.get("rss_growth_mb")),
                 ("RSS lowest and highest after warm-up (MB)", report.get("rss_range_mb")),
                 ("open descriptors after warm-up", report.get("fds")), ("threads after warm-up", report.get("threads")),
                 ("MCAP parts read to the end", f"{sum(p['ok'] for p in report['mcap'])}/{len(parts)} "
                  f"({sum(p['messages'] for p in report['mcap'])} messages)"),
                 ("overlay video frames", report["overlay_frames"])]:
        print(f"| {k} | {v} |")
    for b in broken:
        print("BROKEN:", b)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
