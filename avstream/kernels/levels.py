"""Input checks in one pass: pick the microphone channels, replace NaN/Inf, measure the peak."""
import numpy as np
from numba import njit


@njit(cache=True)
def select_and_scan(block, mic_channels, n, out):
    """Copy ``block[mic_channels[m], :n]`` to ``out[m, :n]``, zeroing non-finite samples.

    Returns
    -------
    n_nonfinite : int
        Samples that were NaN or Inf.
    first_bad, last_bad : int
        Column of the first and the last of them (-1 when there are none).
    peak : float
        Largest absolute finite sample (0.0 for silence).
    """
    n_bad = 0
    first_bad = -1
    last_bad = -1
    peak = 0.0
    for m in range(mic_channels.shape[0]):
        c = mic_channels[m]
        for t in range(n):
            v = block[c, t]
            if not np.isfinite(v):
                n_bad += 1
                if first_bad < 0 or t < first_bad:
                    first_bad = t
                if t > last_bad:
                    last_bad = t
                v = 0.0
            out[m, t] = v
            a = abs(v)
            if a > peak:
                peak = a
    return n_bad, first_bad, last_bad, peak


@njit(cache=True)
def accumulate_levels(mics, sumsq, peak):
    """sumsq[m] += the sum of squares of ``mics[m]``; peak[m] = max(peak[m], its largest |sample|)
    (the input meters, one call per block)."""
    for m in range(mics.shape[0]):
        s = 0.0
        p = peak[m]
        for t in range(mics.shape[1]):
            v = float(mics[m, t])
            s += v * v
            a = abs(v)
            if a > p:
                p = a
        sumsq[m] += s
        peak[m] = p


@njit(cache=True)
def read_meters(sumsq, peak, n, out):
    """out[0] = RMS and out[1] = peak of each microphone over the ``n`` samples the meters hold,
    in dB full scale to 0.1 dB (-200 for silence); then zero the meters."""
    for m in range(sumsq.shape[0]):
        out[0, m] = round(20.0 * np.log10(max(np.sqrt(sumsq[m] / n), 1e-10)), 1)
        out[1, m] = round(20.0 * np.log10(max(peak[m], 1e-10)), 1)
        sumsq[m] = 0.0
        peak[m] = 0.0
