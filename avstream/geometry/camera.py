"""Camera models, ROS calibration files and array-to-camera extrinsics.

Frames: the camera optical frame is REP 103's ``_optical`` (z forward, x right, y down); the
array frame is x forward, y left, z up. Extrinsics map a direction in the array frame into the
optical frame: ``d_cam = rotation @ d_array``; ``translation`` is the array origin in the
optical frame (metres).

Models:

- ``plumb_bob`` (pinhole, OpenCV's (k1, k2, p1, p2, k3)) and ``rational_polynomial`` (8 terms),
- ``equidistant`` (fisheye, OpenCV's fisheye (k1..k4)); fields of view below 180 degrees,
- ``equirectangular`` (360-degree video): column from longitude atan2(x, z), row from latitude
  -asin(y), no intrinsics besides the image size (ROS has no CameraInfo model for it).

Intrinsics files use the ROS ``camera_calibration_parsers`` YAML format, so files written by
ROS ``camera_calibration`` load unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from ..errors import ConfigError



def _criteria():
    import cv2

    return (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-14)


@dataclass(frozen=True)
class Camera:
    """Intrinsics of one camera.

    Attributes
    ----------
    width, height : int
    model : {"plumb_bob", "rational_polynomial", "equidistant", "equirectangular"}
    K : ndarray (3, 3)
    D : ndarray (n,)
    name : str
    """

    width: int
    height: int
    model: str
    K: np.ndarray = field(default_factory=lambda: np.eye(3))
    D: np.ndarray = field(default_factory=lambda: np.zeros(5))
    name: str = "camera"

    def project(self, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixels (u, v) of unit directions (N, 3) in the optical frame.

        Directions the model cannot see (behind a pinhole or fisheye camera) give NaN.
        """
        import cv2

        d = np.asarray(dirs, dtype=np.float64).reshape(-1, 3)
        if self.model == "equirectangular":
            lon = np.arctan2(d[:, 0], d[:, 2])
            lat = -np.arcsin(np.clip(d[:, 1] / np.linalg.norm(d, axis=1), -1.0, 1.0))
            # the picture wraps around: longitude +-180 degrees is column 0 (the seam), never
            # half a pixel past the right edge
            u = ((lon / (2 * np.pi) + 0.5) * self.width + 0.5) % self.width - 0.5
            return u, (0.5 - lat / np.pi) * self.height
        front = d[:, 2] > 1e-9
        uv = np.full((len(d), 2), np.nan)
        if front.any():
            pts = d[front].reshape(-1, 1, 3)
            if self.model == "equidistant":
                out, _ = cv2.fisheye.projectPoints(pts, np.zeros(3), np.zeros(3), self.K, self.D)
            else:
                out, _ = cv2.projectPoints(pts, np.zeros(3), np.zeros(3), self.K, self.D)
            uv[front] = out.reshape(-1, 2)
        return uv[:, 0], uv[:, 1]

    def unproject(self, u, v) -> np.ndarray:
        """Unit directions (N, 3) in the optical frame of pixels (u, v); NaN for pixels no
        direction projects to (outside a fisheye's image circle)."""
        import cv2

        u = np.asarray(u, dtype=np.float64).ravel()
        v = np.asarray(v, dtype=np.float64).ravel()
        if self.model == "equirectangular":
            lon = (u / self.width - 0.5) * 2 * np.pi
            lat = (0.5 - v / self.height) * np.pi
            return np.stack([np.cos(lat) * np.sin(lon), -np.sin(lat), np.cos(lat) * np.cos(lon)], axis=1)
        pts = np.stack([u, v], axis=1).reshape(-1, 1, 2)
        if self.model == "equidistant":
            xy = cv2.fisheye.undistortPoints(pts, self.K, self.D, None, np.eye(3), np.eye(3), _criteria())
        else:
            xy = cv2.undistortPoints(pts, self.K, self.D, None, np.eye(3), np.eye(3), _criteria())
        ray = np.concatenate([xy.reshape(-1, 2), np.ones((len(u), 1))], axis=1)
        ray /= np.linalg.norm(ray, axis=1, keepdims=True)
        # beyond the range where the distortion polynomial can be inverted (the corners outside a
        # fisheye's image circle, say) the iteration returns a ray that does not project back
        pu, pv = self.project(ray)
        ray[~(np.hypot(pu - u, pv - v) < 0.5)] = np.nan
        return ray


def pixels_of(camera: Camera, extrinsics: "Extrinsics", azimuth_deg, elevation_deg, distance=None):
    """Pixels (u, v) where the camera sees array-frame directions (degrees), with the parallax of
    a source ``distance`` metres from the array; NaN where the camera cannot see them."""
    from .grids import to_unit

    d = to_unit(np.atleast_1d(azimuth_deg), np.atleast_1d(elevation_deg))
    return camera.project(extrinsics.to_camera(d, distance))


def picture_pixels(camera: Camera, extrinsics: "Extrinsics", dirs, distance=None):
    """Pixels (u, v) of array-frame unit directions (N, 3) that the camera's picture holds; NaN
    for the others: behind the camera, outside the image, or folded into it by a distortion
    polynomial beyond its range (that pixel's ray does not lead back to the direction)."""
    rays = extrinsics.to_camera(np.asarray(dirs, float).reshape(-1, 3), distance)
    rays = rays / np.linalg.norm(rays, axis=1, keepdims=True)
    u, v = camera.project(rays)
    ok = np.isfinite(u) & np.isfinite(v)
    ok[ok] = (u[ok] >= -0.5) & (u[ok] <= camera.width - 0.5) & (v[ok] >= -0.5) & (v[ok] <= camera.height - 0.5)
    if ok.any():
        back = camera.unproject(u[ok], v[ok])
        same = np.nan_to_num(np.sum(back * rays[ok], axis=1)) > np.cos(np.deg2rad(0.5))
        ok[np.flatnonzero(ok)[~same]] = False
    return np.where(ok, u, np.nan), np.where(ok, v, np.nan)


def default_camera() -> Camera:
    """The built-in camera of the synthetic scene: 640x480 pinhole, 90 x 74 degrees, with a
    little barrel distortion (so the demo exercises the distortion path)."""
    K = np.array([[320.0, 0.0, 319.5], [0.0, 320.0, 239.5], [0.0, 0.0, 1.0]])
    return Camera(640, 480, "plumb_bob", K, np.array([-0.05, 0.01, 0.0, 0.0, 0.0]), "synthetic")


def generic_camera(width: int, height: int, hfov_deg: float = 70.0) -> Camera:
    """An uncalibrated pinhole guess for a camera of this size: no distortion, square pixels."""
    f = (width / 2) / np.tan(np.deg2rad(hfov_deg) / 2)
    K = np.array([[f, 0.0, (width - 1) / 2], [0.0, f, (height - 1) / 2], [0.0, 0.0, 1.0]])
    return Camera(width, height, "plumb_bob", K, np.zeros(5), "uncalibrated")


def default_extrinsics(array=None) -> Extrinsics:
    """Where an uncalibrated camera is assumed to be: at the array, looking along the side a
    planar array faces (an acoustic camera: the board faces the scene, like the camera in the
    middle of a miniDSP UMA-16), or along +x for a 3-D array. Image right is the array's -y
    (as far as the view direction allows); the camera sits 3 cm above the array centre in the
    image, so the array origin is at +0.03 m on the optical y axis (down)."""
    forward = np.asarray(array.facing, float) if array is not None and array.planar else np.array([1.0, 0.0, 0.0])
    forward = forward / np.linalg.norm(forward)
    right = np.array([0.0, -1.0, 0.0])
    right = right - forward * (right @ forward)
    if np.linalg.norm(right) < 1e-6:
        right = np.array([1.0, 0.0, 0.0]) - forward * forward[0]
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    return Extrinsics(np.stack([right, down, forward]), np.array([0.0, 0.03, 0.0]))


MODELS = {"plumb_bob": 5, "rational_polynomial": 8, "equidistant": 4, "equirectangular": 0}


def _matrix(doc, key, rows, cols, path):
    m = doc.get(key)
    if not isinstance(m, dict) or "data" not in m:
        raise ConfigError(f"{path}: missing key '{key}' (a mapping with rows, cols and data)")
    data = m["data"]
    if not isinstance(data, list) or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in data):
        raise ConfigError(f"{path}: key '{key}.data' must be a list of numbers")
    if m.get("rows") != rows or (cols is not None and m.get("cols") != cols) or \
            (cols is not None and len(data) != rows * cols):
        want = f"{rows}x{cols}" if cols is not None else f"{rows}xN"
        raise ConfigError(f"{path}: key '{key}' must be {want}, got rows={m.get('rows')} cols={m.get('cols')} "
                          f"with {len(data)} values")
    if cols is None and m.get("cols") != len(data):
        raise ConfigError(f"{path}: key '{key}': cols={m.get('cols')} but {len(data)} values")
    arr = np.asarray(data, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise ConfigError(f"{path}: key '{key}' holds a non-finite value")
    return arr if cols is None else arr.reshape(rows, cols)


# the keys of ROS camera_calibration_parsers' YAML format (binning and roi as ROS writes them;
# read, not used), and of avstream's extrinsics
CAMERA_KEYS = ("image_width", "image_height", "camera_name", "camera_matrix", "distortion_model",
               "distortion_coefficients", "rectification_matrix", "projection_matrix", "binning_x", "binning_y",
               "roi")
EXTRINSICS_KEYS = ("rotation", "translation")


def _load_yaml(path, keys) -> dict:
    from ..yamlio import load_mapping

    return load_mapping(Path(path), keys=keys)


def load_camera(path) -> Camera:
    """Read a ROS camera_calibration_parsers YAML file (or ``distortion_model: equirectangular``)."""
    doc = _load_yaml(path, CAMERA_KEYS)
    for key in ("image_width", "image_height"):
        if not isinstance(doc.get(key), int) or doc[key] <= 0:
            raise ConfigError(f"{path}: key '{key}' must be a positive integer")
    model = doc.get("distortion_model", "plumb_bob")
    if model not in MODELS:
        raise ConfigError(f"{path}: key 'distortion_model': '{model}' is not one of {', '.join(MODELS)}")
    w, h = doc["image_width"], doc["image_height"]
    if model == "equirectangular":
        return Camera(w, h, model, name=str(doc.get("camera_name", "camera")))
    K = _matrix(doc, "camera_matrix", 3, 3, path)
    D = _matrix(doc, "distortion_coefficients", 1, None, path)
    if model == "plumb_bob" and len(D) not in (4, 5):
        raise ConfigError(f"{path}: key 'distortion_coefficients': plumb_bob takes 5 values, got {len(D)}")
    if model != "plumb_bob" and len(D) != MODELS[model]:
        raise ConfigError(f"{path}: key 'distortion_coefficients': {model} takes {MODELS[model]} values, "
                          f"got {len(D)}")
    if K[0, 0] <= 0 or K[1, 1] <= 0 or np.any(K[2] != [0, 0, 1]):
        raise ConfigError(f"{path}: key 'camera_matrix' must be [fx 0 cx; 0 fy cy; 0 0 1] with fx, fy > 0")
    return Camera(w, h, model, K, D, str(doc.get("camera_name", "camera")))


def save_camera(cam: Camera, path, reprojection_error: float | None = None) -> None:
    """Write the ROS camera_calibration_parsers YAML format."""

    def mat(a, rows, cols):
        return {"rows": rows, "cols": cols, "data": [float(x) for x in np.ravel(a)]}

    P = np.zeros((3, 4))
    P[:, :3] = cam.K
    doc = {"image_width": cam.width, "image_height": cam.height, "camera_name": cam.name,
           "camera_matrix": mat(cam.K, 3, 3), "distortion_model": cam.model,
           "distortion_coefficients": mat(cam.D, 1, len(cam.D)), "rectification_matrix": mat(np.eye(3), 3, 3),
           "projection_matrix": mat(P, 3, 4)}
    text = yaml.safe_dump(doc, sort_keys=False)
    if reprojection_error is not None:
        text = f"# reprojection error: {reprojection_error:.4f} px (RMS)\n" + text
    Path(path).write_text(text)


@dataclass(frozen=True)
class Extrinsics:
    """Array frame -> camera optical frame."""

    rotation: np.ndarray
    translation: np.ndarray

    def to_camera(self, dirs_array: np.ndarray, distance: float | None = None) -> np.ndarray:
        """Directions in the optical frame of array directions (N, 3); with a source distance
        (metres from the array), corrected for the parallax of the array-camera translation."""
        d = np.asarray(dirs_array, dtype=np.float64) @ self.rotation.T
        if distance is None or not np.any(self.translation):
            return d
        p = d * distance + self.translation
        return p / np.linalg.norm(p, axis=-1, keepdims=True)

    def to_array(self, dirs_camera: np.ndarray, distance: float | None = None) -> np.ndarray:
        """The inverse of ``to_camera``: array-frame directions of optical-frame rays (N, 3),
        for a source ``distance`` metres from the array."""
        d = np.asarray(dirs_camera, dtype=np.float64)
        if distance is not None and np.any(self.translation):
            # the point along the ray that is ``distance`` from the array origin t: |s d - t| = distance
            t = self.translation
            dt = d @ t
            s = dt + np.sqrt(np.maximum(dt ** 2 - t @ t + distance ** 2, 0.0))
            d = d * s[..., None] - t
        a = d @ self.rotation
        return a / np.linalg.norm(a, axis=-1, keepdims=True)


def load_extrinsics(path) -> Extrinsics:
    """``rotation`` (3x3, row-major nested list, orthonormal, det +1) and ``translation`` (3)."""
    doc = _load_yaml(path, EXTRINSICS_KEYS)
    rot = doc.get("rotation")
    if rot is None:
        raise ConfigError(f"{path}: missing key 'rotation' (3x3 nested list)")
    try:
        R = np.asarray(rot, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"{path}: key 'rotation' must be a 3x3 nested list of numbers") from None
    if R.shape != (3, 3):
        raise ConfigError(f"{path}: key 'rotation' must be 3x3, got shape {R.shape}")
    err = np.abs(R @ R.T - np.eye(3)).max()
    if not np.isfinite(R).all() or err > 1e-3 or np.linalg.det(R) < 0:
        raise ConfigError(f"{path}: key 'rotation' is not a rotation (orthonormality error {err:.3g}, "
                          f"det {np.linalg.det(R):.3f})")
    t = doc.get("translation", [0.0, 0.0, 0.0])
    try:
        T = np.asarray(t, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"{path}: key 'translation' must be 3 numbers (metres)") from None
    if T.shape != (3,) or not np.isfinite(T).all():
        raise ConfigError(f"{path}: key 'translation' must be 3 numbers (metres), got {t!r}")
    # re-orthonormalise small rounding (SVD: nearest rotation)
    U, _, Vt = np.linalg.svd(R)
    return Extrinsics(U @ Vt, T)


def save_extrinsics(ext: Extrinsics, path, residual_deg: float | None = None) -> None:
    text = yaml.safe_dump({"rotation": [[float(x) for x in row] for row in ext.rotation],
                           "translation": [float(x) for x in ext.translation]}, sort_keys=False)
    if residual_deg is not None:
        text = f"# residual: {residual_deg:.3f} deg (RMS over inliers)\n" + text
    Path(path).write_text(text)
