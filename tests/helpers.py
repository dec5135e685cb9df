"""Shared helpers: run the pipeline or the CLI on arrays and files."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from avstream.config import load_config
from avstream.geometry.grids import angular_distance_deg, to_unit
from avstream.pipeline import Pipeline
from avstream.sinks.base import Sink

ROOT = Path(__file__).resolve().parents[1]

RESPEAKER_REAL_YAML = """\
# ReSpeaker USB Mic Array v2.0, raw 4-channel capture (tests/data/respeaker4_real/README.md)
mic_positions:
  - [0.02285, 0.02285, 0.005]
  - [-0.02285, 0.02285, 0.005]
  - [-0.02285, -0.02285, 0.005]
  - [0.02285, -0.02285, 0.005]
sample_rate: 16000
"""


class Collect(Sink):
    def __init__(self):
        self.maps = []
        self.summary = None

    def write(self, heatmap):
        self.maps.append(heatmap)

    def close(self, summary):
        self.summary = summary


def locate_file(path, array, **overrides):
    """Run the offline pipeline on a file; return (collected sink, summary)."""
    o = {"array": str(array), "source.kind": "file", "source.path": str(path), "source.realtime": False,
         "source.block": 4096, "duration": None}
    o.update(overrides)
    sink = Collect()
    Pipeline(load_config(None, o), [sink]).run_sync()
    return sink, sink.summary


def run_cli(*args, timeout=300, env=None, cwd=ROOT):
    e = dict(os.environ)
    e.update(env or {})
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "avstream", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=e, cwd=str(cwd))


def jsonl(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def az_error(a, b):
    return abs((a - b + 180.0) % 360.0 - 180.0)


def match_errors(found, truth_az):
    """For each true azimuth the error of the closest found peak."""
    return [min((az_error(p["azimuth_deg"], t) for p in found), default=999.0) for t in truth_az]


def angle_between(az1, el1, az2, el2):
    return float(angular_distance_deg(to_unit(az1, el1), to_unit(az2, el2)))


def finite_json(obj) -> bool:
    if isinstance(obj, float):
        return bool(np.isfinite(obj))
    if isinstance(obj, dict):
        return all(finite_json(v) for v in obj.values())
    if isinstance(obj, list):
        return all(finite_json(v) for v in obj)
    return True


def assert_file_refused(tmp_path, name, text, loader, needle):
    """Write ``text`` to a file, load it, and expect a ConfigError naming the file and ``needle``."""
    import pytest

    from avstream.errors import ConfigError

    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(ConfigError, match=needle) as exc:
        loader(str(p))
    assert str(p) in str(exc.value)
