"""Streaming short-time Fourier transform kernel.

Pure Numba: arrays in, arrays out, no Python objects. The FFT is numpy.fft inside Numba via
rocket-fft (measured about twice as fast as a scipy.fft call from Python for 16 x 512).
"""
import numpy as np
import rocket_fft  # noqa: F401  (registers numpy.fft for Numba)
from numba import njit


@njit(cache=True)
def stft_push(buf, fill, block, window, hop, out, seg):
    """Append a block to the overlap buffer and emit every complete frame.

    Parameters
    ----------
    buf : ndarray (n_ch, capacity) float32
        Overlap state: the first ``fill`` samples are pending input. ``capacity`` must be at
        least ``frame + block.shape[1]``.
    fill : int
        Valid samples in ``buf``.
    block : ndarray (n_ch, n) float32
        New samples.
    window : ndarray (frame,) float32
        Analysis window, already scaled (e.g. divided by its sum, as scipy.signal.stft does).
    hop : int
        Frame advance in samples.
    out : ndarray (max_frames, n_ch, frame // 2 + 1) complex64
        Receives the frames; must hold ``(fill + n - frame) // hop + 1`` of them.
    seg : ndarray (n_ch, frame) float32
        Work buffer for the windowed frame. (The FFT itself returns a new array per frame:
        rocket-fft's numpy.fft has no ``out`` argument; it is allocated inside Numba, no
        Python object.)

    Returns
    -------
    fill : int
        Pending samples left in ``buf`` after the call.
    n_frames : int
        Frames written to ``out``.
    consumed : int
        Samples dropped from the front of ``buf`` (the advance of the first pending sample).
    """
    n_ch, n = block.shape
    frame = window.shape[0]
    buf[:, fill:fill + n] = block
    fill += n
    pos = 0
    k = 0
    while fill - pos >= frame:
        for c in range(n_ch):
            for t in range(frame):
                seg[c, t] = buf[c, pos + t] * window[t]
        out[k] = np.fft.rfft(seg)
        pos += hop
        k += 1
    if pos > 0:
        rest = fill - pos
        for c in range(n_ch):  # moving left: a forward copy in place is safe
            for t in range(rest):
                buf[c, t] = buf[c, pos + t]
        fill = max(rest, 0)
    return fill, k, pos
