"""Live status line on the terminal: updates/s, CPU %, dropped blocks, input flags."""
from __future__ import annotations

import sys
import time


class StatusLine:
    """Rewrites one stderr line at most every ``period`` seconds."""

    def __init__(self, stream=None, period=0.5):
        self.stream = stream or sys.stderr
        self.period = period
        self._t = time.monotonic()
        self._cpu = time.process_time()
        self._n = 0
        self.shown = False

    def update(self, n_updates: int, dropped: int, overflows: int, flags: dict, peaks, extra: str = "") -> None:
        now = time.monotonic()
        if now - self._t < self.period:
            return
        cpu = time.process_time()
        rate = (n_updates - self._n) / (now - self._t)
        load = 100.0 * (cpu - self._cpu) / (now - self._t)
        self._t, self._cpu, self._n = now, cpu, n_updates
        src = " ".join(f"{p.azimuth_deg:+.0f}/{p.elevation_deg:+.0f}" for p in peaks[:3]) or "-"
        bad = " ".join(f"{k}:{v}" for k, v in sorted(flags.items())) or "ok"
        line = (f"{rate:6.1f} updates/s  cpu {load:5.1f}%  dropped {dropped}  overflows {overflows}  "
                f"input {bad}  sources(az/el) {src}{extra}")
        self.stream.write("\r" + line[:170].ljust(170))
        self.stream.flush()
        self.shown = True

    def close(self):
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()
