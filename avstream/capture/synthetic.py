"""Synthetic scene: point sources at known directions plus diffuse noise, on any array.

Sources are far-field plane waves rendered with fractional delays (windowed sinc), optionally
turning around the array; diffuse noise is a precomputed loop of many uncorrelated plane waves
from all directions, scaled to the configured SNR. This is the quick start's default input. On an
ambisonic array the plane waves are encoded into spherical harmonics of its order instead (AmbiX,
then written in the array's own convention, FuMa for a FuMa array).
"""
from __future__ import annotations

import numpy as np

from ..geometry.arrays import harmonics
from ..geometry.grids import fibonacci_sphere, to_unit
from ..kernels.render import render_delayed
from .base import AudioSource

HALF_TAPS = 16


class _Signal:
    """Streaming generator of one source's dry signal at unit RMS."""

    def __init__(self, kind, rate, frequency, rng):
        self.kind, self.rate, self.f, self.rng = kind, rate, frequency, rng
        self.phase = 0.0
        if kind == "speech":
            from scipy.signal import butter, sosfilt_zi  # here: a second of import only speech needs

            self.sos = butter(4, [300, 3400], btype="band", fs=rate, output="sos")
            self.zi = sosfilt_zi(self.sos) * 0.0
            self.burst_left = 0
            self.on = False
            self.env = 0.0

    def next(self, n):
        if self.kind == "noise":
            return self.rng.standard_normal(n)
        if self.kind == "tone":
            t = self.phase + 2 * np.pi * self.f / self.rate * np.arange(n)
            self.phase = float((t[-1] + 2 * np.pi * self.f / self.rate) % (2 * np.pi))
            return np.sqrt(2.0) * np.sin(t)
        # speech-like: band-limited noise in syllable bursts (150-400 ms on, 80-300 ms off)
        from scipy.signal import sosfilt  # loaded by __init__ already: a lookup

        y, self.zi = sosfilt(self.sos, self.rng.standard_normal(n), zi=self.zi)
        gate = np.empty(n)
        i = 0
        while i < n:
            if self.burst_left <= 0:
                self.on = not self.on
                dur = self.rng.uniform(0.15, 0.4) if self.on else self.rng.uniform(0.08, 0.3)
                self.burst_left = int(dur * self.rate)
            k = min(self.burst_left, n - i)
            gate[i:i + k] = 1.0 if self.on else 0.0
            self.burst_left -= k
            i += k
        # 5 ms attack/release so bursts have onsets but no clicks
        a = 1.0 - np.exp(-1.0 / (0.005 * self.rate))
        out = np.empty(n)
        env = self.env
        for j in range(n):
            env += a * (gate[j] - env)
            out[j] = env
        self.env = env
        return 2.2 * y * out  # about unit RMS while talking


class SyntheticScene(AudioSource):
    """Synchronous source core: ``read()`` returns the next (n_channels, block) float32 block.

    Parameters
    ----------
    array : MicArray
    scene : SceneConfig
    block : int
    speed_of_sound : float
    """

    realtime = True  # a live scene: the threaded runner paces it (run_sync reads it as fast as it can)

    def __init__(self, array, scene, block=256, speed_of_sound=343.0):
        self.array, self.scene, self.block = array, scene, block
        self.sample_rate = int(scene.sample_rate)
        self.n_channels = array.n_channels
        self.c = speed_of_sound
        rng = np.random.default_rng(scene.seed)
        self.signals = [_Signal(s.kind, self.sample_rate, s.frequency_hz, rng) for s in scene.sources]
        self.gains = [10 ** (s.level_db / 20) for s in scene.sources]
        self.ambisonic = array.ambisonic
        self.decode = np.linalg.inv(array.encode) if self.ambisonic else None  # AmbiX -> the array's channels
        self._mono = np.zeros((1, block), dtype=np.float32)
        radius = np.max(np.linalg.norm(array.positions, axis=1))
        self.base_delay = radius / self.c * self.sample_rate + HALF_TAPS + 2
        self.hist_len = int(2 * self.base_delay + block + 2 * HALF_TAPS + 8)
        self.history = [np.zeros(self.hist_len) for _ in scene.sources]
        self.index = 0
        self._mics = np.zeros((array.n_mics, block), dtype=np.float32)
        noise_rms = np.sqrt(np.sum(np.square(self.gains))) / 10 ** (scene.snr_db / 20)
        self.noise = self._diffuse_noise(rng, noise_rms, 2.0)

    def _delays(self, k, t):
        s = self.scene.sources[k]
        u = to_unit(s.azimuth_deg + s.azimuth_rate_deg_s * t, s.elevation_deg)
        # a microphone further along u hears the wave earlier
        return self.base_delay - (self.array.positions @ u) / self.c * self.sample_rate

    def _harmonics(self, k, t0, t1):
        """AmbiX harmonics (ACN, SN3D) of the array's order of source k's direction at times t0
        and t1, (2, channels)."""
        s = self.scene.sources[k]
        az = s.azimuth_deg + s.azimuth_rate_deg_s * np.array([t0, t1])
        return harmonics(self.array.order, to_unit(az, np.full(2, s.elevation_deg)))

    def direction(self, k, t):
        """Azimuth, elevation (degrees) of source k at time t (seconds from the start)."""
        s = self.scene.sources[k]
        az = (s.azimuth_deg + s.azimuth_rate_deg_s * t + 180.0) % 360.0 - 180.0
        return az, s.elevation_deg

    def _diffuse_noise(self, rng, rms, seconds, chunk=128):
        """A seamless loop of isotropic noise: 64 plane waves, circular delays by FFT. Each
        wave's phase ramp over frequency is built a chunk at a time from the ramp of the first
        ``chunk`` bins times the chunk's first phase (some 0.1 s on UMA-16, where one complex
        exponential per microphone, wave and bin took 0.8 s of every demo's start)."""
        n = int(seconds * self.sample_rate)
        freqs = np.fft.rfftfreq(n, 1.0 / self.sample_rate)
        waves = fibonacci_sphere(64)
        s = np.fft.rfft(rng.standard_normal((len(waves), n)), axis=1)  # (waves, bins)
        if self.ambisonic:
            spec = harmonics(self.array.order, waves).T @ s
        else:
            tau = -(self.array.positions @ waves.T) / self.c  # (mics, waves)
            ramp = np.exp(-2j * np.pi * np.outer(freqs[:chunk], tau.ravel())).reshape(-1, *tau.shape)
            spec = np.empty((self.array.n_mics, len(freqs)), dtype=np.complex128)
            for a in range(0, len(freqs), chunk):
                b = min(a + chunk, len(freqs))
                first = np.exp(-2j * np.pi * freqs[a] * tau)
                spec[:, a:b] = np.einsum("fmw,wf->mf", ramp[:b - a] * first, s[:, a:b])
        x = np.fft.irfft(spec, n)
        return (x * rms / np.sqrt(np.mean(x ** 2))).astype(np.float32)

    def warm_up(self):
        if self.signals:  # the renderer on silence, into scratch arrays of the same types
            d = np.full(self._mics.shape[0], self.base_delay)
            render_delayed(np.zeros(self.hist_len), self.hist_len, d, d, float(self.gains[0]),
                           np.zeros_like(self._mics), HALF_TAPS, 32)

    def read(self):
        n = self.block
        out = self._mics
        n_loop = self.noise.shape[1]
        pos = (self.index + np.arange(n)) % n_loop
        out[:] = self.noise[:, pos]
        t0 = self.index / self.sample_rate
        t1 = (self.index + n) / self.sample_rate
        for k, sig in enumerate(self.signals):
            h = self.history[k]
            h[:-n] = h[n:]
            h[-n:] = sig.next(n)
            if self.ambisonic:  # one delayed signal, encoded along the (moving) direction
                mono = self._mono[:, :n]
                mono[:] = 0.0
                d = np.array([self.base_delay])
                render_delayed(h, self.index + n, d, d, self.gains[k], mono, HALF_TAPS, 32)
                a = np.linspace(0.0, 1.0, n, endpoint=False)
                h0, h1 = self._harmonics(k, t0, t1)
                sh = np.outer(h0, 1.0 - a) + np.outer(h1, a)
                out += (sh * mono).astype(np.float32)
                continue
            render_delayed(h, self.index + n, self._delays(k, t0), self._delays(k, t1), self.gains[k], out,
                           HALF_TAPS, 32)
        self.index += n
        block = np.zeros((self.n_channels, n), dtype=np.float32)
        block[list(self.array.mic_channels)] = out if self.decode is None else self.decode @ out
        return block
