"""Direction-pixel pairs from a recording of impulsive events (claps, clicks, a clicker with an
LED), for ``avstream calibrate extrinsics``.

1. Events: onsets where the in-band energy jumps ``threshold_db`` above its running median,
   at least ``min_gap_s`` apart.
2. Directions: the localizer (SRP-PHAT) on the first ``window_s`` after each onset, before
   reflections pile up.
3. Pixels: given by the user (a CSV ``time_s,u,v``, matched to the nearest event), or found in a
   video recorded alongside: the brightest new spot (an LED flashing with the click) in the
   frame nearest the event, against the median of the video's frames.

The video and the audio are assumed to start together unless ``video_offset_s`` says by how
much the video starts later.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, InputError
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


def find_spots(video_path, times_s, video_offset_s=0.0, min_contrast=60.0, settle_s=0.03) -> list:
    """(u, v) of the brightest new spot in the frame nearest each time (NaN when none)."""
    import cv2

    cap = cv2.VideoCapture(str(video_path))
    if not cap.isOpened():
        raise InputError(f"--video {video_path}: cannot open")
    frames, stamps = [], []
    try:
        while True:
            ok, img = cap.read()
            if not ok:
                break
            stamps.append(cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0 + video_offset_s)
            frames.append(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))
    finally:
        cap.release()
    if not frames:
        raise InputError(f"--video {video_path}: no frames")
    stack = np.stack(frames[:: max(1, len(frames) // 60)])
    background = np.median(stack, axis=0).astype(np.float32)
    stamps = np.asarray(stamps)
    out = []
    for t in times_s:
        k = int(np.argmin(np.abs(stamps - (t + settle_s))))
        diff = cv2.GaussianBlur(frames[k].astype(np.float32) - background, (5, 5), 0)
        peak = float(diff.max())
        if peak < min_contrast:
            out.append((np.nan, np.nan))
            continue
        mask = (diff >= 0.5 * peak).astype(np.uint8)
        n, labels, stats, cents = cv2.connectedComponentsWithStats(mask)
        best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA])) if n > 1 else 0
        w = np.where(labels == best, np.maximum(diff, 0), 0)
        vv, uu = np.nonzero(w)
        wt = w[vv, uu]
        out.append((float((uu * wt).sum() / wt.sum()), float((vv * wt).sum() / wt.sum())))
    return out


def read_pixel_clicks(path) -> np.ndarray:
    """Rows (time_s, u, v) from a CSV with exactly those columns."""
    return read_table(path, ["time_s", "u", "v"])


def extract_pairs(x, sample_rate, array, video=None, pixels=None, video_offset_s=0.0, threshold_db=12.0,
                  min_gap_s=0.3, max_match_s=0.25) -> list:
    """Events with both a direction and a pixel (pixels from ``video`` or a ``pixels`` CSV)."""
    if (video is None) == (pixels is None):
        raise ConfigError("calibrate events: give exactly one of --video FILE (LED found automatically) or "
                          "--pixels CSV (time_s,u,v)")
    onsets = detect_onsets(x, sample_rate, threshold_db=threshold_db, min_gap_s=min_gap_s)
    if len(onsets) == 0:
        raise InputError(f"no impulsive events found (none rises {threshold_db:g} dB above the background)")
    events = event_directions(x, onsets, array, sample_rate)
    if video is not None:
        for e, (u, v) in zip(events, find_spots(video, [e.time_s for e in events], video_offset_s)):
            e.u, e.v = u, v
    else:
        clicks = read_pixel_clicks(pixels)
        for e in events:
            if len(clicks):
                k = int(np.argmin(np.abs(clicks[:, 0] - e.time_s)))
                if abs(clicks[k, 0] - e.time_s) <= max_match_s:
                    e.u, e.v = clicks[k, 1], clicks[k, 2]
    return events


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
