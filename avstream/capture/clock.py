"""Sample-counting clock with drift tracking.

Capture times come from counting samples, t(n) = t_ref + (n - n_ref) / rate_hat, not from the
wall clock at read time: callbacks arrive with jitter, the sample count does not. ``rate_hat``
follows the device clock (USB audio drifts by tens of ppm) through the least-delayed block
arrivals at both ends of the last 512 blocks; the mapping follows the lower envelope of
arrivals (the least-delayed ones).

The mapping is re-anchored at the newest sample on every block, so a new rate estimate turns it
about "now", not about the first sample of the run (where 0.1 % of rate is 30 ms after 30 s), and
it moves back by at most half a block at a time: on a loaded machine, where arrivals come late and
then early, each block's stamp still follows the one before it.
"""
from __future__ import annotations

import time

import numpy as np

from .ring import PairHistory


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
        self._obs = PairHistory(window)  # (end index, arrival) of the newest blocks
        self._ref = None  # (sample index, monotonic time of its capture)
        self._last_n = 0  # samples in the last block observed
        # monotonic -> epoch offset, measured once; monotonic time does not jump with NTP
        self.epoch_offset = time.time() - time.monotonic()

    def observe(self, end_index: int, arrival_monotonic: float) -> None:
        """A block ending at sample ``end_index`` (exclusive) arrived at this monotonic time."""
        if self._ref is None:
            self._obs.append(end_index, arrival_monotonic)
            self._ref = (end_index, arrival_monotonic)
            return
        head = self._map(end_index)  # the newest sample on the mapping so far
        n = end_index - self._ref[0]
        self._obs.append(end_index, arrival_monotonic)
        if self._obs.n >= 16:
            self._fit_rate()
        # a block arrives after its last sample was captured: the earliest arrivals bound the
        # mapping from above; otherwise it creeps forward by 200 ppm of the block, in case it is
        # early (a rate fit pulled off by a burst of late arrivals runs it early by tens of ppm)
        target = min(head + 2e-4 * n / self.rate, arrival_monotonic)
        # back by at most half a block (the previous one, or this one if shorter: after a gap the
        # index jumps, and the block that holds the jump must not count as long): the stamps of
        # successive blocks stay in order
        self._ref = (end_index, max(target, head - 0.5 * min(self._last_n, n) / self.rate))
        self._last_n = n

    def _fit_rate(self) -> None:
        """The rate through the least-delayed arrival of the oldest quarter of the window and that
        of the newest: arrivals are only ever late, so these lie on the device's clock, while a
        least-squares fit through all of them leans with every burst of late ones."""
        idx, t = self._obs.newest()
        late = t - idx / self.nominal
        q = len(idx) // 4
        a, b = int(np.argmin(late[:q])), len(idx) - q + int(np.argmin(late[-q:]))
        if idx[b] - idx[a] < 2.0 * self.nominal:  # under 2 s apart: a ms of jitter is > 500 ppm
            return
        rate = (idx[b] - idx[a]) / (t[b] - t[a])
        # accept only plausible drift (1 %); anything else is scheduling noise
        if abs(rate / self.nominal - 1.0) < 0.01:
            self.rate = rate

    def _map(self, index: int) -> float:
        i_ref, t_ref = self._ref
        return t_ref + (index - i_ref) / self.rate

    def stamp(self, index: int) -> float:
        """Capture time (UNIX epoch seconds) of sample ``index``."""
        t = self._map(index) if self._ref is not None else time.monotonic()
        return self.epoch_offset + t
