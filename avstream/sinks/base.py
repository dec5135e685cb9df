"""Sink interface: a sink receives every heatmap and a summary at the end.

A sink is a transport times a format; ROS 2 and ZeroMQ sinks plug in beside these.
"""
from __future__ import annotations


class Sink:
    takes_source_audio = False  # True: the pipeline computes each track's audio (separate/) for it
    takes_audio = False  # True: each heatmap carries the microphones' new samples (``Heatmap.audio``)
    # set by a sink that has stopped for good (a recording whose disk is full): "what: why". The
    # run goes on; the status, /diagnostics and the summary say so
    failure: str | None = None

    def open(self, meta: dict) -> None:
        """Called once before the first heatmap with the array, grid and configuration."""

    def write(self, heatmap) -> None:
        raise NotImplementedError

    def stalled(self, seconds: float) -> None:
        """Called about once a second while the audio source delivers nothing (before the run
        fails), so live outputs can say so."""

    def close(self, summary: dict) -> None:
        """Called once at the end with the summary (dominant sources, counters)."""


class NullSink(Sink):
    """Drops everything: keeps benchmarks honest about the cost of the pipeline alone."""

    def write(self, heatmap) -> None:
        pass
