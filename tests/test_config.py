"""Configuration: typed, validated once, frozen; errors name the key and the file."""
import dataclasses

import pytest

from avstream.config import load_config, parse_override
from avstream.errors import ConfigError


def write(tmp_path, text):
    p = tmp_path / "cfg.yaml"
    p.write_text(text)
    return p


def test_defaults_and_frozen():
    cfg = load_config()
    assert cfg.stft.frame is None and cfg.localize.band is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.stft.frame = 1024


def test_the_stft_follows_the_array_kind_unless_set():
    """Unset, the STFT is the array kind's: 512/256 samples and 4 frames an update on
    microphones at any rate; 8 ms frames, 4 ms hops and 16 frames on an ambisonic array (the same
    64 ms update at 16 kHz). A key that is set wins; a hop longer than the frame is an error
    naming stft.hop."""
    from avstream.config import stft_plan

    cfg = load_config()
    assert stft_plan(cfg, "mics", 16000) == (512, 256, 4) == stft_plan(cfg, "mics", 48000)
    assert stft_plan(cfg, "ambisonic", 16000) == (128, 64, 16)
    assert stft_plan(cfg, "ambisonic", 48000) == (384, 192, 16)
    assert stft_plan(load_config(None, {"stft.frame": 512}), "ambisonic", 16000) == (512, 64, 16)
    assert stft_plan(load_config(None, {"localize.update_frames": 2}), "mics", 16000) == (512, 256, 2)
    with pytest.raises(ConfigError, match="stft.hop"):
        stft_plan(load_config(None, {"stft.frame": 128}), "mics", 16000)


def test_the_band_follows_the_array_unless_set():
    """Unset, the band on microphones reaches to where the array spans two wavelengths, within
    6-8 kHz and below Nyquist (8 kHz on the 8.1 cm 4-mic HAT, 6 kHz on the 17.8 cm UMA-16),
    and 6 kHz on an ambisonic array; a band that is set wins, one above Nyquist is an error
    naming the key."""
    from avstream.config import band_plan
    from avstream.geometry.arrays import load_array

    cfg = load_config()
    hat, uma16, foa = (load_array(n) for n in ("respeaker_4mic_hat", "minidsp_uma16", "ambix_foa"))
    assert band_plan(cfg, hat, 16000) == (300.0, 8000.0) == band_plan(cfg, hat, 48000)
    assert band_plan(cfg, hat, 11025) == (300.0, 5512.5)
    assert band_plan(cfg, load_array("respeaker_6mic"), 48000)[1] == pytest.approx(2 * 343.0 / 0.0927, rel=0.01)
    assert band_plan(cfg, uma16, 48000) == (300.0, 6000.0) == band_plan(cfg, foa, 48000)
    assert band_plan(load_config(None, {"localize.band": [200, 4000]}), foa, 16000) == (200.0, 4000.0)
    with pytest.raises(ConfigError, match="localize.band"):
        band_plan(load_config(None, {"localize.band": [9000, 9500]}), hat, 16000)


def test_yaml_then_overrides(tmp_path):
    p = write(tmp_path, "stft: {frame: 1024, hop: 512}\nlocalize: {band: [200, 4000], sources: 2}\n")
    cfg = load_config(p, {"stft.hop": 256, "localize.grid": "fov:90,70:64,48"})
    assert (cfg.stft.frame, cfg.stft.hop) == (1024, 256)
    assert cfg.localize.band == (200.0, 4000.0) and cfg.localize.sources == 2
    assert cfg.localize.grid == "fov:90,70:64,48"


@pytest.mark.parametrize("text,needle", [
    ("stft: {frmae: 1024}\n", "key 'stft.frmae': unknown key"),
    ("stft: {frame: big}\n", "key 'stft.frame': expected an integer"),
    ("stft: {frame: 512, hop: 1024}\n", "key 'stft.hop'"),
    ("localize: {band: [4000, 300]}\n", "key 'localize.band'"),
    ("localize: {band: [300]}\n", "key 'localize.band'"),
    ("localize: {smoothing: 1.5}\n", "key 'localize.smoothing'"),
    ("track: {audio_mask: -1}\n", "key 'track.audio_mask'"),
    ("source: {kind: microphone}\n", "key 'source.kind': expected one of"),
    ("source: {kind: file}\n", "key 'source.path'"),
    ("source: {scene: {sources: [{azimuth_deg: 10, elevation_deg: 120}]}}\n",
     "key 'source.scene.sources[0].elevation_deg'"),
    ("- just\n- a list\n", "top level must be a mapping"),
    ("ros: {qos: {heatmap: {depth: 0}}}\n", "key 'ros.qos.heatmap.depth'"),
    ("ros: {qos: {heatmap: {reliability: sometimes}}}\n", "key 'ros.qos.heatmap.reliability'"),
])
def test_bad_values_name_key_and_file(tmp_path, text, needle):
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    assert str(p) in str(exc.value)
    assert needle in str(exc.value)


def test_malformed_yaml_names_file(tmp_path):
    p = write(tmp_path, "stft: {frame: 512\n  hop: [\n")
    with pytest.raises(ConfigError, match="malformed YAML") as exc:
        load_config(p)
    assert str(p) in str(exc.value)


def test_missing_file():
    with pytest.raises(ConfigError, match="nope.yaml: cannot read"):
        load_config("nope.yaml")


def test_bad_override_blames_command_line(tmp_path):
    p = write(tmp_path, "stft: {frame: 512}\n")
    with pytest.raises(ConfigError, match="the command line: key 'stft.hop'"):
        load_config(p, {"stft.hop": -3})


def test_parse_override():
    assert parse_override("localize.band=[100, 2000]") == ("localize.band", [100, 2000])
    assert parse_override("duration=null") == ("duration", None)
    with pytest.raises(ConfigError):
        parse_override("no-equals-sign")
