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

TOPICS = {"/avstream/heatmap/image": "sensor_msgs/msg/Image", "/avstream/sources": "geometry_msgs/msg/PoseArray",
          "/avstream/sources_cloud": "sensor_msgs/msg/PointCloud2",
          "/avstream/markers": "visualization_msgs/msg/MarkerArray", "/avstream/tracks": "vision_msgs/msg/Detection3DArray",
          "/diagnostics": "diagnostic_msgs/msg/DiagnosticArray"}

READER = r"""
import pickle, select, sys, time
from cyclonedds.domain import DomainParticipant
from cyclonedds.topic import Topic
from cyclonedds.sub import DataReader
from cyclonedds.core import Qos, Policy, SampleState, ViewState, InstanceState
from cyclonedds._clayer import ddspy_take
from avstream.sinks.ros_format import typestore
from avstream.sinks.dds_types import IdlTypes
topics = eval(sys.argv[2])
mins = eval(sys.argv[5]) if len(sys.argv) > 5 else {}  # stop once each topic has this many
dp = DomainParticipant(int(sys.argv[1]))
idl = IdlTypes(typestore("jazzy"))
qos = Qos(Policy.Reliability.Reliable(0), Policy.History.KeepLast(500))
latched = Qos(Policy.Reliability.Reliable(0), Policy.Durability.TransientLocal, Policy.History.KeepLast(1))
readers = {t: DataReader(dp, Topic(dp, "rt" + t, idl[m]), qos=latched if t.endswith("_info") and m.endswith(
    "AudioInfo") else qos) for t, m in topics.items()}
print("ready", flush=True)
got = {t: [] for t in topics}
mask = SampleState.Any | ViewState.Any | InstanceState.Any
t0 = time.time()
stop = False  # "stop" on stdin: the publishers have ended, take what is left and finish
while time.time() - t0 < float(sys.argv[3]):
    for t, r in readers.items():
        items = ddspy_take(r._ref, mask, 100)
        if isinstance(items, list):
            got[t].extend(bytes(b) for b, info in items if info.valid_data)  # not the writer's goodbye
    if stop or (mins and all(len(got[t]) >= n for t, n in mins.items())):
        break
    if select.select([sys.stdin], [], [], 0)[0] and sys.stdin.readline().strip() == "stop":
        stop = True
        time.sleep(0.5)  # what was in flight when the last publisher ended
        continue
    time.sleep(0.02)
pickle.dump({"got": got}, open(sys.argv[4], "wb"))
"""


def test_dds_reader_in_another_process(tmp_path):
    domain = str(100 + os.getpid() % 100)
    env = dict(os.environ, PYTHONPATH=str(ROOT), ROS_DOMAIN_ID=domain)
    out = tmp_path / "got.pkl"
    reader = subprocess.Popen([sys.executable, "-c", READER, domain, repr(TOPICS), "40", str(out),
                               repr({"/avstream/heatmap/image": 30, "/diagnostics": 2})], env=env,
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
        for _, channel, message in make_reader(fh).iter_messages(topics=["/avstream/heatmap/image"]):
            recorded[message.log_time] = message.data
    matched = 0
    for raw in got["/avstream/heatmap/image"]:
        img = ts.deserialize_cdr(raw, "sensor_msgs/msg/Image")
        ns = img.header.stamp.sec * 1_000_000_000 + img.header.stamp.nanosec
        # the demo's heatmap is registered to its camera: an image of the picture, in its optical frame
        assert img.encoding == "32FC1" and img.header.frame_id == "camera_optical" and img.step == 4 * img.width
        if ns in recorded:
            assert bytes(recorded[ns]) == raw[: len(recorded[ns])]
            matched += 1
    assert matched >= 20

    # sources: unit vectors; diagnostics: the pipeline's counters
    poses = ts.deserialize_cdr(got["/avstream/sources"][-1], "geometry_msgs/msg/PoseArray")
    for pose in poses.poses:
        assert abs(np.linalg.norm([pose.position.x, pose.position.y, pose.position.z]) - 1) < 1e-9
    # sources_cloud: the same sources as points, intensity = power (rosbags decodes the cloud)
    by_stamp = {}
    for raw in got["/avstream/sources"]:
        m = ts.deserialize_cdr(raw, "geometry_msgs/msg/PoseArray")
        by_stamp[(m.header.stamp.sec, m.header.stamp.nanosec)] = m
    paired = 0
    for raw in got["/avstream/sources_cloud"]:
        c = ts.deserialize_cdr(raw, "sensor_msgs/msg/PointCloud2")
        assert [f.name for f in c.fields] == ["x", "y", "z", "intensity"] and c.point_step == 16
        pts = np.frombuffer(c.data.tobytes(), "<f4").reshape(-1, 4)
        assert np.all((pts[:, 3] > 0) & (pts[:, 3] <= 1)) and np.allclose(np.linalg.norm(pts[:, :3], axis=1), 1, atol=1e-6)
        m = by_stamp.get((c.header.stamp.sec, c.header.stamp.nanosec))
        if m is not None:
            assert np.allclose(pts[:, :3], [[p.position.x, p.position.y, p.position.z] for p in m.poses] or
                               np.zeros((0, 3)), atol=1e-6)
            paired += 1
    assert paired >= 20
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
    audio, camera, publishing = diag.status
    assert audio.name == "avstream/avstream: audio" and camera.name == "avstream/avstream: camera"
    keys = {kv.key: kv.value for kv in audio.values}
    assert audio.level == 0 and keys["dropped_blocks"] == "0" and int(keys["updates"]) > 0
    assert audio.hardware_id == "SyntheticScene" and keys["device_state"] == "running" and "latency_s" in keys
    assert camera.level == 0 and camera.hardware_id == "synthetic camera"
    assert publishing.level == 0 and {kv.key: kv.value for kv in publishing.values} == {"failed_writes": "0"}

    # cyclonedds' own decoder (the generated mirror types) agrees with rosbags
    from avstream.sinks.dds_types import IdlTypes

    mirror = IdlTypes(ts)["sensor_msgs/msg/Image"].deserialize(got["/avstream/heatmap/image"][0])
    first = ts.deserialize_cdr(got["/avstream/heatmap/image"][0], "sensor_msgs/msg/Image")
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

    cfg = load_config(None, {"ros.qos.heatmap.reliability": "best_effort", "ros.qos.heatmap.depth": 1,
                             "ros.distro": distro})
    sink = DdsSink(cfg.ros)
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
            if topic == "/avstream/heatmap/image":  # configured per topic
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
    reader = subprocess.Popen([sys.executable, "-c", READER, domain, repr(TOPICS), "60", str(tmp_path / "r.pkl"),
                               repr({"/avstream/heatmap/image": 30, "/diagnostics": 2})],
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


def _reader(tmp_path, domain, topics, mins, seconds=60, env=None):
    out = tmp_path / f"got{len(list(tmp_path.glob('got*')))}.pkl"
    e = dict(os.environ, PYTHONPATH=str(ROOT), ROS_DOMAIN_ID=domain, **(env or {}))
    reader = subprocess.Popen([sys.executable, "-c", READER, domain, repr(topics), str(seconds), str(out), repr(mins)],
                              env=e, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert reader.stdout.readline().strip() == "ready", reader.stderr.read()
    return reader, out


def _run(domain, *args, env=None):
    e = dict(os.environ, PYTHONPATH=str(ROOT), ROS_DOMAIN_ID=domain, **(env or {}))
    return subprocess.Popen([sys.executable, "-m", "avstream", "run", "--no-status", "--no-overlay", *map(str, args)],
                            env=e, cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _received(reader, out):
    """What the reader got; call it once every publisher has ended (it stops the reader then,
    rather than at its time limit)."""
    _, err = reader.communicate(input="stop\n", timeout=120)
    assert out.exists(), err[-2000:]
    return pickle.load(open(out, "rb"))["got"]


def test_two_namespaces_side_by_side(tmp_path):
    """Two arrays on one machine: the same command under two namespaces (``--ros-args -r
    __ns:=``, as ros2 launch passes it), one with a remap. A reader sees both heatmaps, the
    remapped topic, and diagnostics named after each node; the second ZeroMQ stream moves to the
    next free port instead of failing."""
    from avstream.sinks.ros_format import typestore

    domain = str(100 + (os.getpid() + 53) % 100)
    topics = {"/left/heatmap/image": "sensor_msgs/msg/Image", "/right/heatmap/image": "sensor_msgs/msg/Image",
              "/left/doa": "geometry_msgs/msg/PoseArray", "/right/sources": "geometry_msgs/msg/PoseArray",
              "/left/sources": "geometry_msgs/msg/PoseArray", "/diagnostics": "diagnostic_msgs/msg/DiagnosticArray"}
    mins = {"/left/heatmap/image": 10, "/right/heatmap/image": 10, "/left/doa": 10, "/right/sources": 10,
            "/diagnostics": 4}
    import socket

    with socket.socket() as probe:  # something else on the machine may hold the default port
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        default_free = probe.connect_ex(("127.0.0.1", 5556)) != 0
    reader, out = _reader(tmp_path, domain, topics, mins)
    runs = [_run(domain, "--duration", 4, "--array", "respeaker_usb_4mic", "--ros-args", "-r", f"__ns:=/{side}",
                 *(["-r", "sources:=doa"] if side == "left" else [])) for side in ("left", "right")]
    errs = [r.communicate(timeout=180)[1] for r in runs]
    assert [r.returncode for r in runs] == [0, 0], errs
    got = _received(reader, out)
    for t, n in mins.items():
        assert len(got[t]) >= n, (t, len(got[t]))
    assert not got["/left/sources"]  # remapped away
    ts = typestore("jazzy")
    names = {st.name for raw in got["/diagnostics"]
             for st in ts.deserialize_cdr(raw, "diagnostic_msgs/msg/DiagnosticArray").status}
    assert {"left/avstream: audio", "right/avstream: audio"} <= names, names
    endpoints = {line.split("ZeroMQ stream on ")[1].split()[0] for e in errs for line in e.splitlines()
                 if "ZeroMQ stream on" in line}
    assert len(endpoints) == 2 and ("tcp://127.0.0.1:5556" in endpoints or not default_free), errs
    assert any("is in use (another avstream?)" in e for e in errs)  # the second moved on, and said so
    assert any("is in use (another avstream?)" in e for e in errs)


def test_discovery_range_as_rmw(tmp_path):
    """ROS_AUTOMATIC_DISCOVERY_RANGE as rmw_cyclonedds applies it: a LOCALHOST publisher is
    found by a LOCALHOST reader on this machine; an OFF publisher by nobody."""
    domain = str(100 + (os.getpid() + 71) % 100)
    local = {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    topics = {"/on/sources": "geometry_msgs/msg/PoseArray", "/off/sources": "geometry_msgs/msg/PoseArray"}
    reader, out = _reader(tmp_path, domain, topics, {}, seconds=12, env=local)
    runs = [_run(domain, "--duration", 3, "--array", "respeaker_usb_4mic", "--no-zmq", "--ros-args", "-r",
                 f"__ns:=/{ns}", env={"ROS_AUTOMATIC_DISCOVERY_RANGE": rng})
            for ns, rng in (("on", "LOCALHOST"), ("off", "OFF"))]
    errs = [r.communicate(timeout=180)[1] for r in runs]
    assert [r.returncode for r in runs] == [0, 0], errs
    assert "discovery LOCALHOST" in errs[0] and "discovery OFF" in errs[1]
    got = _received(reader, out)
    assert len(got["/on/sources"]) >= 10 and got["/off/sources"] == []


def test_raw_audio_and_respeaker_topics(tmp_path):
    """A real ReSpeaker recording (loudspeaker at azimuth 180) played through the node with the
    respeaker_ros adapter: ``audio`` reassembles into the file's samples bit for bit, the latched
    ``audio_info`` describes them, and sound_direction / sound_localization point at the
    loudspeaker (is_speeching comes from the speech engine)."""
    import soundfile as sf

    from avstream.sinks.ros_format import typestore

    wav = ROOT / "tests/data/respeaker4_real/150cm/a180e19_3_1b845200.wav"
    array = tmp_path / "respeaker.yaml"
    from helpers import RESPEAKER_REAL_YAML

    array.write_text(RESPEAKER_REAL_YAML)
    domain = str(100 + (os.getpid() + 89) % 100)
    topics = {"/avstream/audio": "audio_common_msgs/msg/AudioDataStamped",
              "/avstream/audio_info": "audio_common_msgs/msg/AudioInfo",
              "/avstream/sound_direction": "std_msgs/msg/Int32",
              "/avstream/sound_localization": "geometry_msgs/msg/PoseStamped",
              "/avstream/is_speeching": "std_msgs/msg/Bool"}
    reader, out = _reader(tmp_path, domain, topics, {}, seconds=25)
    run = _run(domain, "--file", wav, "--duration", 0, "--array", array, "--no-zmq", "--no-camera", "--set",
               "ros.respeaker=true", "--speech", "on")
    _, err = run.communicate(timeout=180)
    assert run.returncode == 0, err
    got = _received(reader, out)
    ts = typestore("jazzy")
    info = ts.deserialize_cdr(got["/avstream/audio_info"][-1], "audio_common_msgs/msg/AudioInfo")
    assert (info.channels, info.sample_rate, info.sample_format, info.coding_format) == (4, 16000, "S16LE", "wave")
    msgs = [ts.deserialize_cdr(raw, "audio_common_msgs/msg/AudioDataStamped") for raw in got["/avstream/audio"]]
    msgs.sort(key=lambda m: (m.header.stamp.sec, m.header.stamp.nanosec))
    pcm = np.concatenate([np.frombuffer(m.audio.data.tobytes(), "<i2").reshape(-1, 4) for m in msgs])
    data, rate = sf.read(str(wav), dtype="int16")
    assert rate == 16000 and len(data) - 1024 < len(pcm) <= len(data)  # all but the tail after the last update
    assert np.array_equal(pcm, data[: len(pcm)])  # every sample once, in order, bit for bit
    # consecutive messages: each starts where the last ended (stamps are capture times on the live
    # sample clock, which follows the wall clock by a millisecond or two; an update is 64 ms)
    starts = [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in msgs]
    sizes = [len(m.audio.data) // 8 for m in msgs]
    gaps = [b - a - n / 16000 for a, b, n in zip(starts, starts[1:], sizes)]
    assert max(map(abs, gaps)) < 0.005, gaps
    dirs = [ts.deserialize_cdr(raw, "std_msgs/msg/Int32").data for raw in got["/avstream/sound_direction"]]
    poses = [ts.deserialize_cdr(raw, "geometry_msgs/msg/PoseStamped") for raw in got["/avstream/sound_localization"]]
    assert len(dirs) == len(poses) >= 20 and all(0 <= d < 360 for d in dirs)
    near = [abs((d - 180 + 180) % 360 - 180) <= 10 for d in dirs]
    assert np.mean(near) >= 0.8, dirs
    for d, p in zip(dirs, poses):  # the same source in both
        az = np.degrees(np.arctan2(p.pose.position.y, p.pose.position.x))
        assert abs((az - d + 180) % 360 - 180) <= 0.5 and p.header.frame_id == "mic_array"
    speech = [ts.deserialize_cdr(raw, "std_msgs/msg/Bool").data for raw in got["/avstream/is_speeching"]]
    assert len(speech) == len(dirs) and any(speech)


def test_discovery_range_from_the_environment(monkeypatch):
    """As rcl reads it: ROS_LOCALHOST_ONLY=1 wins, then ROS_AUTOMATIC_DISCOVERY_RANGE (unset:
    SUBNET; unknown: LOCALHOST); and the Cyclone configuration rmw_cyclonedds builds for each."""
    from avstream.sinks.dds_sink import discovery_config, discovery_range

    for env, want in [({}, "SUBNET"), ({"ROS_LOCALHOST_ONLY": "1"}, "LOCALHOST"),
                      ({"ROS_LOCALHOST_ONLY": "0", "ROS_AUTOMATIC_DISCOVERY_RANGE": "OFF"}, "OFF"),
                      ({"ROS_LOCALHOST_ONLY": "1", "ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET"}, "LOCALHOST"),
                      ({"ROS_AUTOMATIC_DISCOVERY_RANGE": "nearby"}, "LOCALHOST")]:
        monkeypatch.delenv("ROS_LOCALHOST_ONLY", raising=False)
        monkeypatch.delenv("ROS_AUTOMATIC_DISCOVERY_RANGE", raising=False)
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        assert discovery_range() == want, env
    assert discovery_config("SUBNET") is None and discovery_config("SYSTEM_DEFAULT", ["10.0.0.2"]) is None
    local = discovery_config("LOCALHOST", ["10.0.0.2"])
    assert "<AllowMulticast>false</AllowMulticast>" in local and '<Peer address="localhost"/>' in local
    assert '<Peer address="10.0.0.2"/>' in local
    off = discovery_config("OFF", ["10.0.0.2"], pid=42)
    assert "<Tag>ros_discovery_off_42</Tag>" in off and "Peer" not in off
    assert '<Peer address="10.0.0.2"/>' in discovery_config("SUBNET", ["10.0.0.2"])


def test_track_audio_on_dds(tmp_path):
    """Each track's beam goes out live too: source_audio/track_<id> (AudioDataStamped, S16LE mono,
    one update's new samples each, joining up in time) and the latched source_audio/audio_info,
    their writers made when the track appears."""
    from avstream.sinks.ros_format import typestore

    domain = str(100 + (os.getpid() + 97) % 100)
    topics = {"/avstream/source_audio/track_1": "audio_common_msgs/msg/AudioDataStamped",
              "/avstream/source_audio/track_2": "audio_common_msgs/msg/AudioDataStamped",
              "/avstream/source_audio/audio_info": "audio_common_msgs/msg/AudioInfo"}
    reader, out = _reader(tmp_path, domain, topics, {}, seconds=20)
    run = _run(domain, "--duration", 5, "--no-zmq", "--no-camera")
    _, err = run.communicate(timeout=180)
    assert run.returncode == 0, err
    got = _received(reader, out)
    ts = typestore("jazzy")
    info = ts.deserialize_cdr(got["/avstream/source_audio/audio_info"][-1], "audio_common_msgs/msg/AudioInfo")
    assert (info.channels, info.sample_rate, info.sample_format) == (1, 16000, "S16LE")
    msgs = [ts.deserialize_cdr(raw, "audio_common_msgs/msg/AudioDataStamped")
            for raw in got["/avstream/source_audio/track_1"]]
    assert len(msgs) >= 20, len(msgs)
    starts = [m.header.stamp.sec + 1e-9 * m.header.stamp.nanosec for m in msgs]
    sizes = [len(m.audio.data) // 2 for m in msgs]
    assert set(sizes) == {1024}  # 4 hops of 256 samples per update
    gaps = [b - a - 1024 / 16000 for a, b in zip(starts, starts[1:])]
    assert max(map(abs, gaps)) < 0.005, gaps
    pcm = np.concatenate([np.frombuffer(m.audio.data.tobytes(), "<i2") for m in msgs])
    assert np.abs(pcm).max() > 300  # a beam toward a source, not silence


def test_a_track_topic_is_taken_down_after_its_track(monkeypatch):
    """Each track's audio topic holds a DDS writer; a long run makes new track ids all the time
    (327 in the 30-minute soak), so a topic silent for TRACK_TOPIC_IDLE_S goes: without that the
    soak's memory grew 5.4 MB over 18,000 updates, with it 1.6 MB."""
    from helpers import Collect

    from avstream.config import load_config
    from avstream.pipeline import Pipeline
    from avstream.sinks import ros_transport
    from avstream.sinks.dds_sink import DdsSink

    monkeypatch.setattr(ros_transport, "TRACK_TOPIC_IDLE_S", 0.5)
    monkeypatch.setenv("ROS_DOMAIN_ID", str(100 + (os.getpid() + 91) % 100))
    cfg = load_config(None, {"duration": 60.0, "source.realtime": False, "zmq.endpoint": None,
                             "output.overlay": None, "ros.publish": False})
    dds = DdsSink(cfg.ros)
    made, alive = set(), []
    make = dds._make_writer
    monkeypatch.setattr(dds, "_make_writer", lambda q, topic, t: made.add(topic) or make(q, topic, t))

    class Count(Collect):  # after the DDS sink: its track writers alive after each update
        def write(self, heatmap):
            super().write(heatmap)
            alive.append(sum("/source_audio/track_" in t for t in dds._writers))

    keep = Count()
    Pipeline(cfg, [dds, keep]).run_sync()
    track_topics = {t for t in made if "/source_audio/track_" in t}
    ids = {tr.id for hm in keep.maps for tr in hm.tracks}
    assert len(track_topics) >= 5 and len(ids) >= len(track_topics)  # tracks came and went
    assert max(alive) < len(track_topics) / 2, (max(alive), len(track_topics))
    assert dds.failed == 0
