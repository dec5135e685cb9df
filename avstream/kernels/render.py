"""Fractional-delay rendering of point sources onto an array (synthetic scenes)."""
import numpy as np
from numba import njit


@njit(cache=True, fastmath=True)
def render_delayed(history, hist_end, delays_start, delays_end, gain, out, half_taps, sub):
    """Add a source delayed per microphone to ``out``, by windowed-sinc interpolation.

    Parameters
    ----------
    history : ndarray (H,) float64
        Source signal; ``history[H - 1]`` is the sample at stream index ``hist_end - 1``.
    hist_end : int
        Stream index one past the newest source sample.
    delays_start, delays_end : ndarray (M,) float64
        Delay of each microphone in samples at the first and one past the last output sample;
        linearly interpolated between them (moving sources). Must exceed ``half_taps``.
    gain : float
    out : ndarray (M, n) float32
        Output block ending at stream index ``hist_end`` (exclusive); added to.
    half_taps : int
        Half length of the interpolation filter (Blackman-windowed sinc).
    sub : int
        Samples per filter update: the delay is held constant over ``sub`` samples.
    """
    n_mics, n = out.shape
    h_len = history.shape[0]
    taps = np.empty(2 * half_taps)
    for m in range(n_mics):
        for s0 in range(0, n, sub):
            s1 = min(s0 + sub, n)
            frac_pos = (s0 + s1) * 0.5 / n
            delay = delays_start[m] + (delays_end[m] - delays_start[m]) * frac_pos
            d_int = int(np.floor(delay))
            frac = delay - d_int
            # taps for offsets k = -half+1 .. half: weight of x[t - d_int - k + ...]
            for k in range(2 * half_taps):
                x = k - half_taps + 1 - frac
                w = 0.42 + 0.5 * np.cos(np.pi * x / half_taps) + 0.08 * np.cos(2 * np.pi * x / half_taps)
                if abs(x) >= half_taps:
                    w = 0.0
                taps[k] = w * (np.sin(np.pi * x) / (np.pi * x) if abs(x) > 1e-9 else 1.0)
            for t in range(s0, s1):
                # stream index of output sample t
                idx = hist_end - n + t
                acc = 0.0
                for k in range(2 * half_taps):
                    src = idx - d_int - (k - half_taps + 1)
                    h = h_len - (hist_end - src)
                    if 0 <= h < h_len:
                        acc += taps[k] * history[h]
                out[m, t] += gain * acc
