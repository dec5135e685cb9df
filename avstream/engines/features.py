"""Audio features the learned engines take, in NumPy only, so that training (torch) and the
node (ONNX Runtime, no torch) compute exactly the same numbers."""
from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=8)
def mel_filters(sample_rate: int, n_fft: int, n_mels: int, f_min: float = 50.0, f_max: float | None = None):
    """(n_mels, n_fft // 2 + 1) triangular filters on the HTK mel scale, float32."""
    f_max = f_max or sample_rate / 2
    mel = lambda f: 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)  # noqa: E731
    hz = lambda m: 700.0 * (10 ** (np.asarray(m) / 2595.0) - 1.0)  # noqa: E731
    edges = hz(np.linspace(mel(f_min), mel(f_max), n_mels + 2))
    freqs = np.arange(n_fft // 2 + 1) * sample_rate / n_fft
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None] - lo) / (mid - lo)
    down = (hi - freqs[None]) / (hi - mid)
    return np.maximum(0.0, np.minimum(up, down)).astype(np.float32)


def log_mel(x, sample_rate: int, n_fft: int = 512, hop: int = 256, n_mels: int = 40) -> np.ndarray:
    """Log-mel spectrogram of a mono signal, (n_mels, n_frames) float32, frames of ``n_fft``
    every ``hop`` samples (no padding: n_frames = 1 + (len(x) - n_fft) // hop), in log(1e-6 + power)
    with the signal scaled to unit RMS first, so the level of the sound does not matter (the
    gate in the engine stage looks after silence)."""
    x = np.asarray(x, dtype=np.float32)
    rms = float(np.sqrt(np.mean(x * x))) if x.size else 0.0
    x = x / max(rms, 1e-5)
    n = 1 + (len(x) - n_fft) // hop
    frames = np.lib.stride_tricks.as_strided(x, (n, n_fft), (x.strides[0] * hop, x.strides[0]))
    spec = np.fft.rfft(frames * np.hanning(n_fft + 1)[:-1].astype(np.float32), axis=1)
    power = (spec.real ** 2 + spec.imag ** 2).astype(np.float32)
    return np.log(1e-6 + mel_filters(sample_rate, n_fft, n_mels) @ power.T).astype(np.float32)


def n_frames(n_samples: int, n_fft: int = 512, hop: int = 256) -> int:
    return 1 + (n_samples - n_fft) // hop
