"""Per-source audio: each track's own signal (see beams.SourceAudio)."""
from .beams import SourceAudio  # noqa: F401
