"""Foxglove: the run's topics over the Foxglove WebSocket protocol (foxglove-sdk's server), read
by a small protocol client here (websockets) and decoded with rosbags."""
import json
import os
import struct
import subprocess
import sys
import time

import numpy as np
import pytest

from helpers import ROOT, run_cli

pytest.importorskip("foxglove")
websockets = pytest.importorskip("websockets")


def _start(tmp_path, *args):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "avstream", "run", "--no-status", "--no-ros", "--no-zmq",
                             "--no-overlay", *map(str, args)], env=env, cwd=str(ROOT), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if "Foxglove on ws://" in line:
            return proc, line.split("ws://")[1].split()[0]
    raise AssertionError("no Foxglove server: " + "".join(lines)[-2000:])


def test_foxglove_client_gets_the_recorded_bytes(tmp_path):
    """Subscribed to heatmap/image and /tf_static, a Foxglove protocol client receives, for each
    update, the very CDR bytes the MCAP recording holds at the same log time (ros2msg schema,
    cdr encoding), and /tf_static although it connected after the start."""
    from websockets.sync.client import connect

    from avstream.sinks.ros_format import typestore

    rec = tmp_path / "same.mcap"
    proc, where = _start(tmp_path, "--duration", 6, "--foxglove", 0, "--record", rec)
    got, schemas = {}, {}
    try:
        time.sleep(1.0)  # connect after the start: latched topics must still arrive
        # foxglove-sdk 0.30 speaks "foxglove.sdk.v1" (the same messages as "foxglove.websocket.v1")
        with connect(f"ws://{where}", subprotocols=["foxglove.sdk.v1", "foxglove.websocket.v1"], open_timeout=30) as ws:
            channels = {}
            deadline = time.time() + 30
            while time.time() < deadline and not {"/avstream/heatmap/image", "/tf_static"} <= set(channels):
                msg = ws.recv(timeout=10)
                if isinstance(msg, str):
                    doc = json.loads(msg)
                    if doc.get("op") == "advertise":
                        for ch in doc["channels"]:
                            channels[ch["topic"]] = ch
            wanted = ["/avstream/heatmap/image", "/tf_static"]
            ws.send(json.dumps({"op": "subscribe", "subscriptions": [
                {"id": k, "channelId": channels[t]["id"]} for k, t in enumerate(wanted)]}))
            for t in wanted:
                schemas[t] = channels[t]
            t0 = time.time()
            while time.time() - t0 < 20:
                try:
                    msg = ws.recv(timeout=5)
                except TimeoutError:
                    break
                if isinstance(msg, bytes) and msg[0] == 0x01:  # message data
                    sub, log_time = struct.unpack_from("<IQ", msg, 1)
                    got.setdefault(wanted[sub], []).append((log_time, msg[13:]))
                if len(got.get(wanted[0], [])) >= 30 and got.get(wanted[1]):
                    break
    finally:
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    for t, ch in schemas.items():
        assert ch["encoding"] == "cdr" and ch["schemaEncoding"] == "ros2msg"
    assert schemas["/avstream/heatmap/image"]["schemaName"] == "sensor_msgs/msg/Image"
    assert len(got["/avstream/heatmap/image"]) >= 30 and got["/tf_static"]
    from mcap.reader import make_reader

    recorded = {}
    with open(rec, "rb") as fh:
        for _, channel, message in make_reader(fh).iter_messages(topics=["/avstream/heatmap/image"]):
            recorded[message.log_time] = bytes(message.data)
    same = [recorded[lt] == data for lt, data in got["/avstream/heatmap/image"] if lt in recorded]
    assert len(same) >= 30 and all(same)
    ts = typestore("jazzy")
    img = ts.deserialize_cdr(got["/avstream/heatmap/image"][-1][1], "sensor_msgs/msg/Image")
    assert img.encoding == "32FC1" and img.width * img.height * 4 == len(img.data)
    tf = ts.deserialize_cdr(got["/tf_static"][0][1], "tf2_msgs/msg/TFMessage")
    assert tf.transforms[0].child_frame_id == "camera_optical"


def test_foxglove_port_in_use_is_a_clear_error(tmp_path):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    try:
        p = run_cli("run", "--duration", "1", "--foxglove", s.getsockname()[1], "--no-ros", "--no-zmq")
    finally:
        s.close()
    assert p.returncode == 2 and "--foxglove 127.0.0.1:" in p.stderr and "cannot serve" in p.stderr
    assert "Traceback" not in p.stderr


def test_layout_names_topics_the_run_publishes():
    """The shipped Foxglove layout is JSON whose panels read topics the node publishes."""
    from avstream.sinks.ros_format import TOPICS

    layout = json.loads((ROOT / "avstream" / "foxglove_layout.json").read_text())
    names = {"/avstream/" + rel if not rel.startswith("/") else rel for rel, _, _ in TOPICS.values()}
    text = json.dumps(layout["configById"])
    used = {t for t in names if f'"{t}' in text or f'{t}.' in text}
    assert {"/avstream/heatmap/image", "/avstream/overlay/image", "/avstream/markers", "/avstream/tracks"} <= used
    for panel in layout["configById"].values():
        for topic in panel.get("topics", {}):
            assert topic in names, topic


def _resolve(ts, typename, fields):
    """The type a Foxglove message path's fields lead to ("a[:]", "b[0]" index sequences)."""
    from rosbags.typesys.store import Nodetype

    for field in fields:
        name, _, index = field.partition("[")
        defs = dict(ts.fielddefs[typename][1])
        assert name in defs, f"{typename} has no field {name!r}"
        kind, detail = defs[name]
        if index:
            assert kind in (Nodetype.SEQUENCE, Nodetype.ARRAY), f"{typename}.{name} is not a sequence"
            kind, detail = detail[0]
        typename = detail if kind == Nodetype.NAME else detail[0]
    return typename


def test_layout_plot_paths_resolve_to_numbers():
    """Each Plot path names fields the published message type has, down to a number, with the
    keys the Foxglove Plot panel's PlotPath type requires (value, enabled, timestampMethod):
    a path with a misspelt field plots nothing in the app, silently."""
    from avstream.sinks.ros_format import TOPICS, typestore

    layout = json.loads((ROOT / "avstream" / "foxglove_layout.json").read_text())
    types = {("/avstream/" + rel if not rel.startswith("/") else rel): t for rel, t, _ in TOPICS.values()}
    ts = typestore()
    plots = [c for k, c in layout["configById"].items() if k.startswith("Plot!")]
    assert plots and all(c["paths"] for c in plots)
    for config in plots:
        for path in config["paths"]:
            assert path["enabled"] is True and path["timestampMethod"] in ("receiveTime", "headerStamp"), path
            topic = next(t for t in sorted(types, key=len, reverse=True) if path["value"].startswith(t + "."))
            leaf = _resolve(ts, types[topic], path["value"][len(topic) + 1:].split("."))
            assert leaf in ("float32", "float64", "int32", "uint32", "int64", "uint8"), (path["value"], leaf)
    # what the 3D panel and the diagnostics panel read
    assert layout["configById"]["DiagnosticSummary!diag"]["topicToRender"] == "/diagnostics"
    assert layout["configById"]["3D!sources"]["followTf"] == "mic_array"
