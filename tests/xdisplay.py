"""A real X display for the window tests: Xvfb, driven like a person would (python-xlib's XTEST
for the pointer and keys, XGetImage for screenshots).

avstream depends on opencv-python-headless, which has no windows. scripts/setup.sh puts the GUI
build of the same OpenCV version in .venv/opencv-gui; the avstream processes under test get it
first on their PYTHONPATH, so they open real (Qt) windows on this display.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
GUI_CV2 = ROOT / ".venv" / "opencv-gui"
FONTS = Path("/usr/share/fonts/truetype/dejavu")


def missing() -> str | None:
    """Why the window tests cannot run here, or None."""
    if shutil.which("Xvfb") is None:
        return "Xvfb is not installed (scripts/setup.sh installs it)"
    if not (GUI_CV2 / "cv2").is_dir():
        return f"no GUI OpenCV in {GUI_CV2} (scripts/setup.sh installs it)"
    try:
        import Xlib  # noqa: F401
    except ImportError:
        return "python-xlib is not installed (pip install -e '.[test]')"
    return None


class Display:
    """An Xvfb server on a free display number, and a client connection to it."""

    def __init__(self, size=(1280, 1024)):
        from Xlib import display as xdisplay

        r, w = os.pipe()
        self.proc = subprocess.Popen(["Xvfb", "-displayfd", str(w), "-screen", "0", f"{size[0]}x{size[1]}x24",
                                      "-nolisten", "tcp"], pass_fds=(w,), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        os.close(w)
        with os.fdopen(r) as fh:
            number = fh.readline().strip()
        if not number:
            self.proc.kill()
            raise RuntimeError("Xvfb did not start")
        self.name = f":{number}"
        self.x = xdisplay.Display(self.name)
        self.root = self.x.screen().root

    def env(self) -> dict:
        """Environment for a child process that should open its windows here with a GUI OpenCV."""
        env = dict(os.environ, DISPLAY=self.name, QT_QPA_PLATFORM="xcb")
        env["PYTHONPATH"] = os.pathsep.join([str(GUI_CV2)] + [p for p in [env.get("PYTHONPATH")] if p])
        if FONTS.is_dir():
            env["QT_QPA_FONTDIR"] = str(FONTS)
        return env

    def windows(self) -> list:
        """(title, window) of every mapped window with a title."""
        from Xlib import X

        out, todo = [], [self.root]
        while todo:
            w = todo.pop()
            try:
                children = w.query_tree().children
                name = w.get_wm_name()
                mapped = w.get_attributes().map_state == X.IsViewable
            except Exception:  # a window gone while we looked
                continue
            if name and mapped and w != self.root:
                out.append((name if isinstance(name, str) else name.decode(errors="replace"), w))
            todo.extend(children)
        return out

    def wait_window(self, starts: str, timeout: float = 60.0, not_title: str | None = None):
        """(title, window) of the first window whose title starts with ``starts`` (and is not
        ``not_title``); None after ``timeout`` seconds."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for title, w in self.windows():
                if title.startswith(starts) and title != not_title:
                    return title, w
            time.sleep(0.05)
        return None

    def geometry(self, window) -> tuple[int, int, int, int]:
        """(x, y, width, height) of the window's inside on the screen."""
        g = window.get_geometry()
        pos = self.root.translate_coords(window, 0, 0)
        return pos.x, pos.y, g.width, g.height

    def grab(self, window) -> np.ndarray:
        """What the window shows, BGR uint8 (height, width, 3)."""
        from Xlib import X

        x, y, w, h = self.geometry(window)
        raw = self.root.get_image(x, y, w, h, X.ZPixmap, 0xFFFFFFFF).data
        return np.frombuffer(raw, np.uint8).reshape(h, w, 4)[:, :, :3].copy()

    def move(self, x: int, y: int):
        """The pointer to (x, y) on the screen."""
        from Xlib import X
        from Xlib.ext import xtest

        xtest.fake_input(self.x, X.MotionNotify, x=int(x), y=int(y))
        self.x.sync()
        time.sleep(0.05)

    def click(self, x: int, y: int):
        from Xlib import X
        from Xlib.ext import xtest

        self.move(x, y)
        xtest.fake_input(self.x, X.ButtonPress, 1)
        xtest.fake_input(self.x, X.ButtonRelease, 1)
        self.x.sync()

    def key(self, name: str):
        """Press and release a key (an X keysym name: 'q', 'space', 'Escape'); keyboard focus
        follows the pointer, so point at the window first."""
        from Xlib import X, XK
        from Xlib.ext import xtest

        code = self.x.keysym_to_keycode(XK.string_to_keysym(name))
        xtest.fake_input(self.x, X.KeyPress, code)
        xtest.fake_input(self.x, X.KeyRelease, code)
        self.x.sync()

    def close(self):
        try:
            self.x.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
