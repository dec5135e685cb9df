"""MVDR (Capon), MUSIC and CLEAN-SC on the spatial covariance.

Both estimate each band bin's covariance R (frames weighted like every method's, remembered
for ``memory_s``), normalise it to unit mean power per microphone (so every frequency counts
alike, as PHAT does for SRP), and scan the grid with unit-norm steering vectors a(u),
a_m = exp(j w r_m . u / c) / sqrt(M) (on an ambisonic array its SN3D harmonics / sqrt(order + 1),
(1, y, z, x) / sqrt(2) at first order:
MVDR, MUSIC and CLEAN-SC in the spherical-harmonic domain). Only ``bins`` bins spread over the band are used: the
scan costs D x M x M per bin.

- MVDR: P(u) = 1 / (M a^H (R + loading I)^-1 a) per bin, averaged over the bins: the share of
  the (normalised) power that a distortionless beam toward u passes, 1/M for spatially white
  noise. Power scale: (P - 1/M) / (1 - 1/M), 0 for white noise, about 1 at a lone plane wave.
- MUSIC / NormMUSIC: P(u) = 1 / (1 - |E_s^H a|^2), E_s the signal subspace (the eigenvectors
  of the ``n_sources`` largest eigenvalues, or as many as stand above ``threshold`` times the
  largest when ``n_sources`` is auto, at most half the microphones), each bin's pseudo-spectrum
  divided by its maximum before the average (NormMUSIC, as pyroomacoustics): power scale 0..1,
  1 where every bin peaks.
- CLEAN-SC (Sijtsma 2007): per bin, the conventional beamformer's dirty map P(u) = a^H R a;
  take its maximum, the coherent part of R that source explains (h = R a / P_max), subtract
  ``gain`` times it from R and its point-spread from the map, put ``gain`` P_max in the clean
  map at that direction, and repeat (up to ``iterations`` times, while the maximum holds at
  least ``stop`` of the first), so a weak source beside a strong one stands on its own. The
  clean maps of the bins are summed, then spread by a Gaussian of ``spread_deg`` so each
  source makes one peak. Power scale: share of the band-normalised power, summed over the
  bins and averaged: about 1 for a lone plane wave.
"""
from __future__ import annotations

import numpy as np

from ..geometry.arrays import harmonic_degrees, harmonics, max_di_beams
from ..kernels.covariance import accumulate_covariance, projection_power
from .base import Localizer, register


def _split(steer):
    """Steering vectors (B, D, M) as projection_power takes them: (2, B, D, M) float32, real and
    imaginary parts."""
    steer = np.asarray(steer)
    return np.ascontiguousarray(np.stack([steer.real, steer.imag]).astype(np.float32))


class _Covariance(Localizer):
    """Shared: covariance per bin with a memory, and the steering table."""

    kinds = ("mics", "ambisonic")  # steering vectors from MicArray.steering

    def _setup(self, bins, memory_s):
        n_band = self.hi - self.lo
        self.bins = np.unique(np.linspace(self.lo, self.hi - 1, min(int(bins), n_band)).round().astype(np.int64))
        freqs = self.bins * self.sample_rate / self.frame
        # (B, D, M): phases across microphones, or spherical harmonics on an ambisonic array
        steer = self.array.steering(freqs, self.grid.directions, self.c)
        # higher-order ambisonics in N3D: a diffuse field then has unit power in every channel
        # (in SN3D order n holds 1 / (2n + 1)), as the methods' white noise does. (At first order
        # SN3D measured better: W5's mvdr tracks 0.72 against 0.41 in N3D.)
        self._n3d = None
        if self.array.ambisonic and self.array.order >= 2:
            self._n3d = np.sqrt(2.0 * harmonic_degrees(self.array.order) + 1.0)
            steer = steer * self._n3d
            steer = steer / np.linalg.norm(steer, axis=2, keepdims=True)
        self.steer = _split(steer)
        self.memory_s = float(memory_s)
        m = self.array.n_mics
        self.cov = np.zeros((len(self.bins), m, m), dtype=np.complex128)
        self.remembered = np.zeros_like(self.cov)
        self._weight = 0.0
        self._frames = 0
        self._remembered_weight = 0.0
        self._power = np.zeros((len(self.bins), self.grid.n_dirs))

    def _accumulate(self, frames, weights):
        accumulate_covariance(frames, self.bins, weights, self.cov)
        self._weight += float(weights.sum())
        self._frames += len(frames)

    def _covariance(self):
        """The remembered covariance, each bin scaled to unit mean power per microphone; None if nothing."""
        keep = float(np.exp(-self._frames * self.hop / self.sample_rate / self.memory_s)) if self.memory_s > 0 else 0.0
        self.remembered *= keep
        self.remembered += self.cov
        self._remembered_weight = keep * self._remembered_weight + self._weight
        self.cov[:] = 0.0
        self._weight = 0.0
        self._frames = 0
        if self._remembered_weight <= 0.0:
            return None
        return self._normalise(self.remembered)

    def _normalise(self, r):
        """Covariances (bins, M, M) in the methods' channels (N3D at higher orders), each scaled
        to unit mean power per channel; None if there is no power."""
        if self._n3d is not None:
            r = r * np.outer(self._n3d, self._n3d)[None]
        power = np.real(np.trace(r, axis1=1, axis2=2)) / r.shape[1]
        if not np.any(power > 0):
            return None
        return r / np.maximum(power, 1e-30)[:, None, None]

    def _compute(self, out):
        r = self._covariance()
        if r is None:
            return False
        self._scan(r, out)
        return True

    def _scan(self, r, out):
        """Write the map of covariance ``r`` (bins, M, M) into ``out``."""
        raise NotImplementedError

    def reset(self):
        super().reset()
        self.remembered[:] = 0.0
        self._remembered_weight = 0.0


@register("mvdr")
class Mvdr(_Covariance):
    # white noise: 0; sources in a reverberant room with 16 microphones reach only 0.02-0.04 (a
    # distortionless beam passes little of the band-normalised power), so the floor is low
    min_power = 0.02

    def _configure(self, bins=48, loading=0.05, memory_s=0.25):
        self.loading = float(loading)
        self._setup(bins, memory_s)

    def _scan(self, r, out):
        m = r.shape[1]
        lam, vec = np.linalg.eigh(r + self.loading * np.eye(m)[None])
        # a^H R^-1 a = sum_n |v_n^H a|^2 / lambda_n
        projection_power(self.steer, vec / np.sqrt(lam)[:, None, :], self._power)
        share = np.mean(1.0 / np.maximum(m * self._power, 1e-12), axis=0)
        out[:] = (share - 1.0 / m) / (1.0 - 1.0 / m)


@register("music")
class Music(_Covariance):
    min_power = 0.25  # sensor noise alone peaks at 0.24 (p90), a one-source recording's ghosts at 0.15

    def _configure(self, bins=48, n_sources="auto", threshold=0.1, memory_s=0.25):
        self.fixed = None if n_sources == "auto" else int(n_sources)
        if self.fixed is not None and self.fixed > self.array.n_mics - 1:
            raise ValueError(f"key 'localize.music.n_sources': {self.fixed} sources need more than "
                             f"{self.array.n_mics} microphones (at most microphones - 1 = {self.array.n_mics - 1})")
        self.threshold = float(threshold)
        self._setup(bins, memory_s)

    def _scan(self, r, out):
        m = r.shape[1]
        lam, vec = np.linalg.eigh(r)  # ascending
        if self.fixed is not None:
            k = np.full(len(lam), self.fixed)
        else:
            # at most half the microphones: a noise subspace smaller than the signal's leaves a
            # pseudo-spectrum that peaks everywhere (4 mics, 3 in the signal subspace: recall 0.00
            # on two talkers in a room, against 0.6-0.9 with 2)
            floor = self.threshold * lam[:, -1:]
            least = 1
            if self._n3d is not None:
                # higher-order ambisonic (N3D: a diffuse field is white): a source's eigenvalue must stand above
                # the largest that a diffuse field alone gives over the memory's frames (the
                # Marchenko-Pastur edge, (1 + sqrt(M / frames))^2 times the mean); a bin with none
                # has no source and adds nothing to the map
                frames = max(1.0, self.memory_s * self.sample_rate / self.hop)
                floor = np.maximum(floor, (1.0 + np.sqrt(m / frames)) ** 2 * lam.mean(axis=1, keepdims=True))
                least = 0
            k = np.clip((lam > floor).sum(axis=1), least, max(1, min(m // 2, self.n_sources)))
        # the signal subspace, zero-padded to the same width for every bin
        width = max(1, int(k.max()))
        basis = np.zeros((len(lam), m, width), dtype=np.complex128)
        for b, kb in enumerate(k):
            basis[b, :, :kb] = vec[b, :, m - kb:]
        projection_power(self.steer, basis, self._power)
        p = 1.0 / np.maximum(1.0 - self._power, 1e-9)
        p /= p.max(axis=1, keepdims=True)
        p[k == 0] = 0.0
        out[:] = p.mean(axis=0)


@register("pwd")
class PlaneWaveDecomposition(_Covariance):
    """Ambisonic arrays: the plane-wave decomposition (max-DI beams of the array's order,
    w(u) = (2n + 1) Y_nm(u) on the SN3D channels: (1, 3y, 3z, 3x) at first order, hypercardioid)
    steered over the grid, P(u) = w^H R w / |w|^2 on the band-normalised covariance. Power
    scale: 0 for a diffuse field, 1 for a lone plane wave (P rescaled between the two model
    fields' values: 0.8 and 3.2 at first order)."""

    kinds = ("ambisonic",)
    min_power = 0.15  # diffuse noise alone peaks at 0.04; one talker at RT60 0.6 s at 0.26-0.35 (p10-p90)

    def _configure(self, bins=48, memory_s=0.25):
        self._setup(bins, memory_s)
        n = self.array.order
        w = max_di_beams(n, self.grid.directions)
        if self._n3d is not None:  # the same beam on the N3D channels
            w = w / self._n3d
        w /= np.linalg.norm(w, axis=1, keepdims=True)
        self.steer = _split(w[None])  # the same beams at every bin
        y = harmonics(n, self.grid.directions[:1])[0]  # a plane wave from the first cell, in SN3D
        fields = np.stack([np.diag(1.0 / (2 * harmonic_degrees(n) + 1)), np.outer(y, y)])  # diffuse, plane wave
        self._diffuse, self._plane = np.real(np.einsum("i,fij,j->f", w[0], self._normalise(fields), w[0]))

    def _scan(self, r, out):
        # beams that do not change with frequency: the mean over bins of w^H R w is w^H (mean R) w
        lam, vec = np.linalg.eigh(r.mean(axis=0, keepdims=True))
        projection_power(self.steer, vec * np.sqrt(np.maximum(lam, 0.0))[:, None, :], self._power[:1])
        out[:] = (self._power[0] - self._diffuse) / (self._plane - self._diffuse)


@register("clean_sc")
class CleanSc(_Covariance):
    min_power = 0.05  # share of power per bin, averaged; sensor noise alone leaves less

    def _configure(self, bins=32, iterations=8, gain=0.6, stop=0.1, spread_deg=4.0, memory_s=0.25):
        from .base import spread_matrix

        self.iterations, self.gain, self.stop = int(iterations), float(gain), float(stop)
        self._setup(bins, memory_s)
        self.spread = spread_matrix(self.grid.directions, self.projection, spread_deg)
        self._clean = np.zeros(self.grid.n_dirs)
        self._one = np.zeros((len(self.bins), self.grid.n_dirs))

    def _scan(self, r, out):
        m = r.shape[1]
        lam, vec = np.linalg.eigh(r)
        # dirty maps a^H R a (unit-norm a), every bin at once
        projection_power(self.steer, vec * np.sqrt(np.maximum(lam, 0.0))[:, None, :], self._power)
        dirty = self._power
        self._clean[:] = 0.0
        first = dirty.max(axis=1)
        r = r.copy()
        for _ in range(self.iterations):
            j = np.argmax(dirty, axis=1)
            p = dirty[np.arange(len(j)), j]
            live = (p > self.stop * first) & (p > 0)
            if not live.any():
                break
            b = np.arange(len(j))
            a = self.steer[0, b, j] + 1j * self.steer[1, b, j].astype(np.complex128)  # (B, M)
            h = np.einsum("bij,bj->bi", r, a) / np.maximum(p, 1e-30)[:, None]  # the source's coherent part
            h[~live] = 0.0
            np.add.at(self._clean, j[live], self.gain * p[live])
            r -= self.gain * p[:, None, None] * np.einsum("bi,bj->bij", h, h.conj())
            # its point-spread: gain p |a_u^H h|^2 at every direction u
            projection_power(self.steer, (h * np.sqrt(self.gain * p)[:, None])[:, :, None], self._one)
            dirty -= self._one
        out[:] = self.spread @ (self._clean / (len(self.bins) * m))
