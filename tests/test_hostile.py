"""Hostile input, property-based (hypothesis): configuration YAML, array YAML, calibration YAML,
the CSV tables and WAV headers, mangled at random. Each reader either returns a value or raises
avstream's own error naming the file: never another exception (a traceback for the user), and
never a huge allocation (a WAV that declares gigabytes is read for what it holds)."""
import io
import string
import struct
import tracemalloc

import numpy as np
import pytest
import soundfile as sf

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from avstream.config import load_config, to_dict  # noqa: E402
from avstream.errors import AvstreamError  # noqa: E402
from avstream.geometry.arrays import load_array  # noqa: E402

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _keys(d, prefix=""):
    for k, v in d.items():
        yield prefix + k
        if isinstance(v, dict):
            yield from _keys(v, prefix + k + ".")


CONFIG_KEYS = sorted(_keys(to_dict(load_config())))
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True),
                    st.text(string.printable, max_size=12))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(string.ascii_letters, max_size=6),
                                                                       inner, max_size=3)), max_leaves=8)


def _yaml(doc) -> str:
    import yaml

    return yaml.safe_dump(doc, default_flow_style=None)


def _nested(pairs) -> dict:
    out: dict = {}
    for dotted, value in pairs:
        d = out
        *head, last = dotted.split(".")
        for h in head:
            d = d.setdefault(h, {}) if isinstance(d.get(h, {}), dict) else {}
        d[last] = value
    return out


def check(read, path):
    """``read(path)`` returns, or raises AvstreamError naming ``path``; anything else fails."""
    try:
        read(path)
    except AvstreamError as exc:
        assert str(path) in str(exc), f"error does not name the file: {exc}"


# text a hand might type, or bytes that are not text at all
GARBAGE = st.one_of(st.text(max_size=200), st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
                    st.sampled_from(["a: [1, 2", "{{{", "- - -\n  x", "key: !!python/object:os.system ls",
                                     "a: &x [*x]", "\t- tab", "? complex\n: key", "%YAML 9.9\n---\na: 1"]))


@SETTINGS
@given(pairs=st.lists(st.tuples(st.sampled_from(CONFIG_KEYS), VALUES), max_size=5))
def test_config_yaml_with_wrong_values(tmp_path, pairs):
    p = tmp_path / "config.yaml"
    p.write_text(_yaml(_nested(pairs)))
    check(load_config, p)


@SETTINGS
@given(text=GARBAGE)
def test_config_yaml_garbage(tmp_path, text):
    p = tmp_path / "config.yaml"
    p.write_text(text, encoding="utf-8", errors="surrogateescape")
    check(load_config, p)


ARRAY_KEYS = ["kind", "mic_positions", "mic_channels", "n_channels", "sample_rate", "facing", "note", "order",
              "channel_order", "normalisation", "capsules", "radius", "pattern", "mic_chanels"]
ARRAY_VALUES = st.one_of(VALUES, st.sampled_from(["mics", "ambisonic", "a_format", "fuma", "acn", "sn3d", "n3d"]),
                         st.lists(st.lists(st.floats(-1, 1), min_size=2, max_size=4), max_size=6),
                         st.lists(st.integers(-2, 20), max_size=8))


@SETTINGS
@given(doc=st.dictionaries(st.sampled_from(ARRAY_KEYS), ARRAY_VALUES, max_size=5))
def test_array_yaml(tmp_path, doc):
    p = tmp_path / "array.yaml"
    p.write_text(_yaml(doc))
    check(load_array, str(p))


@SETTINGS
@given(text=GARBAGE)
def test_array_yaml_garbage(tmp_path, text):
    p = tmp_path / "array.yaml"
    p.write_text(text, encoding="utf-8", errors="surrogateescape")
    check(load_array, str(p))


CAMERA_KEYS = ["image_width", "image_height", "camera_name", "distortion_model", "camera_matrix",
               "distortion_coefficients", "rotation", "translation", "rectification_matrix"]
MATRIX = st.fixed_dictionaries({"rows": st.integers(-1, 4), "cols": st.integers(-1, 4),
                                "data": st.lists(st.one_of(st.floats(allow_nan=True), st.text(max_size=3)),
                                                 max_size=12)})
CAMERA_VALUES = st.one_of(VALUES, MATRIX, st.sampled_from(["plumb_bob", "equidistant", "equirectangular", "fisheye"]),
                          st.lists(st.lists(st.floats(allow_nan=True), max_size=4), max_size=4))


@SETTINGS
@given(doc=st.dictionaries(st.sampled_from(CAMERA_KEYS), CAMERA_VALUES, max_size=6), text=GARBAGE,
       garbage=st.booleans())
def test_calibration_yaml(tmp_path, doc, text, garbage):
    from avstream.geometry.camera import load_camera, load_extrinsics

    p = tmp_path / "calibration.yaml"
    if garbage:
        p.write_text(text, encoding="utf-8", errors="surrogateescape")
    else:
        p.write_text(_yaml(doc))
    check(load_camera, p)
    check(load_extrinsics, p)


@SETTINGS
@given(text=st.one_of(GARBAGE, st.lists(st.lists(st.one_of(st.floats(allow_nan=True).map(repr),
                                                           st.text(string.printable, max_size=5)),
                                                 max_size=4), max_size=6)
                      .map(lambda rows: "frame,time_s\n" + "\n".join(",".join(r) for r in rows))))
def test_csv_tables(tmp_path, text):
    from avstream.capture.recording import read_frame_times

    p = tmp_path / "frames.csv"
    p.write_text(text, encoding="utf-8", errors="surrogateescape")
    check(read_frame_times, p)


def _wav(n_channels=4, frames=800, subtype="PCM_16") -> bytes:
    buf = io.BytesIO()
    x = (np.sin(np.arange(frames * n_channels) * 0.01) * 0.5).reshape(frames, n_channels)
    sf.write(buf, x, 16000, format="WAV", subtype=subtype)
    return buf.getvalue()


def _chunk_sizes(data: bytes):
    """Offsets of the RIFF size and of each chunk's size field."""
    out, pos = [4], 12
    while pos + 8 <= len(data):
        out.append(pos + 4)
        pos += 8 + struct.unpack("<I", data[pos + 4:pos + 8])[0]
    return out


@SETTINGS
@given(subtype=st.sampled_from(["PCM_16", "FLOAT", "PCM_24"]),
       cut=st.one_of(st.none(), st.integers(0, 2000)),
       size_field=st.one_of(st.none(), st.tuples(st.integers(0, 3), st.sampled_from([0, 1, 7, 2**31 - 1, 2**32 - 1]))),
       pokes=st.lists(st.tuples(st.integers(0, 60), st.integers(0, 255)), max_size=4),
       channels=st.one_of(st.none(), st.sampled_from([0, 1, 3, 65535])))
def test_wav_headers(tmp_path, subtype, cut, size_field, pokes, channels):
    """Truncated files, wrong chunk sizes (up to 4 GB declared), 0 or 65535 channels, poked header
    bytes: a 4-channel array reads the file or says why, and nothing allocates more than the file
    could hold."""
    from avstream.capture.file import FileSource

    data = bytearray(_wav(subtype=subtype))
    if size_field is not None:
        offsets = _chunk_sizes(bytes(data))
        k, value = size_field
        off = offsets[min(k, len(offsets) - 1)]
        data[off:off + 4] = struct.pack("<I", value)
    if channels is not None:
        data[22:24] = struct.pack("<H", channels)  # the fmt chunk's channel count
    for off, byte in pokes:
        data[off] = byte
    if cut is not None:
        data = data[:cut]
    p = tmp_path / "audio.wav"
    p.write_bytes(bytes(data))
    array = load_array("respeaker_4mic_hat")

    def read(path):
        src = FileSource(path, array)
        try:
            x = src.read_all()
            assert x.shape[0] == array.n_channels and x.dtype == np.float32
        finally:
            src.stop()

    tracemalloc.start()
    try:
        check(read, str(p))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * len(data) + 2**20, f"{peak} bytes allocated for a {len(data)}-byte file"
