"""Pseudo-intensity map for first-order ambisonic arrays (FACTS 5.3).

Every band bin of every frame votes for its intensity direction (kernels.intensity) with weight
(1 - diffuseness) times the bin's onset weight (``bin_onset`` plus how far its energy rises over
its own last ``onset_s``, at most 10: the direct sound of an onset reaches the microphone before
the room does, as in tf_sparse). One direct sound gives consistent, heavy votes; reverberation
and diffuse noise give light, scattered ones. Each vote lands in its nearest grid cell (looked
up on a 1-degree raster), the cells' votes are spread by a Gaussian of ``spread_deg`` (a sparse
matrix, as tf_sparse's) and kept with a memory of ``memory_s``. Power scale: the
share of the (weighted) votes near each direction, so a map has a zero floor and a peak must
stand ``min_contrast`` times above the map's mean.

On an A-format microphone the spaced capsules bend each bin's direction as frequency rises
(spatial aliasing: 3 degrees at kr = 0.5, 6 at 0.8 for ideal cardioids); each vote is moved back
to the direction whose modelled measurement it is (three fixed-point steps, under 0.5 degrees up
to kr = 0.8 in the model), and bins above kr = ``max_kr`` (1.2) do not vote.
"""
from __future__ import annotations

import numpy as np

from ..kernels.intensity import bin_levels, correct_a_format, intensity_votes, vote_histogram
from ..kernels.tfbins import bin_onsets
from .base import Localizer, VoteMemory, register, spread_matrix


MAX_KR = 1.2  # A-format: bins above this k r (capsule radius) do not vote


@register("intensity")
class Intensity(VoteMemory, Localizer):
    kinds = ("ambisonic",)
    min_contrast = 3.0

    def _configure(self, spread_deg=8.0, memory_s=0.5, bin_onset=0.1, onset_s=0.016, sharpness=1.0):
        from scipy.spatial import cKDTree

        self._a_format = None
        if self.array.capsules is not None:  # the capsules' aliasing model, per band bin
            dirs, radius, pattern = self.array.capsules
            kr_per_bin = 2 * np.pi * self.sample_rate / self.frame * radius / self.c
            top = int(np.floor(MAX_KR / kr_per_bin))
            self.hi = max(self.lo + 1, min(self.hi, top + 1))
            models = self.array.a_format_model(np.arange(self.lo, self.hi) * self.sample_rate / self.frame, self.c)
            self._a_format = (np.ascontiguousarray(models), np.ascontiguousarray(dirs), kr_per_bin, float(pattern))
        self.sharpness = float(sharpness)
        self.spread = spread_matrix(self.grid.directions, np.eye(3), spread_deg)
        az = np.deg2rad(np.arange(360) - 180.0)
        el = np.deg2rad(np.arange(181) - 90.0)
        AZ, EL = np.meshgrid(az, el)
        raster = np.stack([np.cos(EL) * np.cos(AZ), np.cos(EL) * np.sin(AZ), np.sin(EL)], axis=-1).reshape(-1, 3)
        self._lut = cKDTree(self.grid.directions).query(raster)[1].reshape(EL.shape).astype(np.int64)
        self._init_memory(memory_s)
        self.bin_onset = bin_onset
        n_band = self.hi - self.lo
        self._ref = np.zeros(n_band)
        self._seen = np.zeros(1, dtype=np.int64)
        self._keep = float(np.exp(-self.hop / self.sample_rate / onset_s))
        self._warm_up = max(4, int(round(4 * onset_s * self.sample_rate / self.hop)))
        self._votes = np.zeros(self.grid.n_dirs)
        self._vec = np.zeros((0, 3))
        self._str = np.zeros(0)
        self._bins = np.zeros(0, dtype=np.int64)
        self._level = np.zeros((0, n_band))
        self._gain = np.ones((0, n_band))

    def _accumulate(self, frames, weights):
        n_band = self.hi - self.lo
        need = frames.shape[0] * n_band
        if len(self._str) < need:
            self._vec = np.zeros((need, 3))
            self._str = np.zeros(need)
            self._bins = np.zeros(need, dtype=np.int64)
        if self._level.shape[0] != frames.shape[0]:
            self._level = np.zeros((frames.shape[0], n_band))
            self._raw = np.zeros((frames.shape[0], n_band))
            self._gain = np.ones((frames.shape[0], n_band))
        if self.bin_onset is not None:  # each bin's onset weight: bin_onsets scales the levels by it
            bin_levels(frames, self.lo, self.hi, self._raw)
            self._level[:] = self._raw
            bin_onsets(self._level, weights, self._ref, self._seen, self._warm_up, self._keep,
                       float(self.bin_onset), 10.0)
            np.maximum(self._raw, 1e-30, out=self._raw)
            np.divide(self._level, self._raw, out=self._gain)
        n = intensity_votes(frames, self.lo, self.hi, weights, self._gain, self.sharpness, self._vec, self._str,
                            self._bins)
        if self._a_format is not None:
            models, caps, kr_per_bin, pattern = self._a_format
            correct_a_format(self._vec, self._bins, n, self.lo, models, caps, kr_per_bin, pattern, 3)
        vote_histogram(self._vec, self._str, n, self._lut, self._votes)
        self._total += float(self._str[:n].sum())
        self._frames += len(frames)

    def _compute(self, out):
        done = self._fold(self.spread @ self._votes, out)
        self._votes[:] = 0.0
        return done

    def reset(self):
        super().reset()
        self._forget_memory()
        self._ref[:] = 0.0
        self._seen[:] = 0
