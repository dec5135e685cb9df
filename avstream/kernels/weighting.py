"""Frame weighting by onset: the precedence effect in one kernel.

In a room the direct sound reaches the array before its reflections, so frames where the
band energy rises carry cleaner direction evidence than the reverberant tail after them.
Weighting frames by ``floor + clip(E / E_ref - 1, 0, cap)``, with E_ref the mean band energy of
the previous frames, moved the elevation found on the real 250 cm ReSpeaker recordings from
34 to 24-26 degrees (truth 20). The floor keeps stationary sources (a siren, a machine) in the
map: a constant weight does not change a normalised map.
"""
import numpy as np
from numba import njit


@njit(cache=True)
def onset_gain(e, ref, floor, cap):
    """floor + clip(e / ref - 1, 0, cap): the weight of energy ``e`` against its reference."""
    r = e / ref - 1.0 if ref > 1e-30 else 0.0
    if r < 0.0:
        r = 0.0
    if r > cap:
        r = cap
    return floor + r


@njit(cache=True)
def onset_weights(spec, lo, hi, history, floor, cap, weights):
    """Multiply ``weights`` by the onset weight of each frame and update ``history``.

    Parameters
    ----------
    spec : ndarray (n_frames, M, n_freq) complex64
    lo, hi : int
        Band as bin indices [lo, hi).
    history : ndarray (n_ref + 1,) float64
        Band energies of the last n_ref frames in history[1:], and in history[0] how many of
        them are valid. Updated in place.
    floor, cap : float
    weights : ndarray (n_frames,) float32
        Zero for frames to skip; multiplied in place. Skipped frames (samples that were
        replaced, not heard) stay out of ``history``, so the first good frame after them is
        compared with the audio before them, not with the zeros.
    """
    n_frames, n_mics, _ = spec.shape
    n_ref = history.shape[0] - 1
    for k in range(n_frames):
        if weights[k] == 0.0:
            continue
        e = 0.0
        for m in range(n_mics):
            for f in range(lo, hi):
                x = spec[k, m, f]
                e += x.real * x.real + x.imag * x.imag
        n_valid = int(history[0])
        if n_valid == 0:
            ref = e
        else:
            ref = 0.0
            for j in range(n_valid):
                ref += history[1 + j]
            ref /= n_valid
        weights[k] *= onset_gain(e, ref, floor, cap)
        for j in range(n_ref - 1, 0, -1):
            history[1 + j] = history[j]
        history[1] = e
        if n_valid < n_ref:
            history[0] = n_valid + 1
