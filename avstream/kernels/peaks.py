"""Peak picking on a direction grid with an exclusion radius."""
import numpy as np
from numba import njit


@njit(cache=True)
def pick_peaks(values, neighbors, directions, cos_exclusion, out_idx):
    """Local maxima of ``values`` in descending order, none closer than the exclusion angle.

    Parameters
    ----------
    values : ndarray (D,) float32
    neighbors : ndarray (D, k) int32
    directions : ndarray (D, 3) float64
    cos_exclusion : float
        cos of the exclusion radius: a peak whose direction has a larger dot product with an
        already accepted peak is the same source seen twice and is dropped.
    out_idx : ndarray (K,) int64
        Receives the indices of up to K peaks.

    Returns
    -------
    int
        Number of peaks written.
    """
    n_dirs, k = neighbors.shape
    cand = np.empty(n_dirs, dtype=np.int64)
    n_cand = 0
    for d in range(n_dirs):
        v = values[d]
        if not np.isfinite(v):
            continue
        is_max = True
        for j in range(k):
            if values[neighbors[d, j]] > v:
                is_max = False
                break
        if is_max:
            cand[n_cand] = d
            n_cand += 1
    cand_vals = np.empty(n_cand, dtype=np.float64)
    for c in range(n_cand):
        cand_vals[c] = values[cand[c]]
    order = np.argsort(-cand_vals)
    n_out = 0
    for c in range(n_cand):
        d = cand[order[c]]
        ok = True
        for q in range(n_out):
            e = out_idx[q]
            dot = (directions[d, 0] * directions[e, 0] + directions[d, 1] * directions[e, 1]
                   + directions[d, 2] * directions[e, 2])
            if dot > cos_exclusion:
                ok = False
                break
        if ok:
            out_idx[n_out] = d
            n_out += 1
            if n_out == out_idx.shape[0]:
                break
    return n_out


@njit(cache=True)
def refine_quadratic(values, neighbors, directions, d, max_shift):
    """Sub-cell peak position: least-squares quadratic fit over cell d and its neighbours.

    The neighbours are projected on the tangent plane at ``directions[d]`` (gnomonic
    projection); v = a + b x + c y + e x^2 + f x y + g y^2 is fitted and its stationary point
    taken when it is a maximum within ``max_shift`` (tangent-plane units, i.e. radians near
    the cell). Otherwise the cell itself is returned.

    Returns
    -------
    u : ndarray (3,) float64
    value : float
    """
    u0 = directions[d]
    if abs(u0[2]) < 0.9:
        a = np.array([-u0[1], u0[0], 0.0])
    else:
        a = np.array([0.0, -u0[2], u0[1]])
    a /= np.sqrt(a[0] ** 2 + a[1] ** 2 + a[2] ** 2)
    b = np.array([u0[1] * a[2] - u0[2] * a[1], u0[2] * a[0] - u0[0] * a[2], u0[0] * a[1] - u0[1] * a[0]])
    k = neighbors.shape[1]
    ata = np.zeros((6, 6))
    atv = np.zeros(6)
    row = np.empty(6)
    for j in range(k + 1):
        e = d if j == k else neighbors[d, j]
        w = directions[e]
        dot = w[0] * u0[0] + w[1] * u0[1] + w[2] * u0[2]
        if dot <= 0.1:
            continue
        x = (w[0] * a[0] + w[1] * a[1] + w[2] * a[2]) / dot
        y = (w[0] * b[0] + w[1] * b[1] + w[2] * b[2]) / dot
        row[0] = 1.0
        row[1] = x
        row[2] = y
        row[3] = x * x
        row[4] = x * y
        row[5] = y * y
        v = values[e]
        for p in range(6):
            atv[p] += row[p] * v
            for q in range(6):
                ata[p, q] += row[p] * row[q]
    for p in range(6):
        ata[p, p] += 1e-12
    coef = np.linalg.solve(ata, atv)
    # maximum of the quadratic: gradient zero, Hessian negative definite
    h11 = 2.0 * coef[3]
    h12 = coef[4]
    h22 = 2.0 * coef[5]
    det = h11 * h22 - h12 * h12
    if not (h11 < 0.0 and det > 0.0):
        return u0.copy(), float(values[d])
    x = (-coef[1] * h22 + coef[2] * h12) / det
    y = (-coef[2] * h11 + coef[1] * h12) / det
    if x * x + y * y > max_shift * max_shift:
        return u0.copy(), float(values[d])
    u = u0 + x * a + y * b
    u /= np.sqrt(u[0] ** 2 + u[1] ** 2 + u[2] ** 2)
    val = coef[0] + coef[1] * x + coef[2] * y + coef[3] * x * x + coef[4] * x * y + coef[5] * y * y
    return u, float(val)


@njit(cache=True)
def refine_peaks(values, neighbors, directions, idx, n, max_shift, out):
    """Refine peaks ``idx[:n]`` and write (azimuth_deg, elevation_deg, power) rows to ``out``.

    Stops at the first peak with power <= 0 (no source); returns the number written.
    """
    k = 0
    for q in range(n):
        d = idx[q]
        if values[d] <= 0.0:
            break
        u, p = refine_quadratic(values, neighbors, directions, d, max_shift)
        out[k, 0] = np.degrees(np.arctan2(u[1], u[0]))
        out[k, 1] = np.degrees(np.arcsin(min(1.0, max(-1.0, u[2]))))
        out[k, 2] = max(p, values[d])
        k += 1
    return k
