"""tf_sparse: one direction per time-frequency bin, votes over the grid.

Speech and most real sounds are sparse in time-frequency: nearly every STFT bin is dominated by
one source (W-disjoint orthogonality; DUET, Rickard 2007, builds its masks on it). Each bin's
PHAT-whitened cross-spectra are matched against the plane wave of every direction; a bin that
one direction explains well (coherence at least ``min_coherence``: 1 means every microphone
pair agrees) votes for it with its level. Two sources that SRP-PHAT blurs into one blob take
different bins, so they stay two peaks, and a weak source keeps the bins where it dominates.

Two tests keep the room out. A bin must tell directions apart: its best direction at least
``min_margin`` above the mean of all of them (a low-frequency bin on a small array, or a bin of
the diffuse reverberant field, fits every direction about equally and, its phases all near
zero, best at the zenith of a planar array). And a bin's vote is weighted by how far its energy
rises above its own recent past (``bin_onset`` + the rise, time constant ``onset_s``): the
direct sound of an onset reaches the array before the reflections do. On pyroomacoustics rooms
(RT60 0.3-0.7 s, 4 mics, two talkers) the two together took the tracks' recall@10 from 0.44 to
0.76.

A third test keeps grating lobes apart. Where two microphones stand more than half a
wavelength apart (on the HAT above 3 kHz, on UMA-8 above 4 kHz: most of the band) a bin fits its
source's direction and that direction's grating lobes about equally, and which one wins moves
from bin to bin: a strong source grows ghosts, and a weak one loses its bins to the lobes of
the others. A bin's local maxima within ``alias_tie`` of its best (in coherence) are taken as a
tie, and the bin's vote is shared among them in proportion to the square of what the vote
memory already holds at each: a grating lobe moves with frequency and holds little, so it gets
little, while two sources that both hold memory keep their shares. Only when the memory holds
evidence (its maximum above ``min_contrast`` times its mean): in sensor noise alone its chance
bumps would gather the votes. In pyroomacoustics rooms (10 a row; HAT / UMA-8) the tracks'
recall@10 went 0.82 -> 0.93 / 0.92 -> 0.93 for two recorded talkers, 0.72 -> 0.86 / 0.77 ->
0.82 for three, 0.73 -> 0.89 / 0.93 -> 0.97 for two noise sources and 0.28 -> 0.75 / 0.53 ->
0.72 for three; the cost, 3.0 -> 3.8 ms an update on the HAT (one back-to-back run).

The votes are spread by a Gaussian of ``spread_deg`` (measured in the array's plane for a
planar array, which cannot resolve elevation well: votes for one source scatter along its
elevation ridge and must add up) and kept with a memory of ``memory_s``: 64 ms of audio hold
too few bins to find two talkers, the last half second holds enough.

Power scale: the share of an update's bins (weighted by level) that vote for the cell
(Gaussian-weighted around it), averaged over the memory; 0..1. One source alone in a quiet
room reaches 0.1-0.4.
"""
from __future__ import annotations

import numpy as np

from ..geometry.arrays import baseline_groups
from ..kernels.tfbins import bin_onsets, group_cross_spectra, steering_table, vote_bins
from .base import Localizer, VoteMemory, register, spread_matrix


def coarse_subset(directions, spacing_deg):
    """Indices of directions no two closer than ``spacing_deg`` that leave no direction
    further than that from one of them (greedy, in the grid's own order: deterministic)."""
    from scipy.spatial import cKDTree

    chord = 2.0 * np.sin(np.deg2rad(spacing_deg) / 2.0)
    tree = cKDTree(directions)
    taken = np.zeros(len(directions), bool)
    covered = np.zeros(len(directions), bool)
    for i in range(len(directions)):
        if not covered[i]:
            taken[i] = True
            covered[tree.query_ball_point(directions[i], chord)] = True
    return np.flatnonzero(taken)


def padded_lists(lists):
    width = max(1, max(len(x) for x in lists))
    out = -np.ones((len(lists), width), dtype=np.int64)
    for i, x in enumerate(lists):
        out[i, :len(x)] = x
    return out


@register("tf_sparse")
class TfSparse(VoteMemory, Localizer):
    # the share of bins falls with reverberation and noise; its ratio to the map's mean does not
    # fall as far: with the per-bin onset weighting sensor noise alone stands at most 3.1 times
    # above the mean (p90 2.7; a peak in 1 of 46 updates, never a track), a source on the real
    # recordings a median 10-25 times (p10 5-9), its ghosts 3-7 (the tracker weeds those out).
    # 3.5 would silence sensor noise entirely but lose most broadband noise sources in
    # reverberant rooms (4-mic track recall 0.36 -> 0.08 for two noise sources)
    min_contrast = 3.0
    def _configure(self, min_coherence=0.7, spread_deg=4.0, memory_s=0.5, bin_onset=0.1, onset_s=0.032, min_margin=0.2, alias_tie=0.1):
        from scipy.spatial import cKDTree

        self.min_coherence = float(min_coherence)
        self._init_memory(memory_s)
        self.pair_i, self.pair_j, self.pair_group, baselines, _ = baseline_groups(self.array.positions)
        fine = self.grid.directions
        spacing = max(2.0 * self.grid.spacing_deg, 6.0)  # coarse search: a quarter of the cells or fewer
        idx = coarse_subset(fine, spacing)
        self.coarse = np.ascontiguousarray(fine[idx])
        self.coarse_fine = np.asarray(idx, dtype=np.int64)
        chord = lambda deg: 2.0 * np.sin(np.deg2rad(deg) / 2.0)  # noqa: E731
        ctree = cKDTree(self.coarse)
        self.coarse_nbrs = padded_lists([[j for j in ctree.query_ball_point(u, chord(1.6 * spacing)) if j != i]
                                         for i, u in enumerate(self.coarse)])
        ftree = cKDTree(fine)
        self.children = padded_lists([ftree.query_ball_point(u, chord(1.1 * spacing)) for u in self.coarse])
        self.table = steering_table(baselines, self.coarse, self.band_freqs, self.c)
        self.spread = spread_matrix(fine, self.projection, spread_deg)
        n_band = self.hi - self.lo
        self._white = np.zeros((self.array.n_mics, n_band), dtype=np.complex64)
        self._cross = np.zeros((n_band, 0, 2 * len(baselines)), dtype=np.float32)
        self.votes = np.zeros(self.grid.n_dirs, dtype=np.float64)
        self.bin_onset = bin_onset
        self.min_margin = float(min_margin)
        self.alias_tie = float(alias_tie)
        # below c / (2 d) of the nearest two microphones (the shortest baseline) no direction but
        # the source's fits every pair: grating lobes start there
        nearest = float(np.linalg.norm(baselines, axis=1).min())
        self._tie_from = int(np.searchsorted(self.band_freqs, self.c / (2.0 * nearest)))
        self._bin_ref = np.zeros(n_band)
        self._bin_keep = float(np.exp(-self.hop / self.sample_rate / onset_s))
        self._bin_seen = np.zeros(1, dtype=np.int64)
        self._bin_warm_up = max(4, int(round(4 * onset_s * self.sample_rate / self.hop)))  # 4 time constants

    def _work(self, n_frames):
        if self._cross.shape[1] != n_frames:
            n_band, _, n2 = self._cross.shape
            self._cross = np.zeros((n_band, n_frames, n2), dtype=np.float32)
            self._level = np.zeros((n_frames, n_band))
            self._resp = np.zeros((n_frames, len(self.coarse)), dtype=np.float32)

    def _accumulate(self, frames, weights):
        self._work(len(frames))
        group_cross_spectra(frames, self.lo, self.hi, self.pair_i, self.pair_j, self.pair_group, weights, self._white,
                            self._cross, self._level)
        if self.bin_onset is not None:
            bin_onsets(self._level, weights, self._bin_ref, self._bin_seen, self._bin_warm_up, self._bin_keep, float(self.bin_onset), 10.0)
        total, _ = vote_bins(self._cross, self.table, len(self.pair_i), self._level, weights, self.min_coherence, self.min_margin,
                             self.coarse, self.coarse_nbrs, self.children, self.grid.directions, self._resp,
                             self.votes, self.alias_tie if self._ties_on() else 0.0, self._tie_from, self.memory,
                             self.coarse_fine)
        self._total += total
        self._frames += len(frames)

    def _compute(self, out):
        done = self._fold(self.spread @ self.votes, out)
        self.votes[:] = 0.0
        return done

    def _ties_on(self) -> bool:
        """Whether the memory holds evidence of a source (its maximum above ``min_contrast``
        times its mean) to break grating lobes' ties with. In sensor noise alone it does not,
        and ties broken by its chance bumps would pile the votes onto them."""
        m = self.memory
        return float(m.max()) > self.min_contrast * float(m.mean())

    def reset(self):
        super().reset()
        self._forget_memory()
        self._bin_ref[:] = 0.0
        self._bin_seen[:] = 0
