"""Recording folders: avstream record writes one, --source recording replays it to the same
results, folders made by hand work, and broken folders are refused naming the file."""
import shutil

import cv2
import numpy as np
import pytest
import soundfile as sf

from helpers import jsonl, run_cli

from avstream.capture.recording import Recording, read_frame_times
from avstream.geometry.arrays import load_array


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    d = tmp_path_factory.mktemp("rec")
    out = d / "r1"
    p = run_cli("record", "--duration", "2", "--out", out, "--jsonl", d / "live.jsonl", "--speech", "off")
    assert p.returncode == 0, p.stderr
    assert "recording " in p.stderr and "frames" in p.stderr
    return out, jsonl((d / "live.jsonl").read_text())


def test_record_writes_a_complete_folder(recorded):
    out, live = recorded
    assert {p.name for p in out.iterdir()} == {"audio.wav", "video.mp4", "frames.csv", "array.yaml", "camera.yaml",
                                               "extrinsics.yaml"}
    info = sf.info(str(out / "audio.wav"))
    assert info.channels == 16 and info.samplerate == 16000 and abs(info.duration - 2.0) < 0.05
    times = read_frame_times(out / "frames.csv")
    cap = cv2.VideoCapture(str(out / "video.mp4"))
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    assert n == len(times) >= 45  # the synthetic camera films at 30 fps
    assert -0.1 < times[0] < 0.1 and 1.8 < times[-1] < 2.1 and np.all(np.diff(times) > 0)
    arr = load_array(str(out / "array.yaml"))
    assert np.allclose(arr.positions, load_array("minidsp_uma16").positions)
    assert len(live) - 1 >= 25


def test_replay_gives_the_same_sources(recorded, tmp_path):
    """The audio is stored as float: replaying it finds the very same peaks, update for update,
    and pairs every update with a recorded frame (the array and camera come from the folder)."""
    out, live = recorded
    p = run_cli("run", "--source", "recording", "--file", out, "--fast", "--no-ros", "--no-zmq", "--no-overlay",
                "--speech", "off", "--jsonl", tmp_path / "replay.jsonl")
    assert p.returncode == 0, p.stderr
    replay = jsonl((tmp_path / "replay.jsonl").read_text())
    assert len(replay) == len(live)
    for a, b in zip(live[:-1], replay[:-1]):
        assert a["t"] == b["t"]
        assert [(q["azimuth_deg"], q["elevation_deg"]) for q in a["peaks"]] == \
               [(q["azimuth_deg"], q["elevation_deg"]) for q in b["peaks"]]
        assert "pixels" in b
    assert replay[-1]["summary"]["video"]["video_frames"] >= 45


def test_a_folder_made_by_hand(recorded, tmp_path):
    """Only audio.wav and video.mp4: frame times from the video's rate, the array from --array."""
    out, _ = recorded
    d = tmp_path / "hand"
    d.mkdir()
    shutil.copy(out / "audio.wav", d)
    shutil.copy(out / "video.mp4", d)
    rec = Recording(d)
    assert rec.frame_times is None and rec.array is None and rec.camera is None
    p = run_cli("run", "--source", "recording", "--file", d, "--array", "minidsp_uma16", "--fast", "--no-ros",
                "--no-zmq", "--no-overlay", "--speech", "off", "--jsonl", tmp_path / "h.jsonl")
    assert p.returncode == 0, p.stderr
    lines = jsonl((tmp_path / "h.jsonl").read_text())
    assert len(lines) > 25 and lines[-1]["summary"]["video"]["video_frames"] > 25


def test_broken_folders_are_refused_by_name(recorded, tmp_path):
    out, _ = recorded
    p = run_cli("run", "--source", "recording", "--file", tmp_path / "nowhere", "--fast")
    assert p.returncode == 2 and "nowhere: no such recording folder" in p.stderr
    d = tmp_path / "novideo"
    d.mkdir()
    shutil.copy(out / "audio.wav", d)
    p = run_cli("run", "--source", "recording", "--file", d, "--fast", "--no-ros", "--no-zmq")
    assert p.returncode == 2 and "video.mp4: missing" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr
    # a video that ends a second before the audio: run goes on (the camera ends), train refuses
    short = tmp_path / "short"
    shutil.copytree(out, short)
    times = read_frame_times(short / "frames.csv")
    keep = int(np.searchsorted(times, times[-1] - 1.0))
    cap = cv2.VideoCapture(str(out / "video.mp4"))
    w = cv2.VideoWriter(str(short / "video.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (640, 480))
    for _ in range(keep):
        w.write(cap.read()[1])
    w.release()
    (short / "frames.csv").write_text("frame,time_s\n" + "".join(f"{k},{t:.6f}\n" for k, t in enumerate(times[:keep])))
    with pytest.raises(Exception, match="video.mp4: the video covers"):
        Recording(short).check_coverage()
    pytest.importorskip("torch")
    p = run_cli("train", short, "--out", tmp_path / "x.onnx", "--epochs", "1")
    assert p.returncode == 2 and "video.mp4: the video covers" in p.stderr, p.stderr
    # no camera calibration in the folder and none given
    nocal = tmp_path / "nocal"
    shutil.copytree(out, nocal)
    (nocal / "camera.yaml").unlink()
    p = run_cli("train", nocal, "--out", tmp_path / "x.onnx", "--epochs", "1")
    assert p.returncode == 2 and "camera.yaml: missing, and no --intrinsics given" in p.stderr, p.stderr
    bad = tmp_path / "badtimes"
    shutil.copytree(out, bad)
    (bad / "frames.csv").write_text("frame,time_s\n0,0.5\n1,0.2\n")
    p = run_cli("run", "--source", "recording", "--file", bad, "--fast", "--no-ros", "--no-zmq")
    assert p.returncode == 2 and "frames.csv: time_s must increase" in p.stderr, p.stderr
