"""Video capture: OpenCV cameras, files, network streams and GStreamer pipelines, and the
synthetic camera that films the synthetic audio scene.

Each source is a synchronous core (``open``, ``read``, ``close``); ``VideoRunner`` is the thin
thread around it. The runner keeps the last few frames (latest frame wins: capture never waits
for the consumer, the oldest frame is overwritten) so each heatmap can be paired with the
frame nearest in capture time. A camera that fails is closed and reopened every
``retry_s`` seconds while the audio goes on; its state is reported with every update.

Timestamps (docs FACTS 5.4 and 6):

- devices, network streams, GStreamer: the V4L2 kernel buffer time (CLOCK_MONOTONIC) when
  OpenCV's V4L2 backend gives it, else the monotonic clock right after the grab; both mapped
  to the UNIX epoch like the audio clock;
- files: the media time (CAP_PROP_POS_MSEC) from the audio stream's first sample, so a video
  and an audio file recorded together line up;
- the synthetic camera: the time it renders the scene at.
"""
from __future__ import annotations

import re
import threading
import time
from collections import deque
from pathlib import Path

import numpy as np

from ..errors import ConfigError, InputError
from ..frames import VideoFrame
from .base import VideoSource

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def describe_spec(spec: str) -> str:
    """"device", "gstreamer", "url" or "file" for a camera.source string."""
    if re.fullmatch(r"\d+", spec) or spec.startswith("/dev/video"):
        return "device"
    if "!" in spec:
        return "gstreamer"
    if _URL.match(spec):
        return "url"
    return "file"


def has_gstreamer() -> bool:
    import cv2

    return any(line.strip().startswith("GStreamer:") and "YES" in line
               for line in cv2.getBuildInformation().splitlines())


class OpenCvCamera(VideoSource):
    """A camera, video file, RTSP/HTTP stream or GStreamer pipeline through cv2.VideoCapture.

    Parameters
    ----------
    spec : str
        Device index ("0") or path ("/dev/video0"), a video file, a URL (rtsp://, http://) or
        a GStreamer pipeline ending in ``appsink`` (e.g. ``... ! appsink drop=1 max-buffers=1``).
    realtime : bool
        Files only: pace frames to their media time (the threaded runner does the pacing).
    loop : bool
        Files only: start again at the end (media time keeps increasing).
    frame_times : ndarray or None
        Files only: each frame's time (seconds), instead of the file's media time (a recording's
        frames.csv).
    """

    def __init__(self, spec: str, realtime: bool = True, loop: bool = False, frame_times=None):
        self.spec = str(spec)
        self.kind = describe_spec(self.spec)
        self.realtime = realtime if self.kind == "file" else True
        self.loop = loop and self.kind == "file"
        self.name = self.spec if self.kind != "gstreamer" else self.spec.split("!")[0].strip()
        if self.kind == "gstreamer" and not has_gstreamer():
            raise ConfigError(f"camera.source '{self.name} ! ...' is a GStreamer pipeline, but this OpenCV build "
                              "has no GStreamer support (see cv2.getBuildInformation()); use an OpenCV built with "
                              "GStreamer, e.g. the system python3-opencv on a Jetson")
        self._cap = None
        self._times = frame_times
        self._index = 0
        self._media_offset = 0.0  # files: media time of earlier loops
        self._last_media = 0.0
        self.size = None  # (width, height) once opened

    def open(self):
        import cv2

        if self.kind == "file" and not Path(self.spec).is_file():
            raise InputError(f"camera.source {self.spec}: no such video file")
        if self.kind == "device":
            target = int(self.spec) if self.spec.isdigit() else self.spec
            if isinstance(target, str) and not Path(target).exists():
                raise InputError(f"camera.source {self.spec}: no such device")
            cap = cv2.VideoCapture(target)
        elif self.kind == "gstreamer":
            cap = cv2.VideoCapture(self.spec, cv2.CAP_GSTREAMER)
        elif self.kind == "url":
            cap = cv2.VideoCapture(self.spec, cv2.CAP_FFMPEG)
        else:
            cap = cv2.VideoCapture(self.spec, cv2.CAP_FFMPEG)
        if not cap.isOpened():
            cap.release()
            raise InputError(f"camera.source {self.name}: cannot open ({self.kind})")
        if self.kind == "device":
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # V4L2 honours it: no stale frames queued in the driver
        self._cap = cap
        self._index = 0
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.size = (w, h) if w > 0 and h > 0 else None
        self._v4l2 = self.kind == "device" and cap.getBackendName() == "V4L2"

    @property
    def opened(self) -> bool:
        return self._cap is not None

    def fps(self) -> float:
        import cv2

        f = self._cap.get(cv2.CAP_PROP_FPS) if self._cap is not None else 0.0
        return float(f) if f and np.isfinite(f) and 1 <= f <= 1000 else 30.0

    def read(self):
        """(image, stamp) or None when no frame came (end of a file without loop, a lost camera).

        ``stamp`` is media seconds for files and epoch seconds for live sources."""
        import cv2

        if self._cap is None:
            return None
        ok = self._cap.grab()
        grabbed = time.monotonic()
        if not ok and self.loop:
            self._media_offset += self._last_media + 1.0 / self.fps()
            self.close()
            self.open()  # raises InputError when the file went away: the runner retries
            ok = self._cap.grab()
            grabbed = time.monotonic()
        if not ok:
            return None
        ok, image = self._cap.retrieve()
        if not ok or image is None:
            return None
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        if self.kind == "file" and self._times is not None:
            k, self._index = self._index, self._index + 1
            if k >= len(self._times):  # more frames than times: the rate of the last ones goes on
                step = float(np.median(np.diff(self._times))) if len(self._times) > 1 else 1.0 / self.fps()
                return image, float(self._times[-1]) + (k - len(self._times) + 1) * step
            return image, float(self._times[k])
        if self.kind == "file":
            self._last_media = self._cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            return image, self._media_offset + self._last_media
        stamp = grabbed
        if self._v4l2:
            kernel = self._cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            if abs(kernel - grabbed) < 5.0:  # a CLOCK_MONOTONIC buffer time, not a frame count
                stamp = kernel
        return image, stamp + (time.time() - time.monotonic())

    def close(self):
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class SyntheticCamera(VideoSource):
    """Films the synthetic audio scene: each sound source is a visible object at its direction.

    The picture is a dim test pattern; each source a disc (orange for speech, cyan for noise,
    magenta for tones) with a white rim, drawn where the camera model projects the source's
    direction (through the extrinsics, with the parallax of the assumed source distance).

    Parameters
    ----------
    scene : capture.synthetic.SyntheticScene
        The audio scene; ``scene.direction(k, t)`` gives where source k is at time t.
    camera : geometry.camera.Camera
    extrinsics : geometry.camera.Extrinsics
    distance : float
        Metres from the array to the sources (for parallax).
    fps : float
    """

    kind = "synthetic"
    realtime = True
    loop = False
    COLOURS = {"speech": (0, 140, 255), "noise": (255, 200, 0), "tone": (255, 0, 200)}
    RADIUS = 9

    def __init__(self, scene, camera, extrinsics, distance=3.0, fps=30.0):
        self.scene, self.camera, self.extrinsics = scene, camera, extrinsics
        self.distance, self._fps = distance, float(fps)
        self.name = "synthetic camera"
        self.size = (camera.width, camera.height)
        self._background = self._pattern()
        self._origin = lambda: 0.0
        self._next = None

    def _pattern(self) -> np.ndarray:
        import cv2

        w, h = self.size
        img = np.zeros((h, w, 3), np.uint8)
        img[:] = np.linspace(70, 30, h, dtype=np.uint8)[:, None, None]  # a sky-to-floor gradient
        step = max(w, h) // 16
        for x in range(0, w, step):
            cv2.line(img, (x, 0), (x, h - 1), (60, 60, 60), 1)
        for y in range(0, h, step):
            cv2.line(img, (0, y), (w - 1, y), (60, 60, 60), 1)
        return img

    def set_origin(self, origin):
        """``origin()`` is the audio stream's first-sample time on the stamp clock."""
        self._origin = origin

    def open(self):
        self._next = None

    @property
    def opened(self) -> bool:
        return True

    def fps(self) -> float:
        return self._fps

    def pixels(self, t: float) -> list:
        """(u, v) of every source at scene time t (NaN when out of view)."""
        from ..geometry.camera import pixels_of

        az, el = zip(*(self.scene.direction(k, t) for k in range(len(self.scene.scene.sources))))
        u, v = pixels_of(self.camera, self.extrinsics, az, el, self.distance)
        return [(float(a), float(b)) for a, b in zip(u, v)]

    def render(self, t: float) -> np.ndarray:
        import cv2

        img = self._background.copy()
        h, w = img.shape[:2]
        for (u, v), src in zip(self.pixels(t), self.scene.scene.sources):
            # out of view (or, near 90 degrees off axis, projected absurdly far: OpenCV takes int32)
            if not (np.isfinite(u) and np.isfinite(v) and -w < u < 2 * w and -h < v < 2 * h):
                continue
            c = (int(round(u * 16)), int(round(v * 16)))  # 4 fractional bits: sub-pixel centres
            cv2.circle(img, c, (self.RADIUS + 2) * 16, (255, 255, 255), -1, cv2.LINE_AA, 4)
            cv2.circle(img, c, self.RADIUS * 16, self.COLOURS[src.kind], -1, cv2.LINE_AA, 4)
        return img

    def read(self):
        """Render the next frame, paced to ``fps`` on the monotonic clock."""
        now = time.monotonic()
        if self._next is not None and now < self._next:
            time.sleep(self._next - now)
        self._next = max(self._next or now, time.monotonic() - 1.0 / self._fps) + 1.0 / self._fps
        stamp = time.time()
        return self.render(stamp - self._origin()), stamp

    def close(self):
        pass


class VideoRunner:
    """Thread around a video source core: latest frames, counters, reconnects.

    Parameters
    ----------
    core : OpenCvCamera or SyntheticCamera
    origin : callable
        Stamp-clock time of the audio stream's first sample (files are aligned to it).
    history : int
        Frames kept for pairing; an older frame nobody looked at is counted as dropped.
    retry_s : float
        Seconds between attempts to reopen a lost camera.
    """

    def __init__(self, core, origin=lambda: 0.0, history: int = 8, retry_s: float = 1.0):
        self.core, self.origin, self.retry_s = core, origin, retry_s
        self._frames: deque = deque(maxlen=history)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        self.state = "running" if core.opened else "starting"
        self.error = ""
        self.captured = self.dropped = self.failures = self.reconnects = 0
        self._seen = -1  # newest frame seq the consumer has looked at

    def start(self):
        self.core.set_origin(self.origin)
        self._thread = threading.Thread(target=self._loop, name="avstream-video", daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        self.core.close()

    def _loop(self):
        core = self.core
        paced = core.kind == "file" and core.realtime
        lost_since = None
        while not self._stop.is_set():
            try:
                if not core.opened:
                    core.open()
                    if lost_since is not None:
                        self.reconnects += 1
                        lost_since = None
                    self.state, self.error = "running", ""
                got = core.read()
            except InputError as exc:
                got, self.error = None, str(exc)
            if got is None:
                if core.kind == "file" and not core.loop and core.opened:
                    self.state = "ended"  # a file without loop: the last frame stays
                    return
                self.failures += 1
                self.state = "lost" if self.captured else "not found"
                lost_since = lost_since or time.monotonic()
                core.close()
                self._stop.wait(self.retry_s)
                continue
            image, stamp = got
            if core.kind == "file":
                stamp += self.origin()
                if paced:
                    wait = stamp - time.time()
                    if wait < -1.0:  # back from a loss: rebase instead of racing to catch up
                        core._media_offset -= wait
                        stamp -= wait
                    elif wait > 0:
                        self._stop.wait(wait)
            frame = VideoFrame(image, stamp, self.captured)
            with self._lock:
                if len(self._frames) == self._frames.maxlen and self._frames[0].seq > self._seen:
                    self.dropped += 1
                self._frames.append(frame)
                self.captured += 1

    def nearest(self, stamp: float):
        """The kept frame nearest to ``stamp`` (or None before the first frame)."""
        with self._lock:
            if not self._frames:
                return None
            self._seen = self._frames[-1].seq
            return min(self._frames, key=lambda f: abs(f.stamp - stamp))

    def frames_since(self, seq: int) -> list:
        """The kept frames newer than ``seq``, oldest first (a recording takes every frame)."""
        with self._lock:
            return [f for f in self._frames if f.seq > seq]

    def counters(self) -> dict:
        out = {"camera": self.core.name, "camera_state": self.state, "video_frames": self.captured,
               "video_dropped": self.dropped, "camera_reconnects": self.reconnects}
        if self.error and self.state != "running":
            out["camera_error"] = self.error
        return out


class SyncVideo:
    """The deterministic counterpart of VideoRunner for ``Pipeline.run_sync``: frames are read
    (or rendered) on demand, in stream time, as fast as the audio is."""

    def __init__(self, core):
        self.core = core
        self._prev = self._next = None
        self.state = "running"
        self.captured = 0

    def start(self):
        if not self.core.opened:
            self.core.open()

    def stop(self):
        self.core.close()

    def nearest(self, stamp: float):
        core = self.core
        if isinstance(core, SyntheticCamera):
            self.captured += 1
            self._prev, self._next = None, VideoFrame(core.render(stamp), stamp, self.captured - 1)
            return self._next
        while self._next is None or self._next.stamp < stamp:
            got = core.read()
            if got is None:
                self.state = "ended"
                break
            self._prev, self._next = self._next, VideoFrame(got[0], got[1], self.captured)
            self.captured += 1
        cands = [f for f in (self._prev, self._next) if f is not None]
        return min(cands, key=lambda f: abs(f.stamp - stamp)) if cands else None

    def frames_since(self, seq: int) -> list:
        """The frames read so far newer than ``seq`` (this runner reads on demand)."""
        return [f for f in (self._prev, self._next) if f is not None and f.seq > seq]

    def counters(self) -> dict:
        return {"camera": self.core.name, "camera_state": self.state, "video_frames": self.captured,
                "video_dropped": 0, "camera_reconnects": 0}
