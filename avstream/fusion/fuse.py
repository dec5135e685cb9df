"""The fusion stage: the array's map and the learned engine's map become one map over the
picture, its peaks in pixels, and the overlay drawn from it.

``--fusion`` chooses the published map:

- ``array``: the array's map alone (the engine is still run and published on its own topic);
- ``engine``: the engine's map alone;
- ``product`` (default): the array's map times the engine's. The array says roughly where and
  whether something sounds; the engine says which object it is. The array's map keeps its
  units (mean PHAT coherence): what stands above its median is scaled by the engine's 0..1,
  so silence still looks like silence. Without an engine, or while the engine is gated off
  because the audio is silent, the product is the array's map.
"""
from __future__ import annotations

import numpy as np

from ..frames import PictureMaps
from .overlay import MARK_CONTRAST, Overlay

FUSIONS = ("array", "engine", "product")


def combine(array_map, engine_map, mode):
    """The published map on the array map's raster (float32)."""
    if engine_map is None or mode == "array":
        return array_map
    import cv2

    rows, cols = array_map.shape
    e = engine_map if engine_map.shape == (rows, cols) else \
        cv2.resize(engine_map.astype(np.float32), (cols, rows), interpolation=cv2.INTER_LINEAR)
    e = np.clip(e, 0.0, 1.0)
    if mode == "engine":
        return e.astype(np.float32)
    med = float(np.median(array_map))
    return (med + np.maximum(array_map - med, 0.0) * e).astype(np.float32)


def picture_peaks(m, size, k=3, contrast=MARK_CONTRAST):
    """Up to ``k`` local maxima of map ``m`` (rows, cols) standing ``contrast`` above its median,
    strongest first, as {"u", "v", "power"} in the pixels of a ``size`` = (width, height) picture
    (cell centres, refined by a parabola through each peak's neighbours)."""
    from scipy.ndimage import maximum_filter

    rows, cols = m.shape
    w, h = size
    med = float(np.median(m))
    is_max = (m == maximum_filter(m, size=3, mode="nearest")) & (m - med >= contrast)
    r, c = np.nonzero(is_max)
    order = np.argsort(-m[r, c])[:k]
    out = []
    for i in order:
        rr, cc = int(r[i]), int(c[i])
        dr = _vertex(m[rr - 1, cc], m[rr, cc], m[rr + 1, cc]) if 0 < rr < rows - 1 else 0.0
        dc = _vertex(m[rr, cc - 1], m[rr, cc], m[rr, cc + 1]) if 0 < cc < cols - 1 else 0.0
        out.append({"u": round((cc + dc + 0.5) * w / cols - 0.5, 1), "v": round((rr + dr + 0.5) * h / rows - 0.5, 1),
                    "power": round(float(m[rr, cc]), 4)})
    return out


def _vertex(a, b, c) -> float:
    d = a - 2 * b + c
    return float(np.clip(0.5 * (a - c) / d, -0.5, 0.5)) if d < 0 else 0.0


class Fusion:
    """Fuses, finds the picture's peaks and draws the overlay for one camera.

    Parameters
    ----------
    grid : Grid
    camera, extrinsics : the camera model and the array-to-camera transform
    distance : float or None
        Assumed source distance (parallax), metres.
    mode : {"array", "engine", "product"}
    n_pixels : int
        Peaks reported per update in ``picture.pixels``.
    draw : bool
        Draw the overlay picture (needs frames: a run with a camera).
    """

    def __init__(self, grid, camera, extrinsics, distance=None, mode="product", n_pixels=3, draw=True):
        if mode not in FUSIONS:
            raise ValueError(f"unknown fusion '{mode}' (known: {', '.join(FUSIONS)})")
        self.overlay = Overlay(grid, camera, extrinsics, distance)
        self.mode, self.n_pixels, self.draw = mode, int(n_pixels), draw
        self.size = (camera.width, camera.height)

    def picture_layout(self) -> dict:
        """How the picture maps lie over the picture: rows x cols cells over width x height pixels."""
        rows, cols = self.overlay.shape
        return {"rows": int(rows), "cols": int(cols), "width": int(self.size[0]), "height": int(self.size[1])}

    def process(self, hm, status_text: str = "") -> None:
        """Set ``hm.picture`` (keeping the engine's map and mask it may carry) and ``hm.overlay``."""
        array_map = self.overlay.map_image(hm.values)
        engine = hm.picture.engine if hm.picture is not None else None
        mask = hm.picture.mask if hm.picture is not None else None
        gated = hm.picture.gated if hm.picture is not None else False
        fused = combine(array_map, engine, self.mode)
        hm.picture = PictureMaps(array_map, engine, fused, mask, picture_peaks(fused, self.size, self.n_pixels),
                                 gated)
        if self.draw:
            hm.overlay = self.overlay.render(hm.frame, hm, status_text)
