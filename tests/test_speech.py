"""The speech engine (silero-vad's ONNX file through the engine runtime): speech is called speech,
noise and engine hum are not, for the whole mix and for the source's beam.

Speech comes from espeak-ng (a real synthesizer, not written here) and from the real ReSpeaker
recordings in tests/data; rooms from pyroomacoustics.
"""
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from helpers import locate_file
from simulate import real_speech, room_scene, write_wav

from avstream.geometry.arrays import load_array

pytest.importorskip("pyroomacoustics")
pytest.importorskip("onnxruntime")
FS = 16000
ARRAY = "respeaker_4mic_hat"
UPDATE = 4 * 256  # samples between updates (the default hop and update_frames)
WINDOW = 3 * 256 + 512


def espeak(tmp_path, text):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (scripts/setup.sh installs it)")
    wav = tmp_path / "say.wav"
    subprocess.run(["espeak-ng", "-w", str(wav), "-s", "160", text], check=True, capture_output=True)
    x, rate = sf.read(wav)
    return resample_poly(x, FS, rate)


def active_updates(clean, n_updates):
    """Which updates clearly hold speech, from the clean source signal: the window's level at
    least 6 dB over the recording's background (its 10th percentile window level) and within
    25 dB of its loud windows (95th percentile)."""
    lv = np.array([10 * np.log10(np.mean(clean[k * UPDATE:k * UPDATE + WINDOW] ** 2) + 1e-12)
                   for k in range(n_updates)])
    return lv >= max(np.percentile(lv, 10) + 6.0, np.percentile(lv, 95) - 25.0)


def scene(tmp_path, name, signals, azimuths, seconds):
    n = int(seconds * FS)
    x = room_scene(load_array(ARRAY).positions, azimuths, [10.0] * len(azimuths), signals=signals,
                   duration=seconds, seed=4)
    return locate_file(write_wav(tmp_path / f"{name}.wav", x), ARRAY, **{"localize.sources": len(azimuths)})[0], n


SENTENCE = ("The robot turns toward the voice when somebody speaks. A siren passes by on the street "
            "outside, and the machine keeps humming in the corner of the workshop all day long.")


def test_speech_is_called_speech(tmp_path):
    for name, sig in (("espeak", espeak(tmp_path, SENTENCE)), ("real", real_speech(0))):
        sig = sig[:int(8 * FS)]
        sink, n = scene(tmp_path, name, [sig], [40.0], len(sig) / FS)
        p = np.array([h.speech for h in sink.maps])
        # the source's own beam (the first update may have no peak yet: the vote memory fills)
        beam = np.array([h.peaks[0].speech if h.peaks else np.nan for h in sink.maps])
        act = active_updates(np.resize(sig, n), len(p))
        assert act.sum() >= 40 and not np.isnan(beam[act]).any()
        for what, q in (("mix", p), ("beam", beam)):
            share = float(np.mean(q[act] > 0.5))
            assert share >= 0.9, (name, what, share)


def test_noise_and_hum_are_not_speech(tmp_path):
    n = 6 * FS
    t = np.arange(n) / FS
    rng = np.random.default_rng(5)
    hum = sum(np.sin(2 * np.pi * f * t + k) / (k + 1) for k, f in enumerate(range(45, 450, 45)))  # engine harmonics
    for name, sig in (("noise", rng.standard_normal(n)), ("hum", hum + 0.05 * rng.standard_normal(n))):
        sink, _ = scene(tmp_path, name, [sig], [40.0], 6.0)
        p = np.array([h.speech for h in sink.maps])
        assert np.mean(p > 0.5) <= 0.1, (name, np.mean(p > 0.5))
