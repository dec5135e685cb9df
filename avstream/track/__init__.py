"""Tracking: per-update peaks become sources with stable ids (see tracker.Tracker)."""
from .tracker import Tracker  # noqa: F401
