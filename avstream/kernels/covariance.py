"""Spatial covariance kernels for the subspace methods (MVDR, MUSIC).

Symbols as in kernels.srp: M mics, K frames, B the band bins used, D directions.
"""
import numpy as np
from numba import njit


@njit(cache=True, fastmath=True)
def accumulate_covariance(spec, bins, weights, out):
    """out[b] += sum_k weights[k] x_k x_k^H, x_k the spectrum of frame k at bin bins[b].

    spec (K, M, n_freq) complex64; bins (B,) int64; out (B, M, M) complex128.
    """
    n_frames, n_mics, _ = spec.shape
    for k in range(n_frames):
        w = weights[k]
        if w == 0.0:
            continue
        for b in range(bins.shape[0]):
            f = bins[b]
            for i in range(n_mics):
                xi = spec[k, i, f]
                for j in range(n_mics):
                    out[b, i, j] += w * xi * np.conj(spec[k, j, f])


@njit(cache=True, fastmath=True)
def projection_power(steer, basis, out):
    """out[b, d] = sum_n |basis[b, :, n]^H steer[b, d, :]|^2: the power of each direction's
    steering vector in the span of the basis (scaled columns) at each bin.

    steer (B, D, M) complex64; basis (B, M, N) complex128; out (B, D) float64.
    """
    n_bins, n_dirs, n_mics = steer.shape
    n_vec = basis.shape[2]
    for b in range(n_bins):
        for d in range(n_dirs):
            acc = 0.0
            for n in range(n_vec):
                s = 0j
                for m in range(n_mics):
                    s += np.conj(basis[b, m, n]) * steer[b, d, m]
                acc += s.real * s.real + s.imag * s.imag
            out[b, d] = acc
