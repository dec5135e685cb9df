"""Direction grids: the cells of a heatmap.

``sphere:N``
    About N near-uniform directions (a Fibonacci lattice) over the sphere, or over the
    half-space an array faces when it is planar.
``hemisphere:N``
    About N near-uniform directions over the upper half-space (z >= 0), or the half-space a
    planar array faces.
``fov:H,V:COLS,ROWS``
    A COLS x ROWS azimuth/elevation rectangle spanning H x V degrees centred on +x, such as a
    camera's field of view. Rows run from the top (highest elevation) down, columns from
    left (highest azimuth, +y) to right, so the map reads like an image seen from the array.
``camera:BLOCK``
    Registered to the camera: one cell per BLOCK x BLOCK pixel block of the camera image, at
    the direction (in the array frame) of the block's centre pixel, through the camera's
    distortion, the extrinsics and, for an array-camera offset, an assumed source distance.
    Rows and columns are the image's, so the map lies on the picture without resampling.
    After the ``rows * cols`` image cells come the surround: the directions of a 2562-point
    sphere lattice (about 4 degrees apart; only the half a planar array faces) that the
    picture does not hold.
    Sources out of view are found there, instead of showing up as a false peak on the
    picture's edge; images of the map hold the image cells only.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from ..errors import ConfigError


def to_unit(azimuth_deg, elevation_deg) -> np.ndarray:
    """Unit vectors (..., 3) from azimuth/elevation in degrees."""
    az = np.deg2rad(np.asarray(azimuth_deg, dtype=np.float64))
    el = np.deg2rad(np.asarray(elevation_deg, dtype=np.float64))
    return np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], axis=-1)


def to_azel(unit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Azimuth in [-180, 180) and elevation in [-90, 90], degrees, from unit vectors (..., 3)."""
    u = np.asarray(unit, dtype=np.float64)
    az = np.rad2deg(np.arctan2(u[..., 1], u[..., 0]))
    el = np.rad2deg(np.arcsin(np.clip(u[..., 2] / np.linalg.norm(u, axis=-1), -1.0, 1.0)))
    return az, el


def angular_distance_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Great-circle angle in degrees between unit vectors."""
    return np.rad2deg(np.arccos(np.clip(np.sum(a * b, axis=-1), -1.0, 1.0)))


@dataclass(frozen=True)
class Grid:
    """A set of directions with a neighbour graph for peak picking.

    Attributes
    ----------
    spec : str
        The string the grid was made from.
    directions : ndarray (n_dirs, 3) float64
        Unit vectors in the array frame.
    neighbors : ndarray (n_dirs, n_neighbors) int32
        Indices of each cell's nearest cells (itself excluded).
    shape : tuple
        ``(rows, cols)`` for image-like grids, ``(n_dirs,)`` for sphere grids.
    spacing_deg : float
        Typical angle between neighbouring cells.
    half_space : ndarray (3,) or None
        For grids restricted to the side a planar array faces: that side's normal.
    """

    spec: str
    directions: np.ndarray
    neighbors: np.ndarray
    shape: tuple
    spacing_deg: float
    half_space: np.ndarray | None = None
    definition: dict | None = None
    valid: np.ndarray | None = None  # bool (n_dirs,): cells that see something (camera grids); None = all

    @property
    def n_dirs(self) -> int:
        return len(self.directions)

    @property
    def n_image(self) -> int:
        """Cells of the image part of an image-like grid (the first ones); n_dirs otherwise.
        A camera grid's cells after these are its surround, out of the picture."""
        return int(np.prod(self.shape))

    def image(self, values: np.ndarray) -> np.ndarray:
        """The image part of a map of this grid, reshaped to ``shape`` (a view)."""
        return values[:self.n_image].reshape(self.shape)

    def azel(self):
        return to_azel(self.directions)


def fibonacci_sphere(n: int) -> np.ndarray:
    """n near-uniform unit vectors; z runs from near +1 to near -1 in equal steps."""
    i = np.arange(n) + 0.5
    z = 1.0 - 2.0 * i / n
    r = np.sqrt(1.0 - z * z)
    phi = np.pi * (3.0 - np.sqrt(5.0)) * i
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def _rotation_z_to(v: np.ndarray) -> np.ndarray:
    """Rotation matrix taking +z to unit vector v."""
    z = np.array([0.0, 0.0, 1.0])
    c = float(np.dot(z, v))
    if c > 1 - 1e-12:
        return np.eye(3)
    if c < -1 + 1e-12:
        return np.diag([1.0, -1.0, -1.0])
    axis = np.cross(z, v)
    s = np.linalg.norm(axis)
    k = axis / s
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + s * kx + (1 - c) * kx @ kx


def _neighbors(dirs: np.ndarray, k: int) -> np.ndarray:
    k = min(k, len(dirs) - 1)
    _, idx = cKDTree(dirs).query(dirs, k=k + 1)
    return np.ascontiguousarray(idx[:, 1:], dtype=np.int32)


def _linked_both_ways(nb: np.ndarray, first: int) -> np.ndarray:
    """``nb`` with the links into cells >= ``first`` made mutual: a cell that one of those
    lists as a neighbour lists it back (in added columns, -1 padded). Links among the cells
    before ``first`` stay as they are."""
    n, k = nb.shape
    i = np.repeat(np.arange(n), k)
    j = nb.ravel().astype(np.int64)
    rev = (i >= first) | (j >= first)
    a, b = j[rev], i[rev]  # b should appear among a's neighbours
    keep = ~(nb[a] == b[:, None]).any(axis=1)
    a, b = a[keep], b[keep]
    order = np.lexsort((b, a))
    a, b = a[order], b[order]
    if len(a):
        first_of = np.r_[True, (a[1:] != a[:-1]) | (b[1:] != b[:-1])]  # each missing link once
        a, b = a[first_of], b[first_of]
    counts = np.bincount(a, minlength=n)
    out = np.full((n, k + int(counts.max(initial=0))), -1, dtype=np.int32)
    out[:, :k] = nb
    col = np.arange(len(a)) - np.r_[0, np.cumsum(counts)[:-1]][a]  # place within its row
    out[a, k + col] = b
    return out


def _lattice(n: int, half_space: np.ndarray | None) -> np.ndarray:
    if half_space is None:
        return fibonacci_sphere(n)
    return fibonacci_sphere(2 * n)[:n] @ _rotation_z_to(np.asarray(half_space, float)).T


def sphere_grid(n: int, half_space: np.ndarray | None = None, spec: str | None = None) -> Grid:
    dirs = _lattice(n, half_space)
    spacing = np.rad2deg(np.sqrt((2.0 if half_space is not None else 4.0) * np.pi / n))
    definition = {"type": "sphere", "n": int(n)}
    if half_space is not None:
        definition["half_space"] = np.asarray(half_space, float).tolist()
    return Grid(spec or f"sphere:{n}", np.ascontiguousarray(dirs), _neighbors(dirs, 8), (len(dirs),),
                float(spacing), None if half_space is None else np.asarray(half_space, float), definition)


def fov_grid(h_deg: float, v_deg: float, cols: int, rows: int, spec: str | None = None) -> Grid:
    az = np.linspace(h_deg / 2, -h_deg / 2, cols)  # left (+y) to right
    el = np.linspace(v_deg / 2, -v_deg / 2, rows)  # top to bottom
    AZ, EL = np.meshgrid(az, el)
    dirs = to_unit(AZ.ravel(), EL.ravel())
    spacing = max(h_deg / max(cols - 1, 1), v_deg / max(rows - 1, 1))
    definition = {"type": "fov", "h_deg": h_deg, "v_deg": v_deg, "cols": cols, "rows": rows,
                  "azimuth_deg": [h_deg / 2, -h_deg / 2], "elevation_deg": [v_deg / 2, -v_deg / 2]}
    return Grid(spec or f"fov:{h_deg:g},{v_deg:g}:{cols},{rows}", np.ascontiguousarray(dirs),
                _neighbors(dirs, 8), (rows, cols), float(spacing), None, definition)


SURROUND = 2562  # sphere lattice whose out-of-picture directions a camera grid adds


def in_view(camera, extrinsics, dirs: np.ndarray, distance: float | None = None) -> np.ndarray:
    """Which array-frame unit directions (N, 3) the camera's picture holds (see
    camera.picture_pixels)."""
    from .camera import picture_pixels

    return np.isfinite(picture_pixels(camera, extrinsics, dirs, distance)[0])


def camera_grid(camera, extrinsics, block: float, distance: float | None = None, spec: str | None = None,
                half_space: np.ndarray | None = None, surround: int = SURROUND) -> Grid:
    """A grid whose cells are the pixel blocks of ``camera``'s image (see the module doc).

    Cell (row, col) looks along the ray of pixel ``((col + 0.5) * width / cols - 0.5,
    (row + 0.5) * height / rows - 0.5)``: the centre of its block, so resizing the
    (rows, cols) map to the image size with OpenCV's bilinear resize puts every cell value
    on the pixel whose direction it was computed for.
    """
    cols = max(2, int(round(camera.width / block)))
    rows = max(2, int(round(camera.height / block)))
    u = (np.arange(cols) + 0.5) * camera.width / cols - 0.5
    v = (np.arange(rows) + 0.5) * camera.height / rows - 0.5
    U, V = np.meshgrid(u, v)
    rays = camera.unproject(U.ravel(), V.ravel())
    valid = np.isfinite(rays).all(axis=1)
    if not valid.any():
        raise ConfigError(f"camera {camera.name}: no pixel of the image has a direction (check the intrinsics)")
    # blocks no direction projects to (outside a fisheye's image circle) keep a placeholder
    # direction behind the camera, spread a little so the neighbour graph stays sane; the
    # localizer writes 0 there
    behind = -np.nanmean(rays[valid], axis=0)
    spread = np.stack([np.cos(np.arange(len(rays))), np.sin(np.arange(len(rays))), np.zeros(len(rays))], 1) * 1e-3
    rays[~valid] = behind / np.linalg.norm(behind) + spread[~valid]
    rays /= np.linalg.norm(rays, axis=1, keepdims=True)
    dirs = np.ascontiguousarray(extrinsics.to_array(rays, distance))
    if half_space is not None:
        valid &= dirs @ np.asarray(half_space, float) >= 0.0
    # spacing: the larger angle between horizontal and vertical neighbours, at the centre
    centre = dirs.reshape(rows, cols, 3)[rows // 2]
    h = angular_distance_deg(centre[cols // 2], centre[min(cols // 2 + 1, cols - 1)])
    vcol = dirs.reshape(rows, cols, 3)[:, cols // 2]
    vv = angular_distance_deg(vcol[rows // 2], vcol[min(rows // 2 + 1, rows - 1)])
    outer = np.zeros((0, 3))
    if surround:
        # the density of a ``surround`` sphere lattice (about 4 degrees apart for 2562)
        lattice = _lattice(surround if half_space is None else surround // 2,
                           None if half_space is None else np.asarray(half_space, float))
        outer = lattice[~in_view(camera, extrinsics, lattice, distance)]
    n_image = len(dirs)
    dirs = np.ascontiguousarray(np.vstack([dirs, outer]))
    valid = np.concatenate([valid, np.ones(len(outer), bool)])
    neighbors = _linked_both_ways(_neighbors(dirs, 8), n_image) if len(outer) else _neighbors(dirs, 8)
    definition = {"type": "camera", "rows": rows, "cols": cols, "block": float(block),
                  "camera": camera.name, "model": camera.model, "width": camera.width, "height": camera.height,
                  "K": np.asarray(camera.K).ravel().tolist(), "D": np.asarray(camera.D).ravel().tolist(),
                  "rotation": extrinsics.rotation.tolist(), "translation": extrinsics.translation.tolist(),
                  "source_distance_m": distance, "surround_cells": int(len(outer))}
    return Grid(spec or f"camera:{block:g}", dirs, neighbors, (rows, cols), float(max(h, vv)), None,
                definition, None if valid.all() else valid)


_SPHERE = re.compile(r"^(sphere|hemisphere):(\d+)$")
_FOV = re.compile(r"^fov:([0-9.]+),([0-9.]+):(\d+),(\d+)$")
_CAMERA = re.compile(r"^camera:([0-9.]+)$")


def parse_grid(spec: str, array=None, view=None) -> Grid:
    """Build the grid named by ``spec``; planar arrays get the half-space they face.

    ``view`` is ``(camera, extrinsics, source_distance_m)`` for ``camera:BLOCK`` grids.
    """
    spec = spec.strip()
    m = _CAMERA.match(spec)
    if m:
        if view is None:
            raise ConfigError(f"grid '{spec}': a camera grid needs a camera (set camera.source, or "
                              "camera.intrinsics for a recording)")
        block = float(m.group(1))
        cam = view[0]
        if not 1 <= block <= min(cam.width, cam.height) / 2:
            raise ConfigError(f"grid '{spec}': BLOCK must be within 1..{min(cam.width, cam.height) // 2} pixels "
                              f"for a {cam.width}x{cam.height} camera")
        return camera_grid(view[0], view[1], block, view[2], spec,
                           array.facing if array is not None and array.planar else None)
    m = _SPHERE.match(spec)
    if m:
        n = int(m.group(2))
        if not 8 <= n <= 200_000:
            raise ConfigError(f"grid '{spec}': N must be between 8 and 200000")
        half = array.facing if array is not None and array.planar else None
        if m.group(1) == "hemisphere" and half is None:
            half = np.array([0.0, 0.0, 1.0])
        return sphere_grid(n, half, spec)
    m = _FOV.match(spec)
    if m:
        h, v, cols, rows = float(m.group(1)), float(m.group(2)), int(m.group(3)), int(m.group(4))
        if not (0 < h <= 360 and 0 < v <= 180):
            raise ConfigError(f"grid '{spec}': field of view must be 0 < H <= 360 and 0 < V <= 180 degrees")
        if not (2 <= cols <= 4096 and 2 <= rows <= 4096):
            raise ConfigError(f"grid '{spec}': COLS and ROWS must be between 2 and 4096")
        return fov_grid(h, v, cols, rows, spec)
    raise ConfigError(f"grid '{spec}': expected sphere:N, hemisphere:N, fov:H,V:COLS,ROWS (e.g. fov:90,70:64,48) "
                      "or camera:BLOCK (e.g. camera:10)")


class ImageLayout:
    """How a heatmap becomes an image: rows are elevation from the top, columns azimuth from
    the left (+y). A fov grid is its own image; a sphere grid is resampled (nearest cell) to an
    equirectangular image, azimuth +180..-180 across and elevation +90..-90 down, with cells
    outside the searched half-space set to 0.

    ``definition`` lets a client turn pixel (row, col) into a direction:
    ``azimuth = linspace(*azimuth_deg, cols)[col]``, ``elevation = linspace(*elevation_deg, rows)[row]``.
    A camera grid is its own image too, registered to the camera picture; its definition holds
    the intrinsics (K, D, model, size) and the extrinsics that give each cell's direction.
    """

    def __init__(self, grid: Grid, sphere_resolution_deg: float = 2.0):
        self.grid = grid
        if grid.definition.get("type") == "camera":
            self.rows, self.cols = grid.shape
            self.definition = dict(grid.definition)
            self._cell = None
        elif len(grid.shape) == 2:
            self.rows, self.cols = grid.shape
            d = grid.definition
            self.definition = {"type": "fov", "rows": self.rows, "cols": self.cols,
                               "azimuth_deg": list(d["azimuth_deg"]), "elevation_deg": list(d["elevation_deg"])}
            self._cell = None
        else:
            self.cols = int(round(360.0 / sphere_resolution_deg))
            self.rows = int(round(180.0 / sphere_resolution_deg))
            az = 180.0 - (np.arange(self.cols) + 0.5) * 360.0 / self.cols
            el = 90.0 - (np.arange(self.rows) + 0.5) * 180.0 / self.rows
            AZ, EL = np.meshgrid(az, el)
            dirs = to_unit(AZ.ravel(), EL.ravel())
            _, cell = cKDTree(grid.directions).query(dirs)
            self._cell = cell.astype(np.int64)
            self._outside = (dirs @ grid.half_space < -1e-9) if grid.half_space is not None else None
            self.definition = {"type": "equirectangular", "rows": self.rows, "cols": self.cols,
                               "azimuth_deg": [float(az[0]), float(az[-1])],
                               "elevation_deg": [float(el[0]), float(el[-1])], "source_grid": grid.definition}
        self._image = np.zeros((self.rows, self.cols), dtype="<f4")

    def image(self, values: np.ndarray) -> np.ndarray:
        """The (rows, cols) float32 image of a map; a buffer reused between calls."""
        if self._cell is None:
            self._image[:] = self.grid.image(values)
        else:
            flat = self._image.reshape(-1)
            flat[:] = values[self._cell]
            if self._outside is not None:
                flat[self._outside] = 0.0
        return self._image
