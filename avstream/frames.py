"""Frames that flow between stages. Each carries its capture time, sequence number and flags.

Times are seconds. ``stamp`` is the capture time of the first sample behind the frame on the
source's clock (UNIX epoch for live devices, seconds from the start for files and synthetic
scenes); ``t`` is always seconds from the start of the stream.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Flags describing bad input; they travel from the audio block to the heatmap and the output.
FLAG_NONFINITE = "nonfinite"  # NaN or Inf samples were replaced by zero
FLAG_SILENT = "silent"  # every sample was zero
FLAG_CLIPPED = "clipped"  # samples at full scale
FLAG_OVERRUN = "overrun"  # the ring buffer dropped blocks before this one
FLAG_GAP = "gap"  # the device was gone before this block (reopened): samples are missing


@dataclass
class AudioBlock:
    """A block of multichannel audio.

    Attributes
    ----------
    data : ndarray (n_ch, n) float32
        Samples in [-1, 1] full scale, microphones in the array's order.
    index : int
        Stream sample index of the first sample.
    stamp : float
        Capture time of the first sample, seconds.
    seq : int
    flags : set of str
    """

    data: np.ndarray
    index: int
    stamp: float
    seq: int
    flags: set = field(default_factory=set)


@dataclass
class VideoFrame:
    """One camera image.

    Attributes
    ----------
    image : ndarray (height, width, 3) uint8
        BGR, OpenCV's order.
    stamp : float
        Capture time on the same clock as the audio stamps (UNIX epoch live; seconds from the
        start for recordings and the synthetic scene read as fast as possible).
    seq : int
        Frames the camera delivered before this one (since the start, across reconnects).
    """

    image: np.ndarray
    stamp: float
    seq: int


@dataclass(frozen=True)
class Peak:
    """One source direction: azimuth/elevation in degrees, power as mean PHAT coherence."""

    azimuth_deg: float
    elevation_deg: float
    power: float
    speech: float | None = None  # speech probability of the source's beamformed signal (speech engine)

    def __init__(self, azimuth_deg, elevation_deg, power, speech=None):
        # fills the frozen instance in one call: the generated __init__ sets each field through
        # object.__setattr__, twice the time, and every update makes several peaks and tracks
        self.__dict__.update(azimuth_deg=azimuth_deg, elevation_deg=elevation_deg, power=power, speech=speech)

    def to_dict(self) -> dict:
        out = {"azimuth_deg": round(self.azimuth_deg, 2), "elevation_deg": round(self.elevation_deg, 2),
               "power": round(self.power, 4)}
        if self.speech is not None:
            out["speech"] = round(self.speech, 3)
        return out


@dataclass
class UpdateWindow:
    """What one update is made of, handed from the audio front end to the localizer and engines.

    Attributes
    ----------
    frames : ndarray (update_frames, n_mics, n_freqs) complex64
        STFT frames. A view into the front end's buffer: valid until its next ``process`` call.
    weights : ndarray (update_frames,) float32
        0 for frames that hold replaced (NaN/Inf) samples, else 1.
    t, stamp : float
        Stream time and capture time of the first sample behind the update.
    seq : int
    flags : set of str
    samples : ndarray (n_mics, n) float32 or None
        The microphones' samples ending with the update's last sample (``n`` as the engines
        asked for; None when no stage asked for samples).
    new_samples : int
        Samples since the previous update ended: the last ``new_samples`` columns are new.
    stamps : (ndarray, ndarray) or None
        Stream times at which the blocks behind the window start, and their capture stamps:
        what ``stamp_at`` reads.
    """

    frames: np.ndarray
    weights: np.ndarray
    t: float
    stamp: float
    seq: int
    flags: set
    samples: np.ndarray | None = None
    new_samples: int = 0
    levels: dict | None = None  # per microphone since the previous update: rms_dbfs, peak_dbfs
    stamps: tuple | None = None

    def stamp_at(self, t: float) -> float:
        """Capture time of stream time ``t`` (in the window or after it), from the capture stamps
        of the blocks it came in. Within a block time runs at the stream's rate, or slower where
        the next block's stamp is nearer (the clock pulling its mapping back): the stamps of
        later samples are later. Where the next block's stamp is further (a gap: samples lost
        while the device was gone) the jump comes between the blocks, where the samples are."""
        if self.stamps is None or not len(self.stamps[0]):
            return self.stamp + (t - self.t)
        ts, ss = self.stamps
        k = max(0, int(ts.searchsorted(t, side="right")) - 1)
        t0, s0 = float(ts[k]), float(ss[k])
        span = float(ts[k + 1]) - t0 if k + 1 < len(ts) else 0.0
        slope = min(1.0, (float(ss[k + 1]) - s0) / span) if span > 0 else 1.0
        return s0 + slope * (t - t0)


@dataclass
class PictureMaps:
    """Maps over the camera picture that an update carries when there is a camera.

    All maps are float32 (rows, cols) rasters laid over the whole picture (cell (r, c) covers
    pixels [c * width / cols, (c + 1) * width / cols) x [r * height / rows, ...)).

    Attributes
    ----------
    array : ndarray or None
        The array's map on the picture.
    engine : ndarray or None
        The learned engine's map (0..1), None without an engine or while it is gated off.
    fused : ndarray
        The published map: per ``--fusion``, the array's, the engine's, or their product. The
        engine stage hands the fusion stage its maps with ``array`` and ``fused`` still None.
    mask : ndarray (mask_rows, mask_cols) uint8 or None
        255 where the segmenter sees the sounding object(s).
    pixels : list of dict
        Peaks of ``fused``: {"u", "v", "power"} in picture pixels.
    gated : bool
        Whether the engine map was gated off because the audio was silent.
    """

    array: np.ndarray | None
    engine: np.ndarray | None
    fused: np.ndarray
    mask: np.ndarray | None = None
    pixels: list = field(default_factory=list)
    gated: bool = False


@dataclass
class Heatmap:
    """A sound-source map over a grid and the strongest sources in it.

    Attributes
    ----------
    values : ndarray (n_dirs,) float32
        Power per grid cell. For image-like grids the first ``grid.n_image`` cells reshape
        to ``grid.shape``; a camera grid's surround (out of the picture) follows them.
    t : float
        Seconds from the stream start to the first sample behind the update.
    stamp : float
        Capture time of that sample on the source clock.
    seq : int
    peaks : list of Peak
    flags : set of str
    """

    values: np.ndarray
    t: float
    stamp: float
    seq: int
    peaks: list
    flags: set = field(default_factory=set)
    status: dict | None = None  # pipeline counters at this update (rate, drops, device)
    frame: VideoFrame | None = None  # the camera frame nearest in capture time, when there is a camera
    overlay: np.ndarray | None = None  # (height, width, 3) uint8 BGR: the map drawn on that frame
    picture: PictureMaps | None = None  # maps over the picture (array, engine, fused, mask)
    speech: float | None = None  # speech probability of the update's mono mix (speech engine)
    tracks: list | None = None  # tracked sources (track.Track) when tracking is on
    source_audio: dict | None = None  # track id -> float32 beam samples of this update (separate/)
    source_audio_t: float = 0.0  # stream time of their first sample
    source_audio_stamp: float = 0.0  # and its capture time
    audio: np.ndarray | None = None  # (n_mics, n) float32: the samples new since the last update
    audio_t: float = 0.0  # stream time of their first sample
    audio_stamp: float = 0.0  # and its capture time
    levels: dict | None = None  # per microphone since the previous update: rms_dbfs, peak_dbfs (lists)

    def to_dict(self) -> dict:
        out = {"t": round(self.t, 4), "peaks": [p.to_dict() for p in self.peaks]}
        if self.tracks is not None:
            out["tracks"] = [tr.to_dict() for tr in self.tracks]
        if self.speech is not None:
            out["speech"] = round(self.speech, 3)
        if self.picture is not None:
            out["pixels"] = self.picture.pixels
        if self.flags:
            out["flags"] = sorted(self.flags)
        return out
