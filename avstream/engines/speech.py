"""Speech probabilities from the voice activity detector that silero-vad ships as ONNX (MIT).

One probability per update for the array's mono mix, and one per reported source on its
beamformed signal (delay-and-sum toward the source's peak), through the engine runtime. The
model is stateful and takes 512 new samples at 16 kHz (plus the last 64 of the previous call);
all the signals of an update run as one batch, each keeping its own state and context.
Sources have no identity yet (ranks, not tracks), so a source's state follows its rank.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np

from .runtime import open_engine

log = logging.getLogger(__name__)

RATE = 16000
CHUNK = 512  # new samples per call at 16 kHz
CONTEXT = 64  # samples of the previous call the model sees again
MODEL_NAME = "silero_vad.onnx"


def find_model() -> Path | None:
    """The shipped silero-vad ONNX file: the repository's engines/, the installed share/avstream/engines,
    or the silero-vad package if it is installed."""
    here = Path(__file__).resolve().parents[2] / "engines" / MODEL_NAME
    shared = Path(sys.prefix) / "share" / "avstream" / "engines" / MODEL_NAME
    for p in (here, shared):
        if p.is_file():
            return p
    try:
        import importlib.util

        spec = importlib.util.find_spec("silero_vad")
        if spec and spec.submodule_search_locations:
            p = Path(list(spec.submodule_search_locations)[0]) / "data" / MODEL_NAME
            if p.is_file():
                return p
    except (ImportError, ValueError):
        pass
    return None


class SpeechDetector:
    """Streaming speech probability for ``n_slots`` signals at once (slot 0: the mono mix).

    Parameters
    ----------
    n_slots : int
    path : str or None
        The silero-vad ONNX file (default: the shipped one).
    threads : int
    """

    def __init__(self, n_slots: int, path=None, threads: int = 1):
        path = path or find_model()
        if path is None:
            from ..errors import InputError

            raise InputError(f"speech engine: {MODEL_NAME} not found (it ships in the repository's engines/)")
        # always ONNX Runtime: the model is tiny and stateful, TensorRT would gain nothing
        self.engine = open_engine(path, backend="onnxruntime", threads=threads,
                                  expect={"input": (None, None), "state": (2, None, 128)})
        self.n_slots = n_slots
        self._sr = np.array(RATE, dtype=np.int64)
        self.reset()

    def reset(self):
        self._state = np.zeros((2, self.n_slots, 128), np.float32)
        self._context = np.zeros((self.n_slots, CONTEXT), np.float32)
        self._pending = np.zeros((self.n_slots, 0), np.float32)

    def process(self, new: np.ndarray) -> np.ndarray:
        """Feed (n_slots, n) new samples at 16 kHz; return each slot's mean speech probability over
        the 32 ms chunks completed (NaN for a slot when no chunk completed)."""
        x = np.concatenate([self._pending, new.astype(np.float32, copy=False)], axis=1)
        probs = []
        k = 0
        while x.shape[1] - k >= CHUNK:
            chunk = x[:, k:k + CHUNK]
            out = self.engine.run({"input": np.concatenate([self._context, chunk], axis=1),
                                   "state": self._state, "sr": self._sr})
            self._state = out["stateN"]
            self._context = chunk[:, -CONTEXT:].copy()
            probs.append(out["output"][:, 0])
            k += CHUNK
        self._pending = x[:, k:].copy()
        if not probs:
            return np.full(self.n_slots, np.nan, np.float32)
        return np.mean(probs, axis=0).astype(np.float32)


def to_16k(x: np.ndarray, rate: int) -> np.ndarray:
    """(..., n) samples at ``rate`` resampled to 16 kHz (polyphase)."""
    if rate == RATE:
        return x
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(RATE, int(rate))
    return resample_poly(x, RATE // g, int(rate) // g, axis=-1).astype(np.float32)


def mono_mix(array, samples: np.ndarray) -> np.ndarray:
    """The array's omnidirectional signal: the microphones' mean, or W on an ambisonic array."""
    return samples[0] if array.ambisonic else samples.mean(axis=0)
