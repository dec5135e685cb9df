"""Faults a robot meets: the run is told to stop (SIGINT, SIGTERM) while it starts or while it
runs. Each leaves an MCAP file an independent reader decodes to the end, an overlay video that
plays, and the final summary."""
import os
import signal
import subprocess
import sys
import time

import pytest

from helpers import ROOT, jsonl

mcap_ros2 = pytest.importorskip("mcap_ros2")


def _decode_all(path):
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    with open(path, "rb") as fh:
        return [(c.topic, m) for _, c, _, m in make_reader(fh, decoder_factories=[DecoderFactory()])
                .iter_decoded_messages()]


def _catches(pid, sig) -> bool:
    """Whether process ``pid`` has a handler for ``sig`` (Linux: SigCgt in /proc/PID/status)."""
    try:
        text = open(f"/proc/{pid}/status").read()
    except OSError:
        return False
    mask = int(next(line.split()[1] for line in text.splitlines() if line.startswith("SigCgt:")), 16)
    return bool(mask >> (int(sig) - 1) & 1)


def _wait_for(cond, what, proc, seconds=120):
    for _ in range(int(seconds / 0.05)):  # polling, not a timing assertion
        if cond():
            return
        if proc.poll() is not None:
            pytest.fail(f"the run ended before {what}")
        time.sleep(0.05)
    pytest.fail(f"no {what} within {seconds} s")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("moment", ["starting", "running"])
def test_a_signal_leaves_readable_outputs(tmp_path, sig, moment):
    out = {k: tmp_path / f"run.{k}" for k in ("jsonl", "mcap", "mp4")}
    err = tmp_path / "stderr.txt"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with open(err, "w") as fe:
        proc = subprocess.Popen([sys.executable, "-m", "avstream", "run", "--duration", "0", "--jsonl", out["jsonl"],
                                 "--record", out["mcap"], "--overlay", out["mp4"], "--no-status", "--no-zmq",
                                 "--no-ros"], cwd=str(ROOT), env=env, stdout=subprocess.DEVNULL, stderr=fe)
    try:
        if moment == "starting":  # the earliest moment the run handles signals: still importing, no update made
            _wait_for(lambda: _catches(proc.pid, signal.SIGTERM), "SIGTERM handler", proc)
        else:
            _wait_for(lambda: out["jsonl"].exists() and out["jsonl"].read_text().count("\n") >= 5, "5 updates", proc)
        proc.send_signal(sig)
        rc = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = err.read_text()
    assert rc == 0 and "Traceback" not in text, text
    assert "updates over" in text, text  # the final summary line
    lines = jsonl(out["jsonl"].read_text())
    summary = lines[-1]["summary"]
    assert summary["updates"] == len(lines) - 1
    msgs = _decode_all(out["mcap"])  # raises on a file that was not closed
    heatmaps = [m for t, m in msgs if t == "/avstream/heatmap/image"]
    assert len(heatmaps) == summary["updates"]
    # told to stop while starting, the run stops before its first update; running, after what it made
    assert summary["updates"] == 0 if moment == "starting" else summary["updates"] >= 5
    if summary["updates"]:
        import cv2

        cap = cv2.VideoCapture(str(out["mp4"]))
        frames = 0
        while cap.read()[0]:
            frames += 1
        cap.release()
        assert frames == summary["updates"], f"{frames} frames in the overlay video"


@pytest.fixture()
def small_disk(tmp_path):
    """A 512 kB tmpfs the test mounts (root only: CI runs as root)."""
    d = tmp_path / "small"
    d.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(d)], capture_output=True, text=True)
    if p.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {p.stderr.strip()}")
    yield d
    subprocess.run(["umount", "-l", str(d)], capture_output=True)


def test_recording_to_a_full_disk_stops_it_closed_and_the_run_goes_on(tmp_path, small_disk):
    from helpers import Collect

    from avstream.config import load_config
    from avstream.pipeline import Pipeline
    from avstream.sinks.mcap_sink import McapSink

    cfg = load_config(None, {"duration": 5.0, "source.realtime": False, "output.overlay": None, "zmq.endpoint": None,
                             "ros.publish": False})
    full, live, collect = McapSink(small_disk / "rec.mcap"), McapSink(tmp_path / "live.mcap"), Collect()
    Pipeline(cfg, [full, live, collect]).run_sync()
    summary = collect.summary
    assert len(collect.maps) == summary["updates"] >= 70  # every update reached the other outputs
    assert "No space left" in summary["failed_outputs"]["recording"]
    # what landed before the disk filled is a closed file an independent reader decodes to the end
    kept = [m for t, m in _decode_all(small_disk / "rec.mcap") if t == "/avstream/heatmap/image"]
    assert 0 < len(kept) < summary["updates"]
    stamps = [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in kept]
    assert stamps == sorted(stamps)
    # the live outputs say so: /diagnostics gains the recording at ERROR, the audio stays OK
    diag = [m for t, m in _decode_all(tmp_path / "live.mcap") if t == "/diagnostics"]
    after = [st for m in diag for st in m.status if st.name.endswith(": recording")]
    assert after and all(st.level == b"\x02" or st.level == 2 for st in after)
    assert "No space left" in after[-1].message
    assert all(st.level in (b"\x00", 0) for m in diag for st in m.status if st.name.endswith(": audio"))
    assert not [st for st in diag[0].status if st.name.endswith(": recording")]  # not before it happened


def test_a_recording_killed_outright_is_readable(tmp_path):
    """SIGKILL (no handler runs): every chunk written before it is readable, because the file on
    disk is closed after each one."""
    out = tmp_path / "killed.mcap"
    err = tmp_path / "stderr.txt"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with open(err, "w") as fe:
        proc = subprocess.Popen([sys.executable, "-m", "avstream", "run", "--duration", "0", "--record", out,
                                 "--no-status", "--no-zmq", "--no-ros", "--no-overlay", "--fast"], cwd=str(ROOT),
                                env=env, stdout=subprocess.DEVNULL, stderr=fe)
    try:
        _wait_for(lambda: out.exists() and out.stat().st_size > 3_000_000, "3 MB of recording", proc)
        proc.kill()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    heatmaps = [m for t, m in _decode_all(out) if t == "/avstream/heatmap/image"]
    assert len(heatmaps) >= 10


def test_a_slow_output_costs_updates_never_audio():
    """A sink slower than real time (a stand-in that sleeps) on a live run: the pipeline skips
    updates, says how many, and drops no sample: the raw audio the sink receives is the scene's,
    sample for sample, with no hole."""
    import numpy as np
    from helpers import Collect

    from avstream.config import load_config
    from avstream.pipeline import Pipeline

    class Audio(Collect):
        takes_audio = True

    class Slow(Audio):
        def write(self, heatmap):
            super().write(heatmap)
            time.sleep(0.2)  # the scene makes an update every 0.05-0.1 s

    o = {"duration": 4.0, "output.overlay": None, "zmq.endpoint": None, "ros.publish": False, "ros.audio": "on"}
    slow, every = Slow(), Audio()
    pipe = Pipeline(load_config(None, o), [slow])
    pipe.run()  # capture paced to real time on its own thread
    Pipeline(load_config(None, o), [every]).run_sync()  # the same scene, every update run
    s = slow.summary
    assert s["dropped_blocks"] == 0 and s["seconds"] == every.summary["seconds"] == 4.0
    assert s["skipped_updates"] > 0 and s["updates"] + s["skipped_updates"] == every.summary["updates"]
    assert len(slow.maps) == s["updates"] < every.summary["updates"]
    assert slow.maps[-1].status["skipped_updates"] > 0  # live outputs are told too

    def stream(maps):
        rate = pipe.sample_rate
        starts = [round(m.audio_t * rate) for m in maps]
        ends = [a + m.audio.shape[1] for a, m in zip(starts, maps)]
        assert starts[1:] == ends[:-1]  # contiguous: what a skipped update held comes with the next
        return starts[0], np.concatenate([m.audio for m in maps], axis=1)

    (a0, got), (b0, want) = stream(slow.maps), stream(every.maps)
    assert a0 == b0 and got.shape[1] > 0.9 * want.shape[1]
    assert np.array_equal(got, want[:, :got.shape[1]])
