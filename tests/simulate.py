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
                   distance=1.5, seed=0, convention="ambix", capsule_radius=0.015, order=1):
    """A first-order ambisonic recording of the same kind of room (avstream.bench.foa_scene:
    pyroomacoustics' image sources encoded per reflection); white noise sources by default.
    Returns (4, n) float32 in ``convention`` ("ambix", "fuma" or "a_format": cardioid capsules
    on a tetrahedron of ``capsule_radius``), or AmbiX of ``order`` ((order + 1)^2 channels);
    ``rt60`` None: the direct sound alone."""
    from avstream.bench import foa_scene

    assert fs == 16000
    n = int(duration * fs)
    rng = np.random.default_rng(seed)
    sigs = [rng.standard_normal(n) if signals is None else np.resize(signals[k], n) for k in range(len(azimuths_deg))]
    return foa_scene(list(zip(azimuths_deg, elevations_deg)), duration, sigs, seed=seed, rt60=rt60, snr_db=snr_db,
                     distance=distance, convention=convention, capsule_radius=capsule_radius, order=order)
