"""Sources that keep their names: a multi-target tracker between localization and the sinks.

Modelled on ODAS's SST: every update, each peak is explained as a tracked source, a new source
or a false detection.

- Each track is a constant-velocity Kalman filter on the unit sphere: the state is the unit
  direction and its rate of change (both 3-vectors in the array frame); the direction is
  renormalised and the velocity kept tangent after each step. The noise is isotropic, so one
  2x2 covariance serves the three axes. Measurement noise
  ``measurement_deg``; process noise an angular acceleration of ``accel_deg_s2``.
- Association: peaks and predicted tracks are matched one to one (Hungarian) by angle,
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

Ids are never reused within a run. The filters are rows of arrays and one Numba kernel
(kernels.track.step) makes each update.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..frames import Peak
from ..kernels.track import (CONFIRM, COAST, GATE, HIT_RATE, MAX_SPEED, MIN_AGE, MISS_LOSS, N_OUT, N_PARAMS, OUT_AGE,
                             OUT_AZ, OUT_D_AZ, OUT_D_EL, OUT_EL, OUT_ID, OUT_P, OUT_POWER, OUT_SILENT, OUT_SPEECH, Q, R,
                             RADIAL_WEIGHT, SILENCE, TENTATIVE_SILENCE, step)


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

    def __init__(self, id, azimuth_deg, elevation_deg, power, velocity_deg_s, age_s, probability, silent_s,
                 speech=None):  # in one call, as Peak's
        self.__dict__.update(id=id, azimuth_deg=azimuth_deg, elevation_deg=elevation_deg, power=power,
                             velocity_deg_s=velocity_deg_s, age_s=age_s, probability=probability, silent_s=silent_s,
                             speech=speech)

    def to_dict(self) -> dict:
        out = {"id": self.id, "azimuth_deg": round(self.azimuth_deg, 2), "elevation_deg": round(self.elevation_deg, 2),
               "power": round(self.power, 4),
               "velocity_deg_s": [round(self.velocity_deg_s[0], 2), round(self.velocity_deg_s[1], 2)],
               "age_s": round(self.age_s, 3), "probability": round(self.probability, 3),
               "silent_s": round(self.silent_s, 3)}
        if self.speech is not None:
            out["speech"] = round(self.speech, 3)
        return out


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
        self.params = np.empty(N_PARAMS)
        self.params[[Q, R, GATE, RADIAL_WEIGHT, CONFIRM, MIN_AGE, SILENCE, TENTATIVE_SILENCE, MAX_SPEED, HIT_RATE,
                     MISS_LOSS, COAST]] = (
            np.deg2rad(accel_deg_s2) ** 2, np.deg2rad(measurement_deg) ** 2, 2.0 * np.sin(np.deg2rad(gate_deg) / 2.0),
            radial_weight, confirm, min_age_s, silence_s, 0.25 * silence_s, np.deg2rad(max_speed_deg_s), hit_rate,
            miss_loss, coast_s)
        self.reset()

    def reset(self):
        self._t = None
        self._next_id = 1  # ids are never reused within a run
        self._n = 0
        self._grow(16)

    def _grow(self, capacity):
        """The filters (kernels.track), one row per track; rows 0.._n-1 are in use."""
        n = self._n
        old = getattr(self, "_rows", None)
        # step's u, v, cov, p, power, born, last, ids, speech
        self._rows = rows = (np.zeros((capacity, 3)), np.zeros((capacity, 3)), np.zeros((capacity, 3)), np.zeros(capacity),
                             np.zeros(capacity), np.zeros(capacity), np.zeros(capacity), np.zeros(capacity, np.int64),
                             np.full(capacity, np.nan))
        if old is not None:
            for new, was in zip(rows, old):
                new[:n] = was[:n]
        self._out = np.empty((capacity, N_OUT))

    def process(self, t: float, peaks) -> list:
        """Advance to time ``t`` with this update's peaks; return the confirmed tracks."""
        dt = 0.0 if self._t is None else max(0.0, t - self._t)
        self._t = t
        if self._n + len(peaks) > len(self._out):
            self._grow(2 * (self._n + len(peaks)))
        obs = np.array([(p.azimuth_deg, p.elevation_deg, p.power, np.nan if p.speech is None else p.speech)
                        for p in peaks], dtype=float).reshape(-1, 4)
        self._n, self._next_id, n_out = step(*self._rows, self._n, obs, t, dt, self.params, self.projection,
                                             self._next_id, self._out)
        return [Track(int(r[OUT_ID]), r[OUT_AZ], r[OUT_EL], r[OUT_POWER], (r[OUT_D_AZ], r[OUT_D_EL]), r[OUT_AGE], r[OUT_P],
                      r[OUT_SILENT], None if math.isnan(r[OUT_SPEECH]) else r[OUT_SPEECH])
                for r in self._out[:n_out].tolist()]

    def warm_up(self):
        """Compile the kernels (before capture starts)."""
        self.process(0.0, [Peak(0.0, 0.0, 1.0)])
        self.reset()
