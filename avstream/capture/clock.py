"""Sample-counting clock with drift tracking.

Capture times come from counting samples, t(n) = t0 + n / rate_hat, not from the wall clock
at read time: callbacks arrive with jitter, the sample count does not. ``rate_hat`` follows the
device clock (USB audio drifts by tens of ppm) by a least-squares fit of block arrival times
against sample counts; ``t0`` follows the lower envelope of arrivals (the least-delayed ones).
"""
from __future__ import annotations

import time
from collections import deque

import numpy as np


class SampleClock:
    """Maps stream sample indices to capture times on the UNIX epoch.

    Parameters
    ----------
    rate : float
        Nominal sample rate.
    window : int
        Arrival observations kept for the fit.
    """

    def __init__(self, rate: float, window: int = 512):
        self.nominal = float(rate)
        self.rate = float(rate)
        self._obs = deque(maxlen=window)
        self._t0 = None
        # monotonic -> epoch offset, measured once; monotonic time does not jump with NTP
        self.epoch_offset = time.time() - time.monotonic()

    def observe(self, end_index: int, arrival_monotonic: float) -> None:
        """A block ending at sample ``end_index`` (exclusive) arrived at this monotonic time."""
        self._obs.append((end_index, arrival_monotonic))
        if len(self._obs) >= 16:
            n = np.array([o[0] for o in self._obs], dtype=np.float64)
            t = np.array([o[1] for o in self._obs], dtype=np.float64)
            slope = np.polyfit(n - n[0], t - t[0], 1)[0]
            if slope > 0:
                rate = 1.0 / slope
                # accept only plausible drift (1 %); anything else is scheduling noise
                if abs(rate / self.nominal - 1.0) < 0.01:
                    self.rate = rate
        offset = arrival_monotonic - end_index / self.rate
        self._t0 = offset if self._t0 is None else min(self._t0 + 1e-6, offset)

    def stamp(self, index: int) -> float:
        """Capture time (UNIX epoch seconds) of sample ``index``."""
        t0 = self._t0 if self._t0 is not None else time.monotonic() - index / self.rate
        return self.epoch_offset + t0 + index / self.rate
