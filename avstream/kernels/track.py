"""The tracker's filters as arrays, one row per track, and its whole update as one kernel.

Each row is a constant-velocity Kalman filter on the unit sphere (see track.tracker): direction
``u`` (n, 3) and its rate ``v`` (n, 3), and, the noise being isotropic, one 2x2 covariance per
row shared by the three axes, ``cov`` (n, 3) = (position, position-velocity, velocity). The
other columns: ``p`` existence probability, ``power`` smoothed peak power, ``born`` and
``last`` (time of birth and of the last detection), ``ids`` (0 until confirmed), ``speech``
(NaN when there is none). One kernel per update: a tracker of ten rows costs tens of
microseconds in Python and numpy calls, a few inside.
"""
import math

import numpy as np
from numba import njit

from .peaks import seen_distance2

# params: the tracker's constants, in this order
Q, R, GATE, RADIAL_WEIGHT, CONFIRM, MIN_AGE, SILENCE, TENTATIVE_SILENCE, MAX_SPEED, HIT_RATE, MISS_LOSS, COAST = range(12)
N_PARAMS = 12
# out: one row per confirmed track, by id
OUT_ID, OUT_AZ, OUT_EL, OUT_POWER, OUT_D_AZ, OUT_D_EL, OUT_AGE, OUT_P, OUT_SILENT, OUT_SPEECH = range(10)
N_OUT = 10


@njit(cache=True)
def _normalise(u, v, i):
    n = math.sqrt(u[i, 0] * u[i, 0] + u[i, 1] * u[i, 1] + u[i, 2] * u[i, 2])
    if n > 1e-9:
        for k in range(3):
            u[i, k] = u[i, k] / n
    d = v[i, 0] * u[i, 0] + v[i, 1] * u[i, 1] + v[i, 2] * u[i, 2]  # the velocity stays tangent
    for k in range(3):
        v[i, k] -= d * u[i, k]


@njit(cache=True)
def association_cost(u, ids, n, z, projection, radial_weight, gate, out):
    """out[i, j]: the angle-like distance between row i and detection j as the localizer measures
    it (``seen_distance2``), plus 1e-3 for unconfirmed rows (a new blip must not steal a known
    source's detection); pairs beyond ``gate`` get 1e6, which no assignment wants."""
    for i in range(n):
        for j in range(z.shape[0]):
            c = math.sqrt(max(0.0, seen_distance2(u[i], z[j], projection, radial_weight)))
            if ids[i] == 0:
                c += 1e-3
            out[i, j] = c if c <= gate else 1e6


@njit(cache=True)
def weighted(gain, power, top):
    """How much one detection adds: the update's gain for its strongest peak, less for weaker
    ones (a reflection or a ghost beside a source must come back more often)."""
    return gain * (min(1.0, power / top) if top > 0 else 1.0)


@njit(cache=True)
def assign(cost, n, m, match):
    """Minimum-cost assignment of the n rows of ``cost`` to its m columns, n <= m (the shortest
    augmenting path form of the Hungarian method, as scipy's linear_sum_assignment solves it,
    without its call overhead at tracker sizes): match[i] = the column of row i."""
    inf = np.inf
    ru = np.zeros(n + 1)
    cv = np.zeros(m + 1)
    owner = np.zeros(m + 1, np.int64)  # row (1-based) holding column j, 0 none
    way = np.zeros(m + 1, np.int64)
    minv = np.empty(m + 1)
    used = np.empty(m + 1, np.bool_)
    for i in range(1, n + 1):
        owner[0] = i
        j0 = 0
        minv[:] = inf
        used[:] = False
        while True:
            used[j0] = True
            i0 = owner[j0]
            delta = inf
            j1 = 0
            for j in range(1, m + 1):
                if not used[j]:
                    cur = cost[i0 - 1, j - 1] - ru[i0] - cv[j]
                    if cur < minv[j]:
                        minv[j] = cur
                        way[j] = j0
                    if minv[j] < delta:
                        delta = minv[j]
                        j1 = j
            for j in range(m + 1):
                if used[j]:
                    ru[owner[j]] += delta
                    cv[j] -= delta
                else:
                    minv[j] -= delta
            j0 = j1
            if owner[j0] == 0:
                break
        while j0 != 0:
            j1 = way[j0]
            owner[j0] = owner[j1]
            j0 = j1
    for j in range(1, m + 1):
        if owner[j] > 0:
            match[owner[j] - 1] = j - 1


@njit(cache=True)
def associate(u, ids, n, z, projection, radial_weight, gate, rows, cols):
    """Pair rows 0..n-1 with detections z one to one at the least total distance
    (``association_cost``), keeping the pairs within ``gate``: rows[k], cols[k]. Returns k."""
    m = z.shape[0]
    if n == 0 or m == 0:
        return 0
    cost = np.empty((n, m))
    association_cost(u, ids, n, z, projection, radial_weight, gate, cost)
    k = 0
    if n <= m:
        match = np.empty(n, np.int64)
        assign(cost, n, m, match)
        for i in range(n):
            if cost[i, match[i]] <= gate:
                rows[k], cols[k] = i, match[i]
                k += 1
    else:
        match = np.empty(m, np.int64)
        assign(cost.T.copy(), m, n, match)
        for i in range(n):  # in row order, as the tracks' updates go
            for j in range(m):
                if match[j] == i and cost[i, j] <= gate:
                    rows[k], cols[k] = i, j
                    k += 1
    return k


@njit(cache=True)
def step(u, v, cov, p, power, born, last, ids, speech, n, obs, t, dt, params, projection, next_id, out):
    """Advance rows 0..n-1 by ``dt`` to time ``t`` with this update's detections ``obs`` (m, 4:
    azimuth and elevation in degrees, power, speech or NaN).

    - predict every row (process noise params[Q], an angular acceleration squared);
    - pair rows and detections one to one within params[GATE] (``associate``) and update the
      paired rows (measurement noise params[R]); a detection raises a row's probability by
      g = 1 - exp(-params[HIT_RATE] dt) times its power's share of the update's strongest
      (``weighted``); rows without one lose probability (exp(-params[MISS_LOSS] dt)) and speed
      (time constant params[COAST]); no row turns faster than params[MAX_SPEED] (rad/s);
    - unpaired detections become new rows (the caller leaves room for m more);
    - rows that reach params[CONFIRM] at params[MIN_AGE] seconds old get the next ids (in row
      order); confirmed rows silent for params[SILENCE], unconfirmed ones for
      params[TENTATIVE_SILENCE], are dropped and the rest move up in order;
    - ``out`` receives the confirmed rows (OUT_* columns), in the order of their ids.

    Returns (rows, next id, confirmed rows written to out).
    """
    m = obs.shape[0]
    z = np.empty((m, 3))
    top = 0.0
    for j in range(m):
        a = math.radians(obs[j, 0])
        e = math.radians(obs[j, 1])
        z[j, 0] = math.cos(e) * math.cos(a)
        z[j, 1] = math.cos(e) * math.sin(a)
        z[j, 2] = math.sin(e)
        top = max(top, obs[j, 2])
    # a detection's weight: 0.4 at 15.6 updates/s (64 ms), less per update at faster rates
    gain = 1.0 - math.exp(-params[HIT_RATE] * (dt if dt > 0 else 0.064))
    q, r = params[Q], params[R]
    for i in range(n):
        a, b, c = cov[i, 0], cov[i, 1], cov[i, 2]
        cov[i, 0] = a + 2.0 * dt * b + dt * dt * c + q * dt ** 3 / 3.0
        cov[i, 1] = b + dt * c + q * dt * dt / 2.0
        cov[i, 2] = c + q * dt
        for d in range(3):
            u[i, d] += dt * v[i, d]
        _normalise(u, v, i)
    rows = np.empty(min(n, m), np.int64)
    cols = np.empty(min(n, m), np.int64)
    k_pairs = associate(u, ids, n, z, projection, params[RADIAL_WEIGHT], params[GATE], rows, cols)
    hit = np.zeros(n, np.bool_)
    seen = np.zeros(m, np.bool_)
    for k in range(k_pairs):
        i, j = rows[k], cols[k]
        a, b = cov[i, 0], cov[i, 1]
        s = a + r
        k1, k2 = a / s, b / s
        for d in range(3):
            innov = z[j, d] - u[i, d]
            u[i, d] += k1 * innov
            v[i, d] += k2 * innov
        cov[i, 0], cov[i, 1], cov[i, 2] = (1.0 - k1) * a, (1.0 - k1) * b, cov[i, 2] - k2 * b
        _normalise(u, v, i)
        last[i] = t
        power[i] = 0.7 * power[i] + 0.3 * obs[j, 2]
        speech[i] = obs[j, 3]
        p[i] += (1.0 - p[i]) * weighted(gain, obs[j, 2], top)
        hit[i] = True
        seen[j] = True
    miss = math.exp(-params[MISS_LOSS] * dt)
    coast = math.exp(-dt / params[COAST]) if params[COAST] > 0 else 1.0
    max_speed = params[MAX_SPEED]
    for i in range(n):
        if not hit[i]:
            p[i] *= miss
            for d in range(3):
                v[i, d] *= coast
        if max_speed > 0:
            speed = math.sqrt(v[i, 0] * v[i, 0] + v[i, 1] * v[i, 1] + v[i, 2] * v[i, 2])
            if speed > max_speed:
                for d in range(3):
                    v[i, d] *= max_speed / speed
    for j in range(m):  # the peaks no track explains are new tracks
        if not seen[j]:
            for d in range(3):
                u[n, d], v[n, d] = z[j, d], 0.0
            cov[n, 0], cov[n, 1], cov[n, 2] = r, 0.0, r
            born[n] = last[n] = t
            power[n], speech[n], ids[n] = obs[j, 2], obs[j, 3], 0
            p[n] = weighted(gain, obs[j, 2], top)
            n += 1
    w = 0
    for i in range(n):
        if ids[i] == 0 and p[i] >= params[CONFIRM] and t - born[i] >= params[MIN_AGE]:
            ids[i] = next_id
            next_id += 1
        quiet = t - last[i]
        if (ids[i] == 0 and quiet > params[TENTATIVE_SILENCE]) or quiet > params[SILENCE]:
            continue
        if w != i:
            for d in range(3):
                u[w, d], v[w, d], cov[w, d] = u[i, d], v[i, d], cov[i, d]
            p[w], power[w], born[w], last[w], ids[w], speech[w] = p[i], power[i], born[i], last[i], ids[i], speech[i]
        w += 1
    n = w
    n_out = 0
    for i in np.argsort(ids[:n], kind="mergesort"):
        if ids[i] == 0:
            continue
        az = math.atan2(u[i, 1], u[i, 0])
        cos_el = max(math.hypot(u[i, 0], u[i, 1]), 1e-6)
        out[n_out, OUT_ID] = ids[i]
        out[n_out, OUT_AZ] = math.degrees(az)
        out[n_out, OUT_EL] = math.degrees(math.asin(max(-1.0, min(1.0, u[i, 2]))))
        out[n_out, OUT_POWER] = power[i]
        # azimuth and elevation rates of the tangent velocity
        out[n_out, OUT_D_AZ] = math.degrees((-v[i, 0] * math.sin(az) + v[i, 1] * math.cos(az)) / cos_el)
        out[n_out, OUT_D_EL] = math.degrees(v[i, 2] / cos_el)
        out[n_out, OUT_AGE] = t - born[i]
        out[n_out, OUT_P] = p[i]
        out[n_out, OUT_SILENT] = t - last[i]
        out[n_out, OUT_SPEECH] = speech[i]
        n_out += 1
    return n, next_id, n_out
