"""Per-source audio: a delay-and-sum beam toward each track, update by update.

What a robot's speech recognizer listens to. Every update, each reported track gets the
update's new samples of every microphone, each advanced by the plane-wave delay of the track's
direction (fractional, in the frequency domain, over the new samples plus a margin before them
so the circular shift wraps outside what is kept), averaged. The beams of successive updates
join into one continuous signal per track at the array's sample rate.

A delay-and-sum beam passes its own direction whole and other directions attenuated by the
array's directivity: little on a 4-mic array below 1 kHz (README, "Not yet"). On an ambisonic
array the beam is a first-order max-DI (hypercardioid) beam instead.
"""
from __future__ import annotations


from ..engines.speech import BEAM_MARGIN, beams_of_new
from ..geometry.grids import to_unit


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
    """

    def __init__(self, array, sample_rate, new_samples, window_samples, speed_of_sound=343.0):
        self.array, self.sample_rate, self.c = array, int(sample_rate), float(speed_of_sound)
        self.keep_samples = int(new_samples) + BEAM_MARGIN
        self.window_samples = int(window_samples)

    def process(self, hm, win) -> None:
        if not hm.tracks or win.samples is None or win.new_samples <= 0:
            hm.source_audio = {}
            return
        new = min(win.new_samples, win.samples.shape[1])
        hm.source_audio_t = win.t + (self.window_samples - new) / self.sample_rate
        hm.source_audio_stamp = win.stamp_at(hm.source_audio_t)
        units = to_unit([t.azimuth_deg for t in hm.tracks], [t.elevation_deg for t in hm.tracks])
        beams = beams_of_new(win.samples, new, self.array, units, self.sample_rate, self.c)
        hm.source_audio = {t.id: beams[k] for k, t in enumerate(hm.tracks)}
