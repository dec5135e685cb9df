"""JSON Lines: one object per update, then a summary line."""
from __future__ import annotations

import json
import sys

from .base import Sink


class JsonlSink(Sink):
    """Writes ``{"t": .., "peaks": [..]}`` per update and ``{"summary": {..}}`` last.

    Parameters
    ----------
    path : str
        File path, or "-" for stdout (flushed per line, so a pipe sees updates live).
    """

    def __init__(self, path: str = "-"):
        self.path = path
        self._fh = None

    def open(self, meta):
        self._fh = sys.stdout if self.path == "-" else open(self.path, "w")

    def write(self, heatmap):
        self._fh.write(json.dumps(heatmap.to_dict(), allow_nan=False) + "\n")
        if self._fh is sys.stdout:
            self._fh.flush()

    def close(self, summary):
        self._fh.write(json.dumps({"summary": summary}, allow_nan=False) + "\n")
        self._fh.flush()
        if self._fh is not sys.stdout:
            self._fh.close()
