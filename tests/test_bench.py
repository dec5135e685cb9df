"""The benchmark command runs and prints its table (speed itself is never asserted in tests)."""
import pytest

from helpers import run_cli

pytest.importorskip("pyroomacoustics")


def test_bench_prints_table_avstream_only():
    p = run_cli("bench", "--quick", "--no-peers", "--workloads", "W1,W3", timeout=600)
    assert p.returncode == 0, p.stderr
    rows = [line for line in p.stdout.splitlines() if line.startswith("| W")]
    assert [r.split("|")[1].strip() for r in rows] == ["W1", "W3"]
    assert all("avstream" in r for r in rows)


def test_bench_publishing_rows():
    p = run_cli("bench", "--quick", "--workloads", "P", timeout=600)
    assert p.returncode == 0, p.stderr
    rows = [line for line in p.stdout.splitlines() if line.startswith("| 64x48") or line.startswith("| 640x480")]
    labels = {r.split("|")[2].strip() for r in rows}
    assert len(rows) == 8 and any("DDS" in x for x in labels) and "MCAP file" in labels and "ZeroMQ PUB" in labels
