"""Array-to-camera rotation from pairs of a sound direction and the pixel where its source was seen.

Each pair gives a unit vector a in the array frame (the sound's direction) and a unit vector c
in the camera optical frame (the pixel's ray, through the camera model). The rotation R with
c = R a is Wahba's problem, solved in closed form by SVD (Kabsch); outliers (a wrong pairing, a
reflection heard instead of the source) are rejected RANSAC-style: rotations fitted to random
pairs of pairs, the one most pairs agree with (within a threshold) kept and refitted on them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from ..geometry.grids import angular_distance_deg, to_unit
from .tables import read_table

COLUMNS = ["azimuth_deg", "elevation_deg", "u", "v"]


def kabsch(a: np.ndarray, c: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """Rotation R (det +1) minimising sum w |c - R a|^2 for unit vectors a, c (N, 3)."""
    w = np.ones(len(a)) if w is None else w
    H = (a * w[:, None]).T @ c
    U, _, Vt = np.linalg.svd(H)
    d = np.sign(np.linalg.det(Vt.T @ U.T)) or 1.0
    return Vt.T @ np.diag([1.0, 1.0, d]) @ U.T


@dataclass
class RotationFit:
    rotation: np.ndarray
    inliers: np.ndarray  # bool (N,)
    residual_deg: float  # RMS angle over inliers
    errors_deg: np.ndarray  # per pair


def fit_rotation(a: np.ndarray, c: np.ndarray, threshold_deg: float = 3.0, iterations: int = 500,
                 seed: int = 0) -> RotationFit:
    """Robust rotation from direction pairs (needs 3 or more, not all parallel)."""
    n = len(a)
    if n < 3:
        raise ConfigError(f"need at least 3 direction-pixel pairs, got {n}")
    rng = np.random.default_rng(seed)
    best = None
    for _ in range(iterations):
        i, j = rng.choice(n, 2, replace=False)
        if angular_distance_deg(a[i], a[j]) < 2.0 or angular_distance_deg(c[i], c[j]) < 2.0:
            continue  # nearly parallel: the rotation about them is undetermined
        R = kabsch(a[[i, j]], c[[i, j]])
        inl = angular_distance_deg(a @ R.T, c) < threshold_deg
        if best is None or inl.sum() > best.sum():
            best = inl
    if best is None or best.sum() < 3:
        raise ConfigError("no rotation agrees with 3 or more pairs: check the pairing, or raise the threshold")
    for _ in range(3):  # refit on the consensus, then re-select with the refined rotation
        R = kabsch(a[best], c[best])
        err = angular_distance_deg(a @ R.T, c)
        best = err < threshold_deg
    return RotationFit(R, best, float(np.sqrt(np.mean(err[best] ** 2))), err)


def read_pairs(path) -> np.ndarray:
    """Rows (azimuth_deg, elevation_deg, u, v) from a CSV with exactly those columns."""
    return read_table(path, COLUMNS)


def calibrate_extrinsics(pairs_path, camera, threshold_deg=3.0):
    """Fit from a pairs CSV and a Camera; returns (Extrinsics, RotationFit)."""
    from ..geometry.camera import Extrinsics

    rows = read_pairs(pairs_path)
    a = to_unit(rows[:, 0], rows[:, 1])
    c = camera.unproject(rows[:, 2], rows[:, 3])
    fit = fit_rotation(a, c, threshold_deg)
    return Extrinsics(fit.rotation, np.zeros(3)), fit
