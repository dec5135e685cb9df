"""Arrays (presets, YAML), grids and baseline grouping."""
import numpy as np
import pytest

from helpers import assert_file_refused

from avstream.errors import ConfigError
from avstream.geometry.arrays import baseline_groups, load_array, preset_names
from avstream.geometry.grids import parse_grid, to_azel, to_unit


def test_presets_load_with_channel_maps():
    for name in preset_names():
        a = load_array(name)
        assert a.positions.shape == (a.n_mics, 3)
        assert max(a.mic_channels) < a.n_channels
    rs = load_array("respeaker_usb_4mic")
    assert rs.n_channels == 6 and rs.mic_channels == (1, 2, 3, 4)
    assert load_array("uma16").n_mics == 16 and load_array("uma16").planar


def test_unknown_preset():
    with pytest.raises(ConfigError, match="unknown array 'respeaker9'.*minidsp_uma16"):
        load_array("respeaker9")


def test_yaml_array(tmp_path):
    p = tmp_path / "a.yaml"
    p.write_text("mic_positions:\n  - [0.0229, 0.0229, 0.005]\n  - [-0.0229, 0.0229, 0.005]\n"
                 "  - [0.0, -0.03, 0.0]\nsample_rate: 16000\nnote: acme board (free text)\n")
    a = load_array(str(p))
    assert a.n_mics == 3 and a.sample_rate == 16000 and a.n_channels == 3


@pytest.mark.parametrize("text,needle", [
    ("mic_positions: [[0, 0]]\n", "mic_positions"),
    ("positions: [[0, 0, 0], [1, 0, 0]]\n", "missing key 'mic_positions'"),
    ("mic_positions: [[0, 0, 0], [0, 0, 0]]\n", "same position"),
    ("mic_positions: [[0, 0, 0], [0.1, 0, 0]]\nsample_rate: fast\n", "sample_rate"),
    ("mic_positions: [[0, 0, 0], [0.1, 0, 0]\n", "malformed YAML"),
])
def test_bad_array_yaml(tmp_path, text, needle):
    assert_file_refused(tmp_path, "bad.yaml", text, load_array, needle)


def test_baseline_groups_uma16_and_sign():
    pos = load_array("uma16").positions
    pi, pj, pg, base, size = baseline_groups(pos)
    assert len(pi) == 120 and len(base) == 24 and size.sum() == 120
    np.testing.assert_allclose(pos[pi] - pos[pj], base[pg], atol=1e-9)


def test_direction_convention_and_grids():
    az, el = to_azel(to_unit([90.0, -45.0], [0.0, 30.0]))
    np.testing.assert_allclose(az, [90, -45], atol=1e-9)
    np.testing.assert_allclose(el, [0, 30], atol=1e-9)
    g = parse_grid("sphere:2562", load_array("uma16"))  # planar: the upper half-space
    assert g.n_dirs == 2562 and np.all(g.directions[:, 2] >= 0)
    g = parse_grid("sphere:500")  # no array: the whole sphere
    assert g.directions[:, 2].min() < -0.9
    h = parse_grid("hemisphere:500")
    assert h.n_dirs == 500 and h.directions[:, 2].min() >= 0 and h.directions[:, 2].max() > 0.99
    f = parse_grid("fov:90,70:64,48")
    assert f.shape == (48, 64)
    az, el = to_azel(f.directions.reshape(48, 64, 3))
    assert az[0, 0] == pytest.approx(45) and az[0, -1] == pytest.approx(-45)  # left is +y
    assert el[0, 0] == pytest.approx(35) and el[-1, 0] == pytest.approx(-35)  # top row first
    with pytest.raises(ConfigError, match="expected sphere:N, hemisphere:N, fov:H,V:COLS,ROWS .* or camera:BLOCK"):
        parse_grid("cube:6")


def test_camera_grid_surround_is_linked_both_ways():
    """The peak picker sees across the picture's edge: every link between an image cell and a
    surround cell goes both ways (else an edge cell would be a 'peak' with the map still rising
    beyond it), while links among image cells stay the 8 nearest."""
    from avstream.geometry.camera import default_camera, default_extrinsics
    from avstream.geometry.grids import _neighbors, camera_grid

    g = camera_grid(default_camera(), default_extrinsics(), 10, 3.0)
    n = g.n_image
    assert g.n_dirs > n and g.definition["surround_cells"] == g.n_dirs - n
    nb = g.neighbors
    links = {(i, int(j)) for i in range(g.n_dirs) for j in nb[i] if j >= 0}
    assert all((j, i) in links for i, j in links if i >= n or j >= n)
    assert any(i < n <= j for i, j in links)  # the edge does meet the surround
    assert (nb[:, :8] == _neighbors(g.directions, 8)).all()
    assert all(len(set(r[r >= 0])) == len(r[r >= 0]) for r in nb)
