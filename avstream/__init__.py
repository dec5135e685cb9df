"""avstream: real-time audio-visual sound-source localization for robots."""
__version__ = "0.1.0"
