"""All heatmaps of a run in one .npz (written at the end)."""
from __future__ import annotations

import json

import numpy as np

from .base import Sink


class NpzSink(Sink):
    """Keeps every heatmap and writes ``heatmaps`` (n_updates, *grid.shape) float32, ``t``,
    ``stamp``, ``directions`` (n_dirs, 3), ``peaks`` (JSON text per update) and ``meta`` (JSON)."""

    def __init__(self, path: str):
        self.path = path
        self._maps, self._t, self._stamp, self._peaks = [], [], [], []
        self._meta = {}
        self._grid = None
        self._directions = None

    def open(self, meta):
        self._meta = {k: v for k, v in meta.items() if k not in ("grid_object", "camera", "extrinsics")}
        grid = meta["grid_object"]
        # the image cells of a camera grid; its surround shows in the peaks
        self._grid, self._directions = grid, grid.directions[:grid.n_image]

    def write(self, heatmap):
        self._maps.append(self._grid.image(heatmap.values))
        self._t.append(heatmap.t)
        self._stamp.append(heatmap.stamp)
        self._peaks.append(json.dumps([p.to_dict() for p in heatmap.peaks]))

    def close(self, summary):
        maps = np.stack(self._maps) if self._maps else np.zeros((0,) + tuple(self._grid.shape), np.float32)
        np.savez_compressed(self.path, heatmaps=maps.astype(np.float32), t=np.asarray(self._t),
                            stamp=np.asarray(self._stamp), directions=self._directions,
                            peaks=np.asarray(self._peaks, dtype=str),
                            meta=json.dumps(self._meta), summary=json.dumps(summary))
