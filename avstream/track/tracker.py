"""Sources that keep their names: a multi-target tracker between localization and the sinks.

Modelled on ODAS's SST: every update, each peak is explained as a tracked source, a new source
or a false detection.

- Each track is a constant-velocity Kalman filter on the unit sphere: the state is the unit
  direction and its rate of change (both 3-vectors in the array frame); the direction is
  renormalised and the velocity kept tangent after each step. The noise is isotropic, so one
  2x2 covariance serves the three axes. Measurement noise
  ``measurement_deg``; process noise an angular acceleration of ``accel_deg_s2``.
- Association: peaks and predicted tracks are matched one to one (Hungarian, scipy) by angle,
  within ``gate_deg``, measured as the localizers' exclusion radius is (on a planar array,
  mostly across its elevation ridges: kernels.peaks.seen_distance2).
- Existence: each track carries the probability that it is a real source. A detection raises
  it, a miss lowers it (p <- p + (1 - p) hit_gain power / strongest power of the update;
  p <- p exp(-miss_loss dt)). A
  track is reported (and gets the next integer id) once p reaches ``confirm``; a peak that
  never comes back (a ghost, a reflection) dies unreported. A confirmed track lives through
  silences shorter than ``silence_s`` (moving on at its last velocity: a source crossing
  another is hidden in its peak for a while) and keeps its id; then it dies.

Ids are never reused within a run.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Track:
    """One tracked source, as the sinks see it."""

    id: int
    azimuth_deg: float
    elevation_deg: float
    power: float  # smoothed peak power (the localizer's scale)
    velocity_deg_s: tuple  # (azimuth rate, elevation rate)
    age_s: float  # since the track was born
    probability: float  # that it is a real source
    silent_s: float  # since its last detection (0 when detected this update)
    speech: float | None = None

    def to_dict(self) -> dict:
        out = {"id": self.id, "azimuth_deg": round(self.azimuth_deg, 2), "elevation_deg": round(self.elevation_deg, 2),
               "power": round(self.power, 4),
               "velocity_deg_s": [round(self.velocity_deg_s[0], 2), round(self.velocity_deg_s[1], 2)],
               "age_s": round(self.age_s, 3), "probability": round(self.probability, 3),
               "silent_s": round(self.silent_s, 3)}
        if self.speech is not None:
            out["speech"] = round(self.speech, 3)
        return out


def unit(az_deg, el_deg):
    a, e = np.deg2rad(az_deg), np.deg2rad(el_deg)
    return np.array([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)])


def angles(u):
    return float(np.degrees(np.arctan2(u[1], u[0]))), float(np.degrees(np.arcsin(np.clip(u[2], -1.0, 1.0))))


class _Filter:
    """State of one track: direction u, velocity v (3-vectors), and the covariance.

    With isotropic process and measurement noise the constant-velocity filter is the same on
    each axis, so one 2x2 covariance [[a, b], [b, c]] (position, position-velocity, velocity)
    serves all three: a few scalar operations per update instead of 6x6 matrices.
    """

    def __init__(self, u, t, power, var0):
        self.u = np.array(u, dtype=float)
        self.v = np.zeros(3)
        self.a, self.b, self.c = var0, 0.0, var0
        self.born = self.last = t
        self.power = power
        self.p = 0.0
        self.id = None
        self.speech = None

    def predict(self, dt, q):
        a, b, c = self.a, self.b, self.c
        self.a = a + 2.0 * dt * b + dt * dt * c + q * dt ** 3 / 3.0
        self.b = b + dt * c + q * dt * dt / 2.0
        self.c = c + q * dt
        self.u = self.u + dt * self.v
        self._normalise()

    def update(self, z, r):
        s = self.a + r
        k1, k2 = self.a / s, self.b / s
        innovation = z - self.u
        self.u = self.u + k1 * innovation
        self.v = self.v + k2 * innovation
        self.a, self.b, self.c = (1.0 - k1) * self.a, (1.0 - k1) * self.b, self.c - k2 * self.b
        self._normalise()

    def _normalise(self):
        n = np.sqrt(self.u @ self.u)
        if n > 1e-9:
            self.u = self.u / n
        self.v = self.v - (self.v @ self.u) * self.u  # the velocity stays tangent


class Tracker:
    """Turns each update's peaks into tracks with stable ids.

    Parameters
    ----------
    projection : ndarray (3, 3), radial_weight : float
        The localizer's (the array's plane and its RADIAL_WEIGHT for a planar array).
    gate_deg, measurement_deg, accel_deg_s2, confirm, silence_s, hit_gain, miss_loss :
        See the module docstring.
    """

    def __init__(self, projection=None, radial_weight=1.0, gate_deg=20.0, measurement_deg=5.0, accel_deg_s2=60.0, confirm=0.8,
                 silence_s=2.5, hit_gain=0.4, miss_loss=2.0):
        self.projection = np.eye(3) if projection is None else np.asarray(projection, float)
        self.radial_weight = float(radial_weight)
        self.gate = 2.0 * np.sin(np.deg2rad(gate_deg) / 2.0)
        self.r = np.deg2rad(measurement_deg) ** 2
        self.q = np.deg2rad(accel_deg_s2) ** 2
        self.confirm, self.silence_s = float(confirm), float(silence_s)
        self.hit_gain, self.miss_loss = float(hit_gain), float(miss_loss)
        self.tracks: list[_Filter] = []
        self._ids = itertools.count(1)
        self._t = None

    def process(self, t: float, peaks) -> list:
        """Advance to time ``t`` with this update's peaks; return the confirmed tracks."""
        dt = 0.0 if self._t is None else max(0.0, t - self._t)
        self._t = t
        for tr in self.tracks:
            tr.predict(dt, self.q)
        zs = [unit(p.azimuth_deg, p.elevation_deg) for p in peaks]
        pairs = self._associate(zs)
        top = max((p.power for p in peaks), default=0.0)
        hit = set()
        for ti, pi in pairs:
            tr = self.tracks[ti]
            tr.update(zs[pi], self.r)
            tr.last = t
            tr.power = 0.7 * tr.power + 0.3 * peaks[pi].power
            tr.speech = peaks[pi].speech
            tr.p += (1.0 - tr.p) * self._gain(peaks[pi].power, top)
            hit.add(ti)
        for ti, tr in enumerate(self.tracks):
            if ti not in hit:
                tr.p *= float(np.exp(-self.miss_loss * dt))
        used = {pi for _, pi in pairs}
        for pi, z in enumerate(zs):
            if pi not in used:
                tr = _Filter(z, t, peaks[pi].power, self.r)
                tr.p = self._gain(peaks[pi].power, top)
                tr.speech = peaks[pi].speech
                self.tracks.append(tr)
        # confirm, and let go of the tracks whose silence lasted too long
        keep = []
        for tr in self.tracks:
            if tr.id is None and tr.p >= self.confirm:
                tr.id = next(self._ids)
            silence = t - tr.last
            if tr.id is None and silence > 0.25 * self.silence_s:
                continue
            if silence > self.silence_s:
                continue
            keep.append(tr)
        self.tracks = keep
        return [self._out(tr, t) for tr in sorted(self.tracks, key=lambda tr: tr.id or 0) if tr.id is not None]

    def _gain(self, power, top):
        """How much one detection adds: ``hit_gain`` for the update's strongest peak, less for
        weaker ones (a reflection or a ghost beside a source must come back more often)."""
        return self.hit_gain * (min(1.0, power / top) if top > 0 else 1.0)

    def _associate(self, zs):
        if not zs or not self.tracks:
            return []
        from scipy.optimize import linear_sum_assignment

        from ..kernels.peaks import seen_distances

        cost = np.empty((len(self.tracks), len(zs)))
        seen_distances(np.array([tr.u for tr in self.tracks]), np.array(zs), self.projection, self.radial_weight, cost)
        # confirmed tracks first: a new blip must not steal a known source's detection
        cost = cost + np.array([0.0 if tr.id is not None else 1e-3 for tr in self.tracks])[:, None]
        big = 1e6
        rows, cols = linear_sum_assignment(np.where(cost <= self.gate, cost, big))
        return [(int(r), int(c)) for r, c in zip(rows, cols) if cost[r, c] <= self.gate]

    def _out(self, tr, t):
        u, v = tr.u, tr.v
        az, el = angles(u)
        # azimuth and elevation rates of the tangent velocity: d(az) = (-v_x sin az + v_y cos az) / cos el,
        # d(el) = v_z / cos el
        a = np.deg2rad(az)
        cos_el = max(np.sqrt(u[0] * u[0] + u[1] * u[1]), 1e-6)
        rates = (float(np.degrees((-v[0] * np.sin(a) + v[1] * np.cos(a)) / cos_el)), float(np.degrees(v[2] / cos_el)))
        return Track(tr.id, az, el, float(tr.power), rates, t - tr.born, float(tr.p), t - tr.last, tr.speech)

    def reset(self):
        self.tracks = []
        self._t = None
