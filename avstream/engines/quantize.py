"""INT8: an audio-visual engine quantized on the user's own recordings.

TensorRT builds INT8 plans from ONNX files with explicit QuantizeLinear/DequantizeLinear (Q/DQ)
nodes (its preferred way since TensorRT 10: the scales travel with the file, no calibration
cache on the GPU). ONNX Runtime's static quantization writes such a file from calibration
inputs, and runs it on a CPU too. The calibration inputs are the engine's own inputs on the
user's recordings: each recording folder is replayed through the pipeline with the FP32
engine, and the inputs it was fed (picture and log-mel) are kept. Symmetric INT8 for
activations and per-channel weights, as TensorRT wants them, the weights in a 7-bit range so
ONNX Runtime's CPU kernels do not saturate on processors without VNNI.

    avstream engines quantize engines/mine.onnx rec1 rec2 --out engines/mine.int8.onnx
    avstream engines build engines/mine.int8.onnx --precision int8     # TensorRT, on a GPU
    avstream run --engine engines/mine.int8.onnx --set engine.precision=int8 ...
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from ..errors import InputError
from .runtime import META_PREFIX, read_model

log = logging.getLogger(__name__)


def is_quantized(path) -> bool:
    """Whether an ONNX file holds Q/DQ nodes (what a TensorRT INT8 build needs)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node)


def calibration_feeds(engine, folders, per_folder=32, overrides=None) -> list:
    """The inputs ``engine`` is fed on each recording folder (at most ``per_folder`` updates of
    each, spread over it): a list of {input name: array}."""
    from ..capture.recording import Recording
    from ..config import load_config
    from ..pipeline import Pipeline

    feeds = []
    for folder in folders:
        rec = Recording(folder)
        cfg = load_config(None, {"source.kind": "recording", "source.path": str(rec.folder), "source.realtime": False,
                                 "duration": None, "engine.path": str(engine), "engine.backend": "onnxruntime",
                                 "engine.speech": "off", "ros.publish": False, "zmq.endpoint": None,
                                 "output.overlay": None, **(overrides or {})})
        pipe = Pipeline(cfg, [])
        got = []
        pipe.engines.av.tap = lambda f: got.append({k: np.array(v) for k, v in f.items()})
        pipe.run_sync()
        if not got:
            raise InputError(f"{rec.folder}: the engine never ran (no camera frame, or the audio was gated off "
                             f"as silent)")
        keep = np.unique(np.linspace(0, len(got) - 1, min(per_folder, len(got))).round().astype(int))
        feeds += [got[k] for k in keep]
        log.info("quantize: %s: %d of %d updates kept for calibration", rec.folder, len(keep), len(got))
    return feeds


def quantize(engine, folders, out, per_folder=32, overrides=None) -> dict:
    """Write the INT8 (Q/DQ) version of ``engine`` to ``out``, calibrated on ``folders``; the
    avstream metadata is carried over. Returns what was done and how far the INT8 outputs are
    from the FP32 ones on the calibration inputs."""
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    engine, out = Path(engine), Path(out)
    info = read_model(engine)
    if info.kind != "av":
        raise InputError(f"{engine}: only audio-visual engines are quantized here (kind '{info.kind}')")
    if out.resolve() == engine.resolve():
        raise InputError(f"--out {out}: would overwrite the FP32 engine it is made from")
    if is_quantized(engine):
        raise InputError(f"{engine}: already quantized")
    feeds = calibration_feeds(engine, folders, per_folder, overrides)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(feeds)

        def get_next(self):
            return next(self.it, None)

    reader = Reader()
    tmp = out.with_name(out.name + ".partial")
    try:
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # its advice to pre-process goes to the root logger: not ours to print
        try:
            # reduce_range: 7-bit weights. ONNX Runtime's INT8 convolutions on x86 CPUs without
            # VNNI (AVX2 only) add pairs of 8-bit products in 16 bits, which saturate with full
            # 8-bit weights: on such a CPU the outputs were up to 0.80 from FP32 (pointing 1.00 ->
            # 0.84 on the unseen scenes), against 0.10 with 7 bits; TensorRT loses nothing by it
            quantize_static(str(engine), str(tmp), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                            reduce_range=True,
                            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                            extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})
        finally:
            root.setLevel(level)
        model = onnx.load(str(tmp))
        src = onnx.load(str(engine), load_external_data=False)
        del model.metadata_props[:]
        for p in src.metadata_props:
            model.metadata_props.add(key=p.key, value=p.value)
        model.metadata_props.add(key=META_PREFIX + "quantized",
                                 value=json.dumps({"from": engine.name, "calibration_updates": len(feeds),
                                                   "format": "QDQ int8 symmetric, per-channel 7-bit-range weights"}))
        onnx.save(model, str(tmp))
        # how far INT8 is from FP32 on what it was calibrated on
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 2
        a = ort.InferenceSession(str(engine), opts, providers=["CPUExecutionProvider"])
        b = ort.InferenceSession(str(tmp), opts, providers=["CPUExecutionProvider"])
        worst = {}
        for f in feeds[:: max(1, len(feeds) // 16)]:
            for name, x, y in zip([o.name for o in a.get_outputs()], a.run(None, f), b.run(None, f)):
                worst[name] = max(worst.get(name, 0.0), float(np.max(np.abs(x - y))))
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return {"out": str(out), "from": str(engine), "calibration_updates": len(feeds),
            "bytes": out.stat().st_size, "fp32_bytes": engine.stat().st_size,
            "max_abs_diff_vs_fp32": {k: round(v, 4) for k, v in worst.items()}}
