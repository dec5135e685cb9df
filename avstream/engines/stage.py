"""The engine stage: the paired camera frame, the audio behind the update and the array's
map in; the learned map and mask over the picture and speech probabilities out.

- Speech (silero-vad, shipped): a probability for the update's mono mix (``Heatmap.speech``)
  and for each reported source's beam (``Peak.speech``; separate.beams: masked among the
  update's sources as the per-source audio is among the tracks).
- Audio-visual engine (``engine.path``): a map over the picture and a mask of the sounding
  object, both on ``Heatmap.picture``. The map is gated off (not computed) while the mono mix
  is quieter than ``engine.gate_db``: a visual model lights up the usual sounding object even
  when it is silent.
"""
from __future__ import annotations

import logging

import numpy as np

from ..errors import ConfigError, InputError
from ..frames import PictureMaps
from ..geometry.grids import to_unit
from ..separate.beams import frame_samples, masked_beams
from .speech import CHUNK, CONTEXT, RATE, SpeechDetector, mono_mix, to_16k

log = logging.getLogger(__name__)

class EngineStage:
    """Runs the configured engines for each update (see the module docstring)."""

    def __init__(self, array, sample_rate, speech=None, av=None, n_sources=3, gate_db=-55.0, speed_of_sound=343.0,
                 mask=4.0):
        self.array, self.sample_rate, self.mask = array, int(sample_rate), float(mask)
        self.speech, self.av = speech, av
        self.gate_db, self.c = gate_db, speed_of_sound
        self.n_sources = n_sources
        need = 0
        if speech is not None:
            # new samples of an update at the array's rate, plus a frame of context for the beams
            need = int(np.ceil((CHUNK + CONTEXT) * self.sample_rate / RATE)) + frame_samples(self.sample_rate)
        if av is not None:
            need = max(need, int(np.ceil(av.audio_samples * self.sample_rate / av.sample_rate)))
        self.keep_samples = need
        self.speech_updates = 0
        self.speech_sum = 0.0
        self.engine_runs = self.gated = 0

    @classmethod
    def from_config(cls, cfg, array, sample_rate, camera=None):
        """The stage ``cfg.engine`` asks for, or None when it asks for nothing."""
        e = cfg.engine
        speech = None
        if e.speech != "off":
            try:
                speech = SpeechDetector(1 + cfg.localize.sources, threads=1)
            except InputError as exc:
                if e.speech == "on":
                    raise
                log.info("note: no speech probabilities (%s)", exc)
        av = None
        if e.path:
            if camera is None:
                raise ConfigError(f"key 'engine.path': the audio-visual engine {e.path} needs a camera "
                                  f"(camera.source)")
            from .av import AvEngine

            av = AvEngine(e.path, e.backend, e.threads, e.precision, e.cache_dir)
        if speech is None and av is None:
            return None
        return cls(array, sample_rate, speech, av, cfg.localize.sources, e.gate_db, cfg.localize.speed_of_sound,
                   cfg.track.audio_mask)

    def describe(self) -> dict:
        out = {}
        if self.speech is not None:
            out["speech"] = self.speech.engine.describe()
        if self.av is not None:
            out["av"] = {"path": str(self.av.engine.info.path), "backend": self.av.engine.describe(),
                         "image_size": list(self.av.meta["image_size"])}
        return out

    def summary(self) -> dict:
        out = {}
        if self.speech is not None and self.speech_updates:
            out["speech_mean"] = round(self.speech_sum / self.speech_updates, 3)
        if self.av is not None:
            out["engine_runs"], out["engine_gated"] = self.engine_runs, self.gated
        return out

    def warm_up(self):
        if self.speech is not None:
            self.speech.process(np.zeros((self.speech.n_slots, CHUNK), np.float32))
            self.speech.reset()

    def process(self, hm, win) -> None:
        x = win.samples  # (n_mics, keep) at the array's rate
        if self.speech is not None:
            self._speech(hm, x, win.new_samples)
        if self.av is not None and hm.frame is not None:
            mono = mono_mix(self.array, x)
            level = 10 * np.log10(float(np.mean(mono ** 2)) + 1e-20)
            if level < self.gate_db:
                self.gated += 1
                hm.picture = PictureMaps(None, None, None, gated=True)
                return
            audio = to_16k(mono, self.sample_rate) if self.av.sample_rate == RATE else mono
            heat, mask = self.av.run(hm.frame.image, audio)
            self.engine_runs += 1
            hm.picture = PictureMaps(None, heat, None, mask)

    def _speech(self, hm, x, new):
        n_src = min(len(hm.peaks), self.n_sources)
        new = min(new, x.shape[1])
        signals = np.zeros((self.speech.n_slots, new), np.float32)
        signals[0] = mono_mix(self.array, x[:, -new:])
        if n_src:
            units = to_unit([p.azimuth_deg for p in hm.peaks[:n_src]], [p.elevation_deg for p in hm.peaks[:n_src]])
            signals[1:1 + n_src] = masked_beams(x, new, self.array, units, self.sample_rate, self.mask, self.c)
        new_16k = to_16k(signals, self.sample_rate)
        p = self.speech.process(new_16k)
        if np.isfinite(p[0]):
            hm.speech = float(p[0])
            self.speech_updates += 1
            self.speech_sum += hm.speech
            hm.peaks = [type(pk)(pk.azimuth_deg, pk.elevation_deg, pk.power, float(p[1 + k]))
                        for k, pk in enumerate(hm.peaks[:n_src])] + hm.peaks[n_src:]
