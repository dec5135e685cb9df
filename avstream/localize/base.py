"""Localizer base and registry.

A localizer turns STFT frames into a heatmap over a grid. Each method fills in two hooks:
``_accumulate`` (add frames) and ``_compute`` (write the map of what was accumulated, then
forget it). The base does the rest the same
way for every method: onset weighting of frames, temporal smoothing, peak picking with an
exclusion radius, sub-grid refinement and the integrated map behind the file summary.
"""
from __future__ import annotations

import numpy as np

from ..frames import Heatmap, Peak
from ..kernels.peaks import pick_peaks, refine_peaks
from ..kernels.spread import add_weighted, spread_votes
from ..kernels.weighting import onset_weights

LOCALIZERS: dict = {}


def register(name: str):
    """Class decorator adding a localizer to the registry under ``name``."""

    def deco(cls):
        cls.name = name
        LOCALIZERS[name] = cls
        return cls

    return deco


def make_localizer(method: str, **kwargs) -> "Localizer":
    if method not in LOCALIZERS:
        raise KeyError(f"unknown localization method '{method}' (known: {', '.join(sorted(LOCALIZERS))})")
    cls = LOCALIZERS[method]
    array = kwargs.get("array")
    if array is not None and array.kind not in cls.kinds:
        fits = sorted(n for n, c in LOCALIZERS.items() if array.kind in c.kinds)
        raise ValueError(f"key 'localize.method': {method} needs {' or '.join(cls.kinds)} arrays, and "
                         f"{array.name} is {array.kind} (methods for it: {', '.join(fits)})")
    return cls(**kwargs)


RADIAL_WEIGHT = 0.1  # planar arrays: weight of an elevation change in the distance between sources


class Localizer:
    """Base of all localization methods.

    Parameters
    ----------
    array : MicArray
    grid : Grid
    sample_rate : float
    frame : int
        STFT frame length (the spectra have frame // 2 + 1 bins).
    hop : int or None
        STFT hop (default frame // 2): methods with a memory in seconds need it.
    band : (float, float)
        Frequencies used, Hz.
    n_sources : int
        At most this many peaks are reported per update: a maximum, not a quota.
    min_power : float or None
        A peak is a source only at or above this power, on the method's own scale (each
        method documents its scale and sets ``min_power`` from measurements on noise and on
        one-source recordings); None takes the method's.
    min_relative : float
        ... and at or above this fraction of the strongest peak's power (of its height above
        the map's floor, for methods whose maps have one: ``relative_floor``).
    exclusion_deg : float
        Two peaks closer than this are one source (for a planar array, measured mostly across
        its elevation ridges: see kernels.peaks.seen_distance2).
    smoothing : float
        Exponential smoothing of the map between updates, 0 (none) to <1.
    speed_of_sound : float
    onset_floor : float or None
        Weight frames by ``onset_floor + rise in band energy`` (see kernels.weighting); None
        weighs all frames alike.
    options : dict
        The method's own options (``localize.<method>.<option>`` in the configuration).
    """

    name = "base"
    kinds = ("mics",)  # the array kinds the method works on (MicArray.kind)
    min_power = 0.0  # each method's documented evidence threshold (see ``peaks``)
    min_contrast = 0.0  # ... or, for maps with a zero floor, a peak must stand this many times above the map's mean
    relative_floor = 0.0  # min_relative compares heights above this fraction of the map's mean (maps with a floor)

    def __init__(self, array, grid, sample_rate, frame, band=(300.0, 3500.0), hop=None, n_sources=3,
                 exclusion_deg=20.0, smoothing=0.0, speed_of_sound=343.0, onset_floor=0.1, options=None,
                 min_power=None, min_relative=0.3):
        self.array, self.grid = array, grid
        self.sample_rate, self.frame = float(sample_rate), int(frame)
        self.hop = int(hop) if hop else self.frame // 2
        self.c = float(speed_of_sound)
        freqs = np.arange(frame // 2 + 1) * self.sample_rate / frame
        self.lo = int(np.searchsorted(freqs, band[0]))
        # the Nyquist bin is real for real signals: it has no phase to steer by
        self.hi = min(int(np.searchsorted(freqs, band[1], side="right")), frame // 2)
        if self.hi - self.lo < 1:
            raise ValueError(f"key 'localize.band': {list(band)} Hz holds no STFT bin at {sample_rate:g} Hz, frame {frame}")
        self.band_freqs = freqs[self.lo:self.hi]
        self.n_sources = int(n_sources)
        if min_power is not None:
            self.min_power = float(min_power)
        self.min_relative = float(min_relative)
        self.chord2 = float((2.0 * np.sin(np.deg2rad(exclusion_deg) / 2.0)) ** 2)
        if array.planar:
            normal = array.facing.reshape(3, 1)
            self.projection = np.eye(3) - normal @ normal.T
        else:
            self.projection = np.eye(3)
        self.radial_weight = RADIAL_WEIGHT if array.planar else 1.0
        self.smoothing = float(smoothing)
        self.restrict = grid.half_space is not None
        self.half_space = grid.half_space if self.restrict else np.array([0.0, 0.0, 1.0])
        n = grid.n_dirs
        self.values = np.zeros(n, dtype=np.float32)
        self._smoothed = np.zeros(n, dtype=np.float32)
        self._have_smoothed = False
        self._peak_idx = np.zeros(max(self.n_sources, 1), dtype=np.int64)
        self._peak_out = np.zeros((len(self._peak_idx), 3))
        self._work_idx = np.zeros(n, dtype=np.int64)
        self._normal = np.zeros((6, 7))
        self._u = np.zeros(3)
        # weighted sum of every update's map: the summary over the whole stream
        self.integrated = np.zeros(n, dtype=np.float64)
        self.integrated_weight = 0.0
        self._max_shift = float(np.deg2rad(grid.spacing_deg))
        self.onset_floor = onset_floor
        # reference energy: the previous 32 ms of frames
        n_ref = max(1, int(round(0.032 * self.sample_rate / (frame / 2))))
        self._energy_history = np.zeros(n_ref + 1)
        self._weights = np.zeros(64, dtype=np.float32)
        self._blind = None if grid.valid is None else np.flatnonzero(~grid.valid)  # cells that see nothing
        self._configure(**(options or {}))

    # --- hooks --------------------------------------------------------------------------
    def _configure(self, **options):
        """Take the method's options (``localize.<method>.*``), allocate what it needs; called once."""

    def _accumulate(self, frames: np.ndarray, weights: np.ndarray):
        raise NotImplementedError

    def _compute(self, out: np.ndarray) -> bool:
        """Write the map of the accumulated frames into ``out`` and reset; False if nothing."""
        raise NotImplementedError

    def reset(self):
        """Forget everything processed so far (smoothing, onset history, summary)."""
        self._have_smoothed = False
        self._smoothed[:] = 0.0
        self._energy_history[:] = 0.0
        self.integrated[:] = 0.0
        self.integrated_weight = 0.0
        self.values[:] = 0.0

    # --- shared ------------------------------------------------------------------------
    def process(self, frames: np.ndarray, weights: np.ndarray, t=0.0, stamp=0.0, seq=0, flags=()):
        """Map one update's frames (n_frames, n_mics, n_freq) to a Heatmap.

        ``weights`` (n_frames,) is 1 for good frames and 0 for frames to skip.
        """
        if len(self._weights) < len(weights):
            self._weights = np.zeros(len(weights), dtype=np.float32)
        w = self._weights[:len(weights)]
        w[:] = weights
        if self.onset_floor is not None:
            onset_weights(frames, self.lo, self.hi, self._energy_history, self.onset_floor, 10.0, w)
        weights = w
        self._accumulate(frames, weights)
        if self._compute(self.values):
            if self._blind is not None:
                self.values[self._blind] = 0.0
            self.integrated_weight += add_weighted(self.integrated, self.values, weights)
        else:
            self.values[:] = 0.0
        current = self.values
        if self.smoothing > 0.0:
            if self._have_smoothed:
                self._smoothed *= self.smoothing
                self._smoothed += (1.0 - self.smoothing) * self.values
            else:
                self._smoothed[:] = self.values
                self._have_smoothed = True
            current = self._smoothed
        peaks = self.peaks(current, self.n_sources)
        return Heatmap(current.copy(), t, stamp, seq, peaks, set(flags))

    def peaks(self, values: np.ndarray, k: int) -> list:
        """Up to k peaks of a map, strongest first, refined off the grid: only those with the
        evidence of a source (power at least ``min_power`` and ``min_relative`` times the
        strongest's, and ``min_contrast`` times the map's mean), so a one-source scene
        reports one and silence none. ``min_relative`` compares heights above
        ``relative_floor`` times the map's mean: on a map with a floor (diffuse noise,
        reverberation) any bump stands a good share of the strongest peak's power."""
        if k > len(self._peak_idx):
            self._peak_idx = np.zeros(k, dtype=np.int64)
            self._peak_out = np.zeros((k, 3))
        n = pick_peaks(values, self.grid.neighbors, self.grid.directions, self.projection, self.chord2,
                       self._peak_idx[:k], self._work_idx, self.radial_weight)
        n = refine_peaks(values, self.grid.neighbors, self.grid.directions, self._peak_idx, n, self._max_shift,
                         self._normal, self._u, self._peak_out)
        if n == 0:
            return []
        mean = float(values.sum()) / len(values)
        base = self.relative_floor * mean
        floor = max(self.min_power, base + self.min_relative * (float(self._peak_out[0, 2]) - base),
                    self.min_contrast * mean, 1e-12)
        return [Peak(a, e, p) for a, e, p in self._peak_out[:n].tolist() if p >= floor]

    def summary_peaks(self, k: int) -> list:
        """The k dominant sources over everything processed so far.

        Peaks of the onset-weighted integral of every update's map: short sources that take
        turns add up there, and the weighting favours the direct sound over reflections.
        """
        if self.integrated_weight <= 0.0:
            return []
        return self.peaks((self.integrated / self.integrated_weight).astype(np.float32), k)


class VoteMemory:
    """Mixin for methods whose map is a share of votes kept with a memory (tf_sparse, intensity):
    each update's votes, divided by their total, are averaged with a time constant ``memory_s``,
    so a silence fades its sources (their loud past must not outweigh a quiet present)."""

    def _init_memory(self, memory_s: float):
        self.memory_s = float(memory_s)
        self.memory = np.zeros(self.grid.n_dirs, dtype=np.float64)
        self._memory_total = 0.0
        self._total = 0.0  # the update's vote weight so far
        self._frames = 0

    def _fold(self, votes, out) -> bool:
        """Fold this update's ``votes`` into the memory, write the map into ``out``, start the next update."""
        if self._total <= 0.0:
            return False
        keep = float(np.exp(-self._frames * self.hop / self.sample_rate / self.memory_s)) if self.memory_s > 0 else 0.0
        self.memory *= keep
        self.memory += (1.0 - keep) / self._total * votes
        self._memory_total = keep * self._memory_total + (1.0 - keep)
        out[:] = self.memory / self._memory_total
        self._total = 0.0
        self._frames = 0
        return True

    def _forget_memory(self):
        self.memory[:] = 0.0
        self._memory_total = 0.0


class Spread:
    """A sparse symmetric (D, D) kernel; ``spread @ votes`` is its product with a vote map,
    gathered from the directions that have votes (kernels.spread)."""

    def __init__(self, csr):
        self.indptr = csr.indptr.astype(np.int64)
        self.indices = csr.indices.astype(np.int64)
        self.data = csr.data.astype(np.float64)
        self.shape = csr.shape

    def __matmul__(self, votes):
        out = np.empty(self.shape[0])
        spread_votes(self.indptr, self.indices, self.data, np.ascontiguousarray(votes, dtype=np.float64), out)
        return out


def spread_matrix(directions, projection, sigma_deg):
    """Sparse (D, D) Gaussian kernel (1 at distance 0) over the distance between projected
    directions, cut at 3 sigma (a ``Spread``)."""
    import scipy.sparse as sp
    from scipy.spatial import cKDTree

    u = directions @ projection.T
    sigma = np.deg2rad(sigma_deg)
    pairs = cKDTree(u).query_pairs(3 * sigma, output_type="ndarray")
    i = np.concatenate([pairs[:, 0], pairs[:, 1], np.arange(len(u))])
    j = np.concatenate([pairs[:, 1], pairs[:, 0], np.arange(len(u))])
    w = np.exp(-((u[i] - u[j]) ** 2).sum(axis=1) / (2 * sigma ** 2))
    return Spread(sp.csr_matrix((w, (i, j)), shape=(len(u), len(u))))
