"""SRP-PHAT: steered response power with the phase transform, from GCC-PHAT on a lag grid."""
from __future__ import annotations

import numpy as np

from ..geometry.arrays import baseline_groups
from ..kernels.srp import accumulate_cross_spectra, gcc, lag_basis, merge_bins, steered_power
from .base import Localizer, register


MERGE_RAD = 0.4  # rad: how far a merged bin's phase may stray from its run's centre at the largest lag
MAX_MERGE = 8  # bins per run at most


@register("srp_phat")
class SrpPhat(Localizer):
    """SRP-PHAT over the grid.

    Pairs sharing a baseline are summed before the search (24 groups instead of 120 pairs on
    a 4x4 grid). Runs of up to MAX_MERGE adjacent bins are summed too, as long as their phases
    at the largest lag stay within MERGE_RAD of the run's centre frequency, where the GCC
    evaluates them: a plane wave's GCC keeps its peak where it was (the run is symmetric about
    its centre) and loses at most 3% of its height, at the longest baseline's end-fire lag (on
    UMA-16 at 16 kHz, frame 512: runs of 8, the GCC an eighth of the work; W2 with a band to 8 kHz
    0.46 -> 0.34-0.38 ms an update, its errors within 0.1 degrees). The GCC of each group is
    evaluated on a lag grid of 32 points per period of the highest band frequency, over the lags
    its directions use; every direction then looks up its nearest lag in each group.
    """

    min_power = 0.05  # mean PHAT coherence; diffuse noise and sensor noise stay below (measured 0.03-0.04 at p90)
    # diffuse noise and reverberation lift the whole map (the demo's mean 0.12 under peaks of
    # 0.6): there the grating lobe of UMA-16 at 0.27 stood at 0.45 of the strongest peak and had
    # a track in 43 of 77 updates. Heights above 0.7 of the map's mean: no track (a raw peak in
    # 13). Above the whole mean: a raw peak in 1, but true weak sources lost too (W1's error
    # 18.0 -> 19.9 degrees, W4's tracks 0.98 -> 0.87); 0.7 changed neither, and of the 5-room
    # table's srp_phat column only UMA-16's three talkers (0.94 -> 0.92)
    relative_floor = 0.7

    def _configure(self):
        pos = self.array.positions
        self.pair_i, self.pair_j, self.pair_group, baselines, _ = baseline_groups(pos)
        n_groups = len(baselines)
        max_tau = self.array.aperture / self.c  # the longest baseline's delay
        step = 1.0 / (32.0 * self.band_freqs[-1])
        half = int(np.ceil(max_tau / step)) + 2
        lags = (np.arange(2 * half + 1) - half) * step
        # bins per run: a run's outer bin is (merge - 1) / 2 bins from its centre
        bin_rad = 2.0 * np.pi * self.sample_rate / self.frame * max_tau  # phase step per bin at the largest lag
        self.merge = int(min(MAX_MERGE, 1 + np.floor(2.0 * MERGE_RAD / max(bin_rad, 1e-12))))
        n_band = self.hi - self.lo
        n_runs = -(-n_band // self.merge)
        centres = np.array([self.band_freqs[m * self.merge:(m + 1) * self.merge].mean() for m in range(n_runs)])
        n_cols = -(-2 * n_runs // 8) * 8  # zero columns pad the rows to whole vectors (kernels.srp.gcc)
        self.basis = lag_basis(centres, lags, n_cols)
        self.center = float(half)
        if len(lags) >= np.iinfo(np.int16).max:
            raise ValueError("array too large for the lag table (more than 32767 lags)")
        # lag index of direction u for group g: center + steer[g] . u
        self.steer = np.ascontiguousarray(-baselines / (self.c * step))
        self.lag_idx = np.ascontiguousarray(np.rint(self.center + self.steer @ self.grid.directions.T).astype(np.int16))
        # the lags each group's directions look up (a group's GCC is computed over these alone)
        self.lag_lo = self.lag_idx.min(axis=1).astype(np.int64)
        self.lag_hi = self.lag_idx.max(axis=1).astype(np.int64) + 1
        self.cross = np.zeros((n_groups, 2 * n_band), dtype=np.float32)
        self._runs = np.zeros((n_groups, n_cols), dtype=np.float32)
        self._white = np.zeros((2, self.array.n_mics, n_band), dtype=np.float32)
        self.gcc = np.zeros((n_groups, len(lags)), dtype=np.float32)
        self._weight = 0.0

    def _accumulate(self, frames, weights):
        self._weight += accumulate_cross_spectra(frames, self.lo, self.hi, self.pair_i, self.pair_j,
                                                 self.pair_group, self.cross, weights, self._white)

    def _compute(self, out):
        if self._weight <= 0.0:
            return False
        merge_bins(self.cross, self.merge, self._runs)
        gcc(self._runs, self.basis, self.lag_lo, self.lag_hi, self.gcc)
        self._scale = 1.0 / (self._weight * len(self.pair_i) * (self.hi - self.lo))
        steered_power(self.gcc, self.lag_idx, self._scale, out)
        self.cross[:] = 0.0
        self._weight = 0.0
        return True
