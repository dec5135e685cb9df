"""``--save-sources DIR``: one WAV file per track, and where each starts."""
from __future__ import annotations

import csv
from pathlib import Path

from .base import Sink


class SourceWavSink(Sink):
    """Writes ``DIR/track_<id>.wav`` (float32, the array's rate) with each track's beam, from
    the update it was first reported, and ``DIR/tracks.csv`` (id, start_s: stream time of the
    file's first sample, samples)."""

    takes_source_audio = True

    def __init__(self, folder):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._files: dict = {}
        self._start: dict = {}
        self._count: dict = {}

    def open(self, meta):
        self.rate = int(meta["sample_rate"])

    def write(self, heatmap):
        import soundfile as sf

        audio = heatmap.source_audio or {}
        for tid, x in audio.items():
            if tid not in self._files:
                self._files[tid] = sf.SoundFile(str(self.folder / f"track_{tid}.wav"), "w", self.rate, 1, "FLOAT")
                self._start[tid] = heatmap.source_audio_t
                self._count[tid] = 0
            self._files[tid].write(x)
            self._count[tid] += len(x)

    def close(self, summary):
        for f in self._files.values():
            f.close()
        with open(self.folder / "tracks.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["id", "start_s", "samples"])
            for tid in sorted(self._files):
                w.writerow([tid, f"{self._start[tid]:.4f}", self._count[tid]])
