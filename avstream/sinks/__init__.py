"""Sinks: where heatmaps go. Each is a transport times a format."""
from .base import NullSink, Sink  # noqa: F401
from .jsonl import JsonlSink  # noqa: F401
from .npz import NpzSink  # noqa: F401
