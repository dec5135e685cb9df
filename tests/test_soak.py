"""The soak script (`make soak`, 30 minutes) in half a minute: it runs the whole demo, watches
it from /proc and reads every MCAP part back. The 30-minute figures are in the README."""
import json
import subprocess
import sys

import pytest

from helpers import ROOT

pytest.importorskip("mcap_ros2")


def test_soak_script_watches_a_short_run(tmp_path):
    p = subprocess.run([sys.executable, str(ROOT / "scripts" / "soak.py"), "--minutes", "0.5", "--warm-up", "0.1",
                        "--split-mb", "2", "--out", str(tmp_path)], capture_output=True, text=True, timeout=600)
    report = json.loads((tmp_path / "soak.json").read_text())
    assert report["returncode"] == 0, (tmp_path / "stderr.txt").read_text()
    assert len(report["samples"]) >= 3 and all(s["rss_mb"] > 50 and s["fds"] > 3 for s in report["samples"][1:])
    parts = report["mcap"]
    assert len(parts) >= 2 and all(m["ok"] for m in parts)  # split by size, every part read to its end
    assert report["overlay_frames"] == report["summary"]["updates"] > 0
    assert report["summary"]["dropped_blocks"] == 0
    assert "| RSS growth after warm-up (MB) |" in p.stdout
    assert p.returncode == (1 if "BROKEN" in p.stdout else 0)
