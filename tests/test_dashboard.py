"""avstream dashboard in a real headless Chromium (Debian's chromium and chromium-driver, driven
by Selenium) against two running demos streaming on ZeroMQ."""
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

from helpers import ROOT, run_cli

pytest.importorskip("websockets")
webdriver = pytest.importorskip("selenium.webdriver")
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="chromium and chromium-driver not installed "
                                                                  "(scripts/setup.sh installs them)")
ARTIFACTS = ROOT / "test-artifacts"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _demo(endpoint, *args):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "avstream", "run", "--duration", "60", "--zmq", endpoint,
                             "--no-ros", "--no-overlay", "--no-status", *args], env=env, cwd=str(ROOT),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait(fn, timeout=30.0, what="condition"):
    t0 = time.time()
    while time.time() - t0 < timeout:
        v = fn()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture()
def browser():
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,900"):
        opts.add_argument(a)
    drv = webdriver.Chrome(service=Service(DRIVER), options=opts)
    yield drv
    drv.quit()


def test_dashboard_shows_two_live_streams_and_says_when_one_stops(browser):
    from avstream.dashboard import Dashboard
    from avstream.geometry.grids import angular_distance_deg, to_unit

    a, b = f"tcp://127.0.0.1:{_free_port()}", f"tcp://127.0.0.1:{_free_port()}"
    run_a = _demo(a)  # the UMA-16 demo: 16 channels, a talker at azimuth 30, elevation 70
    run_b = _demo(b, "--array", "respeaker_4mic_hat", "--no-camera")  # 4 channels
    dash = Dashboard([a, b], port=0).start()
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        browser.get(dash.url)
        js = browser.execute_script
        _wait(lambda: js("return window.avstream && window.avstream.updates") > 10, 90, "updates in the page")
        first = js("return document.getElementById('heat').toDataURL()")
        browser.save_screenshot(str(ARTIFACTS / "dashboard_1.png"))
        time.sleep(1.0)
        second = js("return document.getElementById('heat').toDataURL()")
        browser.save_screenshot(str(ARTIFACTS / "dashboard_2.png"))
        assert first != second  # the heatmap is live
        assert js("return window.avstream.stream") == a
        # the source list: the demo's talker within 10 degrees
        # read in one script: the page redraws the table and meters on every update
        rows = [r.split() for r in js("return [...document.querySelectorAll('#sources tbody tr')].map(r => r.innerText)")]
        dirs = [(float(r[1]), float(r[2])) for r in rows]
        assert any(angular_distance_deg(to_unit(az, el)[None], to_unit(30.0, 70.0))[0] <= 10.0 for az, el in dirs), rows
        meters = "return document.querySelectorAll('#meters .meter').length"
        assert js(meters) == 16
        # the other stream: its own 4 channels, not the first one's 16
        from selenium.webdriver.support.ui import Select

        Select(browser.find_element("id", "stream")).select_by_visible_text(b)
        _wait(lambda: js("return window.avstream.stream") == b and js(meters) == 4, 30, "the second stream")
        assert len(js("return window.avstream.lastHeader.levels.rms_dbfs")) == 4
        browser.save_screenshot(str(ARTIFACTS / "dashboard_stream_b.png"))
        # the second run stops: within 3 s the page says since when it has had no data
        run_b.terminate()
        run_b.wait(30)
        stopped = time.time()
        _wait(lambda: "no data since" in js("return document.getElementById('stale').innerText"), 10,
              "the stale notice")
        assert time.time() - stopped <= 3.0 + 0.5  # the notice itself is due within 3 s (poll slack)
        browser.save_screenshot(str(ARTIFACTS / "dashboard_stale.png"))
    finally:
        dash.stop()
        for p in (run_a, run_b):
            p.terminate()
            p.wait(30)


def test_dashboard_bad_input(tmp_path):
    p = run_cli("dashboard", "tcp://127.0.0.1:5999", "--bind", "0.0.0.0", "--port", "0", timeout=60)
    assert p.returncode == 2 and "--token" in p.stderr and "Traceback" not in p.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        p = run_cli("dashboard", "tcp://127.0.0.1:5999", "--port", s.getsockname()[1], timeout=60)
    assert p.returncode == 2 and "cannot serve" in p.stderr and "Traceback" not in p.stderr


def test_run_dashboard_is_a_process_beside_the_run(tmp_path):
    """run --dashboard starts the page's server as a child process (the bridge and the tabs cost
    the run no Python time) and ends it with the run; a port in use is the run's clear error."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        p = run_cli("run", "--duration", "1", "--dashboard", s.getsockname()[1], "--no-ros", "--no-status", timeout=120)
    assert p.returncode == 2 and "cannot serve" in p.stderr and "Traceback" not in p.stderr, p.stderr
    port, zport = _free_port(), _free_port()
    run = subprocess.Popen([sys.executable, "-m", "avstream", "run", "--duration", "6", "--zmq", f"tcp://127.0.0.1:{zport}",
                            "--dashboard", str(port), "--no-ros", "--no-status", "--no-overlay"], cwd=str(ROOT),
                           env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
    try:
        _wait(lambda: _connects(port), 60, "the page")
        kids = [int(d) for d in os.listdir("/proc") if d.isdigit() and _parent(int(d)) == run.pid]
        kids = [k for k in kids if b"dashboard" in open(f"/proc/{k}/cmdline", "rb").read()]
        assert len(kids) == 1, kids
        assert run.wait(120) == 0, run.stderr.read()
    finally:
        if run.poll() is None:
            run.kill()
            run.wait(30)
    assert "dashboard on http://127.0.0.1:%d/" % port in run.stderr.read()
    assert not _connects(port)  # the dashboard ended with the run
    assert not os.path.exists(f"/proc/{kids[0]}")  # ended and reaped, not left running


def _parent(pid):
    try:
        return int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def test_slow_tab_and_foreign_stream():
    """A tab that never reads does not slow the run (no block dropped, every update made) nor
    starve another tab; a stream of messages that are not avstream's is reported as such."""
    import json
    import tempfile

    import zmq
    from websockets.sync.client import connect

    from avstream.dashboard import Dashboard

    a, junk = f"tcp://127.0.0.1:{_free_port()}", f"tcp://127.0.0.1:{_free_port()}"
    out = tempfile.NamedTemporaryFile(suffix=".jsonl", delete=False).name
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    run = subprocess.Popen([sys.executable, "-m", "avstream", "run", "--duration", "8", "--zmq", a, "--no-ros",
                            "--no-overlay", "--no-status", "--jsonl", out], env=env, cwd=str(ROOT),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ctx = zmq.Context.instance()
    pub = ctx.socket(zmq.PUB)
    pub.bind(junk)
    dash = Dashboard([a, junk], port=0).start()
    ws_url = f"ws://127.0.0.1:{dash.port}/"
    try:
        updates = 0
        # the first tab is never read from: its server-side sends back up
        with connect(ws_url, max_size=None), connect(ws_url, max_size=None) as ws:
            t0 = time.time()
            while time.time() - t0 < 6:
                msg = ws.recv(timeout=5)
                if isinstance(msg, str) and json.loads(msg).get("op") == "update":
                    updates += 1
            ws.send(json.dumps({"select": junk}))
            notice = None
            t0 = time.time()
            while time.time() - t0 < 10 and notice is None:
                pub.send_multipart([b"avstream/heatmap\0", b"hello", b"world"])
                msg = ws.recv(timeout=5)
                if isinstance(msg, str):
                    doc = json.loads(msg)
                    if doc.get("op") == "stale" and doc["stream"] == junk and doc["not_avstream"]:
                        notice = doc
        assert updates >= 30  # the reading tab kept getting updates
        assert notice is not None and notice["since"] is None  # no avstream data ever, and why
        run.wait(60)
        summary = json.loads(open(out).read().splitlines()[-1])["summary"]
        assert summary["dropped_blocks"] == 0 and summary["updates"] == ((8 * 16000 - 512) // 256 + 1) // 4
    finally:
        dash.stop()
        pub.close()
        run.terminate()
        run.wait(30)


def test_a_flood_on_the_page_does_not_disturb_the_run():
    """A run serving its own page (--dashboard) while 200 WebSockets connect and never read,
    others send garbage (bad JSON, binary, an oversized message) and raw TCP connections send
    bytes that are not HTTP: the run makes every update and drops no block, and a well-behaved
    tab still gets updates."""
    import contextlib
    import json
    import random
    import tempfile

    from websockets.sync.client import connect

    port, zport = _free_port(), _free_port()
    out = tempfile.NamedTemporaryFile(suffix=".jsonl", delete=False).name
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    run = subprocess.Popen([sys.executable, "-m", "avstream", "run", "--duration", "12", "--zmq",
                            f"tcp://127.0.0.1:{zport}", "--dashboard", str(port), "--no-ros", "--no-overlay",
                            "--no-status", "--jsonl", out], env=env, cwd=str(ROOT),
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"ws://127.0.0.1:{port}/"
    held, raw = [], []
    rng = random.Random(0)
    stack = contextlib.ExitStack()  # the held pages, closed at the end
    try:
        _wait(lambda: _connects(port), 60, "the page")
        for _ in range(200):
            held.append(stack.enter_context(connect(url, max_size=None, open_timeout=30)))
        for k, ws in enumerate(held[:40]):
            try:
                ws.send(["{not json", json.dumps({"select": 42}), bytes(rng.randbytes(512)), "x" * 2_000_000][k % 4])
            except Exception:  # noqa: BLE001 - the server may close a garbage sender: that is fine
                pass
        for _ in range(50):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(rng.randbytes(4096))
            raw.append(s)
        updates = 0
        with connect(url, max_size=None) as ws:
            t0 = time.time()
            while time.time() - t0 < 4:
                msg = ws.recv(timeout=10)
                if isinstance(msg, str) and json.loads(msg).get("op") == "update":
                    updates += 1
        assert updates >= 10  # a good tab is still served
        assert run.wait(120) == 0, run.stderr.read()
    finally:
        stack.close()
        for s in raw:
            s.close()
        if run.poll() is None:
            run.kill()
            run.wait(30)
    summary = json.loads(open(out).read().splitlines()[-1])["summary"]
    assert summary["dropped_blocks"] == 0 and summary["skipped_updates"] == 0
    assert summary["updates"] == ((12 * 16000 - 512) // 256 + 1) // 4


def _connects(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False
