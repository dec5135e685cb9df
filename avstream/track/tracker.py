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
  it, a miss lowers it (p <- p + (1 - p) g power / strongest power of the update, with
  g = 1 - exp(-hit_rate dt) so that confirmation takes the same time, not the same number of
  updates, at any update rate; p <- p exp(-miss_loss dt)). A
  track is reported (and gets the next integer id) once p reaches ``confirm`` and it is
  ``min_age_s`` old; a peak that never comes back (a ghost, a reflection) dies unreported. A
  confirmed track lives through silences shorter than ``silence_s`` (moving on at its last
  velocity, which fades with time constant ``coast_s``: a source crossing another is hidden in
  its peak for a while, but one that went quiet stays near where it was) and keeps its id; then
  it dies. No track turns faster than ``max_speed_deg_s``.

Ids are never reused within a run.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..kernels.peaks import seen_distances


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


def _unit(az_deg, el_deg):
    a, e = math.radians(az_deg), math.radians(el_deg)
    return (math.cos(e) * math.cos(a), math.cos(e) * math.sin(a), math.sin(e))


class _Filter:
    """State of one track: direction u, velocity v (3-vectors as floats), and the covariance.

    With isotropic process and measurement noise the constant-velocity filter is the same on
    each axis, so one 2x2 covariance [[a, b], [b, c]] (position, position-velocity, velocity)
    serves all three: a few scalar operations per update instead of 6x6 matrices (plain floats:
    numpy's per-call overhead dominates on 3-vectors).
    """

    def __init__(self, u, t, power, var0):
        self.ux, self.uy, self.uz = (float(c) for c in u)
        self.vx = self.vy = self.vz = 0.0
        self.a, self.b, self.c = var0, 0.0, var0
        self.born = self.last = t
        self.power = power
        self.p = 0.0
        self.id = None
        self.speech = None

    @property
    def u(self):
        return (self.ux, self.uy, self.uz)

    def predict(self, dt, q):
        a, b, c = self.a, self.b, self.c
        self.a = a + 2.0 * dt * b + dt * dt * c + q * dt ** 3 / 3.0
        self.b = b + dt * c + q * dt * dt / 2.0
        self.c = c + q * dt
        self.ux += dt * self.vx
        self.uy += dt * self.vy
        self.uz += dt * self.vz
        self._normalise()

    def update(self, z, r):
        s = self.a + r
        k1, k2 = self.a / s, self.b / s
        ix, iy, iz = z[0] - self.ux, z[1] - self.uy, z[2] - self.uz
        self.ux += k1 * ix
        self.uy += k1 * iy
        self.uz += k1 * iz
        self.vx += k2 * ix
        self.vy += k2 * iy
        self.vz += k2 * iz
        self.a, self.b, self.c = (1.0 - k1) * self.a, (1.0 - k1) * self.b, self.c - k2 * self.b
        self._normalise()

    def slow(self, factor):
        self.vx *= factor
        self.vy *= factor
        self.vz *= factor

    def limit(self, speed):
        v = math.sqrt(self.vx * self.vx + self.vy * self.vy + self.vz * self.vz)
        if v > speed:
            self.slow(speed / v)

    def _normalise(self):
        n = math.sqrt(self.ux * self.ux + self.uy * self.uy + self.uz * self.uz)
        if n > 1e-9:
            self.ux, self.uy, self.uz = self.ux / n, self.uy / n, self.uz / n
        d = self.vx * self.ux + self.vy * self.uy + self.vz * self.uz  # the velocity stays tangent
        self.vx -= d * self.ux
        self.vy -= d * self.uy
        self.vz -= d * self.uz


def _weighted(gain, power, top):
    """How much one detection adds: the update's gain for its strongest peak, less for weaker
    ones (a reflection or a ghost beside a source must come back more often)."""
    return gain * (min(1.0, power / top) if top > 0 else 1.0)


class Tracker:
    """Turns each update's peaks into tracks with stable ids.

    Parameters
    ----------
    projection : ndarray (3, 3), radial_weight : float
        The localizer's (the array's plane and its RADIAL_WEIGHT for a planar array).
    gate_deg, measurement_deg, accel_deg_s2, confirm, silence_s, hit_rate, miss_loss, coast_s,
    max_speed_deg_s, min_age_s :
        See the module docstring.
    """

    def __init__(self, projection=None, radial_weight=1.0, gate_deg=20.0, measurement_deg=5.0, accel_deg_s2=20.0, confirm=0.8,
                 silence_s=2.5, hit_rate=8.0, miss_loss=2.0, coast_s=0.5, max_speed_deg_s=120.0, min_age_s=0.3):
        self.projection = np.eye(3) if projection is None else np.asarray(projection, float)
        self.radial_weight = float(radial_weight)
        self.gate = 2.0 * np.sin(np.deg2rad(gate_deg) / 2.0)
        self.r = np.deg2rad(measurement_deg) ** 2
        self.q = np.deg2rad(accel_deg_s2) ** 2
        self.confirm, self.silence_s = float(confirm), float(silence_s)
        self.hit_rate, self.miss_loss = float(hit_rate), float(miss_loss)
        self.coast_s = float(coast_s)
        self.min_age_s = float(min_age_s)
        self.max_speed = np.deg2rad(max_speed_deg_s)
        self.tracks: list[_Filter] = []
        self._ids = itertools.count(1)
        self._t = None

    def process(self, t: float, peaks) -> list:
        """Advance to time ``t`` with this update's peaks; return the confirmed tracks."""
        dt = 0.0 if self._t is None else max(0.0, t - self._t)
        self._t = t
        # a detection's weight: 0.4 at 15.6 updates/s (64 ms), less per update at faster rates
        gain = 1.0 - math.exp(-self.hit_rate * (dt if dt > 0 else 0.064))
        for tr in self.tracks:
            tr.predict(dt, self.q)
        zs = [_unit(p.azimuth_deg, p.elevation_deg) for p in peaks]
        pairs = self._associate(zs)
        top = max((p.power for p in peaks), default=0.0)
        hit = set()
        for ti, pi in pairs:
            tr = self.tracks[ti]
            tr.update(zs[pi], self.r)
            tr.last = t
            tr.power = 0.7 * tr.power + 0.3 * peaks[pi].power
            tr.speech = peaks[pi].speech
            tr.p += (1.0 - tr.p) * _weighted(gain, peaks[pi].power, top)
            hit.add(ti)
        for ti, tr in enumerate(self.tracks):
            if ti not in hit:
                tr.p *= math.exp(-self.miss_loss * dt)
                if self.coast_s > 0:
                    tr.slow(math.exp(-dt / self.coast_s))
            if self.max_speed > 0:
                tr.limit(self.max_speed)
        used = {pi for _, pi in pairs}
        for pi, z in enumerate(zs):
            if pi not in used:
                tr = _Filter(z, t, peaks[pi].power, self.r)
                tr.p = _weighted(gain, peaks[pi].power, top)
                tr.speech = peaks[pi].speech
                self.tracks.append(tr)
        # confirm, and let go of the tracks whose silence lasted too long
        keep = []
        for tr in self.tracks:
            if tr.id is None and tr.p >= self.confirm and t - tr.born >= self.min_age_s:
                tr.id = next(self._ids)
            silence = t - tr.last
            if tr.id is None and silence > 0.25 * self.silence_s:
                continue
            if silence > self.silence_s:
                continue
            keep.append(tr)
        self.tracks = keep
        return [self._out(tr, t) for tr in sorted(self.tracks, key=lambda tr: tr.id or 0) if tr.id is not None]

    def _associate(self, zs):
        if not zs or not self.tracks:
            return []
        cost = np.empty((len(self.tracks), len(zs)))
        seen_distances(np.array([tr.u for tr in self.tracks], dtype=float), np.array(zs, dtype=float), self.projection,
                       self.radial_weight, cost)
        # confirmed tracks first: a new blip must not steal a known source's detection
        cost = cost + np.array([0.0 if tr.id is not None else 1e-3 for tr in self.tracks])[:, None]
        big = 1e6
        rows, cols = linear_sum_assignment(np.where(cost <= self.gate, cost, big))
        return [(int(r), int(c)) for r, c in zip(rows, cols) if cost[r, c] <= self.gate]

    def _out(self, tr, t):
        az = math.degrees(math.atan2(tr.uy, tr.ux))
        el = math.degrees(math.asin(max(-1.0, min(1.0, tr.uz))))
        # azimuth and elevation rates of the tangent velocity: d(az) = (-v_x sin az + v_y cos az) / cos el,
        # d(el) = v_z / cos el
        a = math.radians(az)
        cos_el = max(math.hypot(tr.ux, tr.uy), 1e-6)
        rates = (math.degrees((-tr.vx * math.sin(a) + tr.vy * math.cos(a)) / cos_el), math.degrees(tr.vz / cos_el))
        return Track(tr.id, az, el, float(tr.power), rates, t - tr.born, float(tr.p), t - tr.last, tr.speech)

    def warm_up(self):
        """Compile the association kernel (before capture starts)."""
        u = np.array([[1.0, 0.0, 0.0]])
        seen_distances(u, u, self.projection, self.radial_weight, np.empty((1, 1)))

    def reset(self):
        self.tracks = []
        self._t = None
