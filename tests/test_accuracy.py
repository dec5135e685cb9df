"""Accuracy on data nobody here wrote: pyroomacoustics rooms and real ReSpeaker recordings."""
from pathlib import Path

import numpy as np
import pytest

from helpers import RESPEAKER_REAL_YAML, angle_between, az_error, locate_file, match_errors
from simulate import REAL, real_speech, room_scene, write_wav

from avstream.geometry.arrays import load_array

pytest.importorskip("pyroomacoustics")

ARRAYS = ["respeaker_4mic_hat", "minidsp_uma16"]


@pytest.fixture(scope="module")
def real_array(tmp_path_factory):
    p = tmp_path_factory.mktemp("arr") / "respeaker_real.yaml"
    p.write_text(RESPEAKER_REAL_YAML)
    return p


@pytest.mark.parametrize("array", ARRAYS)
def test_one_source_ten_random_directions(array, tmp_path):
    """RT60 0.3 s, SNR 10 dB: median azimuth error <= 3 degrees over 10 random directions."""
    rng = np.random.default_rng(7)
    mics = load_array(array).positions
    errors = []
    for k in range(10):
        az, el = rng.uniform(-180, 180), rng.uniform(0, 30)
        x = room_scene(mics, [az], [el], duration=2.0, rt60=0.3, snr_db=10.0, seed=k)
        wav = write_wav(tmp_path / f"s{k}.wav", x)
        _, summary = locate_file(wav, array, **{"localize.sources": 1})
        errors.append(az_error(summary["peaks"][0]["azimuth_deg"], az))
    assert np.median(errors) <= 3.0, errors
    assert max(errors) <= 10.0, errors


@pytest.mark.parametrize("array", ARRAYS)
@pytest.mark.parametrize("kind", ["noise", "speech"])
def test_two_sources_50_degrees_apart_both_found(array, kind, tmp_path):
    """Two simultaneous sources 50 degrees apart: each found within 10 degrees, not merged."""
    truth = [20.0, 70.0]
    sig = None if kind == "noise" else [real_speech(0), real_speech(1)]
    x = room_scene(load_array(array).positions, truth, signals=sig, duration=3.0, rt60=0.3, snr_db=10.0, seed=3)
    wav = write_wav(tmp_path / "two.wav", x)
    # the defaults: tf_sparse on the 4-mic array (with the 6 kHz band it had put the 70-degree
    # talker at 61, out of the summary; with 8 kHz it is within 7.6 degrees), srp_phat on UMA-16
    _, summary = locate_file(wav, array, **{"localize.sources": 2})
    errs = match_errors(summary["peaks"], truth)
    assert max(errs) <= 10.0, (summary["peaks"], errs)


@pytest.mark.skipif(not REAL.exists(), reason="real recordings not present")
@pytest.mark.parametrize("wav", sorted(line.split(",")[0] for line in (REAL / "ground_truth.csv").read_text().splitlines()[1:]))
def test_real_respeaker_recordings(wav, real_array):
    """Real recordings, one loudspeaker at azimuth 180, elevation 20 (50, 150, 250 cm)."""
    truth = {}
    for line in (REAL / "ground_truth.csv").read_text().splitlines()[1:]:
        f, az, el, _ = line.split(",")
        truth[f] = (float(az), float(el))
    az, el = truth[wav]
    _, summary = locate_file(REAL / wav, real_array, **{"localize.sources": 1})
    p = summary["peaks"][0]
    assert az_error(p["azimuth_deg"], az) <= 5.0, p
    assert abs(abs(p["elevation_deg"]) - el) <= 10.0, p
    assert summary["array"]["planar"] is True and "ambiguity" in summary["array"]


@pytest.mark.skipif(not REAL.exists(), reason="real recordings not present")
def test_two_real_talkers_90_degrees_apart(tmp_path, real_array):
    """Two real recordings mixed; the second is rotated by 90 degrees by permuting the
    channels of the square array (channel k -> position k+1), so both sources are real speech
    in a real room, at azimuth 180 and 270 (= -90)."""
    import soundfile as sf

    a, fs = sf.read(REAL / "50cm/a180e19_3_1b6ede00.wav", dtype="float32")
    b, _ = sf.read(REAL / "150cm/a180e19_3_1b845200.wav", dtype="float32")
    n = min(len(a), len(b))
    b = np.roll(b[:n], 20000, axis=0)[:, [3, 0, 1, 2]]  # mic k hears what mic k-1 heard: +90 degrees
    mix = a[:n] / np.abs(a).max() + b / np.abs(b).max()
    wav = tmp_path / "mix.wav"
    sf.write(wav, 0.45 * mix / np.abs(mix).max(), fs)
    _, summary = locate_file(wav, real_array, **{"localize.sources": 2})
    errs = match_errors(summary["peaks"], [180.0, -90.0])
    assert max(errs) <= 10.0, (summary["peaks"], errs)


@pytest.mark.parametrize("kind,az,el", [("speech", -135.0, 25.0), ("noise", 45.0, 10.0), ("speech", 0.0, 40.0)])
def test_synthetic_scene_ground_truth(kind, az, el):
    """The built-in scene renders a source where it says (fractional delays, diffuse noise)."""
    from avstream.config import load_config
    from avstream.pipeline import Pipeline
    from helpers import Collect

    scene = {"sources": [{"kind": kind, "azimuth_deg": az, "elevation_deg": el}], "snr_db": 15}
    cfg = load_config(None, {"array": "minidsp_uma16", "duration": 2.0, "source.scene": scene, "camera.source": "none",
                             "localize.sources": 1})
    sink = Collect()
    Pipeline(cfg, [sink]).run_sync()
    p = sink.summary["peaks"][0]
    assert angle_between(p["azimuth_deg"], p["elevation_deg"], az, el) <= 2.0, p
    # per-update peaks too, not only the summary
    errs = [angle_between(h.peaks[0].azimuth_deg, h.peaks[0].elevation_deg, az, el)
            for h in sink.maps if h.peaks and h.peaks[0].power > 0.3]
    assert len(errs) > 10 and np.median(errs) <= 3.0


def test_synthetic_two_sources_azimuths():
    from avstream.config import load_config
    from avstream.pipeline import Pipeline
    from helpers import Collect

    scene = {"sources": [{"kind": "speech", "azimuth_deg": -135.0, "elevation_deg": 25.0},
                         {"kind": "noise", "azimuth_deg": 40.0, "elevation_deg": 5.0, "level_db": -23}],
             "snr_db": 15}
    cfg = load_config(None, {"array": "minidsp_uma16", "duration": 3.0, "source.scene": scene, "camera.source": "none",
                             "localize.sources": 2})
    sink = Collect()
    Pipeline(cfg, [sink]).run_sync()
    assert max(match_errors(sink.summary["peaks"], [-135.0, 40.0])) <= 5.0, sink.summary["peaks"]


def test_a_source_is_never_reported_twice_on_a_planar_array(tmp_path):
    """A small planar array's map is a ridge along elevation; a source must not come back as a
    second peak higher or lower on the ridge (the peers' failure in docs/ANCHORS.md)."""
    from helpers import Collect  # noqa: F401

    a = load_array("respeaker_4mic_hat")
    x = room_scene(a.positions, [60.0, -150.0], [15.0, 25.0], duration=3.0, rt60=0.3, snr_db=20.0, seed=1)
    # SRP-PHAT's ridge is the case in point; tf_sparse never reports one twice here either, but
    # its summary is 5.9 degrees off in this room (README, "Methods")
    sink, summary = locate_file(write_wav(tmp_path / "one.wav", x), "respeaker_4mic_hat",
                                **{"localize.sources": 2, "localize.band": [300, 3500], "localize.method": "srp_phat"})
    twice = 0
    for h in sink.maps:
        az = [p.azimuth_deg for p in h.peaks]
        twice += any(az_error(u, v) < 20.0 for i, u in enumerate(az) for v in az[i + 1:])
    assert twice == 0, f"{twice} of {len(sink.maps)} updates reported one azimuth twice"
    assert max(match_errors(summary["peaks"], [60.0, -150.0])) <= 5.0


def test_moving_synthetic_source_is_followed():
    """A source turning at 20 deg/s: each update's strongest peak follows the trajectory."""
    from avstream.config import load_config
    from avstream.pipeline import Pipeline
    from helpers import Collect

    scene = {"sources": [{"kind": "noise", "azimuth_deg": -60.0, "elevation_deg": 10.0,
                          "azimuth_rate_deg_s": 20.0}], "snr_db": 20}
    cfg = load_config(None, {"array": "minidsp_uma16", "duration": 3.0, "source.scene": scene, "camera.source": "none",
                             "localize.sources": 1})
    sink = Collect()
    Pipeline(cfg, [sink]).run_sync()
    hop_window = 4 * 256 / 16000 / 2  # the update's audio is centred half a window after t
    errs = [az_error(h.peaks[0].azimuth_deg, -60.0 + 20.0 * (h.t + hop_window)) for h in sink.maps]
    assert len(errs) > 40 and np.median(errs) <= 2.0 and max(errs) <= 5.0, errs
    assert az_error(sink.maps[-1].peaks[0].azimuth_deg, -60.0) > 45.0  # it really moved


@pytest.mark.parametrize("max_merge", [None, 64])
def test_srp_phat_merged_bins_keep_the_map(max_merge, monkeypatch):
    """SRP-PHAT sums runs of adjacent bins before its GCC (8 on UMA-16 at 16 kHz, frame 512):
    on two sources in a pyroomacoustics room (band to 8 kHz) its maps stay within 3% of the
    peak of the maps of single bins (measured 1.2%), and their strongest cells stand within 2% of the single
    bins' maximum there (two sources about as strong: the cell itself may change). Runs of 64 bins, whose
    phases spread far at the long baselines' lags, do not (the second case shows the test can
    fail)."""
    from avstream.bench import _Keep, _NoSource
    from avstream.config import load_config
    from avstream.frames import AudioBlock
    from avstream.localize import srp_phat
    from avstream.pipeline import Pipeline

    a = load_array("minidsp_uma16")
    x = room_scene(a.positions, [30.0, -100.0], [20.0, 10.0], duration=1.0, rt60=0.4, snr_db=15.0, seed=2)
    full = np.zeros((a.n_channels, x.shape[1]), np.float32)
    full[list(a.mic_channels)] = x

    def maps(most):
        monkeypatch.setattr(srp_phat, "MAX_MERGE", most)
        if max_merge is not None:  # and let the phases spread as far as they go
            monkeypatch.setattr(srp_phat, "MERGE_RAD", 100.0)
        cfg = load_config(None, {"array": "minidsp_uma16", "localize.method": "srp_phat", "duration": None,
                                 "localize.band": [300, 8000], "camera.source": "none", "track.enabled": False,
                                 "engine.speech": "off"})
        sink = _Keep()
        pipe = Pipeline(cfg, [sink], source=_NoSource())
        for i, k in enumerate(range(0, full.shape[1] - 1024 + 1, 1024)):
            pipe.process_block(AudioBlock(full[:, k:k + 1024], k, 0.0, i))
        return pipe.localizer.merge, np.array([h.values for h in sink.maps])

    most = max_merge or srp_phat.MAX_MERGE
    _, single = maps(1)
    merge, merged = maps(most)
    off = np.abs(merged - single).max(axis=1) / single.max(axis=1)
    rows = np.arange(len(single))
    top = (single[rows, merged.argmax(axis=1)] / single.max(axis=1)).min()
    if max_merge is None:
        assert merge == 8 and off.max() <= 0.03 and top >= 0.98, (merge, off.max(), top)
    else:
        assert off.max() > 0.03 or top < 0.98, (merge, off.max(), top)
