"""The TensorRT backend. UNTESTED HERE: no GPU exists on the development machines or in CI.

It is kept thin on purpose. The plan comes from the cache (cache.py), keyed by the ONNX file's
hash, the TensorRT version, the GPU's name and compute capability, the precision and the input
shapes; a plan TensorRT cannot deserialize is dropped from the cache and rebuilt once. Buffers
are torch CUDA tensors (torch is on every Jetson image; cuda-python would do the same).
INT8 builds take an ONNX file with explicit Q/DQ nodes (TensorRT 10's preferred way), which
``avstream engines quantize`` (quantize.py, tested here on ONNX Runtime's CPU) makes from the
user's recordings; a plain file is refused for INT8 with that advice.
"""
from __future__ import annotations

import numpy as np

from ..errors import InputError
from .cache import PlanCache, PlanKey
from .runtime import Engine, register_backend


def _gpu():
    """(name, compute capability) of GPU 0, or None."""
    try:
        import torch

        if torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability(0)
            return torch.cuda.get_device_name(0), f"{major}.{minor}"
    except ImportError:
        pass
    return None


def plan_key(info, trt_version, gpu, precision) -> PlanKey:
    shapes = tuple((t.name, tuple(-1 if d is None else d for d in t.shape)) for t in info.inputs)
    return PlanKey(info.sha256, trt_version, gpu[0], gpu[1], precision, shapes)


def require_qdq(path, precision):
    """INT8 plans are built from Q/DQ files only (no implicit calibration on the GPU)."""
    from .quantize import is_quantized

    if precision == "int8" and not is_quantized(path):
        raise InputError(f"{path}: INT8 needs a quantized file (QuantizeLinear/DequantizeLinear nodes); make one "
                         f"from your recordings: avstream engines quantize {path} REC [REC ...] --out NAME.int8.onnx")


def build_plan(onnx_bytes: bytes, precision: str, trt) -> bytes:  # pragma: no cover - needs a GPU
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_bytes):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise InputError(f"TensorRT cannot parse the ONNX file: {errors}")
    config = builder.create_builder_config()
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    elif precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise InputError("TensorRT could not build a plan for this model")
    return bytes(plan)


@register_backend("tensorrt")
class TensorRtEngine(Engine):  # pragma: no cover - needs TensorRT and a GPU
    def __init__(self, info, threads=2, precision="fp16", cache_dir=None):
        super().__init__(info)
        import tensorrt as trt
        import torch

        require_qdq(info.path, precision)

        cache = PlanCache(cache_dir)
        key = plan_key(info, trt.__version__, _gpu(), precision)
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        build = lambda: build_plan(info.path.read_bytes(), precision, trt)  # noqa: E731
        engine = runtime.deserialize_cuda_engine(cache.get_or_build(key, build))
        if engine is None:  # stale despite its key (a driver update): rebuild once
            cache.invalidate(key)
            engine = runtime.deserialize_cuda_engine(cache.get_or_build(key, build))
        self.engine, self.context = engine, engine.create_execution_context()
        self._torch, self._stream = torch, torch.cuda.Stream()
        self.plan_path = cache.paths(key)[0]

    @classmethod
    def available(cls) -> bool:
        try:
            import tensorrt  # noqa: F401
        except ImportError:
            return False
        return _gpu() is not None

    def run(self, feeds):
        t = self._torch
        for name, value in feeds.items():
            x = t.from_numpy(np.ascontiguousarray(value)).cuda()
            self.context.set_input_shape(name, tuple(x.shape))
            self.context.set_tensor_address(name, x.data_ptr())
            feeds[name] = x  # keep it alive until the run ends
        outs = {}
        for o in self.info.outputs:
            shape = tuple(self.context.get_tensor_shape(o.name))
            outs[o.name] = t.empty(shape, dtype=t.float32, device="cuda")
            self.context.set_tensor_address(o.name, outs[o.name].data_ptr())
        self.context.execute_async_v3(self._stream.cuda_stream)
        self._stream.synchronize()
        return {k: v.cpu().numpy() for k, v in outs.items()}

    def describe(self) -> str:
        return f"tensorrt ({self.plan_path.name})"
