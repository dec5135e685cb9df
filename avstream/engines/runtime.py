"""One engine runtime, three backends: TensorRT (GPU), ONNX Runtime (CUDA or CPU), torch (eager).

Every engine is an ONNX file. ``open_engine`` reads it once (its inputs, outputs and avstream
metadata), checks it against what the caller needs (input names and shapes, refused by name
when they differ), and hands it to a backend from the registry; ``Engine.run`` then only binds
arrays and runs. ``auto`` takes TensorRT when it and a CUDA GPU are present, else ONNX Runtime
(its CUDA provider when present, else the CPU with ``threads`` threads). ``torch`` rebuilds the
network from the checkpoint saved beside the ONNX file (``NAME.pt``): the reference the others
are checked against, and the one training uses.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError

log = logging.getLogger(__name__)

BACKENDS: dict = {}
META_PREFIX = "avstream."


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple  # ints, or None/str for a dynamic dimension
    dtype: str  # numpy dtype name


@dataclass
class ModelInfo:
    """What an ONNX file holds, read once."""

    path: Path
    sha256: str
    inputs: list
    outputs: list
    metadata: dict = field(default_factory=dict)  # avstream.* keys, JSON-decoded

    @property
    def kind(self) -> str:
        return self.metadata.get("kind", "unknown")

    def input(self, name) -> TensorSpec:
        return next(t for t in self.inputs if t.name == name)


_ORT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(int64)": "int64",
              "tensor(int32)": "int32", "tensor(uint8)": "uint8", "tensor(bool)": "bool"}


def read_model(path) -> ModelInfo:
    """Inputs, outputs and metadata of an ONNX file; a clear error when it is missing or corrupt."""
    from .cache import file_sha256

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: engine file not found")
    try:
        import onnxruntime as ort
    except ImportError:
        raise InputError(f"{path}: engines need ONNX Runtime (pip install 'avstream[engines]')") from None
    try:
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for bad files
        raise InputError(f"{path}: not a readable ONNX model ({str(exc).splitlines()[0][:200]})") from None
    meta = {}
    for k, v in sess.get_modelmeta().custom_metadata_map.items():
        if k.startswith(META_PREFIX):
            try:
                meta[k[len(META_PREFIX):]] = json.loads(v)
            except ValueError:
                meta[k[len(META_PREFIX):]] = v

    def specs(items):
        return [TensorSpec(i.name, tuple(d if isinstance(d, int) else None for d in i.shape),
                           _ORT_TYPES.get(i.type, i.type)) for i in items]

    return ModelInfo(path, file_sha256(path), specs(sess.get_inputs()), specs(sess.get_outputs()), meta)


def check_inputs(info: ModelInfo, expected: dict) -> None:
    """Refuse a model whose inputs differ from ``expected`` {name: shape} (None = any size),
    naming the input at fault."""
    have = {t.name: t for t in info.inputs}
    for name, shape in expected.items():
        if name not in have:
            raise InputError(f"{info.path}: the model has no input '{name}' (inputs: "
                             f"{', '.join(have) or 'none'}); a {info.kind} engine needs {_fmt(expected)}")
        got = have[name].shape
        ok = len(got) == len(shape) and all(e is None or g is None or g == e for g, e in zip(got, shape))
        if not ok:
            raise InputError(f"{info.path}: input '{name}' has shape {_fmt_shape(got)}, expected "
                             f"{_fmt_shape(shape)}")


def _fmt_shape(shape) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def _fmt(expected) -> str:
    return ", ".join(f"'{n}' {_fmt_shape(s)}" for n, s in expected.items())


def importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def register_backend(name):
    def deco(cls):
        cls.name = name
        BACKENDS[name] = cls
        return cls

    return deco


class Engine:
    """A loaded model on one backend. ``run({input: array}) -> {output: array}``."""

    name = "base"

    def __init__(self, info: ModelInfo, threads: int = 2, precision: str = "fp16", cache_dir=None):
        self.info = info

    @classmethod
    def available(cls) -> bool:
        return False

    def run(self, feeds: dict) -> dict:
        raise NotImplementedError

    def describe(self) -> str:
        return self.name


@register_backend("onnxruntime")
class OnnxRuntimeEngine(Engine):
    """ONNX Runtime: the CUDA provider when present, else the CPU with ``threads`` threads."""

    def __init__(self, info, threads=2, precision="fp16", cache_dir=None):
        import onnxruntime as ort

        super().__init__(info)
        so = ort.SessionOptions()
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        # ONNX Runtime's worker threads spin between runs by default: at camera rate on a robot
        # that burned a whole core for nothing (118-131% of one core against 35% without spinning)
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.add_session_config_entry("session.inter_op.allow_spinning", "0")
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider")
                     if p in ort.get_available_providers()]
        self.session = ort.InferenceSession(str(info.path), so, providers=providers)
        self.providers = self.session.get_providers()
        self._outputs = [o.name for o in self.session.get_outputs()]

    @classmethod
    def available(cls) -> bool:
        return importable("onnxruntime")

    def run(self, feeds):
        return dict(zip(self._outputs, self.session.run(self._outputs, feeds)))

    def describe(self) -> str:
        return f"onnxruntime ({self.providers[0]})"


@register_backend("torch")
class TorchEngine(Engine):
    """torch eager, from the checkpoint beside the ONNX file: the reference."""

    def __init__(self, info, threads=2, precision="fp16", cache_dir=None):
        super().__init__(info)
        try:
            import torch
        except ImportError:
            raise InputError("the torch backend needs PyTorch (pip install 'avstream[train]')") from None
        from ..models import load_checkpoint

        ckpt = info.path.with_suffix(".pt")
        if not ckpt.is_file():
            raise InputError(f"{ckpt}: the torch backend needs the checkpoint saved beside {info.path.name}")
        torch.set_num_threads(int(threads))
        self.model = load_checkpoint(ckpt)
        self._torch = torch

    @classmethod
    def available(cls) -> bool:
        return importable("torch")

    def run(self, feeds):
        t = self._torch
        with t.inference_mode():
            out = self.model(*(t.from_numpy(np.ascontiguousarray(feeds[i.name])) for i in self.info.inputs))
        names = [o.name for o in self.info.outputs]
        out = out if isinstance(out, (tuple, list)) else (out,)
        return {n: o.numpy() for n, o in zip(names, out)}


def open_engine(path, backend="auto", threads=2, precision="fp16", cache_dir=None, expect=None) -> Engine:
    """Load an engine file on a backend.

    Parameters
    ----------
    path : str, Path or ModelInfo
        The ONNX file (or what read_model already read of it).
    backend : {"auto", "tensorrt", "onnxruntime", "torch"}
    threads : int
        ONNX Runtime and torch CPU threads.
    precision : {"fp16", "fp32", "int8"}
        TensorRT plans.
    cache_dir : str or None
        TensorRT plan cache (default ~/.cache/avstream/engines).
    expect : dict or None
        {input name: shape} the caller feeds; a model that differs is refused by name.
    """
    from . import tensorrt  # noqa: F401  (registers "tensorrt")

    info = path if isinstance(path, ModelInfo) else read_model(path)
    if expect:
        check_inputs(info, expect)
    if backend == "auto":
        backend = "tensorrt" if BACKENDS["tensorrt"].available() else "onnxruntime"
    if backend not in BACKENDS:
        raise InputError(f"unknown engine backend '{backend}' (known: auto, {', '.join(sorted(BACKENDS))})")
    cls = BACKENDS[backend]
    if not cls.available():
        raise InputError(f"engine backend {backend} is not available here"
                         + (" (needs TensorRT and a CUDA GPU)" if backend == "tensorrt" else ""))
    engine = cls(info, threads=threads, precision=precision, cache_dir=cache_dir)
    log.info("engine %s%s on %s", info.path.name, f" ({info.kind})" if info.metadata else "", engine.describe())
    return engine
