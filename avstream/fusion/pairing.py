"""The pairing stage: each update gets the camera frame nearest the middle of its audio window."""
from __future__ import annotations


class FramePairing:
    """Pairs updates with frames of a running video source (VideoRunner or SyncVideo).

    Parameters
    ----------
    video : VideoRunner or SyncVideo
    camera : Camera
        Frames must have its size; a uniformly scaled stream is resized to it.
    window_s : float
        Seconds of audio behind one update (frames pair with its middle).
    max_offset_s : float
        A frame further than this from the update is not used (the camera is lost or stale).
    """

    def __init__(self, video, camera, window_s, max_offset_s):
        self.video, self.camera = video, camera
        self.window_s, self.max_offset_s = window_s, max_offset_s

    def process(self, hm) -> None:
        """Set ``hm.frame`` (or None) and add the camera counters to ``hm.status``."""
        centre = hm.stamp + self.window_s / 2
        frame = self.video.nearest(centre)
        counters = self.video.counters()
        offset = None if frame is None else frame.stamp - centre
        if offset is not None and abs(offset) > self.max_offset_s:
            frame, counters["camera_state"] = None, "stale" if counters["camera_state"] == "running" \
                else counters["camera_state"]
        if frame is not None:
            frame = self._fit(frame)
            if frame is None:
                counters["camera_state"] = "wrong frame size"
            else:
                counters["video_offset_ms"] = round(offset * 1000.0, 1)
        hm.frame = frame
        hm.status.update(counters)

    def _fit(self, frame):
        """Frames must have the calibrated size; a uniformly scaled stream is resized to it.
        Another aspect ratio (a camera that came back in another mode) cannot be registered:
        the frame is not used, and the status says why (the size at start is checked earlier)."""
        import cv2

        w, h = self.camera.width, self.camera.height
        fh, fw = frame.image.shape[:2]
        if (fw, fh) == (w, h):
            return frame
        if abs(fw / fh - w / h) > 0.01 * w / h:
            return None
        frame.image = cv2.resize(frame.image, (w, h), interpolation=cv2.INTER_AREA)
        return frame
