"""Per-source audio: each track's beam, in a WAV per track and on ZeroMQ (a real socket)."""
import json

import numpy as np
import pytest

from helpers import ROOT, run_cli

from avstream.geometry.arrays import load_array

pytest.importorskip("pyroomacoustics")


def band_noise(lo, hi, n, seed, fs=16000):
    from scipy.signal import butter, sosfilt

    x = np.random.default_rng(seed).standard_normal(n)
    return sosfilt(butter(6, [lo, hi], btype="band", fs=fs, output="sos"), x)


def band_power(x, lo, hi, fs=16000):
    f = np.fft.rfftfreq(len(x), 1 / fs)
    p = np.abs(np.fft.rfft(x)) ** 2
    return p[(f >= lo) & (f <= hi)].sum()


@pytest.fixture(scope="module")
def two_bands(tmp_path_factory):
    """UMA-16 in a pyroomacoustics room: a 1.5-2.5 kHz source at azimuth 0 and a 3-4 kHz one at
    azimuth 90, equally loud."""
    from simulate import room_scene, write_wav

    a = load_array("minidsp_uma16")
    n = 4 * 16000
    x = room_scene(a.positions, [0.0, 90.0], [40.0, 40.0], signals=[band_noise(1500, 2500, n, 1),
                                                                    band_noise(3000, 4000, n, 2)],
                   duration=4.0, rt60=0.2, snr_db=30.0, seed=4)
    full = np.zeros((a.n_channels, x.shape[1]), np.float32)
    full[list(a.mic_channels)] = x
    return write_wav(tmp_path_factory.mktemp("sep") / "two.wav", full), x


def test_each_track_wav_favours_its_source(two_bands, tmp_path):
    """--save-sources: the WAV of the track at azimuth 0 holds more of the 1.5-2.5 kHz source,
    relative to the other, than a single microphone does, and the other track's WAV the reverse."""
    import soundfile as sf

    wav, x = two_bands
    out = tmp_path / "sources"
    p = run_cli("run", "--source", "file", "--file", wav, "--array", "minidsp_uma16", "--fast", "--duration", "0",
                "--no-ros", "--no-zmq", "--no-status", "--camera", "none", "--save-sources", out)
    assert p.returncode == 0, p.stderr
    rows = [line.split(",") for line in (out / "tracks.csv").read_text().splitlines()[1:]]
    assert len(rows) == 2, rows
    summary = json.loads([line for line in p.stdout.splitlines() if line.startswith('{"summary"')][-1]) \
        if p.stdout.strip() else None
    mic = x[0]
    single = 10 * np.log10(band_power(mic, 1500, 2500) / band_power(mic, 3000, 4000))
    ratios = {}
    for tid, start, samples in rows:
        y, rate = sf.read(out / f"track_{tid}.wav")
        assert rate == 16000 and len(y) == int(samples) and float(start) >= 0
        ratios[int(tid)] = 10 * np.log10(band_power(y, 1500, 2500) / band_power(y, 3000, 4000))
    assert summary is None or len(summary["summary"]["tracks"]) == 2
    hi, lo = max(ratios.values()), min(ratios.values())
    # each beam moves the balance toward its own source by at least 3 dB
    print("single mic", round(single, 1), "tracks", {k: round(v, 1) for k, v in ratios.items()})
    assert hi >= single + 3.0 and lo <= single - 3.0, (single, ratios)


def test_track_audio_in_mcap_equals_the_wav(two_bands, tmp_path):
    """--record: each track's audio is in the MCAP file as audio_common_msgs/AudioDataStamped
    (S16LE, announced by an AudioInfo), decoded by mcap-ros2-support into the samples of the
    same run's --save-sources WAV (to 16-bit rounding), stamped in order."""
    import soundfile as sf

    pytest.importorskip("mcap_ros2")
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    wav, _ = two_bands
    out, rec = tmp_path / "sources", tmp_path / "rec.mcap"
    p = run_cli("run", "--source", "file", "--file", wav, "--array", "minidsp_uma16", "--fast", "--duration", "0",
                "--no-ros", "--no-zmq", "--no-status", "--camera", "none", "--save-sources", out, "--record", rec)
    assert p.returncode == 0, p.stderr
    chunks, infos, stamps = {}, [], {}
    with open(rec, "rb") as fh:
        for _, ch, msg, ros in make_reader(fh, decoder_factories=[DecoderFactory()]).iter_decoded_messages(
                topics=None):
            if ch.topic == "/avstream/source_audio/audio_info":
                infos.append(ros)
            elif ch.topic.startswith("/avstream/source_audio/track_"):
                tid = int(ch.topic.rsplit("_", 1)[1])
                chunks.setdefault(tid, []).append(np.frombuffer(bytes(ros.audio.data), "<i2"))
                stamps.setdefault(tid, []).append(ros.header.stamp.sec + 1e-9 * ros.header.stamp.nanosec)
    rows = [line.split(",") for line in (out / "tracks.csv").read_text().splitlines()[1:]]
    assert sorted(chunks) == sorted(int(r[0]) for r in rows) and len(chunks) == 2
    assert len(infos) == 2 and all(i.sample_format == "S16LE" and i.sample_rate == 16000 and i.channels == 1
                                   for i in infos)
    for tid, parts in chunks.items():
        y, _ = sf.read(out / f"track_{tid}.wav", dtype="float64")
        got = np.concatenate(parts) / 32768.0  # S16LE full scale, as the raw audio topic
        assert len(got) == len(y)
        assert np.max(np.abs(got - np.clip(y, -1, 1))) <= 2.0 / 32768.0  # within a 16-bit step or two
        assert np.all(np.diff(stamps[tid]) > 0)


def test_track_audio_on_zeromq(two_bands):
    """A subscriber on a real loopback socket gets avstream/audio/<id> messages: float32 PCM whose
    headers say the track, rate and time, and successive messages of a track join up."""
    import subprocess
    import sys
    import time

    import zmq

    wav, _ = two_bands
    port = 20000 + int(time.time() * 1000) % 20000
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.connect(f"tcp://127.0.0.1:{port}")
    sub.setsockopt(zmq.SUBSCRIBE, b"avstream/audio/")
    proc = subprocess.Popen([sys.executable, "-m", "avstream", "run", "--source", "file", "--file", str(wav),
                             "--array", "minidsp_uma16", "--duration", "0", "--no-ros", "--no-status", "--camera", "none",
                             "--zmq", f"tcp://127.0.0.1:{port}"], cwd=str(ROOT), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    got = {}
    try:
        poller = zmq.Poller()
        poller.register(sub, zmq.POLLIN)
        t0 = time.time()
        while time.time() - t0 < 30 and proc.poll() is None:
            if poller.poll(200):
                topic, header, payload = sub.recv_multipart()
                h = json.loads(header)
                assert topic == b"avstream/audio/%d\0" % h["id"]
                x = np.frombuffer(payload, h["dtype"])
                assert len(x) == h["n"] and h["sample_rate"] == 16000 and np.all(np.isfinite(x))
                got.setdefault(h["id"], []).append(h)
    finally:
        proc.kill()
        proc.wait()
        sub.close(0)
        ctx.term()
    assert got, "no track audio received"
    for tid, hs in got.items():
        # consecutive updates of a track: each message starts where the previous one ended
        for a, b in zip(hs, hs[1:]):
            if b["seq"] == a["seq"] + 1:
                assert abs(b["t"] - (a["t"] + a["n"] / a["sample_rate"])) < 1e-6
