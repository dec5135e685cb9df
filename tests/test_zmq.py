"""The ZeroMQ stream: real sockets on loopback, subscribers in other processes."""
import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from helpers import ROOT, jsonl, run_cli

zmq = pytest.importorskip("zmq")

SUBSCRIBER = r"""
import json, sys, numpy as np, zmq
from avstream.sinks.zmq_sink import subscribe, decode
endpoint, out, n_max, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
sock = subscribe(endpoint)
print("ready", flush=True)
if mode == "stall":          # connect, then never read
    import time; time.sleep(60)
got = {}
n = 0
while n < n_max and sock.poll(15000):
    n += 1
    header, image = decode(sock.recv_multipart())
    got[str(header["seq"])] = image.copy()
    got["h" + str(header["seq"])] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    if mode == "crash" and n >= 6:
        import os; os._exit(3)  # die mid-stream without closing anything
np.savez(out, **got)
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_subscriber(endpoint, out, n_max, mode="read"):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.Popen([sys.executable, "-c", SUBSCRIBER, endpoint, str(out), str(n_max), mode], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready", p.stderr.read()
    return p


def test_subscriber_rebuilds_heatmaps_exactly(tmp_path):
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    sub = start_subscriber(endpoint, tmp_path / "got.npz", 20)
    npz = tmp_path / "run.npz"
    p = run_cli("run", "--duration", "3", "--grid", "fov:90,70:64,48", "--zmq", endpoint, "--npz", npz,
                "--no-status", timeout=120)
    assert p.returncode == 0, p.stderr
    sub.wait(60)
    got = np.load(tmp_path / "got.npz")
    maps = np.load(npz)["heatmaps"]
    seqs = sorted(int(k) for k in got.files if not k.startswith("h"))
    assert len(seqs) == 20
    for s in seqs:
        assert np.array_equal(got[str(s)], maps[s])  # bit for bit, in grid layout (48 x 64)
        header = json.loads(got["h" + str(s)].tobytes())
        assert header["shape"] == [48, 64] and header["dtype"] == "<f4" and header["frame_id"] == "mic_array"
        g = header["grid"]
        assert g["type"] == "fov" and g["azimuth_deg"] == [45.0, -45.0] and g["elevation_deg"] == [35.0, -35.0]
        assert header["stamp"] > 1e9  # UNIX epoch seconds
    # the strongest source in the header is where the pixel grid says the image peaks
    h = json.loads(got["h" + str(seqs[-1])].tobytes())
    img = got[str(seqs[-1])]
    r, c = np.unravel_index(np.argmax(img), img.shape)
    az = np.linspace(*h["grid"]["azimuth_deg"], h["grid"]["cols"])[c]
    el = np.linspace(*h["grid"]["elevation_deg"], h["grid"]["rows"])[r]
    top = h["sources"][0]
    assert abs(az - top["azimuth_deg"]) < 3 and abs(el - top["elevation_deg"]) < 3


@pytest.mark.parametrize("mode", ["stall", "crash"])
def test_bad_subscribers_do_not_touch_the_pipeline(tmp_path, mode):
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    sub = start_subscriber(endpoint, tmp_path / "x.npz", 10_000, mode)
    out = tmp_path / "o.jsonl"
    try:
        p = run_cli("run", "--duration", "3", "--zmq", endpoint, "--jsonl", out, "--no-status", timeout=120)
    finally:
        sub.kill()
        sub.wait()
    assert p.returncode == 0, p.stderr
    summary = jsonl(out.read_text())[-1]["summary"]
    assert summary["dropped_blocks"] == 0 and "overrun" not in summary["input_flags"]
    assert summary["updates"] == ((3 * 16000 - 512) // 256 + 1) // 4  # every update made, none lost


def test_echo_one_liner(tmp_path):
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    run = subprocess.Popen([sys.executable, "-m", "avstream", "run", "--duration", "4", "--zmq", endpoint,
                            "--no-status"], env=env, cwd=str(ROOT), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        p = run_cli("echo", endpoint, "--count", "10", "--seconds", "60", timeout=90)
    finally:
        run.wait(60)
    assert p.returncode == 0, p.stderr
    lines = [line for line in p.stdout.splitlines() if line.startswith("seq")]
    assert len(lines) == 10 and all("sources: az" in line for line in lines)
    assert "10 messages" in p.stderr and "/s" in p.stderr


@pytest.fixture()
def certs(tmp_path):
    import zmq.auth

    keys = tmp_path / "keys"
    clients = tmp_path / "clients"
    keys.mkdir()
    clients.mkdir()
    zmq.auth.create_certificates(str(keys), "server")
    zmq.auth.create_certificates(str(keys), "client")
    zmq.auth.create_certificates(str(keys), "stranger")
    (clients / "client.key").write_text((keys / "client.key").read_text())
    return keys, clients


def test_curve_encryption_and_client_authentication(certs):
    keys, clients = certs
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    run = subprocess.Popen([sys.executable, "-m", "avstream", "run", "--duration", "6", "--zmq", endpoint,
                            "--zmq-secret-key", str(keys / "server.key_secret"), "--zmq-clients", str(clients),
                            "--no-status"], env=env, cwd=str(ROOT), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        ok = run_cli("echo", endpoint, "--server-key", keys / "server.key", "--client-key",
                     keys / "client.key_secret", "--count", "5", "--seconds", "30", timeout=60)
        stranger = run_cli("echo", endpoint, "--server-key", keys / "server.key", "--client-key",
                           keys / "stranger.key_secret", "--seconds", "2", timeout=60)
        plain = run_cli("echo", endpoint, "--seconds", "2", timeout=60)
    finally:
        _, err = run.communicate(timeout=60)
    assert run.returncode == 0, err
    assert ok.returncode == 0 and "5 messages" in ok.stderr, ok.stderr
    assert stranger.returncode == 1 and "no messages" in stranger.stderr  # not in the allowed folder
    assert plain.returncode == 1 and "no messages" in plain.stderr  # no encryption, no data


def test_bad_endpoints_and_keys(tmp_path, certs):
    keys, clients = certs
    port = free_port()
    blocker = zmq.Context.instance().socket(zmq.PUB)
    blocker.bind(f"tcp://127.0.0.1:{port}")
    try:
        p = run_cli("run", "--duration", "1", "--zmq", f"tcp://127.0.0.1:{port}", "--no-status")
        assert p.returncode == 2 and "--zmq tcp://127.0.0.1:%d: cannot bind" % port in p.stderr, p.stderr
    finally:
        blocker.close(linger=0)
    p = run_cli("run", "--duration", "1", "--zmq", "carrier-pigeon://home", "--no-status")
    assert p.returncode == 2 and "--zmq carrier-pigeon://home" in p.stderr and "Traceback" not in p.stderr
    missing = tmp_path / "nope.key_secret"
    p = run_cli("run", "--duration", "1", "--zmq-secret-key", missing, "--no-status")
    assert p.returncode == 2 and str(missing) in p.stderr and "not found" in p.stderr
    bad = tmp_path / "bad.key_secret"
    bad.write_text("this is not a certificate\n")
    p = run_cli("run", "--duration", "1", "--zmq-secret-key", bad, "--no-status")
    assert p.returncode == 2 and str(bad) in p.stderr and "Traceback" not in p.stderr, p.stderr
    p = run_cli("run", "--duration", "1", "--zmq-secret-key", keys / "server.key", "--no-status")
    assert p.returncode == 2 and "secret" in p.stderr  # the public half only


def test_an_open_endpoint_without_curve_is_warned_about(certs):
    """Loopback by default; bound on every interface without CURVE the run says so (and not
    with CURVE, nor on loopback)."""
    keys, _ = certs
    needle = "reachable from other machines"
    wide = run_cli("run", "--duration", "0.5", "--zmq", f"tcp://0.0.0.0:{free_port()}", "--no-status", "--no-ros")
    assert wide.returncode == 0 and needle in wide.stderr, wide.stderr
    safe = run_cli("run", "--duration", "0.5", "--zmq", f"tcp://0.0.0.0:{free_port()}", "--zmq-secret-key",
                   keys / "server.key_secret", "--no-status", "--no-ros")
    assert safe.returncode == 0 and needle not in safe.stderr, safe.stderr
    default = run_cli("run", "--duration", "0.5", "--no-status", "--no-ros")
    assert default.returncode == 0 and needle not in default.stderr
    assert "ZeroMQ stream on tcp://127.0.0.1:" in default.stderr  # loopback unless told otherwise


def test_overlay_picture_on_its_own_topic(tmp_path):
    """With a camera, the overlay goes out as JPEG on avstream/overlay beside the heatmap: a
    subscriber (this process; the run is another) decodes full pictures with the frame's stamp,
    and a heatmap-only subscriber never sees them."""
    from avstream.sinks.zmq_sink import TOPIC_HEATMAP, TOPIC_OVERLAY, decode, subscribe

    endpoint = f"tcp://127.0.0.1:{free_port()}"
    both = subscribe(endpoint, topics=(TOPIC_HEATMAP, TOPIC_OVERLAY))
    heat_only = subscribe(endpoint)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    run = subprocess.Popen([sys.executable, "-m", "avstream", "run", "--duration", "3", "--zmq", endpoint, "--no-ros",
                            "--no-status", "--no-overlay"], env=env, cwd=str(tmp_path),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    got = {TOPIC_HEATMAP: [], TOPIC_OVERLAY: []}
    only = []
    deadline = time.monotonic() + 60
    while run.poll() is None and time.monotonic() < deadline:
        if both.poll(100):
            frames = both.recv_multipart()
            got[frames[0]].append(decode(frames))
        while heat_only.poll(0):
            only.append(heat_only.recv_multipart()[0])
    assert run.wait(30) == 0, run.stderr.read()
    both.close()
    heat_only.close()
    overlays = got[TOPIC_OVERLAY]
    assert len(overlays) >= 10 and len(got[TOPIC_HEATMAP]) >= 10
    for header, picture in overlays:
        assert header["format"] == "jpeg" and header["shape"] == [480, 640, 3]
        assert picture.shape == (480, 640, 3) and header["frame_id"] == "camera_optical"
        assert header["stamp"] > 1e9
    heat_seqs = {h["seq"] for h, _ in got[TOPIC_HEATMAP]}
    assert {h["seq"] for h, _ in overlays} & heat_seqs  # the same updates
    assert only and set(only) == {TOPIC_HEATMAP}
