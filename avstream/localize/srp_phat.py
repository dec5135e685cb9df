"""SRP-PHAT: steered response power with the phase transform, from GCC-PHAT on a lag grid."""
from __future__ import annotations

import numpy as np

from ..geometry.arrays import baseline_groups
from ..kernels.srp import accumulate_cross_spectra, gcc, lag_basis, steered_power
from .base import Localizer, register


@register("srp_phat")
class SrpPhat(Localizer):
    min_power = 0.05  # mean PHAT coherence; diffuse noise and sensor noise stay below (measured 0.03-0.04 at p90)
    """SRP-PHAT over the grid.

    Pairs sharing a baseline are summed before the search (24 groups instead of 120 pairs on
    a 4x4 grid). The GCC of each group is evaluated on a lag grid of 32 points per period of
    the highest band frequency, over the lags its directions use; every direction then looks
    up its nearest lag in each group.
    """

    def _configure(self):
        pos = self.array.positions
        self.pair_i, self.pair_j, self.pair_group, baselines, _ = baseline_groups(pos)
        n_groups = len(baselines)
        max_tau = np.max(np.linalg.norm(baselines, axis=1)) / self.c
        step = 1.0 / (32.0 * self.band_freqs[-1])
        half = int(np.ceil(max_tau / step)) + 2
        lags = (np.arange(2 * half + 1) - half) * step
        self.basis = lag_basis(self.band_freqs, lags)
        self.center = float(half)
        if len(lags) >= np.iinfo(np.int16).max:
            raise ValueError("array too large for the lag table (more than 32767 lags)")
        # lag index of direction u for group g: center + steer[g] . u
        self.steer = np.ascontiguousarray(-baselines / (self.c * step))
        self.lag_idx = np.ascontiguousarray(np.rint(self.center + self.steer @ self.grid.directions.T).astype(np.int16))
        # the lags each group's directions look up (a group's GCC is computed over these alone)
        self.lag_lo = self.lag_idx.min(axis=1).astype(np.int64)
        self.lag_hi = self.lag_idx.max(axis=1).astype(np.int64) + 1
        n_band = self.hi - self.lo
        self.cross = np.zeros((n_groups, 2 * n_band), dtype=np.float32)
        self._white = np.zeros((2, self.array.n_mics, n_band), dtype=np.float32)
        self.gcc = np.zeros((n_groups, len(lags)), dtype=np.float32)
        self._weight = 0.0

    def _accumulate(self, frames, weights):
        accumulate_cross_spectra(frames, self.lo, self.hi, self.pair_i, self.pair_j, self.pair_group,
                                 self.cross, weights, self._white)
        self._weight += float(weights.sum())

    def _compute(self, out):
        if self._weight <= 0.0:
            return False
        gcc(self.cross, self.basis, self.lag_lo, self.lag_hi, self.gcc)
        self._scale = 1.0 / (self._weight * len(self.pair_i) * (self.hi - self.lo))
        steered_power(self.gcc, self.lag_idx, self._scale, out)
        self.cross[:] = 0.0
        self._weight = 0.0
        return True
