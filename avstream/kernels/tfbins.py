"""Time-frequency bin kernels: the direction of each STFT bin, and votes over the grid.

Speech and most real sounds are sparse in time-frequency (W-disjoint orthogonality, Yilmaz &
Rickard 2004): nearly every bin is dominated by one source. A bin whose whitened cross-spectra
agree with one plane wave on every microphone pair is such a bin, and that plane wave's
direction is its source's. Symbols as in kernels.srp: M mics, G baseline groups, F band bins,
D fine directions, C coarse directions, K frames.

The search is coarse to fine: every bin is matched against C coarse directions (a dense
product, vectorised over directions), its best one is refined to the weighted centre of it and
its coarse neighbours, and the vote goes to the nearest fine cell.
"""
import numpy as np
from numba import njit

from .weighting import onset_gain

MIN_SHARE = 0.02  # a tied lobe whose share of a bin's vote would be smaller gets none


def steering_table(baselines, directions, freqs_hz, speed_of_sound):
    """(F, 2G, C) float32: cos(w_f tau_g(u)) over -sin(w_f tau_g(u)), tau_g(u) = -b_g . u / c,
    so that a bin's response to u is [Re C_g, Im C_g] . column u (the GCC at u's delays)."""
    tau = -(baselines @ directions.T) / speed_of_sound  # (G, C)
    arg = 2.0 * np.pi * freqs_hz[:, None, None] * tau[None, :, :]
    return np.ascontiguousarray(np.concatenate([np.cos(arg), -np.sin(arg)], axis=1).astype(np.float32))


@njit(cache=True, fastmath=True)
def group_cross_spectra(spec, lo, hi, pair_i, pair_j, pair_group, weights, white, out, level):
    """PHAT-whitened cross-spectra of every frame and bin, summed per baseline group, and each
    bin's level (mean magnitude over the microphones).

    spec (K, M, n_freq) complex64; out (F, K, 2G) float32: real parts then imaginary parts;
    level (K, F) float64. Both filled; frames with weight 0 stay zero.
    """
    n_frames, n_mics, _ = spec.shape
    n_band = hi - lo
    n_groups = out.shape[2] // 2
    out[:] = 0.0
    level[:] = 0.0
    for k in range(n_frames):
        if weights[k] == 0.0:
            continue
        for m in range(n_mics):
            for f in range(n_band):
                x = spec[k, m, lo + f]
                a = np.abs(x)
                level[k, f] += a / n_mics
                white[m, f] = x / a if a > 1e-20 else 0.0
        for p in range(pair_i.shape[0]):
            g = pair_group[p]
            for f in range(n_band):
                c = white[pair_i[p], f] * np.conj(white[pair_j[p], f])
                out[f, k, g] += c.real
                out[f, k, n_groups + g] += c.imag


@njit(cache=True, fastmath=True)
def vote_bins(cross, table, n_pairs, level, weights, min_coherence, min_margin, coarse_dirs, coarse_nbrs, children, fine_dirs,
              resp, votes, alias_tie, tie_from, memory, coarse_fine):
    """Find each bin's direction and add its weight (frame weight times level) to that fine cell.

    Parameters
    ----------
    cross : ndarray (F, K, 2G) float32
        From group_cross_spectra.
    table : ndarray (F, 2G, C) float32
        From steering_table, for the coarse directions.
    n_pairs : int
        Microphone pairs in all groups: a bin that one plane wave explains on every pair scores 1.
    level : ndarray (K, F) float64
    weights : ndarray (K,) float32
    min_coherence : float
        A bin votes when its best coarse direction scores at least this (-1..1).
    coarse_dirs : ndarray (C, 3) float64
    coarse_nbrs : ndarray (C, n) int64
        Each coarse direction's coarse neighbours, -1 padded.
    children : ndarray (C, m) int64
        The fine cells within reach of each coarse direction, -1 padded.
    fine_dirs : ndarray (D, 3) float64
    resp : ndarray (K, C) float32
        Work buffer.
    votes : ndarray (D,) float64
        Votes are added here.
    alias_tie : float
        Coherence (0..1) within which another local maximum of a bin's response ties with its
        best: a grating lobe, on an array whose microphones stand more than half a wavelength
        apart. Tied lobes share the bin's vote in proportion to the square of ``memory`` at
        each (a lobe under MIN_SHARE of it gets none); where none holds any, the best takes it.
        0 turns this off.
    tie_from : int
        First band bin that can have grating lobes (below it every bin votes for its best).
    memory : ndarray (D,) float64
        The vote map so far (the localizer's memory).
    coarse_fine : ndarray (C,) int64
        The fine cell of each coarse direction.

    Returns
    -------
    (total, coherent) : the weight of every bin, and of the bins that voted.
    """
    n_band, n_frames, n2 = cross.shape
    n_coarse = table.shape[2]
    inv = 1.0 / n_pairs
    total = 0.0
    voted = 0.0
    u = np.zeros(3)
    cand = np.zeros(8, dtype=np.int64)
    share = np.zeros(8)
    for f in range(n_band):
        resp[:] = 0.0
        for k in range(n_frames):
            if weights[k] == 0.0:
                continue
            for g in range(n2):
                c = cross[f, k, g]
                for d in range(n_coarse):
                    resp[k, d] += c * table[f, g, d]
        for k in range(n_frames):
            w = weights[k] * level[k, f]
            if w == 0.0:
                continue
            total += w
            best = 0
            mean = resp[k, 0]
            for d in range(1, n_coarse):
                mean += resp[k, d]
                if resp[k, d] > resp[k, best]:
                    best = d
            top = resp[k, best] * inv
            if top < min_coherence or (min_margin > 0.0 and top - mean * inv / n_coarse < min_margin):
                continue
            voted += w
            if alias_tie > 0.0 and f >= tie_from:
                # grating lobes: the local maxima within alias_tie of the best share the vote
                n_c = _local_maxima(resp[k], best, (top - alias_tie) * n_pairs, coarse_nbrs, cand)
                if n_c > 1:
                    psum = 0.0
                    for c in range(n_c):
                        m = memory[coarse_fine[cand[c]]]
                        share[c] = m * m
                        psum += share[c]
                    if psum > 0.0:
                        kept = 0.0
                        for c in range(n_c):
                            if share[c] < MIN_SHARE * psum:
                                share[c] = 0.0
                            kept += share[c]
                        for c in range(n_c):
                            if share[c] > 0.0:
                                _vote(resp, k, cand[c], inv, coarse_dirs, coarse_nbrs, children, fine_dirs, u, votes,
                                      w * share[c] / kept)
                        continue
            _vote(resp, k, best, inv, coarse_dirs, coarse_nbrs, children, fine_dirs, u, votes, w)
    return total, voted


@njit(cache=True)
def _local_maxima(resp, best, low, coarse_nbrs, out):
    """Write ``best`` and then the coarse directions whose response is at least ``low`` and no
    neighbour's is higher (local maxima) into ``out``, as many as it holds; return how many."""
    n = 1
    out[0] = best
    for d in range(resp.shape[0]):
        r = resp[d]
        if r < low or d == best:
            continue
        peak = True
        for j in range(coarse_nbrs.shape[1]):
            e = coarse_nbrs[d, j]
            if e >= 0 and resp[e] > r:
                peak = False
                break
        if peak:
            out[n] = d
            n += 1
            if n == out.shape[0]:
                break
    return n


@njit(cache=True, fastmath=True)
def _vote(resp, k, best, inv, coarse_dirs, coarse_nbrs, children, fine_dirs, u, votes, w):
    """Add w to the fine cell nearest the weighted centre of coarse direction ``best`` and its
    neighbours, each weighted by how far it stands above the lowest of them."""
    top = resp[k, best] * inv
    low = top
    for j in range(coarse_nbrs.shape[1]):
        e = coarse_nbrs[best, j]
        if e >= 0 and resp[k, e] * inv < low:
            low = resp[k, e] * inv
    u[:] = (top - low + 1e-6) * coarse_dirs[best]
    for j in range(coarse_nbrs.shape[1]):
        e = coarse_nbrs[best, j]
        if e >= 0:
            u += (resp[k, e] * inv - low) * coarse_dirs[e]
    near = -1
    near_dot = -2.0
    for j in range(children.shape[1]):
        e = children[best, j]
        if e < 0:
            break
        dot = u[0] * fine_dirs[e, 0] + u[1] * fine_dirs[e, 1] + u[2] * fine_dirs[e, 2]
        if dot > near_dot:
            near_dot = dot
            near = e
    if near >= 0:
        votes[near] += w


@njit(cache=True)
def bin_onsets(level, weights, reference, seen, warm_up, keep, floor, cap):
    """Weight each bin by how far its energy rises above its own recent past (the precedence
    effect per bin: the direct sound of a source's onset reaches the array before the room does).

    level (K, F) float64 is multiplied in place by floor + clip(E / E_ref - 1, 0, cap);
    reference (F,) float64 holds E_ref, an exponential average of past energies (factor
    ``keep`` per frame), updated in place; zero means none yet. seen (1,) int64 counts the
    frames behind the reference: for the first ``warm_up`` every bin gets ``floor`` alone (a
    reference of one or two frames makes any noise look like onsets). Frames of weight 0 are
    skipped.
    """
    n_frames, n_band = level.shape
    for k in range(n_frames):
        if weights[k] == 0.0:
            continue
        ready = seen[0] >= warm_up
        seen[0] += 1
        for f in range(n_band):
            e = level[k, f] * level[k, f]
            ref = reference[f]
            level[k, f] *= onset_gain(e, ref, floor, cap) if ready else floor
            reference[f] = keep * ref + (1.0 - keep) * e if ref > 1e-30 else e
