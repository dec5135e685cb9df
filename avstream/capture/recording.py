"""Recording folders: what ``avstream record`` writes and ``--source recording`` and
``avstream train`` read.

    DIR/audio.wav        every channel the source delivers, 32-bit float, from the first block
    DIR/video.mp4        the camera's frames (MPEG-4), when there was a camera
    DIR/frames.csv       frame,time_s: each frame's capture time, seconds from the first audio sample
    DIR/array.yaml       the array used (array YAML)
    DIR/camera.yaml      the camera intrinsics used (ROS camera_calibration YAML)
    DIR/extrinsics.yaml  the array-to-camera transform used

Only ``audio.wav`` and ``video.mp4`` are required: without ``frames.csv`` the video's own rate
gives the frame times (the video starting with the audio), and without the calibration files
the flags (``--array``, ``--intrinsics``, ``--extrinsics``) give them, so folders made by other
tools, or by hand, work too.
"""
from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np

from ..errors import InputError

log = logging.getLogger(__name__)

AUDIO, VIDEO, FRAMES = "audio.wav", "video.mp4", "frames.csv"
ARRAY, CAMERA, EXTRINSICS = "array.yaml", "camera.yaml", "extrinsics.yaml"


class Recording:
    """A recording folder, checked: ``audio``, ``video``, ``frame_times`` (or None) and the
    calibration files it holds (paths or None)."""

    def __init__(self, folder):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise InputError(f"{self.folder}: no such recording folder")
        for name in (AUDIO, VIDEO):
            if not (self.folder / name).is_file():
                raise InputError(f"{self.folder / name}: missing (a recording folder needs {AUDIO} and {VIDEO})")
        self.audio, self.video = self.folder / AUDIO, self.folder / VIDEO
        self.frame_times = read_frame_times(self.folder / FRAMES) if (self.folder / FRAMES).is_file() else None
        self.array = self._opt(ARRAY)
        self.camera = self._opt(CAMERA)
        self.extrinsics = self._opt(EXTRINSICS)

    def check_coverage(self, slack_s: float = 0.5) -> None:
        """Refuse a video that ends (or starts) well inside the audio: training needs a frame for
        every update, and a video shorter than the audio usually means a broken recording."""
        import cv2
        import soundfile as sf

        try:
            audio_s = sf.info(str(self.audio)).duration
        except RuntimeError as exc:
            raise InputError(f"{self.audio}: cannot read audio ({exc})") from None
        if self.frame_times is not None:
            first, last = float(self.frame_times[0]), float(self.frame_times[-1])
        else:
            cap = cv2.VideoCapture(str(self.video))
            n, fps = cap.get(cv2.CAP_PROP_FRAME_COUNT), cap.get(cv2.CAP_PROP_FPS)
            cap.release()
            if not (n > 0 and fps > 0):
                raise InputError(f"{self.video}: not a readable video")
            first, last = 0.0, n / fps
        if first > slack_s or last < audio_s - slack_s:
            raise InputError(f"{self.video}: the video covers {max(0.0, first):.2f}-{last:.2f} s of the "
                             f"{audio_s:.2f} s of audio (a recording needs both for the same span)")

    def _opt(self, name):
        p = self.folder / name
        return str(p) if p.is_file() else None


def read_frame_times(path) -> np.ndarray:
    """Frame times (seconds from the first audio sample) from a frames.csv."""
    from ..calibrate.tables import read_table

    times = read_table(path, ["frame", "time_s"])[:, 1]
    if len(times) and np.any(np.diff(times) <= 0):
        raise InputError(f"{path}: time_s must increase from frame to frame")
    return times


class RecordingWriter:
    """Writes a recording folder while a run goes on (the pipeline feeds it every block and
    every camera frame; see Pipeline). All times count from the first audio sample.

    Parameters
    ----------
    folder : str or Path
        Created if missing; files in it are replaced.
    sample_rate, n_channels : int
    array : MicArray
    camera, extrinsics : the camera model and transform in use, or None without a camera
    fps : float
        Nominal rate written in the video file (the true times are in frames.csv).
    """

    def __init__(self, folder, sample_rate, n_channels, array, camera=None, extrinsics=None, fps=30.0):
        import soundfile as sf

        from ..geometry.arrays import save_array
        from ..geometry.camera import save_camera, save_extrinsics

        self.folder = Path(folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._wav = sf.SoundFile(str(self.folder / AUDIO), "w", int(sample_rate), int(n_channels), "FLOAT")
        except (OSError, RuntimeError) as exc:
            raise InputError(f"{self.folder}: cannot write a recording there ({exc})") from None
        self.sample_rate = int(sample_rate)
        save_array(array, self.folder / ARRAY)
        self.camera = camera
        if camera is not None:
            save_camera(camera, self.folder / CAMERA)
            save_extrinsics(extrinsics, self.folder / EXTRINSICS)
        self.fps = float(fps)
        self._video = None
        self._times = []
        self._origin = None  # capture stamp of the first audio sample
        self.last_seq = -1  # the newest frame written
        self.samples = 0

    def audio(self, block) -> None:
        if self._origin is None:
            self._origin = block.stamp - block.index / self.sample_rate
        self._wav.write(np.ascontiguousarray(block.data.T))
        self.samples += block.data.shape[1]

    def frame(self, frame) -> None:
        """A camera frame (each is written once, in order, however often it is offered)."""
        import cv2

        if self._origin is None or frame.seq <= self.last_seq:
            return
        self.last_seq = frame.seq
        if self._video is None:
            h, w = frame.image.shape[:2]
            self._video = cv2.VideoWriter(str(self.folder / VIDEO), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
        self._video.write(frame.image)
        self._times.append(frame.stamp - self._origin)

    def close(self) -> dict:
        self._wav.close()
        if self._video is not None:
            self._video.release()
            with open(self.folder / FRAMES, "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["frame", "time_s"])
                for k, t in enumerate(self._times):
                    w.writerow([k, f"{t:.6f}"])
        return {"folder": str(self.folder), "seconds": round(self.samples / self.sample_rate, 3),
                "frames": len(self._times)}
