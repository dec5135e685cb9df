"""The benchmark command runs and prints its table (speed itself is never asserted in tests)."""
import pytest

from helpers import run_cli

pytest.importorskip("pyroomacoustics")


def test_bench_prints_table_avstream_only():
    p = run_cli("bench", "--quick", "--no-peers", "--workloads", "W1,W3", timeout=600)
    assert p.returncode == 0, p.stderr
    rows = [line for line in p.stdout.splitlines() if line.startswith("| W")]
    # a row for the update's peaks and one for the tracks of the same run
    assert [r.split("|")[1].strip() for r in rows] == ["W1", "W1", "W3", "W3"]
    assert all("avstream" in r for r in rows) and sum("its tracks" in r for r in rows) == 2


def test_bench_every_method_on_three_talkers():
    """W4: a row per avstream method, each with its recall of the three talkers (0..1)."""
    p = run_cli("bench", "--quick", "--no-peers", "--workloads", "W4", timeout=600)
    assert p.returncode == 0, p.stderr
    rows = [line.split("|") for line in p.stdout.splitlines() if line.startswith("| avstream ")]
    assert sorted(r[1].strip() for r in rows) == sorted(f"avstream {m}" for m in ("srp_phat", "tf_sparse", "mvdr",
                                                                                  "music", "clean_sc"))
    for r in rows:
        assert float(r[2]) > 0 and 0 <= float(r[4]) <= 1 and 0 <= float(r[5]) <= 1


def test_bench_ambisonic_rows_beside_spaudiopy():
    """W5: avstream's four ambisonic methods and spaudiopy's three (the test extra installs it),
    each with a time and a recall (0..1)."""
    p = run_cli("bench", "--quick", "--workloads", "W5", timeout=600)
    assert p.returncode == 0, p.stderr
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in p.stdout.splitlines()
            if line.startswith("| avstream ") or line.startswith("| spaudiopy ")]
    ours = [r for r in rows if r[0].startswith("avstream")]
    assert [r[0] for r in ours] == ["avstream intensity", "avstream pwd", "avstream mvdr", "avstream music"]
    peers = [r for r in rows if r[0].startswith("spaudiopy")]
    assert [r[0] for r in peers] == ["spaudiopy MUSIC", "spaudiopy MVDR", "spaudiopy pseudo-intensity"]
    for r in ours + peers:
        assert float(r[1]) > 0 and 0 <= float(r[3]) <= 1


def test_bench_publishing_rows():
    p = run_cli("bench", "--quick", "--workloads", "P", timeout=600)
    assert p.returncode == 0, p.stderr
    rows = [line for line in p.stdout.splitlines() if line.startswith("| 64x48") or line.startswith("| 640x480")]
    labels = {r.split("|")[2].strip() for r in rows}
    # heatmaps at two sizes (3 transports + reference each), then an update with a camera
    # overlay (its drawing, 3 transports, reference)
    assert len(rows) == 13 and any("DDS" in x for x in labels) and "MCAP file" in labels and "ZeroMQ PUB" in labels
    overlay = [r for r in rows if "overlay" in r.split("|")[1]]
    assert len(overlay) == 5 and any("drawing the overlay" in r for r in overlay)
    for r in rows:  # every transport row is a measured time with its ratio to the reference
        cells = [c.strip() for c in r.split("|")[1:-1]]
        assert float(cells[2]) > 0
        if "reference" not in cells[1] and "drawing" not in cells[1]:
            assert cells[3].endswith("x faster")


def test_bench_engine_rows():
    pytest.importorskip("torch")
    p = run_cli("bench", "--quick", "--workloads", "E", timeout=600)
    assert p.returncode == 0, p.stderr
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in p.stdout.splitlines()
            if line.startswith("| ") and "ms" not in line.split("|")[3] and not line.startswith("|---")]
    assert [r[1] for r in rows] == ["96x128", "224x224", "1024 samples"]
    for r in rows:
        assert float(r[2]) > 0 and r[6] == "not measured here"
    assert all(float(r[4]) > 0 and r[5].endswith("x") for r in rows[:2])  # torch measured beside it
