"""The command line: the locate contract, the demo, and bad input (clear error, no NaN, no traceback)."""
import json
import os

import numpy as np
import pytest
import soundfile as sf

from helpers import RESPEAKER_REAL_YAML, az_error, finite_json, jsonl, run_cli
from simulate import room_scene, write_wav

from avstream.geometry.arrays import load_array

pytest.importorskip("pyroomacoustics")


@pytest.fixture(scope="module")
def scene_wav(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    x = room_scene(load_array("respeaker_4mic_hat").positions, [-60.0], [15.0], duration=2.0, seed=11)
    return write_wav(d / "one.wav", x), x


def assert_clean_error(proc, *needles):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("avstream: error:"), proc.stderr
    for n in needles:
        assert n in proc.stderr, proc.stderr


def test_locate_contract(scene_wav):
    wav, _ = scene_wav
    p = run_cli("locate", wav, "--array", "respeaker_4mic_hat", "--grid", "sphere:1000", "--sources", "2",
                "--band", "300,3500", "--frame", "512", "--hop", "256", "--update-frames", "4")
    assert p.returncode == 0, p.stderr
    lines = jsonl(p.stdout)
    updates, last = lines[:-1], lines[-1]
    assert len(updates) == ((2 * 16000 - 512) // 256 + 1) // 4  # 124 frames, 4 per update
    assert all(set(u) >= {"t", "peaks"} for u in updates)
    ts = [u["t"] for u in updates]
    assert ts == sorted(ts) and ts[1] - ts[0] == pytest.approx(4 * 256 / 16000)
    for u in updates:
        assert len(u["peaks"]) <= 2
        for pk in u["peaks"]:
            # speech: the speech engine's probability for the source's beam (on by default)
            assert set(pk) - {"speech"} == {"azimuth_deg", "elevation_deg", "power"}
            assert 0.0 <= pk.get("speech", 0.0) <= 1.0
    assert az_error(last["summary"]["peaks"][0]["azimuth_deg"], -60.0) <= 5.0
    assert "planar array" in p.stderr  # the up/down ambiguity is said


def test_locate_fov_grid(scene_wav):
    wav, _ = scene_wav
    x = room_scene(load_array("minidsp_uma16").positions, [20.0], [10.0], duration=1.5, seed=2)
    w = write_wav(wav.parent / "uma.wav", x)
    p = run_cli("locate", w, "--array", "uma16", "--grid", "fov:90,70:64,48", "--sources", "1")
    assert p.returncode == 0, p.stderr
    s = jsonl(p.stdout)[-1]["summary"]["peaks"][0]
    assert az_error(s["azimuth_deg"], 20) <= 3 and abs(s["elevation_deg"] - 10) <= 6


def test_run_demo_ends_by_itself(tmp_path):
    out = tmp_path / "o.jsonl"
    npz = tmp_path / "o.npz"
    p = run_cli("run", "--duration", "2", "--jsonl", out, "--npz", npz, timeout=120)
    assert p.returncode == 0, p.stderr
    lines = jsonl(out.read_text())
    assert len(lines) > 20 and "summary" in lines[-1]
    assert "synthetic scene" in p.stderr and "dominant sources" in p.stderr
    data = np.load(npz)
    assert data["heatmaps"].shape[0] == len(lines) - 1 and np.isfinite(data["heatmaps"]).all()
    # the speech source of the default scene (az +30, el +70) dominates
    top = lines[-1]["summary"]["peaks"][0]
    assert az_error(top["azimuth_deg"], 30) <= 3


def test_help_explains():
    p = run_cli("--help")
    assert p.returncode == 0 and "locate" in p.stdout and "azimuth" in p.stdout
    p = run_cli("locate", "--help")
    assert p.returncode == 0 and "--grid" in p.stdout and "sphere:N" in p.stdout


# --- bad input ---------------------------------------------------------------------------

def test_channel_count_mismatch(scene_wav):
    wav, _ = scene_wav
    assert_clean_error(run_cli("locate", wav, "--array", "uma16"), "has 4 channels", "expects 16")


def test_respeaker_six_channel_hint(scene_wav):
    wav, _ = scene_wav
    assert_clean_error(run_cli("locate", wav, "--array", "respeaker_usb_4mic"), "expects 6", "mic_channels")


def test_unknown_preset(scene_wav):
    wav, _ = scene_wav
    assert_clean_error(run_cli("locate", wav, "--array", "respeakr"), "unknown array 'respeakr'")


def test_malformed_array_yaml(scene_wav, tmp_path):
    wav, _ = scene_wav
    bad = tmp_path / "arr.yaml"
    bad.write_text("mic_positions: [[0, 0, 0], [0.1, 0, 0]\n")
    assert_clean_error(run_cli("locate", wav, "--array", bad), str(bad), "malformed YAML")


def test_malformed_config_yaml(scene_wav, tmp_path):
    wav, _ = scene_wav
    bad = tmp_path / "cfg.yaml"
    bad.write_text("localize: {band: [300, 3500}\n")
    assert_clean_error(run_cli("locate", wav, "--array", "respeaker_4mic_hat", "--config", bad), str(bad))


def test_unreadable_and_missing_files(tmp_path):
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunk")
    assert_clean_error(run_cli("locate", junk, "--array", "respeaker_4mic_hat"), str(junk), "cannot read audio")
    assert_clean_error(run_cli("locate", tmp_path / "none.wav", "--array", "respeaker_4mic_hat"), "none.wav")


def test_truncated_file_uses_what_is_there(scene_wav, tmp_path):
    wav, _ = scene_wav
    data = wav.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: len(data) // 2])  # header still declares the full length
    p = run_cli("locate", cut, "--array", "respeaker_4mic_hat")
    assert p.returncode == 0, p.stderr
    assert "truncated" in p.stderr
    lines = jsonl(p.stdout)
    assert az_error(lines[-1]["summary"]["peaks"][0]["azimuth_deg"], -60.0) <= 5.0
    assert lines[-1]["summary"]["seconds"] < 1.1


def test_sample_rate_mismatch_resamples(scene_wav, tmp_path):
    """A 48 kHz file for an array declared at 16 kHz: resampled, said so, still right."""
    from scipy.signal import resample_poly

    _, x = scene_wav
    wav48 = tmp_path / "r48.wav"
    sf.write(wav48, resample_poly(x, 3, 1, axis=1).T, 48000)
    arr = tmp_path / "hat.yaml"
    pos = load_array("respeaker_4mic_hat").positions.tolist()
    arr.write_text("mic_positions: %s\nsample_rate: 16000\n" % json.dumps(pos))
    p = run_cli("locate", wav48, "--array", arr)
    assert p.returncode == 0, p.stderr
    assert "48000 Hz" in p.stderr and "resampling to 16000 Hz" in p.stderr
    assert az_error(jsonl(p.stdout)[-1]["summary"]["peaks"][0]["azimuth_deg"], -60.0) <= 5.0


@pytest.fixture(scope="module")
def clean_error(scene_wav):
    p = run_cli("locate", scene_wav[0], "--array", "respeaker_4mic_hat")
    assert p.returncode == 0, p.stderr
    return az_error(jsonl(p.stdout)[-1]["summary"]["peaks"][0]["azimuth_deg"], -60.0)


@pytest.mark.parametrize("damage,flag", [("nan", "nonfinite"), ("inf", "nonfinite"), ("zero", "silent"),
                                          ("clip", "clipped")])
def test_damaged_audio_is_flagged_not_fatal(scene_wav, clean_error, tmp_path, damage, flag):
    _, x = scene_wav
    y = x.copy().astype(np.float32)
    seg = slice(8000, 16000)
    if damage == "nan":
        y[:, seg] = np.nan
    elif damage == "inf":
        y[1, seg] = np.inf
    elif damage == "zero":
        y[:] = 0.0
    else:
        y = np.clip(y * 40, -1.0, 1.0)
    f = tmp_path / f"{damage}.wav"
    sf.write(f, y.T, 16000, subtype="FLOAT")
    p = run_cli("locate", f, "--array", "respeaker_4mic_hat")
    assert p.returncode == 0, p.stderr
    assert "nan" not in p.stdout.lower() and "infinity" not in p.stdout.lower()
    lines = jsonl(p.stdout)
    assert all(finite_json(line) for line in lines)
    assert any(flag in u.get("flags", []) for u in lines[:-1])
    assert lines[-1]["summary"]["input_flags"].get(flag, 0) > 0
    if damage == "zero":
        assert lines[-1]["summary"]["peaks"] == [] and all(u["peaks"] == [] for u in lines[:-1])
    else:  # the undamaged part locates the source as well as the whole clean file does
        # (zeros put in for NaN once drew the summary 1-3 degrees off: the first frames after
        # them looked like an onset and outweighed the rest)
        assert clean_error <= 5.0
        assert az_error(lines[-1]["summary"]["peaks"][0]["azimuth_deg"], -60.0) <= clean_error + 1.0


def _blocks(x, hop, t0=1000.0, skip=()):
    """Hop-sized AudioBlocks of x stamped on a UNIX-like clock, leaving out the blocks in skip
    (as a ring buffer that dropped them would)."""
    from avstream.frames import AudioBlock

    out = []
    for i, k in enumerate(range(0, x.shape[1] - hop + 1, hop)):
        if i not in skip:
            out.append(AudioBlock(np.ascontiguousarray(x[:, k:k + hop]), k, t0 + k / 16000, i))
    return out


def _core(sink):
    from avstream.config import load_config
    from avstream.pipeline import Pipeline

    from avstream.capture.base import AudioSource

    class NoSource(AudioSource):
        sample_rate = 16000

    cfg = load_config(None, {"array": "respeaker_4mic_hat", "camera.source": "none", "duration": None,
                             "source.block": 256, "stft.hop": 256, "localize.update_frames": 4})
    return Pipeline(cfg, [sink], source=NoSource())


def test_frames_with_replaced_samples_carry_no_weight(scene_wav):
    """Updates made only of frames with a broken channel show no source; the others do.

    (Zeros in one channel of four leave pairs that still point somewhere: evidence from a
    broken array, which must not reach the map.)"""
    from helpers import Collect

    _, x = scene_wav
    y = x.copy()
    y[1, 8000:16000] = np.inf
    sink = Collect()
    pipe = _core(sink)
    for b in _blocks(y, 256):
        pipe.process_block(b)
    frame = pipe.stft.frame
    inside = [h for h in sink.maps if 8000 <= h.t * 16000 and h.t * 16000 + 3 * 256 + frame <= 16000]
    outside = [h for h in sink.maps if h.t * 16000 + 3 * 256 + frame <= 8000 or h.t * 16000 >= 16000]
    assert len(inside) >= 5 and len(outside) >= 20
    assert all(h.peaks == [] and "nonfinite" in h.flags for h in inside)
    assert all(h.peaks and az_error(h.peaks[0].azimuth_deg, -60.0) <= 10.0 for h in outside[len(outside) // 2:])


def test_stamps_stay_true_after_dropped_blocks(scene_wav):
    """A block lost in the ring buffer must not shift the capture stamps of later updates."""
    from helpers import Collect

    _, x = scene_wav
    sink = Collect()
    pipe = _core(sink)
    blocks = _blocks(x, 256, skip={40})
    for b in blocks:
        pipe.process_block(b)
    # h.t counts the samples the pipeline saw; after the gap each of them was captured one
    # block later than that count says
    late = [h for h in sink.maps if h.t * 16000 >= 40 * 256]
    assert len(late) > 10
    assert all(h.stamp == pytest.approx(1000 + h.t + 256 / 16000, abs=1e-6) for h in late)


def test_band_above_nyquist(scene_wav):
    wav, _ = scene_wav
    assert_clean_error(run_cli("locate", wav, "--array", "respeaker_4mic_hat", "--band", "9000,12000"),
                       "localize.band", "Nyquist")


def test_first_run_compiles_before_capture(tmp_path):
    """With an empty Numba cache the kernels compile before capture starts, so the live
    demo loses nothing (before the warm-up, a first run dropped hundreds of blocks)."""
    out = tmp_path / "o.jsonl"
    p = run_cli("run", "--duration", "2", "--jsonl", out, env={"NUMBA_CACHE_DIR": str(tmp_path / "numba")},
                timeout=300)
    assert p.returncode == 0, p.stderr
    summary = jsonl(out.read_text())[-1]["summary"]
    assert summary["dropped_blocks"] == 0 and "overrun" not in summary["input_flags"], summary
    assert summary["updates"] >= 25, summary


def run_script(script, *args, env=None):
    """``python -c script args`` with the project on the path, from its root."""
    import subprocess
    import sys

    from helpers import ROOT

    return subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, cwd=str(ROOT), timeout=600)


_SCIPY_SIGNAL_ON_A_FILE_RUN = """
import sys
from avstream.config import load_config
from avstream.pipeline import Pipeline
from avstream.sinks.base import NullSink

pipe = Pipeline(load_config(None, {"array": "respeaker_4mic_hat", "source.kind": "file", "source.path": sys.argv[1],
                                   "camera.source": "none"}), [NullSink()])
summary = pipe.run_sync()
print(summary["updates"], "scipy.signal" in sys.modules)
"""


def test_a_run_from_a_file_does_not_import_scipy_signal(scene_wav):
    """A run from a file (or a device) at the array's rate leaves scipy.signal out: importing
    it takes about a second, which every start of the node paid for a window formula and
    imports that only resampling and the synthetic talker need."""
    wav, _ = scene_wav
    p = run_script(_SCIPY_SIGNAL_ON_A_FILE_RUN, wav)
    assert p.returncode == 0, p.stderr
    updates, imported = p.stdout.split()
    assert int(updates) > 0 and imported == "False", p.stdout


_COMPILES_AFTER_WARM_UP = """
import sys
from numba.core import event
from avstream.config import load_config
from avstream.pipeline import Pipeline
from avstream.sinks.base import NullSink

compiled = []

class Watch(event.Listener):
    def on_start(self, ev):
        compiled.append(str(ev.data.get("dispatcher")))

    def on_end(self, ev):
        pass

array, method, camera = sys.argv[1:4]
pipe = Pipeline(load_config(None, {"array": array, "localize.method": method, "camera.source": camera,
                                   "duration": 1.0}), [NullSink()])
pipe.warm_up()
event.register("numba:compile", Watch())
pipe.run_sync()
print(compiled)
"""


@pytest.mark.parametrize("array,method,camera", [("minidsp_uma16", "auto", "synthetic"),
                                                 ("respeaker_4mic_hat", "auto", "none"),
                                                 ("ambix_foa", "auto", "none")])
def test_warm_up_compiles_every_kernel_a_run_needs(array, method, camera, tmp_path_factory):
    """After Pipeline.warm_up nothing compiles while audio flows, from an empty Numba cache
    (the cache is shared between the cases; loading from it is no compilation): a kernel
    first called with another array layout than its warm-up's compiled during the first
    second of a live run and cost updates (CI: 7 skipped)."""
    cache = tmp_path_factory.getbasetemp() / "numba-warm-up"
    p = run_script(_COMPILES_AFTER_WARM_UP, array, method, camera, env={"NUMBA_CACHE_DIR": str(cache)})
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().splitlines()[-1] == "[]", p.stdout


def test_warm_up_leaves_no_trace(scene_wav):

    wav, _ = scene_wav
    from avstream.config import load_config
    from avstream.pipeline import Pipeline
    from helpers import Collect

    o = {"array": "respeaker_4mic_hat", "source.kind": "file", "source.path": str(wav), "source.realtime": False,
         "duration": None, "localize.smoothing": 0.5}
    a, b = Collect(), Collect()
    Pipeline(load_config(None, o), [a]).run_sync()
    warm = Pipeline(load_config(None, o), [b])
    warm.warm_up()
    warm.run_sync()
    assert len(a.maps) == len(b.maps)
    assert all(np.array_equal(x.values, y.values) for x, y in zip(a.maps, b.maps))
    assert a.summary["peaks"] == b.summary["peaks"]


def test_flac_file_through_run_and_locate(scene_wav, tmp_path):
    _, x = scene_wav
    flac = tmp_path / "one.flac"
    sf.write(flac, x.T, 16000, subtype="PCM_16")
    p = run_cli("locate", flac, "--array", "respeaker_4mic_hat", "--sources", "1")
    assert p.returncode == 0, p.stderr
    assert az_error(jsonl(p.stdout)[-1]["summary"]["peaks"][0]["azimuth_deg"], -60.0) <= 5.0
    out = tmp_path / "run.jsonl"
    p = run_cli("run", "--source", "file", "--file", flac, "--fast", "--array", "respeaker_4mic_hat",
                "--duration", "0", "--jsonl", out, "--no-status")
    assert p.returncode == 0, p.stderr
    lines = jsonl(out.read_text())
    assert lines[-1]["summary"]["seconds"] == pytest.approx(2.0, abs=0.02)
    assert az_error(lines[-1]["summary"]["peaks"][0]["azimuth_deg"], -60.0) <= 5.0


def test_ctrl_c_ends_a_live_run_cleanly(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from helpers import ROOT

    out = tmp_path / "live.jsonl"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "avstream", "run", "--duration", "0", "--jsonl", str(out),
                             "--no-status"], cwd=str(ROOT), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    for _ in range(600):  # wait until updates flow (not a timing assertion: just polling)
        if out.exists() and out.read_text().count("\n") >= 5:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    lines = jsonl(out.read_text())
    assert "summary" in lines[-1] and lines[-1]["summary"]["updates"] == len(lines) - 1
