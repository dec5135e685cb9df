"""Per-source audio: a beam toward each track, sharpened by a time-frequency mask, update by update.

What a robot's speech recognizer listens to (and what the speech engine labels per source,
engines.stage, with the update's peaks for tracks). Every update, each reported track gets the
update's new samples as seen by a beam toward it: on a microphone array a delay-and-sum beam
(each microphone advanced by the plane-wave delay of the track's direction), on an ambisonic
array a max-DI beam of its order (a hypercardioid at first order). The beams of successive
updates join into one continuous signal per track at the array's sample rate, a few samples
behind the newest (the array's largest delay plus 2 ms: what a beam's last samples need).

A beam alone passes other directions attenuated only by the array's directivity: little on a
4-mic array below a few kHz. So with several tracks the beams are formed per STFT bin
(sqrt-Hann frames of 32 ms, half overlap) and each bin of track k's beam is
kept by the mask (|B_k|^2 / max_j |B_j|^2) ** ``mask``: speech is sparse in time-frequency
(W-disjoint orthogonality, as tf_sparse uses it), so a bin where another track's beam is
louder belongs to that source and is attenuated; a bin where every beam is about as loud (low
frequencies on a small array) is kept by all. ``mask`` 0, or a single track, gives the plain
beams (the STFT and its overlap-add reconstruct them exactly).
"""
from __future__ import annotations

import numpy as np
import scipy.fft

from ..geometry.arrays import max_di_beams
from ..geometry.grids import to_unit

FRAME_S = 0.032  # the masks' STFT frames (512 samples at 16 kHz), at half overlap
LOOKAHEAD_S = 0.002  # per-source audio lags the newest sample by the array's largest delay and this


def frame_samples(rate) -> int:
    """Samples per STFT frame of the masked beams at ``rate`` (even: sqrt-Hann frames at half
    overlap, whose analysis x synthesis windows sum to 1)."""
    return 2 * int(round(FRAME_S * rate / 2))


def masked_beams(samples, new, array, units, rate, mask=4.0, speed_of_sound=343.0, lookahead=0):
    """(n_tracks, new) float32: beams toward ``units`` (n_tracks, 3) of ``samples`` (n_channels,
    n), each STFT bin weighted by the mask above, over the ``new`` samples that end ``lookahead``
    samples before the last (fewer when ``samples`` is shorter). Up to a frame of samples before
    them gives the first frames their context; beyond the last sample the frames are
    zero-padded. A delay-and-sum beam advances the microphones that hear a wave late, so its
    last samples need samples that have not come yet: without a lookahead of a few samples
    beyond the array's largest delay they come out wrong, and successive updates click where
    they join."""
    frame = frame_samples(rate)
    hop = frame // 2
    units = np.atleast_2d(units)
    new = max(0, min(new, samples.shape[1] - lookahead))
    seg = samples[:, -min(samples.shape[1], new + lookahead + frame):]
    lead = seg.shape[1] - new - lookahead
    seg = np.pad(seg.astype(np.float32, copy=False), ((0, 0), (frame - lead, frame)))  # new samples at [frame, frame + new)
    win = np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(frame) / frame)).astype(np.float32)  # sqrt periodic Hann
    frames = np.lib.stride_tricks.sliding_window_view(seg, frame, axis=1)[:, ::hop] * win  # (channels, frames, frame)
    spec = scipy.fft.rfft(frames, axis=-1).transpose(2, 0, 1)  # (bins, channels, frames), complex64
    if array.ambisonic:
        beams = max_di_beams(array.order, units).astype(np.complex64) @ spec  # (bins, tracks, frames)
    else:
        f = np.fft.rfftfreq(frame, 1.0 / rate).astype(np.float32)
        tau = units @ array.positions.T / speed_of_sound  # (tracks, mics): how much earlier each mic hears it
        phase = (2 * np.pi) * f[:, None, None] * tau[None].astype(np.float32)  # (bins, tracks, mics)
        beams = ((np.cos(phase) - 1j * np.sin(phase)) / len(array.positions)).astype(np.complex64) @ spec
    if mask > 0 and len(units) > 1:
        power = beams.real ** 2 + beams.imag ** 2
        beams *= (power / np.maximum(power.max(axis=1, keepdims=True), 1e-30)) ** mask
    beams = beams.transpose(1, 2, 0)  # (tracks, frames, bins)
    frames = scipy.fft.irfft(beams, frame, axis=-1) * win  # (tracks, frames, frame)
    out = np.zeros((len(units), seg.shape[1]), np.float32)
    norm = np.zeros(seg.shape[1], np.float32)
    for i in range(frames.shape[1]):
        out[:, i * hop:i * hop + frame] += frames[:, i]
        norm[i * hop:i * hop + frame] += win * win
    return (out[:, frame:frame + new] / np.maximum(norm[frame:frame + new], 1e-12)).astype(np.float32)


class SourceAudio:
    """Sets ``hm.source_audio`` = {track id: float32 samples of this update} and
    ``hm.source_audio_t`` and ``hm.source_audio_stamp`` (stream time and capture time of their
    first sample) for each update.

    Parameters
    ----------
    array : MicArray
    sample_rate : int
    new_samples : int
        Samples an update adds (hop x update_frames).
    window_samples : int
        Samples behind one update (the new ones end its window).
    speed_of_sound : float
    mask : float
        The time-frequency mask's exponent (0: plain beams).
    """

    def __init__(self, array, sample_rate, new_samples, window_samples, speed_of_sound=343.0, mask=4.0):
        self.array, self.sample_rate, self.c = array, int(sample_rate), float(speed_of_sound)
        self.mask = float(mask)
        # the array's largest delay (none for ambisonics) and 2 ms for the fractional delays' tails
        reach = 0.0 if array.ambisonic else float(np.max(np.linalg.norm(array.positions, axis=1))) / self.c
        self.lookahead = int(np.ceil((reach + LOOKAHEAD_S) * self.sample_rate))
        self.keep_samples = int(new_samples) + self.lookahead + frame_samples(sample_rate)
        self.window_samples = int(window_samples)

    def process(self, hm, win) -> None:
        new = min(win.new_samples, win.samples.shape[1] - self.lookahead) if win.samples is not None else 0
        if not hm.tracks or new <= 0:
            hm.source_audio = {}
            return
        # the update's audio ends self.lookahead samples before its newest sample
        hm.source_audio_t = win.t + (self.window_samples - self.lookahead - new) / self.sample_rate
        hm.source_audio_stamp = win.stamp_at(hm.source_audio_t)
        units = to_unit([t.azimuth_deg for t in hm.tracks], [t.elevation_deg for t in hm.tracks])
        beams = masked_beams(win.samples, new, self.array, units, self.sample_rate, self.mask, self.c, self.lookahead)
        hm.source_audio = {t.id: beams[k] for k, t in enumerate(hm.tracks)}
