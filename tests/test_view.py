"""Windows on a real X server (Xvfb), used the way a person would: the live view of `avstream run
--view`, looked at and closed with a key."""
from __future__ import annotations

import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

import xdisplay
from helpers import ROOT

pytestmark = pytest.mark.skipif(xdisplay.missing() is not None, reason=str(xdisplay.missing()))


@pytest.fixture
def display():
    d = xdisplay.Display()
    yield d
    d.close()


def read_video(path) -> list:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    cap.release()
    return frames


def test_view_shows_the_overlay_live_and_closing_it_loses_nothing(display, tmp_path):
    """The window shows the frames the overlay video gets, as they are made; q closes the window
    while the run goes on to make every update."""
    video = tmp_path / "overlay.avi"
    p = subprocess.Popen([sys.executable, "-m", "avstream", "run", "--view", "--duration", "8", "--no-ros",
                          "--no-zmq", "--no-status", "--overlay", str(video)], cwd=ROOT, env=display.env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        found = display.wait_window("avstream", timeout=60)
        assert found is not None, "no avstream window"
        _, win = found
        # the window is mapped a moment before the first picture sizes it (98 x 69 seen on a loaded machine)
        for _ in range(100):
            if display.geometry(win)[2:] == (640, 480):
                break
            time.sleep(0.1)
        assert display.geometry(win)[2:] == (640, 480)  # the picture, with no toolbar around it
        shots = []
        for _ in range(6):
            time.sleep(0.5)
            shots.append(display.grab(win))
        x, y, _, _ = display.geometry(win)
        display.move(x + 320, y + 240)  # the pointer on the window: keys go there
        display.key("q")
        gone = time.monotonic() + 10
        while display.wait_window("avstream", timeout=0.2) is not None and time.monotonic() < gone:
            pass
        assert display.wait_window("avstream", timeout=0.2) is None, "q did not close the window"
        assert p.poll() is None  # the run goes on without its window
        out, err = p.communicate(timeout=90)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err
    assert "124 updates over 8.0 s" in err and "dropped blocks 0" in err, err
    frames = read_video(video)
    assert len(frames) == 124
    # screenshots over 3 s are overlay frames (MJPEG leaves a grey level or two), and they are
    # frames far apart: the view is live. (Once in CI both of two screenshots were all dark, the
    # window not yet painted: a shot may miss, two must match.)
    best, misses = [], []
    for shot in shots:
        diffs = [np.abs(shot.astype(int) - f).mean() for f in frames]
        if min(diffs) < 2.5:
            best.append(int(np.argmin(diffs)))
        else:
            misses.append((round(float(min(diffs)), 1), round(float(shot.mean()), 1)))
    assert len(best) >= 2, misses  # (difference to the nearest frame, the shot's mean level)
    # shots 0.5 s or more apart: 8 or more updates (15.6/s) between their frames
    assert best == sorted(best) and best[-1] - best[0] >= 6, best


def test_view_without_a_display_is_a_clear_error(display):
    """The GUI OpenCV but no DISPLAY: refused at start, naming --view and what to do instead."""
    env = display.env()
    env.pop("DISPLAY")
    p = subprocess.run([sys.executable, "-m", "avstream", "run", "--view", "--duration", "1", "--no-ros", "--no-zmq",
                        "--no-status", "--no-overlay"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "--view: no display" in p.stderr and "Traceback" not in p.stderr, p.stderr
