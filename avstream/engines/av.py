"""The audio-visual engine: a camera frame and the audio behind an update in, a map over the
picture ("where is the sound in the picture", 0..1) and a mask of the sounding object out.

The ONNX file (``avstream train`` writes it; models/ holds the network) declares in its
metadata what it was trained on: image size, sample rate and the log-mel settings. This class
turns a BGR frame and mono samples into exactly those inputs.
"""
from __future__ import annotations

import numpy as np

from ..errors import InputError
from .features import log_mel, n_frames
from .runtime import open_engine

KIND = "av"
IMAGE_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGE_STD = np.array([0.229, 0.224, 0.225], np.float32)


def image_input(bgr: np.ndarray, size) -> np.ndarray:
    """(1, 3, H, W) float32 normalised RGB of a BGR uint8 frame resized to ``size`` = (H, W)."""
    import cv2

    h, w = size
    img = cv2.resize(bgr, (w, h), interpolation=cv2.INTER_AREA)[:, :, ::-1].astype(np.float32) / 255.0
    return np.ascontiguousarray(((img - IMAGE_MEAN) / IMAGE_STD).transpose(2, 0, 1)[None])


def audio_input(mono: np.ndarray, meta: dict) -> np.ndarray:
    """(1, 1, n_mels, n_frames) float32 log-mel of the last ``audio_samples`` mono samples."""
    x = mono[-int(meta["audio_samples"]):]
    return log_mel(x, int(meta["sample_rate"]), int(meta["n_fft"]), int(meta["hop"]), int(meta["n_mels"]))[None, None]


def expected_inputs(meta: dict) -> dict:
    h, w = meta["image_size"]
    t = n_frames(int(meta["audio_samples"]), int(meta["n_fft"]), int(meta["hop"]))
    return {"image": (1, 3, h, w), "audio": (1, 1, int(meta["n_mels"]), t)}


class AvEngine:
    """Loads an audio-visual engine file and runs it on (frame, mono samples).

    Parameters
    ----------
    path : str
    backend, threads, precision, cache_dir : see runtime.open_engine
    """

    def __init__(self, path, backend="auto", threads=2, precision="fp16", cache_dir=None):
        from .runtime import read_model

        info = read_model(path)
        if info.kind != KIND:
            raise InputError(f"{path}: not an audio-visual engine (kind '{info.kind}'; avstream train makes them)")
        self.meta = info.metadata
        self.engine = open_engine(info, backend, threads, precision, cache_dir, expect=expected_inputs(self.meta))
        self.sample_rate = int(self.meta["sample_rate"])
        self.audio_samples = int(self.meta["audio_samples"])
        self.tap = None  # called with each run's inputs when set (INT8 calibration keeps them)

    def run(self, bgr: np.ndarray, mono: np.ndarray):
        """(map (h, w) float32 0..1, mask (hm, wm) uint8 0/255) for one frame and its audio."""
        feeds = {"image": image_input(bgr, self.meta["image_size"]), "audio": audio_input(mono, self.meta)}
        if self.tap is not None:
            self.tap(feeds)
        out = self.engine.run(feeds)
        heat = out["heatmap"][0, 0].astype(np.float32)
        mask = (out["mask"][0, 0] >= 0.5).astype(np.uint8) * 255
        return heat, mask
