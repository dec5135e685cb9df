"""Direction-pixel pairs from a recording of impulsive events (claps, clicks, a clicker with an
LED), for ``avstream calibrate extrinsics``.

1. Events: onsets where the in-band energy jumps ``threshold_db`` above its running median,
   at least ``min_gap_s`` apart.
2. Directions: the localizer (SRP-PHAT) on the first ``window_s`` after each onset, before
   reflections pile up.
3. Pixels: given by the user (a CSV ``time_s,u,v``, matched to the nearest event, or clicked in
   a window that shows the video frame of each event in turn), or found in a video recorded
   alongside: the brightest new spot (an LED flashing with the click) in the frame nearest
   the event, against the median of the video's frames.

The video and the audio start ``video_offset_s`` apart (the video that much later), or the
offset is found from the recording itself: the shift that lines the LED's flashes up with the
events (recorded separately, two files rarely start together).
"""
from __future__ import annotations

import csv
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, InputError
from ..sinks.video import picture_window, require_display
from .tables import read_table


@dataclass
class Event:
    time_s: float
    azimuth_deg: float
    elevation_deg: float
    power: float
    u: float = np.nan
    v: float = np.nan


def detect_onsets(x: np.ndarray, sample_rate: float, band=(300.0, 6000.0), threshold_db: float = 12.0,
                  min_gap_s: float = 0.3, hop: int = 128) -> np.ndarray:
    """Onset times (s) of impulsive events in ``x`` (n_mics, n): the first hop whose band energy
    (summed over mics) exceeds the median of the preceding second by ``threshold_db``."""
    from scipy.signal import stft

    frame = 2 * hop
    f, t, X = stft(x, fs=sample_rate, nperseg=frame, noverlap=frame - hop, boundary=None, padded=False)
    keep = (f >= band[0]) & (f <= band[1])
    e = 10 * np.log10(np.sum(np.abs(X[:, keep]) ** 2, axis=(0, 1)) + 1e-20)
    n_ref = max(4, int(round(1.0 * sample_rate / hop)))
    out, last = [], -np.inf
    for k in range(1, len(e)):
        ref = np.median(e[max(0, k - n_ref):k])
        if e[k] - ref >= threshold_db and t[k] - last >= min_gap_s:
            out.append(t[k] - frame / (2 * sample_rate))  # the frame's start: where the event began
            last = t[k]
    return np.asarray(out)


def event_directions(x: np.ndarray, onsets: np.ndarray, array, sample_rate: float, window_s: float = 0.06,
                     grid: str = "sphere:5000", band=(300.0, 6000.0)) -> list:
    """Event per onset with the direction SRP-PHAT finds in ``window_s`` after it."""
    from ..geometry.grids import parse_grid
    from ..localize import make_localizer
    from ..spectral import StreamingSTFT

    frame, hop = 512, 128
    g = parse_grid(grid, array)
    loc = make_localizer("srp_phat", array=array, grid=g, sample_rate=sample_rate, frame=frame, band=band,
                         n_sources=1, onset_floor=None)
    events = []
    for t0 in onsets:
        a = max(0, int((t0 - 0.005) * sample_rate))
        b = min(x.shape[1], a + int(window_s * sample_rate) + frame)
        st = StreamingSTFT(array.n_mics, frame, hop, "hann", max_block=b - a)
        frames = [f for _, fr in st.push(np.ascontiguousarray(x[:, a:b], dtype=np.float32)) for f in fr]
        if not frames:
            continue
        hm = loc.process(np.stack(frames).astype(np.complex64), np.ones(len(frames), np.float32))
        loc.reset()
        if hm.peaks:
            p = hm.peaks[0]
            events.append(Event(float(t0), p.azimuth_deg, p.elevation_deg, p.power))
    return events


class SpotTrack:
    """The brightest new spot (an LED) in every frame of a video, against the median frame.

    Two passes over the file, so long videos are not held in memory: the first keeps about 60
    frames for the median background, the second records per frame its media time, the spot's
    contrast over the background and its centroid (weighted by contrast, on the largest blob
    above half the peak).
    """

    def __init__(self, video_path, min_contrast: float = 60.0):
        import cv2

        self.path, self.min_contrast = str(video_path), float(min_contrast)
        cap = self._open()
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or 600
        keep, k = [], 0
        while True:
            ok, img = cap.read()
            if not ok:
                break
            if k % max(1, n // 60) == 0:
                keep.append(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))
            k += 1
        cap.release()
        if not keep:
            raise InputError(f"--video {video_path}: no frames")
        background = np.median(np.stack(keep), axis=0).astype(np.float32)
        rows = []
        cap = self._open()
        while True:
            ok, img = cap.read()
            if not ok:
                break
            t = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            diff = cv2.GaussianBlur(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float32) - background, (5, 5), 0)
            peak = float(diff.max())
            u = v = np.nan
            if peak >= self.min_contrast:
                mask = (diff >= 0.5 * peak).astype(np.uint8)
                n_lab, labels, stats, _ = cv2.connectedComponentsWithStats(mask)
                best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA])) if n_lab > 1 else 0
                w = np.where(labels == best, np.maximum(diff, 0), 0)
                vv, uu = np.nonzero(w)
                wt = w[vv, uu]
                u, v = float((uu * wt).sum() / wt.sum()), float((vv * wt).sum() / wt.sum())
            rows.append((t, peak, u, v))
        cap.release()
        self.table = np.asarray(rows)  # (n_frames, 4): media time, contrast, u, v
        self.period = float(np.median(np.diff(self.table[:, 0]))) if len(rows) > 1 else 1 / 30

    def _open(self):
        import cv2

        cap = cv2.VideoCapture(self.path)
        if not cap.isOpened():
            raise InputError(f"--video {self.path}: cannot open")
        return cap

    def flash_onsets(self) -> np.ndarray:
        """Media times of the frames where a spot appears (above the contrast, after a frame without)."""
        lit = self.table[:, 1] >= self.min_contrast
        first = lit & ~np.concatenate([[False], lit[:-1]])
        return self.table[first, 0]

    def spot(self, t: float, settle_s: float = 0.03):
        """(u, v) in the frame nearest media time ``t + settle_s`` (NaN when no spot there, or
        when the video does not cover that time)."""
        k = int(np.argmin(np.abs(self.table[:, 0] - (t + settle_s))))
        if abs(self.table[k, 0] - (t + settle_s)) > self.period:  # before or after the video
            return np.nan, np.nan
        return float(self.table[k, 2]), float(self.table[k, 3])

    def estimate_offset(self, audio_onsets: np.ndarray, search_s: float = 10.0) -> tuple[float, int]:
        """(seconds the video starts after the audio, events matched): the shift that puts the
        most flash onsets within one frame after an audio onset, then the middle of the shifts
        that keep every match (each match bounds the offset to one frame period)."""
        flashes = self.flash_onsets()
        if len(flashes) == 0 or len(audio_onsets) == 0:
            raise InputError(f"--video {self.path}: no LED flash found to align the video with the audio "
                             "(give --video-offset SECONDS)")
        T = self.period
        # the flash shows in the first frame at or after its event: flash + offset - onset in [0, T)
        cands = (audio_onsets[:, None] - flashes[None, :]).ravel()
        cands = cands[np.abs(cands) <= search_s]

        def lags(offset):
            lag = flashes[None, :] + offset - audio_onsets[:, None]
            return np.where((lag >= -1e-9) & (lag < T), lag, np.nan)

        best, best_n = 0.0, -1
        for c in np.unique(np.round(cands, 4)):
            n = int(np.sum(np.isfinite(lags(c)).any(axis=1)))
            if n > best_n:
                best, best_n = c, n
        matched = np.nanmin(lags(best)[np.isfinite(lags(best)).any(axis=1)], axis=1)
        # moving the offset by d keeps every match while d lies in [-min(lag), T - max(lag))
        return float(best + (T - matched.max() - matched.min()) / 2), best_n


class ClickPicker:
    """Shows the video frame of each event in a window; the pixel clicked there is where the
    event's source is. Space or s skips an event, Esc stops (the rest get no pixel).

    The window has no toolbar (``WINDOW_GUI_NORMAL``) and shows the frame at its own size, so a
    click lands on the pixel under the pointer; the clicked pixel is marked before the next
    event comes up.
    """

    WINDOW = "avstream calibrate events"

    def __init__(self, video_path):
        import cv2

        require_display("--click", "give the pixels in a --pixels CSV (time_s,u,v)")
        self.path = str(video_path)
        self._cap = cv2.VideoCapture(self.path)
        if not self._cap.isOpened():
            raise InputError(f"--video {self.path}: cannot open")
        self._click = None
        self._open = False

    def frame_at(self, t: float):
        """The frame shown at media time ``t`` (seconds), or None outside the video."""
        import cv2

        if t < 0:
            return None
        self._cap.set(cv2.CAP_PROP_POS_MSEC, t * 1000.0)
        ok, img = self._cap.read()
        return img if ok else None

    def _on_mouse(self, event, x, y, flags, param):
        import cv2

        if event == cv2.EVENT_LBUTTONUP:
            self._click = (float(x), float(y))

    def pick(self, image, title: str):
        """(u, v) clicked on ``image``; (NaN, NaN) when skipped; None when the user stopped."""
        import cv2

        if not self._open:
            picture_window(self.WINDOW)
            cv2.setMouseCallback(self.WINDOW, self._on_mouse)
            self._open = True
        cv2.setWindowTitle(self.WINDOW, title)
        cv2.imshow(self.WINDOW, image)
        self._click = None
        while self._click is None:
            key = cv2.waitKey(30) & 0xFF
            if key == 27:
                return None
            if key in (ord(" "), ord("s")):
                return np.nan, np.nan
            if cv2.getWindowProperty(self.WINDOW, cv2.WND_PROP_VISIBLE) < 1:  # closed by the user
                return None
        u, v = self._click
        shown = image.copy()
        cv2.drawMarker(shown, (int(round(u)), int(round(v))), (0, 0, 255), cv2.MARKER_CROSS, 24, 2)
        cv2.imshow(self.WINDOW, shown)
        cv2.waitKey(250)
        return u, v

    def close(self):
        import cv2

        self._cap.release()
        if self._open:
            cv2.destroyWindow(self.WINDOW)
            cv2.waitKey(1)


def click_pixels(events, video_path, video_offset_s: float, settle_s: float = 0.03) -> int:
    """Ask for each event's pixel in a window (ClickPicker), on the frame ``settle_s`` after the
    event (as SpotTrack looks); returns how many were clicked."""
    picker = ClickPicker(video_path)
    n = 0
    try:
        for k, e in enumerate(events):
            img = picker.frame_at(e.time_s - video_offset_s + settle_s)
            if img is None:
                continue
            got = picker.pick(img, f"event {k + 1}/{len(events)} at {e.time_s:.3f} s: click the source "
                                   "(Space skips, Esc stops)")
            if got is None:
                break
            e.u, e.v = got
            n += int(np.isfinite(e.u))
    finally:
        picker.close()
    return n


def read_pixel_clicks(path) -> np.ndarray:
    """Rows (time_s, u, v) from a CSV with exactly those columns."""
    return read_table(path, ["time_s", "u", "v"])


def extract_pairs(x, sample_rate, array, video=None, pixels=None, video_offset_s=0.0, threshold_db=12.0,
                  min_gap_s=0.3, max_match_s=0.25, click=False) -> tuple[list, float | None]:
    """(events with a direction and a pixel, the video offset used). Pixels come from ``video``
    (the LED, or with ``click`` the user's clicks on its frames) or a ``pixels`` CSV;
    ``video_offset_s`` None estimates the offset from the LED flashes."""
    if (video is None) == (pixels is None):
        raise ConfigError("calibrate events: give exactly one of --video FILE (LED found automatically, or "
                          "--click to click each source) or --pixels CSV (time_s,u,v)")
    if click and video is None:
        raise ConfigError("calibrate events: --click shows the frames of a --video FILE; give one")
    onsets = detect_onsets(x, sample_rate, threshold_db=threshold_db, min_gap_s=min_gap_s)
    if len(onsets) == 0:
        raise InputError(f"no impulsive events found (none rises {threshold_db:g} dB above the background)")
    events = event_directions(x, onsets, array, sample_rate)
    if video is not None and click:
        click_pixels(events, video, video_offset_s or 0.0)
    elif video is not None:
        track = SpotTrack(video)
        if video_offset_s is None:
            video_offset_s, _ = track.estimate_offset(np.array([e.time_s for e in events]))
        for e in events:
            e.u, e.v = track.spot(e.time_s - video_offset_s)
    else:
        clicks = read_pixel_clicks(pixels)
        for e in events:
            if len(clicks):
                k = int(np.argmin(np.abs(clicks[:, 0] - e.time_s)))
                if abs(clicks[k, 0] - e.time_s) <= max_match_s:
                    e.u, e.v = clicks[k, 1], clicks[k, 2]
    return events, video_offset_s


def write_pairs(events, path) -> int:
    """The pairs CSV ``calibrate extrinsics`` reads; events without a pixel are left out."""
    n = 0
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["azimuth_deg", "elevation_deg", "u", "v"])
        for e in events:
            if np.isfinite(e.u) and np.isfinite(e.v):
                w.writerow([f"{e.azimuth_deg:.3f}", f"{e.elevation_deg:.3f}", f"{e.u:.2f}", f"{e.v:.2f}"])
                n += 1
    return n
