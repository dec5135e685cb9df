"""The overlay as a video file (``--overlay PATH.mp4``) or a live window (``--view``).

Both take the overlay image the pipeline drew for each update (``Heatmap.overlay``); updates
without one (no camera) are skipped. Files are written by OpenCV's FFmpeg backend at the
update rate: MPEG-4 Part 2 (``mp4v``) in .mp4, Motion JPEG in .avi, both readable by
OpenCV, FFmpeg and browsers' players that handle them.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from .base import Sink

_CODECS = {".mp4": "mp4v", ".avi": "MJPG"}


class VideoFileSink(Sink):
    """Writes every overlay frame to ``path`` at the update rate."""

    def __init__(self, path):
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in _CODECS:
            raise ConfigError(f"--overlay {self.path}: use a .mp4 or .avi file")
        if not self.path.parent.is_dir():
            raise ConfigError(f"--overlay {self.path}: folder {self.path.parent} does not exist")
        self._fourcc = _CODECS[suffix]
        self._writer = None
        self.frames = 0
        self.fps = 15.0

    def open(self, meta):
        if meta.get("camera") is None:
            raise ConfigError(f"--overlay {self.path}: there is no camera to draw on "
                              "(set camera.source, e.g. --camera 0 or --camera video.mp4)")
        self.fps = float(meta.get("update_rate") or 15.0)
        cam = meta["camera"]
        self._open_writer(cam.width, cam.height)

    def _open_writer(self, width, height):
        import cv2

        self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*self._fourcc), self.fps,
                                       (width, height))
        if not self._writer.isOpened():
            self._writer = None
            raise ConfigError(f"--overlay {self.path}: OpenCV cannot write this file ({self._fourcc})")

    def write(self, heatmap):
        if heatmap.overlay is not None and self._writer is not None:
            self._writer.write(heatmap.overlay)
            self.frames += 1

    def close(self, summary):
        if self._writer is not None:
            self._writer.release()
            self._writer = None


def has_gui() -> bool:
    """Whether this OpenCV can open windows (opencv-python-headless cannot)."""
    import cv2

    info = cv2.getBuildInformation()
    gui = [line.split(":", 1)[1].strip() for line in info.splitlines() if line.strip().startswith("GUI:")]
    return bool(gui) and gui[0].upper() not in ("NONE", "NO", "")


def picture_window(name: str):
    """Open a window that is just the picture: its own size, no toolbar or status bar, so a
    point in the window is the pixel under it."""
    import cv2

    cv2.namedWindow(name, cv2.WINDOW_AUTOSIZE | cv2.WINDOW_GUI_NORMAL)


def require_display(option: str, instead: str):
    """Raise a ConfigError naming ``option`` when no window can be opened, saying what to do
    ``instead``."""
    import os

    if not has_gui():
        raise ConfigError(f"{option}: this OpenCV has no GUI support (opencv-python-headless); install "
                          f"opencv-python in its place, or {instead}")
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise ConfigError(f"{option}: no display (DISPLAY is not set); {instead}")


class ViewSink(Sink):
    """Shows the overlay in a window; closing it (or pressing q / Esc) stops nothing but the view."""

    WINDOW = "avstream"

    def __init__(self):
        require_display("--view", "watch the --overlay video or the ZeroMQ stream")
        self.open_ = True
        self._shown = False

    def write(self, heatmap):
        import cv2

        if heatmap.overlay is None or not self.open_:
            return
        if not self._shown:
            picture_window(self.WINDOW)
            self._shown = True
        cv2.imshow(self.WINDOW, heatmap.overlay)
        if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
            self.open_ = False
            cv2.destroyWindow(self.WINDOW)

    def close(self, summary):
        import cv2

        if self.open_:
            cv2.destroyAllWindows()
