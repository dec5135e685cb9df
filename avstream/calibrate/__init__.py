"""Calibration: array-to-camera extrinsics (camera intrinsics and channel checks to follow)."""
