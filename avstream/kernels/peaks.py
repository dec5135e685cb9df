"""Peak picking on a direction grid with an exclusion radius, and sub-cell refinement.

No allocation: candidates and the fit's normal equations live in caller-supplied buffers.
"""
import numpy as np
from numba import njit


@njit(cache=True)
def seen_distance2(a, b, projection, radial_weight):
    """Squared distance between unit directions a and b as the array tells them apart.

    Both are projected (``projection``: the identity for a 3-D array, the plane for a planar
    one); the difference's part along the projections' mean direction (radial: a change of
    elevation, which a planar array hardly hears) counts ``radial_weight`` times, the rest
    (a change of azimuth, shrinking toward the array's normal as a planar array's azimuth
    resolution does) fully.
    """
    # scalar loops: no temporary arrays (this runs for every candidate against every accepted peak)
    d2 = 0.0
    along = 0.0
    rn = 0.0
    for i in range(3):
        pa = projection[i, 0] * a[0] + projection[i, 1] * a[1] + projection[i, 2] * a[2]
        pb = projection[i, 0] * b[0] + projection[i, 1] * b[1] + projection[i, 2] * b[2]
        diff = pa - pb
        d2 += diff * diff
        along += diff * (pa + pb)
        rn += (pa + pb) * (pa + pb)
    if radial_weight >= 1.0 or rn < 1e-18:
        return d2
    along /= np.sqrt(rn)
    return d2 - (1.0 - radial_weight) * along * along


@njit(cache=True)
def seen_distances(a, b, projection, radial_weight, out):
    """out[i, j] = sqrt(seen_distance2(a[i], b[j])) for unit directions a (n, 3) and b (m, 3)."""
    for i in range(a.shape[0]):
        for j in range(b.shape[0]):
            out[i, j] = np.sqrt(max(0.0, seen_distance2(a[i], b[j], projection, radial_weight)))


@njit(cache=True)
def pick_peaks(values, neighbors, directions, projection, chord2, out_idx, work, radial_weight=1.0):
    """Local maxima of ``values`` in descending order, none closer than the exclusion angle.

    Parameters
    ----------
    values : ndarray (D,) float32
    neighbors : ndarray (D, k) int32
        Each cell's neighbours; -1 pads rows with fewer.
    directions : ndarray (D, 3) float64
    projection : ndarray (3, 3) float64
        Where distances between directions are measured: the identity for a 3-D array; for a
        planar array the projection onto its plane, since such an array hears only that part
        of a direction (its map is a ridge along the plane's normal, and a source would
        otherwise show up twice along the ridge).
    chord2 : float
        Squared exclusion distance, (2 sin(radius / 2))^2: a peak nearer than this to an
        accepted one is the same source seen twice and is dropped.
    radial_weight : float
        Weight of the projections' radial difference (see ``seen_distance2``): below 1 on a
        planar array, whose peaks wander along their elevation ridge.
    out_idx : ndarray (K,) int64
        Receives the indices of up to K peaks.
    work : ndarray (D,) int64
        Work buffer for the candidates.

    Returns
    -------
    int
        Number of peaks written.
    """
    n_dirs, k = neighbors.shape
    n_cand = 0
    for d in range(n_dirs):
        v = values[d]
        if not np.isfinite(v):
            continue
        is_max = True
        for j in range(k):
            e = neighbors[d, j]
            if e >= 0 and values[e] > v:
                is_max = False
                break
        if not is_max:
            continue
        for j in range(k):  # a flat stretch (digital silence) is no peak
            e = neighbors[d, j]
            if e >= 0 and values[e] < v:
                work[n_cand] = d
                n_cand += 1
                break
    # strongest first (ties in grid order); one nearer than the exclusion to a taken one is dropped
    # (insertion sort: a map has tens of candidates, a flat one none)
    for c in range(1, n_cand):
        d = work[c]
        v = values[d]
        b = c
        while b > 0 and values[work[b - 1]] < v:
            work[b] = work[b - 1]
            b -= 1
        work[b] = d
    n_out = 0
    for c in range(n_cand):
        if n_out == out_idx.shape[0]:
            break
        d = work[c]
        ok = True
        for q in range(n_out):
            e = out_idx[q]
            if seen_distance2(directions[d], directions[e], projection, radial_weight) < chord2:
                ok = False
                break
        if ok:
            out_idx[n_out] = d
            n_out += 1
    return n_out


@njit(cache=True)
def _tangent_basis(u):
    if abs(u[2]) < 0.9:
        ax, ay, az = -u[1], u[0], 0.0
    else:
        ax, ay, az = 0.0, -u[2], u[1]
    n = np.sqrt(ax * ax + ay * ay + az * az)
    ax, ay, az = ax / n, ay / n, az / n
    bx = u[1] * az - u[2] * ay
    by = u[2] * ax - u[0] * az
    bz = u[0] * ay - u[1] * ax
    return ax, ay, az, bx, by, bz


@njit(cache=True)
def refine_quadratic(values, neighbors, directions, d, max_shift, normal, out_u):
    """Sub-cell peak position: least-squares quadratic fit over cell d and its neighbours.

    The neighbours are projected on the tangent plane at ``directions[d]`` (gnomonic
    projection); v = a + b x + c y + e x^2 + f x y + g y^2 is fitted and its stationary point
    taken when it is a maximum within ``max_shift`` (tangent-plane units, about radians).
    Otherwise the cell itself is kept.

    Parameters
    ----------
    normal : ndarray (6, 7) float64
        Work buffer for the normal equations [A^T A | A^T v].
    out_u : ndarray (3,) float64
        Receives the refined unit vector.

    Returns
    -------
    float
        The map value at the refined direction.
    """
    u0 = directions[d]
    ax, ay, az, bx, by, bz = _tangent_basis(u0)
    normal[:] = 0.0
    k = neighbors.shape[1]
    for j in range(k + 1):
        e = d if j == k else neighbors[d, j]
        if e < 0:
            continue
        w = directions[e]
        dot = w[0] * u0[0] + w[1] * u0[1] + w[2] * u0[2]
        if dot <= 0.1:
            continue
        x = (w[0] * ax + w[1] * ay + w[2] * az) / dot
        y = (w[0] * bx + w[1] * by + w[2] * bz) / dot
        r0, r1, r2, r3, r4, r5 = 1.0, x, y, x * x, x * y, y * y
        v = values[e]
        for p in range(6):
            rp = (r0, r1, r2, r3, r4, r5)[p]
            normal[p, 6] += rp * v
            for q in range(6):
                normal[p, q] += rp * (r0, r1, r2, r3, r4, r5)[q]
    out_u[0], out_u[1], out_u[2] = u0[0], u0[1], u0[2]
    # Gauss-Jordan elimination with partial pivoting on the 6 x 7 augmented matrix
    for c in range(6):
        piv = c
        for r in range(c + 1, 6):
            if abs(normal[r, c]) > abs(normal[piv, c]):
                piv = r
        if abs(normal[piv, c]) < 1e-14:
            return float(values[d])
        if piv != c:
            for q in range(7):
                t = normal[c, q]
                normal[c, q] = normal[piv, q]
                normal[piv, q] = t
        for r in range(6):
            if r != c:
                f = normal[r, c] / normal[c, c]
                for q in range(c, 7):
                    normal[r, q] -= f * normal[c, q]
    c0 = normal[0, 6] / normal[0, 0]
    c1 = normal[1, 6] / normal[1, 1]
    c2 = normal[2, 6] / normal[2, 2]
    c3 = normal[3, 6] / normal[3, 3]
    c4 = normal[4, 6] / normal[4, 4]
    c5 = normal[5, 6] / normal[5, 5]
    # maximum of the quadratic: gradient zero, Hessian negative definite
    h11 = 2.0 * c3
    h12 = c4
    h22 = 2.0 * c5
    det = h11 * h22 - h12 * h12
    if not (h11 < 0.0 and det > 0.0):
        return float(values[d])
    x = (-c1 * h22 + c2 * h12) / det
    y = (-c2 * h11 + c1 * h12) / det
    if x * x + y * y > max_shift * max_shift:
        return float(values[d])
    ux = u0[0] + x * ax + y * bx
    uy = u0[1] + x * ay + y * by
    uz = u0[2] + x * az + y * bz
    n = np.sqrt(ux * ux + uy * uy + uz * uz)
    out_u[0], out_u[1], out_u[2] = ux / n, uy / n, uz / n
    return c0 + c1 * x + c2 * y + c3 * x * x + c4 * x * y + c5 * y * y


@njit(cache=True)
def refine_peaks(values, neighbors, directions, idx, n, max_shift, normal, u, out):
    """Refine peaks ``idx[:n]`` and write (azimuth_deg, elevation_deg, power) rows to ``out``.

    ``normal`` (6, 7) and ``u`` (3,) are work buffers. Stops at the first peak with power
    <= 0 (no source); returns the number of rows written.
    """
    k = 0
    for q in range(n):
        d = idx[q]
        if values[d] <= 0.0:
            break
        p = refine_quadratic(values, neighbors, directions, d, max_shift, normal, u)
        out[k, 0] = np.degrees(np.arctan2(u[1], u[0]))
        out[k, 1] = np.degrees(np.arcsin(min(1.0, max(-1.0, u[2]))))
        out[k, 2] = max(p, values[d])
        k += 1
    return k
