"""Ambisonic microphones: B-format conventions, spherical-harmonic localization (first and higher orders),
the synthetic FOA demo and bad input, on pyroomacoustics image sources encoded per reflection
(tests/simulate.py: foa_room_scene)."""
import numpy as np
import pytest

from helpers import locate_file, run_cli
from simulate import foa_room_scene, real_speech, write_wav

from avstream.config import load_config
from avstream.errors import ConfigError, InputError
from avstream.geometry.arrays import load_array
from avstream.geometry.grids import angular_distance_deg, to_unit
from avstream.pipeline import Pipeline

pytest.importorskip("pyroomacoustics")
SPEECH = [real_speech(k) for k in range(2)]


def _tracked_errors(sink, truth, skip=0.25):
    """Per late update and true source: the angle to the nearest track (180 without one)."""
    out = []
    for h in sink.maps[int(len(sink.maps) * skip):]:
        found = np.array([to_unit(t.azimuth_deg, t.elevation_deg) for t in h.tracks or []])
        out.append([float(np.min(angular_distance_deg(found, to_unit(*t)))) if len(found) else 180.0 for t in truth])
    return np.array(out)


@pytest.fixture(scope="module")
def one_talker(tmp_path_factory):
    d = tmp_path_factory.mktemp("foa")
    truth = (40.0, 10.0)
    files = {}
    for conv in ("ambix", "fuma"):
        files[conv] = write_wav(d / f"{conv}.wav", foa_room_scene([truth[0]], [truth[1]], SPEECH[:1], rt60=0.3,
                                                                   seed=0, convention=conv))
    return truth, files


def test_one_talker_in_a_room_within_3_degrees(one_talker):
    """AmbiX, default method (intensity): the median tracked error at most 3 degrees (measured
    2.0-2.5 over three seeds at RT60 0.3)."""
    truth, files = one_talker
    sink, summary = locate_file(files["ambix"], "ambix_foa", **{"localize.sources": 2})
    assert summary["method"] == "intensity"
    err = _tracked_errors(sink, [truth])[:, 0]
    assert np.median(err) <= 3.0 and np.mean(err <= 10.0) >= 0.95, np.median(err)
    assert len({t["id"] for t in summary["tracks"]}) == 1  # one source, one track


@pytest.mark.parametrize("short", [True, False])
def test_short_frames_keep_the_reflections_out(tmp_path, short):
    """RT60 0.6 s, one talker, two rooms: the floor's and ceiling's reflections reach the
    microphone 5-6 ms after the direct sound. With the ambisonic default of 8 ms frames the
    talker is tracked within 10 degrees in at least 95% of late updates, median error at most 4
    (measured 2.0 and 3.3); with 32 ms frames (the microphones' default) the reflections share
    the direct sound's bins and pull the direction off (recall 0.66 and 0.91, median 9.4 and 4.4:
    the second case shows the test can fail)."""
    stats = []
    for (az, el), seed in (((160.0, -2.0), 1), ((-122.0, 9.0), 2)):
        wav = write_wav(tmp_path / f"t{seed}.wav", foa_room_scene([az], [el], SPEECH[:1], rt60=0.6, seed=seed))
        long = {} if short else {"stft.frame": 512, "stft.hop": 256, "localize.update_frames": 4}
        sink, _ = locate_file(wav, "ambix_foa", **{"localize.sources": 2, **long})
        err = _tracked_errors(sink, [(az, el)])[:, 0]
        stats.append((float(np.mean(err <= 10.0)), float(np.median(err))))
    good = all(recall >= 0.95 and median <= 4.0 for recall, median in stats)
    assert good if short else not good, stats


def test_fuma_and_ambix_agree_and_the_convention_matters(one_talker):
    """The same scene written as FuMa and read with the FuMa preset gives the AmbiX directions
    (within 1 degree); the FuMa file read as AmbiX (channels in the wrong order) is far off."""
    truth, files = one_talker
    a, _ = locate_file(files["ambix"], "ambix_foa", **{"localize.sources": 1, "track.enabled": False})
    f, _ = locate_file(files["fuma"], "fuma_foa", **{"localize.sources": 1, "track.enabled": False})
    pairs = [(to_unit(p.azimuth_deg, p.elevation_deg), to_unit(q.azimuth_deg, q.elevation_deg))
             for ha, hf in zip(a.maps, f.maps) if ha.peaks and hf.peaks for p, q in [(ha.peaks[0], hf.peaks[0])]]
    assert len(pairs) >= 0.8 * len(a.maps)
    diffs = [float(angular_distance_deg(np.array([u]), v)[0]) for u, v in pairs]
    assert np.median(diffs) <= 1.0 and np.percentile(diffs, 90) <= 1.0, np.percentile(diffs, 90)
    wrong, _ = locate_file(files["fuma"], "ambix_foa", **{"localize.sources": 1, "track.enabled": False})
    errs = [float(angular_distance_deg(np.array([to_unit(h.peaks[0].azimuth_deg, h.peaks[0].elevation_deg)]),
                                       to_unit(*truth))[0]) for h in wrong.maps if h.peaks]
    assert not errs or np.median(errs) > 20.0  # FuMa's X, Y, Z land on AmbiX's Y, Z, X


@pytest.mark.parametrize("method", ["mvdr", "music", "clean_sc", "pwd"])
def test_covariance_methods_steer_with_spherical_harmonics(one_talker, method):
    truth, files = one_talker
    sink, _ = locate_file(files["ambix"], "ambix_foa", **{"localize.sources": 1, "localize.method": method})
    err = _tracked_errors(sink, [truth])[:, 0]
    assert np.median(err) <= 5.0, np.median(err)


def test_two_talkers_each_tracked(tmp_path):
    """Two talkers 100 degrees apart, RT60 0.3: each has a track within 10 degrees (in 0.89 and
    0.49 of the late updates on this seed, 0.92 and 0.60 over three; the issue's 0.95 is not
    reached yet: the README says so)."""
    truth = [(40.0, 10.0), (130.0, -20.0)]
    wav = write_wav(tmp_path / "two.wav", foa_room_scene([40.0, 130.0], [10.0, -20.0], SPEECH, rt60=0.3, seed=0))
    sink, summary = locate_file(wav, "ambix_foa", **{"localize.sources": 3})
    hit = (_tracked_errors(sink, truth) <= 10.0).mean(axis=0)
    assert hit[0] >= 0.85 and hit[1] >= 0.4, hit


def test_harmonics_are_ambix():
    """The spherical harmonics the higher orders steer with are AmbiX's: the textbook SN3D
    formulas up to second order (ACN order, no Condon-Shortley phase), and over the sphere
    orthogonal with the SN3D norm 4 pi / (2n + 1) up to fourth order."""
    from avstream.geometry.arrays import harmonics
    from avstream.geometry.grids import fibonacci_sphere

    rng = np.random.default_rng(0)
    u = rng.standard_normal((50, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    x, y, z = u.T
    s3 = np.sqrt(3.0)
    textbook = np.stack([np.ones(50), y, z, x, s3 * x * y, s3 * y * z, (3 * z * z - 1) / 2, s3 * x * z,
                         s3 / 2 * (x * x - y * y)], axis=1)
    assert np.allclose(harmonics(2, u), textbook, atol=1e-12)
    sphere = fibonacci_sphere(20000)
    Y = harmonics(4, sphere)
    gram = 4 * np.pi * Y.T @ Y / len(sphere)
    degree = np.repeat(np.arange(5), 2 * np.arange(5) + 1)  # n of each ACN channel
    assert np.allclose(gram, np.diag(4 * np.pi / (2 * degree + 1)), atol=2e-3)


def test_third_order_music_keeps_two_talkers_apart(tmp_path):
    """Two talkers 100 degrees apart in the RT60 0.3 s room, recorded in third-order AmbiX (16
    channels, every image source encoded to third order): MUSIC on the third-order harmonics
    tracks each within 10 degrees in at least 0.95 of the late updates (measured 1.00 and 1.00
    over two speaker pairs, RT60 0.3 and 0.6, two seeds each). The same scene's first order
    alone (its first four channels) does not (measured 0.77 and 0.58 there): the higher orders
    are what resolve them. The default on any order stays intensity, which reads the first
    order."""
    truth = [(40.0, 10.0), (130.0, -20.0)]
    x = foa_room_scene([40.0, 130.0], [10.0, -20.0], SPEECH, rt60=0.3, seed=0, order=3)
    assert x.shape[0] == 16
    hoa, foa = write_wav(tmp_path / "hoa.wav", x), write_wav(tmp_path / "foa.wav", x[:4])
    (tmp_path / "hoa.yaml").write_text("kind: ambisonic\norder: 3\n")
    array = load_array(str(tmp_path / "hoa.yaml"))
    assert array.n_mics == 16 and array.order == 3 and array.describe()["order"] == 3
    sink, summary = locate_file(hoa, tmp_path / "hoa.yaml", **{"localize.sources": 3, "localize.method": "music"})
    hit = (_tracked_errors(sink, truth) <= 10.0).mean(axis=0)
    assert hit.min() >= 0.95, hit
    first, _ = locate_file(foa, "ambix_foa", **{"localize.sources": 3, "localize.method": "music"})
    assert (_tracked_errors(first, truth) <= 10.0).mean(axis=0).min() < 0.9
    _, summary = locate_file(hoa, tmp_path / "hoa.yaml", **{"localize.sources": 3, "duration": 0.5})
    assert summary["method"] == "intensity"


def test_diffuse_field_at_third_order_is_no_source(tmp_path):
    """A diffuse field encoded to third order: MUSIC's subspace needs eigenvalues above what a
    diffuse field alone gives over its memory (in N3D, where that field is white), so no track
    is born and a peak shows in few updates (measured 6.5%); without that test every update
    had peaks and nine ghosts got ids."""
    from avstream.geometry.arrays import harmonics
    from avstream.geometry.grids import fibonacci_sphere

    rng = np.random.default_rng(0)
    n = 16000 * 3
    x = np.zeros((16, n))
    for u in fibonacci_sphere(64):
        x += np.outer(harmonics(3, u)[0], rng.standard_normal(n))
    wav = write_wav(tmp_path / "diffuse.wav", (x / np.abs(x).max() * 0.3).astype(np.float32))
    (tmp_path / "hoa.yaml").write_text("kind: ambisonic\norder: 3\n")
    sink, summary = locate_file(wav, tmp_path / "hoa.yaml", **{"localize.sources": 3, "localize.method": "music"})
    assert np.mean([bool(h.peaks) for h in sink.maps]) <= 0.15 and summary["tracks"] == []


def test_ambisonic_demo_renders_foa_in_either_convention():
    """The synthetic scene on an FOA preset: plane waves encoded to B-format (FuMa for the FuMa
    preset); the talker (azimuth 30, elevation 70) is tracked within 5 degrees."""
    for preset in ("ambix_foa", "fuma_foa"):
        from helpers import Collect

        sink = Collect()
        cfg = load_config(None, {"array": preset, "duration": 2.0, "camera.source": "none", "engine.speech": "off"})
        Pipeline(cfg, [sink]).run_sync()
        err = _tracked_errors(sink, [(30.0, 70.0)], skip=0.5)[:, 0]
        assert np.median(err) <= 5.0, (preset, np.median(err))


def test_bad_ambisonic_input(tmp_path):
    three = write_wav(tmp_path / "three.wav", np.zeros((3, 1600), np.float32))
    with pytest.raises(InputError, match="3 channels but array ambix_foa expects 4"):
        locate_file(three, "ambix_foa")
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: ambisonic\nchannel_order: sid\n")
    with pytest.raises(ConfigError, match="unknown channel_order 'sid'"):
        load_array(str(bad))
    bad.write_text("kind: ambisonic\norder: 2\nchannel_order: fuma\nnormalisation: fuma\n")
    with pytest.raises(ConfigError, match="order 2 needs channel_order acn"):
        load_array(str(bad))
    bad.write_text("kind: a_format\n")
    with pytest.raises(ConfigError, match="radius"):
        load_array(str(bad))
    bad.write_text("kind: a_format\nradius: 0.015\ncapsules: [[0, 0], [90, 0], [180, 0], [-90, 0]]\n")
    with pytest.raises(ConfigError, match="not a tetrahedron"):
        load_array(str(bad))
    hoa = tmp_path / "hoa.yaml"
    hoa.write_text("kind: ambisonic\norder: 3\n")
    with pytest.raises(InputError, match="4 channels but array .*hoa.yaml expects 16"):
        locate_file(write_wav(tmp_path / "four.wav", np.zeros((4, 1600), np.float32)), hoa)
    hoa.write_text("kind: ambisonic\norder: 2\nmic_channels: [0, 1, 2, 3]\n")
    with pytest.raises(ConfigError, match="an order-2 ambisonic array has 9 channels, mic_channels lists 4"):
        load_array(str(hoa))
    good = tmp_path / "n3d.yaml"
    good.write_text("kind: ambisonic\nchannel_order: acn\nnormalisation: n3d\n")
    assert load_array(str(good)).convention == "acn/n3d"
    with pytest.raises(ConfigError, match="srp_phat needs mics arrays.*methods for it: .*intensity"):
        Pipeline(load_config(None, {"array": "ambix_foa", "localize.method": "srp_phat", "camera.source": "none"}))
    p = run_cli("run", "--array", "fuma_foa", "--method", "tf_sparse", "--duration", "1", "--no-ros", "--no-zmq")
    assert p.returncode == 2 and "tf_sparse needs mics arrays" in p.stderr and "Traceback" not in p.stderr


def test_diffuse_noise_is_no_source(tmp_path):
    """A diffuse field (64 uncorrelated plane waves from all around, encoded to B-format): its
    bins' directions swing, so no peak stands out and no track is born."""
    from avstream.geometry.grids import fibonacci_sphere

    rng = np.random.default_rng(0)
    n = 16000 * 3
    x = np.zeros((4, n))
    for u in fibonacci_sphere(64):
        x += np.outer([1.0, u[1], u[2], u[0]], rng.standard_normal(n))
    wav = write_wav(tmp_path / "diffuse.wav", (x / np.abs(x).max() * 0.3).astype(np.float32))
    for method in ("intensity", "pwd"):
        sink, summary = locate_file(wav, "ambix_foa", **{"localize.sources": 3, "localize.method": method})
        assert np.mean([bool(h.peaks) for h in sink.maps]) <= 0.05 and summary["tracks"] == [], method


def test_ambisonic_beams_are_hypercardioids():
    """Per-source audio and per-source speech on an FOA array use first-order max-DI beams: a
    plane wave from the beam's direction passes whole, one 90 degrees off at 1/4, one from
    behind at -1/2 ((1 + 3 cos theta) / 4)."""
    from avstream.separate.beams import masked_beams

    array = load_array("ambix_foa")
    s = np.random.default_rng(0).standard_normal(1024)
    look = to_unit(40.0, 10.0)
    for other, gain in [(look, 1.0), (to_unit(130.0, 0.0), None), (-look, -0.5)]:
        b = np.outer([1.0, other[1], other[2], other[0]], s)  # AmbiX SN3D plane wave
        beam = masked_beams(b.astype(np.float32), 512, array, look, 16000)[0]
        want = (1 + 3 * float(look @ other)) / 4 if gain is None else gain
        assert np.allclose(beam, want * s[-512:], atol=1e-5)


@pytest.mark.parametrize("where", ["seam", "zenith"])
def test_360_camera_seam_and_zenith(where):
    """An FOA microphone with a 360-degree (equirectangular) camera looking along +x: a source
    straight behind (azimuth 180, on the picture's left and right edges) is one source and one
    blob once the picture wraps around; a source straight up lands on the top rows."""
    from scipy import ndimage

    from helpers import ROOT, Collect

    az, el = (180.0, 0.0) if where == "seam" else (0.0, 90.0)
    scene = {"sources": [{"kind": "noise", "azimuth_deg": az, "elevation_deg": el, "level_db": -20.0}], "snr_db": 20.0}
    sink = Collect()
    cfg = load_config(None, {"array": "ambix_foa", "duration": 1.5, "source.scene": scene, "engine.speech": "off",
                             "camera.intrinsics": str(ROOT / "calibration" / "example_equirectangular.yaml")})
    pipe = Pipeline(cfg, [sink])
    pipe.run_sync()
    cam = pipe.camera
    for hm in sink.maps[len(sink.maps) // 2:]:
        near = [p for p in hm.peaks if angular_distance_deg(np.array([to_unit(p.azimuth_deg, p.elevation_deg)]),
                                                           to_unit(az, el))[0] <= 15.0]
        assert len(near) == 1 and len(hm.peaks) == 1, hm.peaks  # one source, not two halves
        (u, v), = pipe.overlay.peak_pixels(near)
        img = pipe.overlay.map_image(hm.values)
        blob = img >= 0.5 * img.max()
        if where == "seam":
            assert min(u, cam.width - u) <= 0.03 * cam.width and abs(v - cam.height / 2) <= 0.05 * cam.height
            assert blob[:, 0].any() and blob[:, -1].any()  # on both edges of the picture
            _, n_split = ndimage.label(blob)
            _, n_wrapped = ndimage.label(np.roll(blob, blob.shape[1] // 2, axis=1))
            assert n_split == 2 and n_wrapped == 1  # two halves on the flat picture, one blob around it
        else:
            assert v <= 0.05 * cam.height and blob[0].any()


@pytest.mark.parametrize("method,array", [("intensity", "yaml"), ("mvdr", "yaml"),
                                          ("intensity", "sennheiser_ambeo_vr"), ("intensity", "core_sound_tetramic"),
                                          ("intensity", "rode_nt_sf1")])
def test_a_format_gives_the_b_format_directions(tmp_path, method, array):
    """The same talker in the free field, recorded as AmbiX and by four cardioid capsules on a
    tetrahedron (A-format, each capsule with its own delay): read through the A-format array
    (A-to-B matrix, spacing correction, aliasing model) the directions agree with the AmbiX
    ones within 1 degree (median; measured 0.55 and 0.56 at 1.5 cm). The AMBEO VR, TetraMic and
    NT-SF1 presets are the same path with their channel order and radii (1.4, 2 and 2.51 cm;
    the scene is rendered so)."""
    (tmp_path / "a.yaml").write_text("kind: a_format\nradius: 0.015\n")
    a_format = tmp_path / "a.yaml" if array == "yaml" else array
    radius = load_array(str(a_format)).capsules[1]
    found = {}
    for conv, spec in (("ambix", "ambix_foa"), ("a_format", a_format)):
        wav = write_wav(tmp_path / f"{conv}.wav", foa_room_scene([40.0], [10.0], SPEECH[:1], rt60=None, seed=0,
                                                                  convention=conv, capsule_radius=radius))
        sink, _ = locate_file(wav, spec, **{"localize.sources": 1, "localize.method": method, "track.enabled": False})
        found[conv] = sink.maps
    diffs = [float(angular_distance_deg(np.array([to_unit(a.peaks[0].azimuth_deg, a.peaks[0].elevation_deg)]),
                                        to_unit(b.peaks[0].azimuth_deg, b.peaks[0].elevation_deg))[0])
             for a, b in zip(found["ambix"], found["a_format"]) if a.peaks and b.peaks]
    assert len(diffs) >= 0.8 * len(found["ambix"]) and np.median(diffs) <= 1.0, np.median(diffs)


def test_a_format_steering_is_the_harmonics_at_low_frequency():
    """Below the capsules' aliasing the A-format model is the ideal first-order harmonics."""
    from avstream.geometry.arrays import array_from_yaml

    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as fh:
        fh.write("kind: a_format\nradius: 0.015\n")
    a = array_from_yaml(fh.name)
    dirs = np.array([to_unit(az, el) for az, el in [(0, 0), (90, 30), (-150, -60)]])
    ideal = load_array("ambix_foa").steering(np.array([100.0]), dirs)
    model = a.steering(np.array([100.0]), dirs)
    assert np.allclose(np.abs(np.einsum("fdi,fdi->fd", ideal.conj(), model)), 1.0, atol=1e-3)
