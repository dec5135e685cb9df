"""What a new user hit on a fresh clone (issue 13): each now a clear error or a clear message."""
import numpy as np
import pytest

from helpers import ROOT, run_cli
from simulate import write_wav

from avstream.config import load_config
from avstream.errors import ConfigError, InputError
from avstream.geometry.arrays import load_array


def test_misspelled_array_key_is_an_error(tmp_path):
    p = tmp_path / "a.yaml"
    p.write_text("mic_positions: [[0.02, 0, 0], [-0.02, 0, 0]]\nfacng: [0, 0, 1]\n")
    with pytest.raises(ConfigError, match="unknown key.*facng"):
        load_array(str(p))
    p.write_text("mic_positions: [[0.02, 0, 0], [-0.02, 0, 0]]\nmic_chanels: [0, 1]\n")
    with pytest.raises(ConfigError, match="unknown key.*mic_chanels"):
        load_array(str(p))


def test_misspelled_calibration_key_is_an_error(tmp_path):
    from avstream.geometry.camera import load_camera, load_extrinsics

    ok = (ROOT / "calibration" / "example_pinhole.yaml").read_text()
    p = tmp_path / "cam.yaml"
    p.write_text(ok.replace("distortion_model:", "distorsion_model:"))
    with pytest.raises(ConfigError, match="cam.yaml: unknown key.*distorsion_model"):
        load_camera(p)
    p.write_text(ok)
    assert load_camera(p).model == "plumb_bob"  # every key of the ROS format is known
    e = tmp_path / "ext.yaml"
    e.write_text("rotation: [[1, 0, 0], [0, 1, 0], [0, 0, 1]]\ntranslaton: [0.1, 0, 0]\n")
    with pytest.raises(ConfigError, match="ext.yaml: unknown key.*translaton"):
        load_extrinsics(e)


def test_header_only_wav_and_missing_file(tmp_path):
    import soundfile as sf

    empty = tmp_path / "empty.wav"
    sf.write(str(empty), np.zeros((0, 16), np.float32), 16000, subtype="PCM_16")
    p = run_cli("locate", empty)
    assert p.returncode == 2 and "holds no audio samples" in p.stderr and "Traceback" not in p.stderr
    p = run_cli("locate", tmp_path / "nope.wav")
    assert p.returncode == 2 and "no such audio file" in p.stderr


def test_band_far_past_nyquist_is_an_error(tmp_path):
    from avstream.pipeline import Pipeline

    with pytest.raises(ConfigError, match="far past Nyquist"):
        Pipeline(load_config(None, {"localize.band": [300.0, 1e9], "camera.source": "none"}))
    p = run_cli("run", "--band", "300,1e9", "--duration", "1", "--no-ros", "--no-zmq")
    assert p.returncode == 2 and "far past Nyquist" in p.stderr
    # a little past (6 kHz asked of 8 kHz audio's 4 kHz) is clipped to Nyquist, as before
    Pipeline(load_config(None, {"localize.band": [300.0, 6000.0], "source.scene.sample_rate": 8000,
                                "camera.source": "none"}))


def test_locate_says_which_array_and_aliases_are_listed(tmp_path):
    wav = write_wav(tmp_path / "x.wav", (np.random.default_rng(0).standard_normal((16, 16000)) * 0.05).astype(np.float32))
    p = run_cli("locate", wav)
    assert p.returncode == 0 and "array minidsp_uma16 (16 microphones, the default: --array names yours)" in p.stderr
    with pytest.raises(ConfigError, match="aliases uma16 = minidsp_uma16"):
        load_array("uma-16")
    assert "aliases uma16, uma8, respeaker" in " ".join(run_cli("run", "--help").stdout.split())


def test_overlay_rate_is_right_from_the_first_second():
    """The overlay's status line used to read 0.1 updates/s at first (its rate window started
    when the pipeline was built): now it counts from the first update."""
    from helpers import Collect

    from avstream.pipeline import Pipeline

    pipe = Pipeline(load_config(None, {"duration": 0.5}), [Collect()])
    import time

    time.sleep(1.5)  # a slow start (engines loading) must not count
    texts = []
    orig = pipe._overlay_text
    pipe._overlay_text = lambda hm: texts.append(orig(hm)) or texts[-1]
    pipe.run_sync()  # as fast as it goes: far more than 1 update/s
    rates = [float(t.split()[0]) for t in texts[2:]]
    assert rates and min(rates) > 1.0, texts[:4]
