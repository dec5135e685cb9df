"""pyroomacoustics image-source scenes for accuracy tests: data nobody here wrote.

Source signals are white noise or real speech taken from the real ReSpeaker recordings
shipped in tests/data (MIT licence, see tests/data/respeaker4_real/LICENSE).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

DATA = Path(__file__).parent / "data"
REAL = DATA / "respeaker4_real"


def real_speech(k: int, fs: int = 16000) -> np.ndarray:
    """Speech from real recording k (channel 0), cyclically shifted by k seconds so that
    simultaneous talkers do not say the same thing at the same time."""
    files = sorted(REAL.glob("*cm/*.wav"))  # the one-loudspeaker recordings
    x, rate = sf.read(files[k % len(files)], dtype="float64")
    assert rate == fs
    s = x[:, 0] - x[:, 0].mean()
    return np.roll(s, int(k * 0.9 * fs)) / (np.std(s) + 1e-12)


def room_scene(mic_positions: np.ndarray, azimuths_deg, elevations_deg=None, signals=None, fs=16000,
               duration=3.0, rt60=0.3, snr_db=10.0, distance=1.5, seed=0):
    """Simulate sources around an array in a shoebox room.

    Returns (n_mics, n) float32, scaled to peak 0.5 (so it fits any integer format).
    """
    import pyroomacoustics as pra

    rng = np.random.default_rng(seed)
    room_dim = [6.0, 5.0, 3.0]
    e_abs, max_order = pra.inverse_sabine(rt60, room_dim)
    room = pra.ShoeBox(room_dim, fs=fs, materials=pra.Material(e_abs), max_order=max_order)
    center = np.array([3.1, 2.4, 1.3])
    if elevations_deg is None:
        elevations_deg = [0.0] * len(azimuths_deg)
    n = int(duration * fs)
    for k, (az, el) in enumerate(zip(azimuths_deg, elevations_deg)):
        a, e = np.deg2rad(az), np.deg2rad(el)
        pos = center + distance * np.array([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)])
        sig = rng.standard_normal(n) if signals is None else np.resize(signals[k], n)
        room.add_source(pos, signal=sig)
    room.add_microphone_array(pra.MicrophoneArray(np.asarray(mic_positions).T + center[:, None], fs))
    pra.random.seed(seed)  # the sensor noise too: the same scene every run
    room.simulate(snr=snr_db)
    out = room.mic_array.signals[:, :n]
    return (out / np.abs(out).max() * 0.5).astype(np.float32)


def write_wav(path, signals: np.ndarray, fs=16000, subtype="PCM_16"):
    sf.write(str(path), signals.T, fs, subtype=subtype)
    return path


def foa_room_scene(azimuths_deg, elevations_deg, signals=None, fs=16000, duration=3.0, rt60=0.3, snr_db=20.0,
                   distance=1.5, seed=0, convention="ambix"):
    """A first-order ambisonic recording of the same kind of room: pyroomacoustics' image sources
    (positions and wall damping), each encoded into first-order spherical harmonics along its
    own direction with its delay and 1/r spreading, as a coincident B-format microphone hears
    them; uncorrelated sensor noise at ``snr_db``.

    Returns (4, n) float32 in ``convention``: "ambix" (W, Y, Z, X; SN3D) or "fuma" (W at -3 dB,
    X, Y, Z), scaled to peak 0.5.
    """
    import pyroomacoustics as pra
    from scipy.signal import fftconvolve

    rng = np.random.default_rng(seed)
    room_dim = [6.0, 5.0, 3.0]
    e_abs, max_order = pra.inverse_sabine(rt60, room_dim)
    room = pra.ShoeBox(room_dim, fs=fs, materials=pra.Material(e_abs), max_order=max_order)
    center = np.array([3.1, 2.4, 1.3])
    n = int(duration * fs)
    sigs = []
    for k, (az, el) in enumerate(zip(azimuths_deg, elevations_deg)):
        a, e = np.deg2rad(az), np.deg2rad(el)
        room.add_source(center + distance * np.array([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)]))
        sigs.append(rng.standard_normal(n) if signals is None else np.resize(signals[k], n))
    room.add_microphone_array(pra.MicrophoneArray(center[:, None], fs))
    room.image_source_model()
    c = pra.constants.get("c")
    out = np.zeros((4, n))
    for src, sig in zip(room.sources, sigs):
        v = src.images.T - center
        r = np.linalg.norm(v, axis=1)
        u = v / r[:, None]
        amp = src.damping.reshape(-1)[: len(r)] / (4 * np.pi * r)
        delay = r / c * fs
        length = int(delay.max()) + 2
        rir = np.zeros((4, length))
        i0 = np.floor(delay).astype(int)
        frac = delay - i0
        sh = np.stack([np.ones(len(r)), u[:, 1], u[:, 2], u[:, 0]])  # AmbiX: W, Y, Z, X (SN3D)
        for ch in range(4):  # linear split of each image between its two nearest samples
            np.add.at(rir[ch], i0, sh[ch] * amp * (1 - frac))
            np.add.at(rir[ch], i0 + 1, sh[ch] * amp * frac)
        for ch in range(4):
            out[ch] += fftconvolve(sig, rir[ch])[:n]
    noise = np.random.default_rng(seed + 1).standard_normal(out.shape)
    out += noise * np.sqrt(np.mean(out[0] ** 2)) / 10 ** (snr_db / 20)
    if convention == "fuma":
        out = np.stack([out[0] / np.sqrt(2.0), out[3], out[1], out[2]])
    elif convention != "ambix":
        raise ValueError(convention)
    return (out / np.abs(out).max() * 0.5).astype(np.float32)
