"""ROS 2 topics on native DDS: a reader participant in another process, decoded by rosbags."""
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

from helpers import ROOT, jsonl, run_cli

pytest.importorskip("cyclonedds")
pytest.importorskip("rosbags")

TOPICS = {"/avstream/heatmap": "sensor_msgs/msg/Image", "/avstream/sources": "geometry_msgs/msg/PoseArray",
          "/avstream/markers": "visualization_msgs/msg/MarkerArray", "/avstream/tracks": "vision_msgs/msg/Detection3DArray",
          "/diagnostics": "diagnostic_msgs/msg/DiagnosticArray"}

READER = r"""
import pickle, sys, time
from cyclonedds.domain import DomainParticipant
from cyclonedds.topic import Topic
from cyclonedds.sub import DataReader
from cyclonedds.core import Qos, Policy, SampleState, ViewState, InstanceState
from cyclonedds._clayer import ddspy_take
from avstream.sinks.ros_format import typestore
from avstream.sinks.dds_types import IdlTypes
topics = eval(sys.argv[2])
dp = DomainParticipant(int(sys.argv[1]))
idl = IdlTypes(typestore("jazzy"))
qos = Qos(Policy.Reliability.Reliable(0), Policy.History.KeepLast(500))
readers = {t: DataReader(dp, Topic(dp, "rt" + t, idl[m]), qos=qos) for t, m in topics.items()}
print("ready", flush=True)
got = {t: [] for t in topics}
mask = SampleState.Any | ViewState.Any | InstanceState.Any
t0 = time.time()
while time.time() - t0 < float(sys.argv[3]):
    for t, r in readers.items():
        items = ddspy_take(r._ref, mask, 100)
        if isinstance(items, list):
            got[t].extend(bytes(b) for b, info in items)
    if len(got["/avstream/heatmap"]) >= 30 and len(got["/diagnostics"]) >= 2:
        break
    time.sleep(0.02)
pickle.dump({"got": got}, open(sys.argv[4], "wb"))
"""


def test_dds_reader_in_another_process(tmp_path):
    domain = str(100 + os.getpid() % 100)
    env = dict(os.environ, PYTHONPATH=str(ROOT), ROS_DOMAIN_ID=domain)
    out = tmp_path / "got.pkl"
    reader = subprocess.Popen([sys.executable, "-c", READER, domain, repr(TOPICS), "40", str(out)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert reader.stdout.readline().strip() == "ready", reader.stderr.read()
    mcap = tmp_path / "same.mcap"
    p = run_cli("run", "--duration", "4", "--record", mcap, "--no-zmq", "--no-status", env={"ROS_DOMAIN_ID": domain},
                timeout=120)
    assert p.returncode == 0, p.stderr
    assert f"DDS domain {domain}" in p.stderr
    _, err = reader.communicate(timeout=60)
    assert out.exists(), (reader.returncode, err[-2000:])
    data = pickle.load(open(out, "rb"))
    got = data["got"]

    from avstream.sinks.ros_format import typestore

    ts = typestore("jazzy")  # rosbags' Jazzy store, plus vision_msgs registered from its message text
    for topic, typename in TOPICS.items():
        assert got[topic], f"nothing received on {topic}"
        for raw in got[topic]:
            raw = raw[: len(raw)]
            msg = ts.deserialize_cdr(raw, typename)  # every sample decodes
            # re-serialising what was decoded gives the bytes back (padding to 4 aside)
            again = bytes(ts.serialize_cdr(msg, typename))
            assert raw[: len(again)] == again and set(raw[len(again):]) <= {0}
    assert ts.hash_rihs01("sensor_msgs/msg/Image") == (
        "RIHS01_d31d41a9a4c4bc8eae9be757b0beed306564f7526c88ea6a4588fb9582527d47")  # docs FACTS 1.4

    # the heatmap bytes on DDS are the bytes recorded in the MCAP file for the same update
    from mcap.reader import make_reader

    recorded = {}
    with open(mcap, "rb") as fh:
        for _, channel, message in make_reader(fh).iter_messages(topics=["/avstream/heatmap"]):
            recorded[message.log_time] = message.data
    matched = 0
    for raw in got["/avstream/heatmap"]:
        img = ts.deserialize_cdr(raw, "sensor_msgs/msg/Image")
        ns = img.header.stamp.sec * 1_000_000_000 + img.header.stamp.nanosec
        assert img.encoding == "32FC1" and img.header.frame_id == "mic_array" and img.step == 4 * img.width
        if ns in recorded:
            assert bytes(recorded[ns]) == raw[: len(recorded[ns])]
            matched += 1
    assert matched >= 20

    # sources: unit vectors; diagnostics: the pipeline's counters
    poses = ts.deserialize_cdr(got["/avstream/sources"][-1], "geometry_msgs/msg/PoseArray")
    for pose in poses.poses:
        assert abs(np.linalg.norm([pose.position.x, pose.position.y, pose.position.z]) - 1) < 1e-9
    # tracks: the demo's talker and noise source, named by stable ids
    tracks = [ts.deserialize_cdr(raw, "vision_msgs/msg/Detection3DArray") for raw in got["/avstream/tracks"]]
    ids = {d.id for m in tracks for d in m.detections}
    assert "1" in ids and all(i.isdigit() for i in ids), ids
    for m in tracks:
        for d in m.detections:
            p = d.results[0].pose.pose.position
            assert abs(np.linalg.norm([p.x, p.y, p.z]) - 1) < 1e-9 and d.results[0].hypothesis.class_id in ("speech",
                                                                                                            "sound")
            assert 0 < d.results[0].hypothesis.score <= 1 and d.header.frame_id == "mic_array"
    diag = ts.deserialize_cdr(got["/diagnostics"][-1], "diagnostic_msgs/msg/DiagnosticArray")
    keys = {kv.key: kv.value for kv in diag.status[0].values}
    assert diag.status[0].level == 0 and keys["dropped_blocks"] == "0" and int(keys["updates"]) > 0
    assert keys["device"] == "SyntheticScene" and keys["device_state"] == "running" and "latency_s" in keys

    # cyclonedds' own decoder (the generated mirror types) agrees with rosbags
    from avstream.sinks.dds_types import IdlTypes

    mirror = IdlTypes(ts)["sensor_msgs/msg/Image"].deserialize(got["/avstream/heatmap"][0])
    first = ts.deserialize_cdr(got["/avstream/heatmap"][0], "sensor_msgs/msg/Image")
    assert (mirror.height, mirror.width, mirror.encoding) == (first.height, first.width, first.encoding)
    assert bytes(mirror.data) == first.data.tobytes()


def test_no_ros_and_bad_domain(tmp_path):
    out = tmp_path / "o.jsonl"
    p = run_cli("run", "--duration", "1", "--no-ros", "--no-zmq", "--jsonl", out, "--no-status")
    assert p.returncode == 0 and "DDS" not in p.stderr
    assert jsonl(out.read_text())[-1]["summary"]["updates"] > 10
    p = run_cli("run", "--duration", "1", "--no-zmq", "--no-status", env={"ROS_DOMAIN_ID": "lots"})
    assert p.returncode == 2 and "ROS_DOMAIN_ID='lots'" in p.stderr and "Traceback" not in p.stderr


@pytest.mark.parametrize("distro", ["jazzy", "humble"])
def test_writers_advertise_ros_names_and_type_hash(distro):
    """Topic and type names as the ROS 2 RMWs mangle them, and USER_DATA typehash (Iron+).

    Checked on the writers' own QoS: cyclonedds-python 11.0.1 segfaults when a second
    participant reads the DCPSPublication builtin topic (even for a trivial type), so what a
    remote participant sees is not checked here."""
    from cyclonedds.core import Policy

    from avstream.config import load_config
    from avstream.geometry.grids import parse_grid
    from avstream.sinks.dds_sink import DdsSink

    cfg = load_config(None, {"ros.qos.heatmap.reliability": "best_effort", "ros.qos.heatmap.depth": 1})
    sink = DdsSink(distro=distro, qos=cfg.ros.qos)
    sink.open({"grid_object": parse_grid("fov:90,70:64,48")})
    try:
        assert set(sink._writers) == set(TOPICS)
        for topic, typename in TOPICS.items():
            w = sink._writers[topic]
            assert w.topic.name == "rt" + topic
            assert w.topic.typename == typename.replace("/msg/", "::msg::dds_::") + "_"
            qos = w.get_qos()
            ud = qos[Policy.Userdata] if Policy.Userdata in qos else None
            if distro == "humble":
                assert ud is None
            else:
                assert ud.data == f"typehash={sink.fmt.type_hash(typename)};".encode()
            if topic == "/avstream/heatmap":  # configured per topic
                assert qos[Policy.History] == Policy.History.KeepLast(1)
                assert qos[Policy.Reliability] == Policy.Reliability.BestEffort
            else:  # the default: reliable, keep-last 5
                assert qos[Policy.History] == Policy.History.KeepLast(5)
                assert isinstance(qos[Policy.Reliability], Policy.Reliability.Reliable)
    finally:
        sink.close({})


def test_a_reliable_reader_that_dies_does_not_touch_the_node(tmp_path):
    """A reliable subscriber killed mid-stream: no waiting on its acks, no lost audio."""
    import time

    domain = str(100 + (os.getpid() + 7) % 100)
    env = dict(os.environ, PYTHONPATH=str(ROOT), ROS_DOMAIN_ID=domain)
    reader = subprocess.Popen([sys.executable, "-c", READER, domain, repr(TOPICS), "60", str(tmp_path / "r.pkl")],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert reader.stdout.readline().strip() == "ready"
    out = tmp_path / "o.jsonl"
    run = subprocess.Popen([sys.executable, "-m", "avstream", "run", "--duration", "4", "--no-zmq", "--no-status",
                            "--jsonl", str(out)], env=env, cwd=str(ROOT), stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
    for _ in range(300):  # until updates flow, then kill the reader without any goodbye
        if out.exists() and out.read_text().count("\n") >= 10:
            break
        time.sleep(0.05)
    reader.kill()
    reader.wait()
    _, err = run.communicate(timeout=120)
    assert run.returncode == 0, err
    summary = jsonl(out.read_text())[-1]["summary"]
    assert summary["dropped_blocks"] == 0 and "overrun" not in summary["input_flags"]
    assert summary["updates"] == ((4 * 16000 - 512) // 256 + 1) // 4


LATE_READER = r"""
import pickle, sys, time
from cyclonedds.domain import DomainParticipant
from cyclonedds.topic import Topic
from cyclonedds.sub import DataReader
from cyclonedds.core import Qos, Policy, SampleState, ViewState, InstanceState
from cyclonedds._clayer import ddspy_take
from avstream.sinks.ros_format import typestore
from avstream.sinks.dds_types import IdlTypes
dp = DomainParticipant(int(sys.argv[1]))
idl = IdlTypes(typestore("jazzy"))
# tf2's static listener QoS: reliable, transient local, depth 1
qos = Qos(Policy.Reliability.Reliable(0), Policy.Durability.TransientLocal, Policy.History.KeepLast(1))
r = DataReader(dp, Topic(dp, "rt/tf_static", idl["tf2_msgs/msg/TFMessage"]), qos=qos)
got = []
t0 = time.time()
while time.time() - t0 < 20 and not got:
    items = ddspy_take(r._ref, SampleState.Any | ViewState.Any | InstanceState.Any, 10)
    if isinstance(items, list):
        got.extend(bytes(b) for b, info in items)
    time.sleep(0.05)
pickle.dump(got, open(sys.argv[2], "wb"))
"""


def test_tf_static_reaches_a_late_joining_reader(tmp_path):
    """/tf_static (tf2_msgs/TFMessage, transient local) is written once when the run starts; a
    reader that joins after it was written still gets it, and rosbags decodes mic_array ->
    camera_optical as the pose of the camera in the array frame: the extrinsics inverted."""
    import time

    from avstream.geometry.arrays import load_array
    from avstream.geometry.camera import default_extrinsics
    from avstream.sinks.ros_format import typestore

    domain = str(100 + (os.getpid() + 37) % 100)
    env = dict(os.environ, PYTHONPATH=str(ROOT), ROS_DOMAIN_ID=domain)
    lines = tmp_path / "run.jsonl"
    run = subprocess.Popen([sys.executable, "-m", "avstream", "run", "--duration", "20", "--no-zmq", "--no-status",
                            "--jsonl", str(lines)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # updates are flowing, so the sinks are open and the static transform was written
        for _ in range(600):
            if lines.exists() and lines.read_text().count("\n") >= 3 or run.poll() is not None:
                break
            time.sleep(0.1)
        assert run.poll() is None, run.stderr.read()[-2000:]
        out = tmp_path / "tf.pkl"
        reader = subprocess.run([sys.executable, "-c", LATE_READER, domain, str(out)], env=env, capture_output=True,
                                text=True, timeout=120)
        assert reader.returncode == 0, reader.stderr[-2000:]
    finally:
        run.terminate()
        run.communicate(timeout=60)
    got = pickle.load(open(out, "rb"))
    assert got, "the late reader received no /tf_static"
    msg = typestore("jazzy").deserialize_cdr(got[0], "tf2_msgs/msg/TFMessage")
    assert len(msg.transforms) == 1
    tf = msg.transforms[0]
    assert tf.header.frame_id == "mic_array" and tf.child_frame_id == "camera_optical"
    ext = default_extrinsics(load_array("minidsp_uma16"))  # the demo's camera
    q = tf.transform.rotation
    from scipy.spatial.transform import Rotation

    R = Rotation.from_quat([q.x, q.y, q.z, q.w]).as_matrix()  # camera axes in the array frame
    assert np.allclose(R, ext.rotation.T, atol=1e-9)
    t = tf.transform.translation
    # the camera's origin in the array frame maps to the optical frame's origin
    assert np.allclose(ext.rotation @ np.array([t.x, t.y, t.z]) + ext.translation, 0.0, atol=1e-9)
