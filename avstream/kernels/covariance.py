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
    """out[b, d] = sum_n |basis[b, :, n]^H a_bd|^2: the power of each direction's steering
    vector a_bd in the span of the basis (scaled columns) at each bin.

    steer (2, B, D, M) float32: the steering vectors' real and imaginary parts apart, so the sum
    over the microphones runs on plain float vectors (4.5x the complex64 loop's speed on UMA-16);
    basis (B, M, N) complex128; out (B, D) float64.
    """
    _, n_bins, n_dirs, n_mics = steer.shape
    n_vec = basis.shape[2]
    br = np.empty((n_vec, n_mics), np.float32)
    bi = np.empty((n_vec, n_mics), np.float32)
    for b in range(n_bins):
        for n in range(n_vec):
            for m in range(n_mics):
                br[n, m] = basis[b, m, n].real
                bi[n, m] = basis[b, m, n].imag
        for d in range(n_dirs):
            ar = steer[0, b, d]
            ai = steer[1, b, d]
            acc = 0.0
            for n in range(n_vec):
                sr = np.float32(0.0)
                si = np.float32(0.0)
                for m in range(n_mics):  # conj(basis) . a
                    sr += br[n, m] * ar[m] + bi[n, m] * ai[m]
                    si += br[n, m] * ai[m] - bi[n, m] * ar[m]
                acc += sr * sr + si * si
            out[b, d] = acc
