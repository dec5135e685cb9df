"""``avstream engines list|check|build``: what engine files there are, whether a file runs the
same on ONNX Runtime as on torch, and TensorRT plans ahead of time."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..errors import InputError
from .runtime import open_engine, read_model

CHECK_TOLERANCE = 1e-4  # max abs difference between ONNX Runtime and torch


def engine_files(folder) -> list:
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder")
    return sorted(folder.glob("*.onnx"))


def describe(path) -> str:
    info = read_model(path)
    ins = ", ".join(f"{t.name} {list(t.shape)}" for t in info.inputs)
    outs = ", ".join(f"{t.name} {list(t.shape)}" for t in info.outputs)
    extra = " (torch checkpoint beside it)" if Path(path).with_suffix(".pt").is_file() else ""
    return f"{Path(path).name}: kind {info.kind}, inputs {ins}; outputs {outs}; sha256 {info.sha256[:12]}{extra}"


def random_feeds(info, rng):
    feeds = {}
    for t in info.inputs:
        shape = tuple(d if d is not None else 1 for d in t.shape)
        feeds[t.name] = rng.standard_normal(shape).astype(t.dtype)
    return feeds


def compare(path, feeds_list, threads=2) -> float:
    """Largest |ONNX Runtime - torch| over every output of every feed."""
    a = open_engine(path, "onnxruntime", threads)
    b = open_engine(path, "torch", threads)
    worst = 0.0
    for feeds in feeds_list:
        ra, rb = a.run(dict(feeds)), b.run(dict(feeds))
        for k in ra:
            worst = max(worst, float(np.max(np.abs(ra[k].astype(np.float64) - rb[k].astype(np.float64)))))
    return worst


def check(path, threads=2, n=4) -> dict:
    """Runs the file on ONNX Runtime (and on torch when its checkpoint is beside it):
    the difference, and the time per run on each."""
    info = read_model(path)
    rng = np.random.default_rng(0)
    feeds = [random_feeds(info, rng) for _ in range(n)]
    out = {"file": str(path), "kind": info.kind}
    eng = open_engine(path, "onnxruntime", threads)
    out["onnxruntime_ms"] = _time(eng, feeds[0])
    if Path(path).with_suffix(".pt").is_file():
        out["max_abs_diff_vs_torch"] = compare(path, feeds, threads)
        out["torch_ms"] = _time(open_engine(path, "torch", threads), feeds[0])
        out["ok"] = out["max_abs_diff_vs_torch"] <= CHECK_TOLERANCE
    else:
        out["ok"] = True
    return out


def _time(engine, feeds, reps=20) -> float:
    for _ in range(3):
        engine.run(dict(feeds))
    t = time.perf_counter()
    for _ in range(reps):
        engine.run(dict(feeds))
    return round((time.perf_counter() - t) / reps * 1000, 3)


def build(path, precision="fp16", cache_dir=None) -> str:
    """Build (or find) the TensorRT plan of ``path``; return where it is."""
    from .tensorrt import TensorRtEngine, require_qdq

    read_model(path)  # a missing or corrupt file says so first
    require_qdq(path, precision)
    if not TensorRtEngine.available():
        raise InputError("TensorRT and a CUDA GPU are needed to build a plan (none here); ONNX Runtime runs "
                         "the ONNX file as it is")
    eng = open_engine(path, "tensorrt", precision=precision, cache_dir=cache_dir)  # pragma: no cover
    return str(eng.plan_path)  # pragma: no cover
