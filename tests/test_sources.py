"""Sources that stay apart and keep their names: the localizer registry, the evidence rule
(no ghosts), and tracking, on real recordings and pyroomacoustics scenes."""
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import RESPEAKER_REAL_YAML, Collect, az_error, locate_file, match_errors
from simulate import REAL, real_speech, room_scene, write_wav

from avstream.config import METHODS, load_config
from avstream.geometry.arrays import load_array
from avstream.errors import ConfigError
from avstream.localize import LOCALIZERS
from avstream.pipeline import Pipeline

TWO = REAL / "two_sources"
# updates skipped at the start (1 s): the default method's vote memory fills in 0.5 s, a track
# is reported after four detections, and the second loudspeaker of the first take is first
# heard at 0.77 s
WARM_UP = 16


@pytest.fixture(scope="module")
def real_array(tmp_path_factory):
    p = tmp_path_factory.mktemp("arr") / "respeaker_real.yaml"
    p.write_text(RESPEAKER_REAL_YAML)
    return p


def all_tracked(heatmap, azimuths, within=10.0):
    """Whether every azimuth has a track within ``within`` degrees in this update."""
    return all(any(az_error(tr.azimuth_deg, a) <= within for tr in heatmap.tracks) for a in azimuths)


def turned(x, rate):
    """A ReSpeaker recording with its channels turned a quarter (channel k gets what channel
    k - 1 heard: a loudspeaker at 180 degrees moves to 270) and 1.5 s later (rolled)."""
    return np.roll(x[:, [3, 0, 1, 2]], int(1.5 * rate), axis=0)


def write_sum(parts, rate, path):
    """Write the sum of recordings, cut to the shortest: sound adds, so this is what the array
    hears with all of them playing, apart from a background counted once per part. Returns
    ``path``."""
    import soundfile as sf

    n = min(len(p) for p in parts)
    sf.write(path, sum(p[:n] for p in parts), rate, subtype="FLOAT")
    return path


@pytest.mark.skipif(not TWO.exists(), reason="two-loudspeaker recordings not present")
@pytest.mark.parametrize("wav", sorted(p.name for p in TWO.glob("*.wav")))
def test_two_real_loudspeakers_tracked_with_two_ids(wav, real_array):
    """Two loudspeakers at once (azimuth 180 and 225, tests/data/respeaker4_real/README.md),
    with the defaults: both within 10 degrees in at least 90% of updates, two stable ids."""
    sink, _ = locate_file(TWO / wav, real_array)
    both = [all_tracked(h, (180.0, 225.0)) for h in sink.maps[WARM_UP:]]
    ids = {tr.id for h in sink.maps[WARM_UP:] for tr in h.tracks}
    assert np.mean(both) >= 0.9, np.mean(both)
    assert ids == {1, 2}, ids


@pytest.mark.skipif(not TWO.exists(), reason="two-loudspeaker recordings not present")
@pytest.mark.parametrize("wav", sorted(p.name for p in TWO.glob("*.wav")))
def test_three_real_loudspeakers_tracked_with_three_ids(wav, real_array, tmp_path):
    """A third real loudspeaker: a two-loudspeaker take plus the one-loudspeaker take at 150 cm
    (azimuth 180) with its channels turned a quarter (channel k gets what channel k - 1 heard:
    on this square array that is the loudspeaker at 270 degrees) and 1.5 s later. Sound adds, so
    the sum is what the array hears with all three playing, apart from a doubled background;
    the rooms' echoes are real. With the defaults: all three within 10 degrees in at least 85% of
    the updates (measured 0.96 and 0.99), three ids (four on the first take without the
    grating lobes' ties: a ghost of the 180-degree loudspeaker at azimuth 1, elevation 60)."""
    import soundfile as sf

    two, rate = sf.read(TWO / wav, dtype="float32")
    one, _ = sf.read(REAL / "150cm/a180e19_3_1b845200.wav", dtype="float32")
    sink, _ = locate_file(write_sum([two, turned(one, rate)], rate, tmp_path / "three.wav"), real_array)
    every = [all_tracked(h, (180.0, 225.0, 270.0)) for h in sink.maps[WARM_UP:]]
    assert np.mean(every) >= 0.85, np.mean(every)
    assert {tr.id for h in sink.maps for tr in h.tracks} == {1, 2, 3}


@pytest.mark.parametrize("distance", ["50cm", "150cm", "250cm"])
def test_two_real_loudspeakers_at_every_distance(distance, real_array, tmp_path):
    """The two one-loudspeaker takes at a distance (azimuth 180), the second with its channels
    turned a quarter (the loudspeaker at 270 degrees, as in the three-loudspeaker test) and 1.5 s
    later, added. With the defaults, from half a second after both have started talking: both
    within 10 degrees in at least 90% of the updates (measured 1.00 at all three distances, and
    in 1.00, 1.00 and 0.78 of them with the second turned to 90 degrees instead), two ids.
    SRP-PHAT scores 0.69, 0.96 and 0.50 here with 5 or 6 ids; tf_sparse without the grating
    lobes' ties gives a third id at 50 and 250 cm."""
    import soundfile as sf

    (first, rate), (second, _) = [sf.read(p, dtype="float32") for p in sorted((REAL / distance).glob("*.wav"))]
    parts = [first, turned(second, rate)]
    n = min(len(p) for p in parts)

    def talks_from(x):  # seconds: where its 0.1 s energy first reaches a tenth of its highest
        e = np.convolve(x[:n, 0] ** 2, np.ones(rate // 10) / (rate // 10), "same")
        return np.argmax(e > 0.1 * e.max()) / rate

    start = max(talks_from(p) for p in parts) + 0.5
    sink, _ = locate_file(write_sum(parts, rate, tmp_path / "two.wav"), real_array)
    both = [all_tracked(h, (180.0, 270.0)) for h in sink.maps if h.t >= start]
    assert len(both) >= 30 and np.mean(both) >= 0.9, (len(both), np.mean(both))
    assert {tr.id for h in sink.maps for tr in h.tracks} == {1, 2}


@pytest.mark.skipif(not TWO.exists(), reason="two-loudspeaker recordings not present")
@pytest.mark.parametrize("wav", sorted(p.name for p in TWO.glob("*.wav")))
def test_music_on_four_microphones_keeps_a_noise_subspace(wav, real_array):
    """MUSIC's source count (auto) is at most half the microphones: with --sources 3 on 4 mics
    a 3-dimensional signal subspace left one noise vector, a pseudo-spectrum flat over the
    sphere and no peak above the floor (both loudspeakers in 0.00 and 0.58 of the updates).
    Now both are tracked within 10 degrees in 0.88 and 1.00 of them (0.68 and 0.80 with the
    old 6 kHz band)."""
    sink, _ = locate_file(TWO / wav, real_array, **{"localize.method": "music", "localize.sources": 3})
    both = [all(any(az_error(tr.azimuth_deg, t) <= 10.0 for tr in h.tracks) for t in (180.0, 225.0))
            for h in sink.maps[WARM_UP:]]
    assert np.mean(both) >= 0.6, np.mean(both)


@pytest.mark.skipif(not REAL.exists(), reason="real recordings not present")
def test_one_source_reports_one_and_silence_none(real_array, tmp_path):
    """--sources 3 is a maximum: a one-loudspeaker recording reports one source (one track),
    sensor noise alone reports none: no track, nothing in the summary, and a raw peak in at most
    one update in twenty (tf_sparse's per-bin onset weighting lets one weak peak through in 1 of
    46 updates; the floor that would stop it loses broadband noise sources, see tf_sparse)."""
    sink, summary = locate_file(REAL / "150cm/a180e19_3_1b845200.wav", real_array, **{"localize.sources": 3})
    counts = np.array([len(h.peaks) for h in sink.maps[WARM_UP:]])
    assert np.mean(counts == 1) >= 0.95, np.bincount(counts)
    assert {tr.id for h in sink.maps for tr in h.tracks} == {1}
    assert len(summary["peaks"]) == 1 and az_error(summary["peaks"][0]["azimuth_deg"], 180.0) <= 5.0, summary
    import soundfile as sf

    rng = np.random.default_rng(0)
    sf.write(tmp_path / "quiet.wav", (1e-3 * rng.standard_normal((3 * 16000, 4))).astype(np.float32), 16000)
    sink, summary = locate_file(tmp_path / "quiet.wav", real_array, **{"localize.sources": 3})
    assert all(not h.tracks for h in sink.maps) and summary["peaks"] == []
    assert np.mean([bool(h.peaks) for h in sink.maps]) <= 0.05


def test_the_demo_scene_has_no_ghost_track():
    """The demo's scene as `avstream run` starts it (UMA-16, SRP-PHAT, a talker and a circling
    white noise), without its camera, so over the whole sphere: no track more than 15 degrees
    from both sources. The noise's grating lobe on the horizon stood at 0.45 of the strongest
    peak, and had a track in 43 of the 77 updates; as a height above the map's floor
    (SrpPhat.relative_floor) it stands near 0.3 and still makes a raw peak in 13 (in 1 with the
    demo's camera grid), which the tracker confirms in none. Both sources keep their tracks."""
    from avstream.geometry.grids import angular_distance_deg, to_unit

    cfg = load_config(None, {"duration": 5.0, "camera.source": "none", "engine.speech": "off"})
    sink = Collect()
    Pipeline(cfg, [sink]).run_sync()
    talker, noise = cfg.source.scene.sources

    def away(p, s, t):  # degrees from scene source s at time t
        return float(angular_distance_deg(to_unit(p.azimuth_deg, p.elevation_deg),
                                          to_unit(s.azimuth_deg + s.azimuth_rate_deg_s * t, s.elevation_deg)))

    def ghosts(h, found):
        return any(min(away(p, talker, h.t), away(p, noise, h.t)) > 15.0 for p in found)

    assert sum(ghosts(h, h.tracks) for h in sink.maps) == 0
    assert np.mean([ghosts(h, h.peaks) for h in sink.maps]) <= 0.25
    late = [h for h in sink.maps if h.t >= 1.0]
    assert np.mean([any(away(tr, noise, h.t) <= 10.0 for tr in h.tracks) for h in late]) >= 0.9
    assert np.mean([any(away(tr, talker, h.t) <= 5.0 for tr in h.tracks) for h in late]) >= 0.5


def test_a_flat_map_has_no_peak_and_a_plateau_one():
    """Peak picking on the sphere: a flat map (digital silence, or a vote map's empty cells) has
    no local maximum, so no peak at any level; two equal cells side by side on top of a bump are
    one peak. (Every cell of a flat map used to be a candidate: K peaks of nothing, found in
    O(cells^2).)"""
    from avstream.geometry.grids import parse_grid
    from avstream.kernels.peaks import pick_peaks

    grid = parse_grid("sphere:2562")
    idx, work = np.zeros(3, np.int64), np.zeros(grid.n_dirs, np.int64)
    chord2 = (2 * np.sin(np.deg2rad(20.0) / 2)) ** 2
    flat = np.full(grid.n_dirs, 0.5, np.float32)
    assert pick_peaks(flat, grid.neighbors, grid.directions, np.eye(3), chord2, idx, work) == 0
    top = int(np.argmax(grid.directions @ np.array([1.0, 0.0, 0.0])))
    bump = np.clip(grid.directions @ grid.directions[top], 0, None).astype(np.float32)
    twin = grid.neighbors[top, 0]
    bump[twin] = bump[top]
    n = pick_peaks(bump, grid.neighbors, grid.directions, np.eye(3), chord2, idx, work)
    assert n == 1 and idx[0] in (top, twin)


@pytest.mark.parametrize("method", [m for m in METHODS if "mics" in LOCALIZERS[m].kinds])
def test_every_method_finds_one_source(method, tmp_path):
    """Each method's map on one grid, with its documented scale: one source in a room is the
    strongest reported peak, within 5 degrees."""
    pytest.importorskip("pyroomacoustics")
    x = room_scene(load_array("respeaker_4mic_hat").positions, [-70.0], [10.0], signals=[real_speech(2)],
                   duration=2.0, rt60=0.3, snr_db=20.0, seed=5)
    sink, summary = locate_file(write_wav(tmp_path / "one.wav", x), "respeaker_4mic_hat",
                                **{"localize.method": method})
    assert summary["peaks"] and az_error(summary["peaks"][0]["azimuth_deg"], -70.0) <= 5.0, summary["peaks"]
    assert sink.maps[-1].values.shape == sink.maps[0].values.shape


def test_a_source_that_pauses_keeps_its_id(tmp_path):
    """Speech, a second of silence, speech again from the same place: one id throughout."""
    pytest.importorskip("pyroomacoustics")
    s = real_speech(1)[:5 * 16000].copy()
    s[int(2.0 * 16000):int(3.0 * 16000)] = 0.0
    x = room_scene(load_array("respeaker_4mic_hat").positions, [40.0], [15.0], signals=[s], duration=5.0, rt60=0.3,
                   snr_db=25.0, seed=2)
    sink, _ = locate_file(write_wav(tmp_path / "pause.wav", x), "respeaker_4mic_hat")
    ids = [tr.id for h in sink.maps for tr in h.tracks]
    assert set(ids) == {1}, sorted(set(ids))
    late = [h for h in sink.maps if h.t > 3.5]
    assert late and all(h.tracks for h in late)


def test_crossing_sources_keep_their_ids():
    """Two sources on the built-in scene (UMA-16): one still, one turning at 20 deg/s through
    it. Ids do not swap: the moving track stays with the moving source, coasting on its
    velocity for the two seconds it hides inside the other's peak; while it is detected its
    median error is at most 3 degrees (over every update, coasting included, it is 4.2: the
    issue's 3 is not met there)."""
    scene = {"sources": [{"kind": "speech", "azimuth_deg": 0.0, "elevation_deg": 20.0, "level_db": -20},
                         {"kind": "noise", "azimuth_deg": -60.0, "elevation_deg": 20.0, "level_db": -22,
                          "azimuth_rate_deg_s": 20.0}], "snr_db": 20, "seed": 3}
    cfg = load_config(None, {"array": "minidsp_uma16", "duration": 6.0, "source.scene": scene, "camera.source": "none",
                             "localize.sources": 2, "localize.grid": "hemisphere:2562"})
    sink = Collect()
    Pipeline(cfg, [sink]).run_sync()
    moving = lambda t: -60.0 + 20.0 * t  # noqa: E731
    # the id that follows the moving source before the crossing (t = 3 s) ...
    before = [tr.id for h in sink.maps if 0.8 < h.t < 2.0 for tr in h.tracks if az_error(tr.azimuth_deg, moving(h.t)) < 8]
    after = [tr.id for h in sink.maps if 4.0 < h.t < 5.8 for tr in h.tracks if az_error(tr.azimuth_deg, moving(h.t)) < 8]
    assert before and after, "the moving source was not tracked"
    first = max(set(before), key=before.count)
    assert max(set(after), key=after.count) == first, (before, after)
    errs = [az_error(tr.azimuth_deg, moving(h.t)) for h in sink.maps if h.t > 0.8 for tr in h.tracks
            if tr.id == first and tr.silent_s == 0.0]
    assert len(errs) > 30 and np.median(errs) <= 3.0, np.median(errs)


@pytest.fixture(scope="module")
def reverberant_pair(tmp_path_factory):
    """Two talkers 69 degrees apart (azimuth 27 and 96, elevation 1 and 15) in a pyroomacoustics
    room with RT60 0.5 s and 12 dB SNR, on the 4-mic HAT."""
    pytest.importorskip("pyroomacoustics")
    truth = (27.4, 96.4)
    x = room_scene(load_array("respeaker_4mic_hat").positions, list(truth), [1.2, 15.4],
                   signals=[real_speech(0), real_speech(1)], duration=3.0, rt60=0.5, snr_db=12.0, seed=0)
    return write_wav(tmp_path_factory.mktemp("rev") / "pair.wav", x), truth


@pytest.mark.parametrize("tests_on", [True, False])
def test_tf_sparse_keeps_the_room_out(reverberant_pair, tests_on):
    """tf_sparse in a reverberant room: with its bin tests (margin over the mean direction, per-bin
    onsets, grating lobes' ties) its peaks stay off the zenith, where the diffuse field's
    low-frequency bins point on a planar array (none of them above 60 degrees elevation; 8% with
    the first two tests alone, 27% with none), and the two talkers are tracked within 10 degrees in
    at least 80% of the (talker, update) pairs after the first second (measured 0.85; 0.85 with
    the first two tests alone, 0.80 with the ties alone, 0.50 with none: the second case shows the
    test can fail)."""
    wav, truth = reverberant_pair
    opts = {} if tests_on else {"localize.tf_sparse.min_margin": 0.0, "localize.tf_sparse.bin_onset": None,
                                "localize.tf_sparse.alias_tie": 0.0}
    sink, _ = locate_file(wav, "respeaker_4mic_hat", **{"localize.sources": 2, "localize.method": "tf_sparse", **opts})
    peaks = [p for h in sink.maps for p in h.peaks]
    high = np.mean([p.elevation_deg > 60 for p in peaks])
    tracked = np.mean([any(az_error(tr.azimuth_deg, t) <= 10 for tr in h.tracks)
                       for h in sink.maps[WARM_UP:] for t in truth])
    if tests_on:
        assert high <= 0.15 and tracked >= 0.8, (high, tracked)
    else:
        assert high > 0.15 or tracked < 0.8, (high, tracked)


@pytest.mark.parametrize("band", [None, [300.0, 6000.0]])
def test_the_band_reaching_8_khz_keeps_two_noise_sources_apart(band, tmp_path):
    """Two white-noise sources 70 degrees apart (azimuth 150 and -140) on the 4-mic HAT, in a
    pyroomacoustics room of RT60 0.56 s at 9 dB SNR (one of scripts/sources_table.py's rooms).
    The 5.7 cm array's beam is wider than their spacing below a few kHz; with the default band
    (300-8000 Hz on microphones) its high bins, whose grating lobes fall in other directions
    at every bin, tell them apart: both tracked within 10 degrees in at least 0.9 of the
    updates after the first second (measured 1.00). With the old 300-6000 Hz band they were
    not (0.00): the second case shows the test can fail."""
    pytest.importorskip("pyroomacoustics")
    truth = (149.9, -140.4)
    x = room_scene(load_array("respeaker_4mic_hat").positions, list(truth), [21.0, 11.1], duration=3.0,
                   rt60=0.556, snr_db=9.4, seed=4)
    wav = write_wav(tmp_path / "noise.wav", x)
    sink, _ = locate_file(wav, "respeaker_4mic_hat", **({"localize.band": band} if band else {}))
    both = np.mean([all(any(az_error(tr.azimuth_deg, t) <= 10 for tr in h.tracks) for t in truth)
                    for h in sink.maps[WARM_UP:]])
    if band is None:
        assert both >= 0.9, both
    else:
        assert both < 0.9, both


def test_a_silent_track_stays_near_where_it_went_quiet():
    """A track moving at 60 deg/s that loses its detections slows down (coast_s 0.5 s): two
    seconds later it is within 35 degrees of its last detection, not 120 degrees on."""
    from avstream.track.tracker import Tracker

    class P:
        def __init__(self, az):
            self.azimuth_deg, self.elevation_deg, self.power, self.speech = az, 0.0, 1.0, None

    def run(**kw):
        tr = Tracker(**kw)
        t, out = 0.0, []
        while t < 1.0:
            out = tr.process(t, [P(60.0 * t)])
            t += 0.064
        last = 60.0 * (t - 0.064)
        while t < 3.0:
            out = tr.process(t, [])
            t += 0.064
        assert len(out) == 1, out
        return az_error(out[0].azimuth_deg, last)

    assert run() <= 35.0
    assert run(coast_s=0.0, max_speed_deg_s=0.0) >= 90.0  # the old behaviour: it runs on


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 9), st.integers(1, 9), st.integers(0, 2**31 - 1), st.booleans())
def test_track_assignment_is_scipys(n, m, seed, gated):
    """The tracker's own Hungarian (inside its kernel) reaches the least total cost scipy's
    linear_sum_assignment reaches, on any shape, with gated (1e6) pairs among them, and leaves
    out only pairs beyond the gate."""
    from scipy.optimize import linear_sum_assignment

    from avstream.kernels.track import associate

    rng = np.random.default_rng(seed)
    u = rng.standard_normal((n, 3))
    z = rng.standard_normal((m, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    ids = rng.integers(0, 2, n)
    gate = 0.8 if gated else 3.0
    rows, cols = np.empty(min(n, m), np.int64), np.empty(min(n, m), np.int64)
    k = associate(u, ids, n, z, np.eye(3), 1.0, gate, rows, cols)
    cost = np.linalg.norm(u[:, None] - z[None], axis=2) + 1e-3 * (ids == 0)[:, None]
    cost = np.where(cost <= gate, cost, 1e6)
    r, c = linear_sum_assignment(cost)
    best = cost[r, c] <= gate
    assert k == best.sum()
    assert len(set(rows[:k])) == k and len(set(cols[:k])) == k
    assert np.isclose(cost[rows[:k], cols[:k]].sum(), cost[r[best], c[best]].sum(), atol=1e-9)


def test_method_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match="localize.method"):
        load_config(None, {"localize.method": "beamforming"})
    with pytest.raises(ConfigError, match=r"localize\.mvdr\.loading.*the method is music"):
        load_config(None, {"localize.method": "music", "localize.mvdr.loading": 0.2})
    with pytest.raises(ConfigError, match=r"localize\.music\.bins"):
        load_config(None, {"localize.method": "music", "localize.music.bins": 1})
    cfg = load_config(None, {"array": "respeaker_4mic_hat", "localize.method": "music", "localize.music.n_sources": 4,
                             "camera.source": "none"})
    with pytest.raises(ConfigError, match=r"localize\.music\.n_sources.*at most microphones - 1 = 3"):
        Pipeline(cfg, [])


def test_clean_sc_finds_a_weak_source_beside_a_strong_one(tmp_path):
    """UMA-16, pyroomacoustics: a source at azimuth 0 and one 10 dB weaker at azimuth 60 (both at
    elevation 60: 29 degrees apart). CLEAN-SC (1.5-6 kHz, where the beam is narrower than their
    spacing) finds both within 5 degrees; the delay-and-sum map alone (one iteration: its
    maximum) finds only the strong one."""
    from simulate import room_scene, write_wav

    a = load_array("minidsp_uma16")
    rng = np.random.default_rng(0)
    n = 3 * 16000
    x = room_scene(a.positions, [0.0, 60.0], [60.0, 60.0],
                   signals=[rng.standard_normal(n), rng.standard_normal(n) * 10 ** (-10 / 20)],
                   duration=3.0, rt60=0.2, snr_db=30.0, seed=6)
    full = np.zeros((a.n_channels, x.shape[1]), np.float32)
    full[list(a.mic_channels)] = x
    wav = write_wav(tmp_path / "weak.wav", full)
    common = {"localize.method": "clean_sc", "localize.sources": 2, "localize.band": [1500.0, 6000.0]}
    _, summary = locate_file(wav, "minidsp_uma16", **common)
    errs = match_errors(summary["peaks"], [0.0, 60.0])
    assert max(errs) <= 5.0, (summary["peaks"], errs)
    _, dirty = locate_file(wav, "minidsp_uma16", **common, **{"localize.clean_sc.iterations": 1})
    assert max(match_errors(dirty["peaks"], [0.0, 60.0])) > 5.0, dirty["peaks"]
