"""The acoustic camera picture: the heatmap colour-mapped and blended onto the camera frame,
the sources marked with their track id and power, the segmenter's mask outlined, and a
one-line status.
With picture maps on the update (fusion.fuse), the fused map is the one drawn.

For a camera-registered grid (``camera:BLOCK``) the map already lies on the picture: the
(rows, cols) map is resized to the frame with bilinear interpolation, which puts each cell's
value on its block's centre pixel. Any other grid is looked up per pixel block (nearest cell
to the block's direction); blocks outside a half-space grid stay clear. A source out of the
picture gets an arrow on the picture's edge, pointing the way the camera would have to turn.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from ..geometry.camera import picture_pixels
from ..geometry.grids import camera_grid, to_unit

FULL_CONTRAST = 0.2  # map peak over its median (mean PHAT coherence) drawn at full opacity
MARK_CONTRAST = 0.05  # a peak is marked when it stands this far above the map's median
# an out-of-view peak gets an arrow only when it stands at least this share of the strongest
# peak's height above the median: off the picture, a planar array's sidelobes pile up near its
# plane (0.1-0.3 above the median in the demo, against 0.5 for the sources)
ARROW_SHARE = 0.5


class Overlay:
    """Draws heatmaps on frames of one camera.

    Parameters
    ----------
    grid : Grid
        The localizer's grid.
    camera : Camera
    extrinsics : Extrinsics
    distance : float or None
        Assumed source distance for parallax (metres).
    alpha : float
        Opacity of the hottest colour; cooler cells fade out so the picture shows through, and
        the whole map fades when its peak stands less than FULL_CONTRAST above its median.
    """

    def __init__(self, grid, camera, extrinsics, distance=None, alpha=0.6, block=8):
        import cv2

        self.camera, self.extrinsics, self.distance = camera, extrinsics, distance
        self.alpha = float(alpha)
        self.size = (camera.width, camera.height)
        d = grid.definition or {}
        if d.get("type") == "camera" and (d["width"], d["height"]) == self.size:
            self.shape = grid.shape
            self._grid = grid
            self._cell = None
        else:
            blocks = camera_grid(camera, extrinsics, block, distance, surround=0)
            _, cell = cKDTree(grid.directions).query(blocks.directions)
            self._cell = cell.astype(np.int64)
            ok = np.isfinite(blocks.directions).all(axis=1)
            if grid.half_space is not None:
                ok &= blocks.directions @ grid.half_space >= -1e-9
            # off-grid blocks: cells further than two spacings from any grid direction
            gap = np.rad2deg(np.arccos(np.clip(np.sum(grid.directions[self._cell] * blocks.directions, 1), -1, 1)))
            self._clear = ~(ok & (gap <= 2 * grid.spacing_deg + 1e-9))
            self.shape = blocks.shape
        self._colormap = cv2.COLORMAP_INFERNO
        self._blank = np.full((camera.height, camera.width, 3), 40, np.uint8)

    def map_image(self, values: np.ndarray) -> np.ndarray:
        """The map on the overlay's (rows, cols) block raster, float32."""
        if self._cell is None:
            return self._grid.image(values).astype(np.float32, copy=False)
        img = values[self._cell].astype(np.float32)
        img[self._clear] = 0.0
        return img.reshape(self.shape)

    def peak_pixels(self, peaks) -> list:
        """(u, v) of each peak on the image, NaN when out of view."""
        if not peaks:
            return []
        dirs = to_unit([p.azimuth_deg for p in peaks], [p.elevation_deg for p in peaks])
        u, v = picture_pixels(self.camera, self.extrinsics, dirs, self.distance)
        return [(float(a), float(b)) for a, b in zip(u, v)]

    def edge_point(self, peak, margin: int = 24):
        """Where the arrow for an out-of-view ``peak`` ends: ((x, y) on the picture's edge,
        (dx, dy) unit direction in the picture) along the way the camera would turn."""
        ray = self.extrinsics.to_camera(to_unit(peak.azimuth_deg, peak.elevation_deg)[None], self.distance)[0]
        d = np.array([ray[0], ray[1]], float)  # optical frame: x right, y down
        n = float(np.hypot(*d))
        d = d / n if n > 1e-9 else np.array([0.0, -1.0])  # straight behind: point up
        w, h = self.size
        cx, cy = (w - 1) / 2, (h - 1) / 2
        sx = (cx - margin) / abs(d[0]) if abs(d[0]) > 1e-9 else np.inf
        sy = (cy - margin) / abs(d[1]) if abs(d[1]) > 1e-9 else np.inf
        s = min(sx, sy)
        return (cx + s * d[0], cy + s * d[1]), (float(d[0]), float(d[1]))

    def render(self, frame, heatmap, status_text: str = "") -> np.ndarray:
        """BGR uint8 (height, width, 3): ``frame`` (VideoFrame, or None when there is no
        current frame: a grey picture saying so) with ``heatmap`` on it."""
        import cv2

        w, h = self.size
        live = frame is not None and frame.image.shape[:2] == (h, w)
        img = (frame.image if live else self._blank).copy()  # the one copy: sinks keep what they get
        pic = heatmap.picture
        m = pic.fused if pic is not None else self.map_image(heatmap.values)
        lo, hi = float(np.median(m)), float(m.max())
        if hi > lo:
            level = cv2.resize(np.clip((m - lo) / (hi - lo), 0, 1).astype(np.float32), (w, h),
                               interpolation=cv2.INTER_LINEAR)
            colour = cv2.applyColorMap(cv2.convertScaleAbs(level, alpha=255.0), self._colormap)
            # fade by contrast: diffuse noise alone peaks about 0.01 over the median map value (in
            # mean PHAT coherence), a source 0.3 to 0.8, so silence and noise do not light up
            a = cv2.multiply(level, self.alpha * min(1.0, (hi - lo) / FULL_CONTRAST))
            # per-pixel weights in OpenCV (a float numpy blend of 640x480x3 costs ten times more)
            img = cv2.blendLinear(colour, img, a, cv2.subtract(1.0, a))
        if pic is not None and pic.mask is not None:
            self._outline(img, pic.mask)
        top = max((p.power for p in heatmap.peaks), default=lo) - lo
        # with an engine the marks on the picture are the fused map's peaks (the object the engine
        # picked inside the array's lobe); the array's peaks keep only their out-of-view arrows
        fused_marks = pic is not None and pic.engine is not None
        if fused_marks:
            for k, px in enumerate(pic.pixels):
                self._mark(img, (int(round(px["u"])), int(round(px["v"]))), f"{k + 1}: {px['power']:.2f}")
        # the tracked sources, labelled by id (without tracking, the update's peaks by rank)
        shown = heatmap.tracks if heatmap.tracks is not None else heatmap.peaks
        names = [f"#{t.id}" for t in shown] if heatmap.tracks is not None else [str(k + 1) for k in range(len(shown))]
        for k, ((u, v), p) in enumerate(zip(self.peak_pixels(shown), shown)):
            if p.power - lo < MARK_CONTRAST or (fused_marks and np.isfinite(u)):  # a ripple, or marked above
                continue
            if not np.isfinite(u):  # out of view: an arrow on the edge, the way to turn
                if p.power - lo < ARROW_SHARE * top:
                    continue
                (x, y), (dx, dy) = self.edge_point(p)
                tip, tail = (int(round(x)), int(round(y))), (int(round(x - 40 * dx)), int(round(y - 40 * dy)))
                cv2.arrowedLine(img, tail, tip, (255, 255, 255), 2, cv2.LINE_AA, tipLength=0.35)
                tx = min(max(tail[0] - 30, 4), w - 130)
                ty = min(max(tail[1] + (18 if dy < 0 else -8), 16), h - 28)
                cv2.putText(img, f"{names[k]}: {p.power:.2f} out of view", (tx, ty), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                            (255, 255, 255), 1, cv2.LINE_AA)
                continue
            self._mark(img, (int(round(u)), int(round(v))), f"{names[k]}: {p.power:.2f}")
        if not live:
            cv2.putText(img, "no camera frame", (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 0, 255), 2, cv2.LINE_AA)
        if status_text:
            cv2.rectangle(img, (0, h - 22), (w - 1, h - 1), (0, 0, 0), -1)
            cv2.putText(img, status_text[:120], (6, h - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1,
                        cv2.LINE_AA)
        return img

    @staticmethod
    def _mark(img, c, label):
        import cv2

        cv2.drawMarker(img, c, (255, 255, 255), cv2.MARKER_CROSS, 22, 2, cv2.LINE_AA)
        cv2.circle(img, c, 16, (255, 255, 255), 1, cv2.LINE_AA)
        cv2.putText(img, label, (c[0] + 18, c[1] - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)

    def _outline(self, img, mask):
        """Outline the segmenter's mask (any raster over the picture) in green."""
        import cv2

        w, h = self.size
        big = cv2.resize(mask, (w, h), interpolation=cv2.INTER_LINEAR)
        contours, _ = cv2.findContours((big >= 128).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(img, contours, -1, (80, 255, 80), 2, cv2.LINE_AA)
