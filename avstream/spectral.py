"""Streaming STFT stage: audio blocks in, STFT frames with their sample indices out."""
from __future__ import annotations

import numpy as np
from scipy.signal import get_window

from .kernels.stft import stft_push

WINDOWS = ("hann", "hamming")


class StreamingSTFT:
    """STFT over a stream of blocks with exact overlap state between them.

    Frame k covers stream samples [k * hop, k * hop + frame) and equals the matching column of
    ``scipy.signal.stft(x, window=w, nperseg=frame, noverlap=frame - hop, boundary=None,
    padded=False)`` (same window, same 1 / sum(window) scaling).

    Parameters
    ----------
    n_channels, frame, hop : int
    window : {"hann", "hamming"}
    max_block : int
        Largest block passed to ``push``; bigger blocks are split.
    """

    def __init__(self, n_channels: int, frame: int, hop: int, window: str = "hann", max_block: int = 4096):
        if window not in WINDOWS:
            raise ValueError(f"window must be one of {WINDOWS}")
        self.n_channels, self.frame, self.hop = n_channels, frame, hop
        w = get_window(window, frame)  # periodic, as scipy.signal.stft uses
        self.window = (w / w.sum()).astype(np.float32)
        self.max_block = max_block
        self.n_freq = frame // 2 + 1
        self._buf = np.zeros((n_channels, frame + max_block), dtype=np.float32)
        self._seg = np.zeros((n_channels, frame), dtype=np.float32)
        self._fill = 0
        self._first = 0  # stream index of buf[:, 0]
        self._out = np.zeros(((frame + max_block) // hop + 1, n_channels, self.n_freq), dtype=np.complex64)

    def reset(self):
        self._fill = 0
        self._first = 0

    def push(self, block: np.ndarray):
        """Feed samples (n_ch, n) float32; yield ``(start_index, frames)`` chunks.

        ``frames`` is a view (n_frames, n_ch, n_freq) valid until the next call; frame k of a
        chunk starts at stream sample ``start_index + k * hop``.
        """
        for s in range(0, block.shape[1], self.max_block):
            part = np.ascontiguousarray(block[:, s:s + self.max_block], dtype=np.float32)
            first = self._first
            self._fill, n, consumed = stft_push(self._buf, self._fill, part, self.window, self.hop, self._out,
                                                        self._seg)
            self._first += consumed
            if n:
                yield first, self._out[:n]

    def frequencies(self, sample_rate: float) -> np.ndarray:
        return np.arange(self.n_freq) * sample_rate / self.frame
