"""Camera intrinsics, channel checks and event pairs: each against a ground truth made
independently of the code under test (images rendered pixel by pixel from a known camera,
real ReSpeaker recordings, pyroomacoustics simulations)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import soundfile as sf

from avstream.calibrate.camera import calibrate_camera
from avstream.geometry.camera import Camera, load_camera, load_extrinsics
from avstream.geometry.grids import to_unit
from helpers import RESPEAKER_REAL_YAML, ROOT, run_cli
from render import board_poses, render_board

K_TRUE = np.array([[600.0, 0.0, 330.0], [0.0, 605.0, 235.0], [0.0, 0.0, 1.0]])
D_TRUE = np.array([-0.2, 0.08, 0.001, -0.0005, 0.0])
SIZE = (640, 480)


@pytest.fixture(scope="module")
def board_folder(tmp_path_factory):
    """14 rendered views of a 10x7 chessboard (9x6 inner corners, 25 mm), plus 3 without it."""
    d = tmp_path_factory.mktemp("board")
    for i, (r, t) in enumerate(board_poses(14, seed=3)):
        cv2.imwrite(str(d / f"view{i:02d}.png"), render_board(K_TRUE, D_TRUE, SIZE, r, t))
    for i in range(3):
        cv2.imwrite(str(d / f"empty{i}.png"), np.full((SIZE[1], SIZE[0]), 90 + 40 * i, np.uint8))
    return d


def test_chessboard_recovers_the_intrinsics(board_folder, tmp_path):
    """Focal lengths within 1% (and the principal point within 2 px), reprojection error under
    0.5 px; the views without a board are skipped and counted; the CLI writes a ROS YAML file
    that loads back."""
    out = tmp_path / "cam.yaml"
    p = run_cli("calibrate", "camera", "--images", board_folder, "--board", "9x6", "--square", "0.025",
                "--out", out)
    assert p.returncode == 0, p.stderr
    assert "14 views, 3 skipped" in p.stderr
    cam = load_camera(out)
    assert abs(cam.K[0, 0] / 600.0 - 1) < 0.01 and abs(cam.K[1, 1] / 605.0 - 1) < 0.01, cam.K
    assert abs(cam.K[0, 2] - 330) < 2 and abs(cam.K[1, 2] - 235) < 2
    rms = float(out.read_text().split("reprojection error:")[1].split("px")[0])
    assert rms < 0.5
    # the recovered model projects like the true one where the views saw the board (the
    # corners of the picture, which no view covered, are extrapolation)
    truth = Camera(640, 480, "plumb_bob", K_TRUE, D_TRUE)
    rays = truth.unproject(*np.meshgrid(np.linspace(140, 500, 7), np.linspace(110, 370, 5)))
    u1, v1 = truth.project(rays)
    u2, v2 = cam.project(rays)
    assert np.max(np.hypot(u1 - u2, v1 - v2)) < 1.5


def test_views_from_a_video(board_folder, tmp_path):
    """The same views as a video file (Motion JPEG), every frame a view."""
    video = tmp_path / "board.avi"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5, SIZE)
    for f in sorted(board_folder.glob("*.png")):
        w.write(cv2.imread(str(f)))
    w.release()
    out = tmp_path / "cam.yaml"
    p = run_cli("calibrate", "camera", "--video", video, "--step", "1", "--out", out)
    assert p.returncode == 0, p.stderr
    assert "14 views, 3 skipped" in p.stderr
    cam = load_camera(out)
    assert abs(cam.K[0, 0] / 600.0 - 1) < 0.01 and abs(cam.K[1, 1] / 605.0 - 1) < 0.01


def test_fisheye_model(tmp_path):
    K = np.array([[300.0, 0.0, 320.0], [0.0, 300.0, 240.0], [0.0, 0.0, 1.0]])
    D = np.array([0.05, -0.02, 0.004, -0.001])
    views = [(f"v{i}", cv2.cvtColor(render_board(K, D, SIZE, r, t, fisheye=True), cv2.COLOR_GRAY2BGR))
             for i, (r, t) in enumerate(board_poses(14, seed=5, distance=0.3))]
    res = calibrate_camera(views, (9, 6), 0.025, model="equidistant")
    assert res.camera.model == "equidistant" and len(res.camera.D) == 4
    assert abs(res.camera.K[0, 0] / 300 - 1) < 0.01 and abs(res.camera.K[1, 1] / 300 - 1) < 0.01
    assert res.rms_px < 0.5


def test_charuco_board():
    if not hasattr(cv2.aruco, "CharucoDetector"):
        pytest.skip("this OpenCV has no ChArUco detector")
    board = cv2.aruco.CharucoBoard((7, 5), 0.04, 0.028, cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_4X4_50))
    texture = board.generateImage((7 * 60 + 120, 5 * 60 + 120), marginSize=60)
    views = []
    for i, (r, t) in enumerate(board_poses(12, seed=7, distance=0.5)):
        img = render_board(K_TRUE, D_TRUE, SIZE, r, t, square=0.04, texture=texture, px=60)
        views.append((f"v{i}", img))
    res = calibrate_camera(views, (7, 5), 0.04, pattern="charuco", marker=0.028)
    assert res.used >= 8
    assert abs(res.camera.K[0, 0] / 600 - 1) < 0.01 and abs(res.camera.K[1, 1] / 605 - 1) < 0.01
    assert res.rms_px < 0.5


def test_too_few_views_with_a_board(tmp_path, board_folder):
    few = tmp_path / "few"
    few.mkdir()
    for name in ["view00.png", "view01.png", "empty0.png", "empty1.png"]:
        (few / name).write_bytes((board_folder / name).read_bytes())
    (few / "broken.png").write_bytes(b"not an image")
    p = run_cli("calibrate", "camera", "--images", few, "--out", tmp_path / "c.yaml")
    assert p.returncode == 2 and "found in 2 of 5 views" in p.stderr and "Traceback" not in p.stderr
    p = run_cli("calibrate", "camera", "--images", few, "--board", "nine", "--out", tmp_path / "c.yaml")
    assert p.returncode == 2 and "--board" in p.stderr
    p = run_cli("calibrate", "camera", "--images", tmp_path / "nothing", "--out", tmp_path / "c.yaml")
    assert p.returncode == 2 and "not a folder" in p.stderr


# --- channel check on real recordings -------------------------------------------------------

REAL = ROOT / "tests" / "data" / "respeaker4_real"


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    d = tmp_path_factory.mktemp("real")
    (d / "array.yaml").write_text(RESPEAKER_REAL_YAML)
    x, fs = sf.read(sorted(REAL.glob("150cm/*.wav"))[0], dtype="float32")
    return d, x, fs


def test_channels_as_wired(real):
    d, x, fs = real
    sf.write(d / "ok.wav", x, fs)
    p = run_cli("calibrate", "channels", d / "ok.wav", "--array", d / "array.yaml", "--azimuth", 180,
                "--elevation", 20)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "wiring: as stated" in p.stdout and "result: OK" in p.stdout


def test_channels_swapped_and_dead_are_reported(real):
    """Real recording, channels 0 and 1 swapped: found, with the corrected map; a dead channel
    (zeroed) is found too. Swapping 0 and 3 cannot be seen from a source at 180 degrees (both
    mics are equally far along x) and the report says the recording cannot tell."""
    d, x, fs = real
    sf.write(d / "swap.wav", x[:, [1, 0, 2, 3]], fs)
    p = run_cli("calibrate", "channels", d / "swap.wav", "--array", d / "array.yaml", "--azimuth", 180,
                "--elevation", 20)
    assert p.returncode == 1 and "channels 0 and 1 swapped" in p.stdout and "PROBLEMS FOUND" in p.stdout
    dead = x.copy()
    dead[:, 2] = 0
    sf.write(d / "dead.wav", dead, fs)
    p = run_cli("calibrate", "channels", d / "dead.wav", "--array", d / "array.yaml", "--azimuth", 180,
                "--elevation", 20, "--json")
    import json

    rep = json.loads(p.stdout)
    assert p.returncode == 1 and rep["dead"] == [2] and rep["wiring"] == "as stated"
    sf.write(d / "swap03.wav", x[:, [3, 1, 2, 0]], fs)
    p = run_cli("calibrate", "channels", d / "swap03.wav", "--array", d / "array.yaml", "--azimuth", 180,
                "--elevation", 20)
    assert "cannot tell" in p.stdout and "channels 0 and 3 swapped" in p.stdout


def test_channels_wrong_count(real):
    d, x, fs = real
    sf.write(d / "three.wav", x[:, :3], fs)
    p = run_cli("calibrate", "channels", d / "three.wav", "--array", d / "array.yaml", "--azimuth", 180)
    assert p.returncode == 2 and "3 channels" in p.stderr and "Traceback" not in p.stderr


def test_channels_mirrored_board_in_simulation():
    """UMA-16 mounted mirrored (pyroomacoustics, source off every mirror plane): named."""
    from avstream.calibrate.channels import check_channels
    from avstream.geometry.arrays import load_array
    from simulate import room_scene

    arr = load_array("minidsp_uma16")
    x = room_scene(arr.positions, [40.0], [30.0], duration=2.0, rt60=0.2, snr_db=20)
    flip = np.argmin(np.linalg.norm((arr.positions * [1, -1, 1])[:, None] - arr.positions[None], axis=2), axis=1)
    rep = check_channels(x[flip], arr, 40.0, 30.0)
    assert rep.wiring == "array mirrored left-right (y -> -y)", rep
    assert check_channels(x, arr, 40.0, 30.0).wiring == "as stated"


# --- direction-pixel pairs from impulsive events ---------------------------------------------

@pytest.fixture(scope="module")
def clicks(tmp_path_factory):
    """Clicks from 10 directions in a pyroomacoustics room (UMA-16), and a 30 fps video in which
    an LED lights for 100 ms at each click's pixel, seen through a known rotation."""
    import pyroomacoustics as pra
    from scipy.spatial.transform import Rotation

    from avstream.geometry.arrays import load_array

    d = tmp_path_factory.mktemp("clicks")
    arr = load_array("minidsp_uma16")
    fs = 16000
    rng = np.random.default_rng(4)
    R_true = Rotation.from_euler("xyz", [8, -5, 100], degrees=True).as_matrix() @ \
        np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    cam = load_camera(ROOT / "calibration" / "example_pinhole.yaml")
    room = pra.ShoeBox([6.0, 5.0, 3.2], fs=fs, materials=pra.Material(pra.inverse_sabine(0.25, [6, 5, 3.2])[0]),
                       max_order=8)
    centre = np.array([3.0, 2.5, 1.2])
    times, pixels = [], []
    t = 0.1
    for k in range(10):
        while True:
            az, el = rng.uniform(-180, 180), rng.uniform(45, 80)
            c = R_true @ to_unit(az, el)
            u, v = cam.project(c[None])
            if c[2] > 0 and 30 < u[0] < cam.width - 30 and 30 < v[0] < cam.height - 30:
                break
        t += rng.uniform(0.5, 0.9)  # claps come irregularly
        click = np.zeros(int(0.02 * fs))
        click[:80] = rng.standard_normal(80) * np.exp(-np.arange(80) / 20)
        room.add_source(centre + 1.2 * to_unit(az, el), signal=click, delay=t)
        times.append(t)
        pixels.append((float(u[0]), float(v[0])))
    room.add_microphone_array(pra.MicrophoneArray(arr.positions.T + centre[:, None], fs))
    pra.random.seed(0)  # the sensor noise too: the same recording every run
    room.simulate(snr=30)
    x = room.mic_array.signals[:, : int(8.0 * fs)]
    sf.write(d / "clicks.wav", (x / np.abs(x).max() * 0.5).T, fs)
    for name, start in [("clicks.avi", 0.0), ("late.avi", 1.234)]:  # late.avi starts 1.234 s after the audio
        video = cv2.VideoWriter(str(d / name), cv2.VideoWriter_fourcc(*"MJPG"), 30, (cam.width, cam.height))
        for f in range(int(8.0 * 30)):
            img = np.full((cam.height, cam.width, 3), 60, np.uint8)
            for t, (u, v) in zip(times, pixels):
                if t <= start + f / 30 < t + 0.1:
                    cv2.circle(img, (int(round(u * 4)), int(round(v * 4))), 4 * 4, (255, 255, 255), -1,
                               cv2.LINE_AA, 2)
            video.write(img)
        video.release()
    return d, times, pixels, R_true


def _rotation_error(ext_path, R_true):
    R = load_extrinsics(ext_path).rotation
    return float(np.rad2deg(np.arccos(np.clip((np.trace(R.T @ R_true) - 1) / 2, -1, 1))))


def _extrinsics_error(pairs, tmp_path, R_true) -> float:
    """calibrate extrinsics on a pairs CSV (the example pinhole camera): degrees from R_true."""
    out = tmp_path / "ext.yaml"
    p = run_cli("calibrate", "extrinsics", "--pairs", pairs, "--camera", ROOT / "calibration" / "example_pinhole.yaml",
                "--out", out)
    assert p.returncode == 0, p.stderr
    return _rotation_error(out, R_true)


def test_events_to_extrinsics(clicks, tmp_path):
    """calibrate events pairs every click with its LED, and calibrate extrinsics recovers the
    rotation within 2 degrees."""
    d, _, _, R_true = clicks
    pairs = tmp_path / "pairs.csv"
    p = run_cli("calibrate", "events", d / "clicks.wav", "--array", "minidsp_uma16", "--video", d / "clicks.avi",
                "--out", pairs)
    assert p.returncode == 0, p.stderr
    assert "10 events, 10 with a pixel" in p.stderr
    offset = float(p.stderr.split("the video starts ")[1].split(" s after")[0])
    assert abs(offset) < 1 / 30, offset  # recorded together: found to start together, within a frame
    assert _extrinsics_error(pairs, tmp_path, R_true) < 2.0


def test_events_with_a_video_started_late(clicks, tmp_path):
    """A video that started 1.234 s after the audio: the offset is found from the LED flashes
    (within a frame), the click before the video began gets no pixel, and the other pairs are as
    good as with a video started in step."""
    d, times, _, R_true = clicks
    pairs = tmp_path / "pairs.csv"
    p = run_cli("calibrate", "events", d / "clicks.wav", "--array", "minidsp_uma16", "--video", d / "late.avi",
                "--out", pairs)
    seen = sum(t >= 1.234 for t in times)
    assert p.returncode == 0 and f"10 events, {seen} with a pixel" in p.stderr, p.stderr
    offset = float(p.stderr.split("the video starts ")[1].split(" s after")[0])
    assert abs(offset - 1.234) < 1 / 30, offset
    assert _extrinsics_error(pairs, tmp_path, R_true) < 2.0


def test_events_with_clicked_pixels(clicks, tmp_path):
    """Pixels given by hand (a CSV time_s,u,v, times off by up to 0.1 s) pair the same way."""
    d, times, pixels, R_true = clicks
    csv_path = tmp_path / "clicks.csv"
    csv_path.write_text("time_s,u,v\n" + "".join(f"{t + 0.1:.2f},{u:.1f},{v:.1f}\n" for t, (u, v) in zip(times, pixels)))
    pairs = tmp_path / "pairs.csv"
    p = run_cli("calibrate", "events", d / "clicks.wav", "--array", "minidsp_uma16", "--pixels", csv_path,
                "--out", pairs)
    assert p.returncode == 0 and "10 with a pixel" in p.stderr, p.stderr
    assert _extrinsics_error(pairs, tmp_path, R_true) < 2.0
    bad = tmp_path / "bad.csv"
    bad.write_text("time_s,u,v\n1.0,2.0\n")
    p = run_cli("calibrate", "events", d / "clicks.wav", "--array", "minidsp_uma16", "--pixels", bad, "--out", pairs)
    assert p.returncode == 2 and "line 2" in p.stderr and "Traceback" not in p.stderr
    p = run_cli("calibrate", "events", d / "clicks.wav", "--array", "minidsp_uma16", "--out", pairs)
    assert p.returncode == 2 and "--video" in p.stderr


@pytest.mark.skipif(__import__("xdisplay").missing() is not None, reason=str(__import__("xdisplay").missing()))
def test_events_with_pixels_clicked_in_a_window(clicks, tmp_path):
    """--click on a real X server: each event's frame comes up in a window (the LED lit where
    the click was), a person clicks the source, Space skips one, Esc stops before the last; the
    clicked pixels make the pairs and the extrinsics come out within 2 degrees."""
    import subprocess
    import sys
    import time

    import xdisplay

    d, times, pixels, R_true = clicks
    pairs = tmp_path / "pairs.csv"
    display = xdisplay.Display()
    p = subprocess.Popen([sys.executable, "-m", "avstream", "calibrate", "events", str(d / "clicks.wav"), "--array",
                          "minidsp_uma16", "--video", str(d / "clicks.avi"), "--click", "--out", str(pairs)],
                         cwd=ROOT, env=display.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    clicked, title = {}, None
    try:
        for k in range(1, 11):
            found = display.wait_window(f"event {k}/10 ", timeout=60)
            assert found is not None, f"no window for event {k}"
            title, win = found
            t = float(title.split(" at ")[1].split(" s")[0])
            j = int(np.argmin(np.abs(np.array(times) - t)))
            assert abs(times[j] - t) < 0.05
            u, v = pixels[j]
            x, y, w, h = display.geometry(win)
            assert (w, h) == (640, 480)
            time.sleep(0.3)  # the title comes up just before the picture
            shot = display.grab(win).astype(int).sum(axis=2)
            vv, uu = np.nonzero(shot >= shot.max() - 30)  # the lit LED, shown where it is
            assert np.hypot(uu.mean() - u, vv.mean() - v) < 3.0
            if k == 4:
                display.move(x + 5, y + 5)  # the pointer on the window: keys go there
                display.key("space")
            elif k == 10:
                display.key("Escape")
            else:
                display.click(x + round(u), y + round(v))
                clicked[j] = (round(u), round(v))
            deadline = time.monotonic() + 10  # the next event replaces this one
            while time.monotonic() < deadline and display.wait_window(title, timeout=0.1) is not None:
                if k == 10:
                    break
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
        display.close()
    assert p.returncode == 0, err
    assert "10 events, 8 with a pixel" in err, err
    rows = np.loadtxt(pairs, delimiter=",", skiprows=1)
    assert len(rows) == 8
    got = sorted(map(tuple, rows[:, 2:4].round().astype(int).tolist()))
    assert got == sorted(clicked.values())  # the pixel under the pointer, exactly
    assert _extrinsics_error(pairs, tmp_path, R_true) < 2.0


def test_click_needs_a_video_and_a_window(clicks, tmp_path):
    d, times, pixels, _ = clicks
    p = run_cli("calibrate", "events", d / "clicks.wav", "--array", "minidsp_uma16", "--pixels", d / "none.csv",
                "--click", "--out", tmp_path / "p.csv")
    assert p.returncode == 2 and "--click" in p.stderr and "--video" in p.stderr, p.stderr
    # this OpenCV (headless) opens no window: refused, naming --click and the CSV way instead
    p = run_cli("calibrate", "events", d / "clicks.wav", "--array", "minidsp_uma16", "--video", d / "clicks.avi",
                "--click", "--out", tmp_path / "p.csv")
    assert p.returncode == 2 and "--click" in p.stderr and "--pixels" in p.stderr and "Traceback" not in p.stderr


@pytest.fixture(scope="module")
def taps(tmp_path_factory):
    """pyroomacoustics: a ReSpeaker 4-mic board whose microphones are tapped in turn (a click
    1 cm above each mic, twice per mic), in a room."""
    import pyroomacoustics as pra

    d = tmp_path_factory.mktemp("taps")
    (d / "array.yaml").write_text(RESPEAKER_REAL_YAML)
    pos = np.array([[0.02285, 0.02285, 0.005], [-0.02285, 0.02285, 0.005], [-0.02285, -0.02285, 0.005],
                    [0.02285, -0.02285, 0.005]])
    fs = 16000
    rng = np.random.default_rng(2)
    room = pra.ShoeBox([5.0, 4.0, 3.0], fs=fs, materials=pra.Material(pra.inverse_sabine(0.3, [5, 4, 3])[0]),
                       max_order=6)
    centre = np.array([2.5, 2.0, 1.0])
    for k in range(4):
        for rep in range(2):
            tap = np.zeros(int(0.02 * fs))
            tap[:40] = rng.standard_normal(40) * np.exp(-np.arange(40) / 8)
            room.add_source(centre + pos[k] + [0, 0, 0.01], signal=tap, delay=0.5 + 0.8 * k + 0.3 * rep)
    room.add_microphone_array(pra.MicrophoneArray(pos.T + centre[:, None], fs))
    pra.random.seed(0)  # the sensor noise too: the same recording every run
    room.simulate(snr=30)
    x = room.mic_array.signals[:, : int(4.0 * fs)]
    return d, (x / np.abs(x).max() * 0.5).T.astype(np.float32), fs


def test_channels_by_taps(taps):
    d, x, fs = taps
    sf.write(d / "ok.wav", x, fs)
    p = run_cli("calibrate", "channels", d / "ok.wav", "--array", d / "array.yaml", "--taps")
    assert p.returncode == 0 and "wiring: as stated" in p.stdout, p.stdout + p.stderr
    sf.write(d / "swap.wav", x[:, [0, 3, 2, 1]], fs)
    p = run_cli("calibrate", "channels", d / "swap.wav", "--array", d / "array.yaml", "--taps")
    assert p.returncode == 1 and "channels 1 and 3 swapped" in p.stdout, p.stdout + p.stderr
    short = x.copy()
    short[int(2.0 * fs):] = 0  # mics 2 and 3 never tapped
    sf.write(d / "short.wav", short, fs)
    p = run_cli("calibrate", "channels", d / "short.wav", "--array", d / "array.yaml", "--taps")
    assert p.returncode == 2 and "tap mic 0, then 1" in p.stderr and "Traceback" not in p.stderr
    p = run_cli("calibrate", "channels", d / "ok.wav", "--array", d / "array.yaml")
    assert p.returncode == 2 and "--taps" in p.stderr
