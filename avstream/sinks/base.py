"""Sink interface: a sink receives every heatmap and a summary at the end.

A sink is a transport times a format; ROS 2 and ZeroMQ sinks plug in beside these.
"""
from __future__ import annotations


class Sink:
    takes_source_audio = False  # True: the pipeline computes each track's audio (separate/) for it

    def open(self, meta: dict) -> None:
        """Called once before the first heatmap with the array, grid and configuration."""

    def write(self, heatmap) -> None:
        raise NotImplementedError

    def close(self, summary: dict) -> None:
        """Called once at the end with the summary (dominant sources, counters)."""


class NullSink(Sink):
    """Drops everything: keeps benchmarks honest about the cost of the pipeline alone."""

    def write(self, heatmap) -> None:
        pass
