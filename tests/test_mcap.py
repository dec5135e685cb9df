"""MCAP recording, read back message for message by independent readers."""
import numpy as np
import pytest

from helpers import Collect, jsonl, run_cli

from avstream.config import load_config
from avstream.geometry.grids import to_unit
from avstream.pipeline import Pipeline
from avstream.sinks.mcap_sink import McapSink

mcap_ros2 = pytest.importorskip("mcap_ros2")


def record(tmp_path, grid="sphere:642", seconds=1.5):
    path = tmp_path / "rec.mcap"
    keep = Collect()
    cfg = load_config(None, {"duration": seconds, "localize.grid": grid, "localize.sources": 2})
    pipe = Pipeline(cfg, [keep, McapSink(path)])
    pipe.run_sync()
    return path, keep, pipe


def hdr(msg):
    """A decoded header as a comparable tuple."""
    return msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id


class Decoded:
    def __init__(self, channel, message, ros_msg):
        self.topic, self.log_time_ns, self.ros_msg = channel.topic, message.log_time, ros_msg


def by_topic(path):
    """Every message decoded by mcap-ros2-support (its own CDR decoder, not rosbags)."""
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    out: dict = {}
    with open(path, "rb") as fh:
        for _, channel, message, ros_msg in make_reader(fh, decoder_factories=[DecoderFactory()]).iter_decoded_messages():
            out.setdefault(channel.topic, []).append(Decoded(channel, message, ros_msg))
    return out


@pytest.mark.parametrize("grid", ["fov:90,70:64,48", "sphere:642"])
def test_mcap_reads_back_message_for_message(tmp_path, grid):
    path, keep, pipe = record(tmp_path, grid)
    topics = by_topic(path)
    audio = {t for t in topics if t.startswith("/avstream/source_audio/")}  # each track's audio: test_separate
    # no raw audio topic: 16 microphones are above ros.audio's "auto" limit
    assert set(topics) - audio == {"/avstream/heatmap/image", "/avstream/sources", "/avstream/sources_cloud",
                                   "/avstream/markers", "/diagnostics", "/avstream/overlay/image",
                                   "/avstream/overlay/camera_info", "/avstream/tracks", "/tf_static"}
    # tracks (vision_msgs/Detection3DArray): mcap-ros2-support decodes them from the schema the
    # file carries; the ids are the tracks' of the same update
    for hm, tr in zip(keep.maps, topics["/avstream/tracks"]):
        assert [d.id for d in tr.ros_msg.detections] == [str(t.id) for t in hm.tracks]
    assert any(tr.ros_msg.detections for tr in topics["/avstream/tracks"])
    images, poses = topics["/avstream/heatmap/image"], topics["/avstream/sources"]
    clouds = topics["/avstream/sources_cloud"]
    assert len(images) == len(poses) == len(clouds) == len(keep.maps) > 20
    assert 1 <= len(topics["/diagnostics"]) <= 3  # 1 Hz over 1.5 s
    # one status per device, named after the node (namespace/name), the devices' hardware ids
    diag = topics["/diagnostics"][0].ros_msg
    assert [s.name for s in diag.status] == ["avstream/avstream: audio", "avstream/avstream: camera",
                                             "avstream/avstream: publishing"]
    assert diag.status[0].hardware_id == keep.maps[0].status["device"] and diag.status[0].level == 0
    assert diag.status[1].hardware_id == "synthetic camera"
    # sources_cloud: x, y, z, intensity float32 per source, intensity = power (as odas_ros)
    for hm, cl in zip(keep.maps, clouds):
        m = cl.ros_msg
        assert [(f.name, f.offset, f.datatype, f.count) for f in m.fields] == [
            ("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 1), ("intensity", 12, 7, 1)]
        assert m.height == 1 and m.width == len(hm.peaks) and m.point_step == 16 and m.header.frame_id == "mic_array"
        pts = np.frombuffer(bytes(m.data), "<f4").reshape(-1, 4)
        for row, peak in zip(pts, hm.peaks):
            assert np.allclose(row[:3], to_unit(peak.azimuth_deg, peak.elevation_deg), atol=1e-6)
            assert row[3] == np.float32(peak.power)
    assert any(len(cl.ros_msg.fields) and cl.ros_msg.width for cl in clouds)
    from avstream.sinks.ros_format import RosFormatter

    fmt = RosFormatter(pipe.grid)
    for hm, im, po in zip(keep.maps, images, poses):
        msg = im.ros_msg
        assert msg.encoding == "32FC1" and msg.step == 4 * msg.width and msg.is_bigendian == 0
        assert msg.header.frame_id == "mic_array"
        assert im.log_time_ns == int(round(hm.stamp * 1e9))
        img = np.frombuffer(bytes(msg.data), dtype="<f4").reshape(msg.height, msg.width)
        assert np.array_equal(img, fmt.image_array(hm.values))
        if grid.startswith("fov"):
            assert (msg.height, msg.width) == (48, 64) and np.array_equal(img.ravel(), hm.values)
        assert len(po.ros_msg.poses) == len(hm.peaks)
        for pose, peak in zip(po.ros_msg.poses, hm.peaks):
            u = to_unit(peak.azimuth_deg, peak.elevation_deg)
            assert np.allclose([pose.position.x, pose.position.y, pose.position.z], u, atol=1e-9)
            q = np.array([pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w])
            # the pose's x axis, rotated by q, points at the source
            x, y, z, w = q
            xaxis = np.array([1 - 2 * (y * y + z * z), 2 * (x * y + w * z), 2 * (x * z - w * y)])
            assert np.allclose(xaxis, u, atol=1e-6)


def test_overlay_and_camera_info_topics(tmp_path):
    """With a camera, overlay/image (bgr8, the very overlay image) and its sibling
    overlay/camera_info (the camera's intrinsics) are recorded, both stamped with the frame's
    capture time in the camera optical frame, so image_transport and RViz pair them. A
    camera-grid heatmap is an image of the picture too: heatmap/image in the optical frame,
    beside heatmap/camera_info with the same header and binning = the block size."""
    path, keep, pipe = record(tmp_path, "camera:16", 1.0)
    topics = by_topic(path)
    heat, heat_infos = topics["/avstream/heatmap/image"], topics["/avstream/heatmap/camera_info"]
    assert len(heat) == len(heat_infos) == len(keep.maps)
    for hm, im, ci in zip(keep.maps, heat, heat_infos):
        assert hdr(im.ros_msg) == hdr(ci.ros_msg) and im.ros_msg.header.frame_id == "camera_optical"
        assert im.log_time_ns == int(round(hm.stamp * 1e9))  # the audio's capture time
        info = ci.ros_msg
        assert info.binning_x == info.binning_y == 16 and (info.width, info.height) == (640, 480)
        assert (im.ros_msg.width, im.ros_msg.height) == (640 // 16, 480 // 16)
        assert np.allclose(np.reshape(info.k, (3, 3)), pipe.camera.K)
    overlays, infos = topics["/avstream/overlay/image"], topics["/avstream/overlay/camera_info"]
    assert len(overlays) == len(infos) == len(keep.maps) > 10
    for hm, ov, ci in zip(keep.maps, overlays, infos):
        m = ov.ros_msg
        assert m.encoding == "bgr8" and (m.height, m.width) == (480, 640) and m.step == 3 * 640
        assert m.header.frame_id == "camera_optical" and ci.ros_msg.header.frame_id == "camera_optical"
        assert np.array_equal(np.frombuffer(bytes(m.data), np.uint8).reshape(480, 640, 3), hm.overlay)
        stamp = int(round(hm.frame.stamp * 1e9))
        assert ov.log_time_ns == ci.log_time_ns == stamp
        assert (m.header.stamp.sec * 10**9 + m.header.stamp.nanosec) == stamp
        assert hdr(ci.ros_msg) == hdr(m)
        info = ci.ros_msg
        assert info.distortion_model == "plumb_bob" and (info.width, info.height) == (640, 640 * 3 // 4)
        assert np.allclose(np.reshape(info.k, (3, 3)), pipe.camera.K) and np.allclose(info.d, pipe.camera.D)


def test_no_camera_no_camera_topics(tmp_path):
    path = tmp_path / "rec.mcap"
    cfg = load_config(None, {"duration": 0.5, "camera.source": "none"})
    Pipeline(cfg, [McapSink(path)]).run_sync()
    topics = {t for t in by_topic(path) if not t.startswith("/avstream/source_audio/")}  # track audio: test_separate
    assert topics == {"/avstream/heatmap/image", "/avstream/sources", "/avstream/sources_cloud", "/avstream/markers",
                      "/diagnostics", "/avstream/tracks"}


def test_mcap_cdr_decodes_with_rosbags(tmp_path):
    """Raw MCAP records, decoded by rosbags' type store: a second, independent decoder."""
    from mcap.reader import make_reader
    from rosbags.typesys import Stores, get_typestore

    path, keep, _ = record(tmp_path, "fov:60,40:32,24", 1.0)
    ts = get_typestore(Stores.ROS2_JAZZY)
    with open(path, "rb") as fh:
        reader = make_reader(fh)
        assert reader.get_header().profile == "ros2"
        n = 0
        for schema, channel, message in reader.iter_messages(topics=["/avstream/heatmap/image"]):
            assert schema.encoding == "ros2msg" and channel.message_encoding == "cdr"
            assert message.data[:4] == b"\x00\x01\x00\x00"  # plain CDR, little endian
            img = ts.deserialize_cdr(message.data, schema.name)
            assert np.array_equal(np.frombuffer(img.data.tobytes(), "<f4"), keep.maps[n].values)
            n += 1
    assert n == len(keep.maps)


def test_run_record_cli(tmp_path):
    """A live 1-s demo run records every update it ran (a loaded machine may skip some, which
    the summary counts: how many is not this test's business), stamped in UNIX time."""
    path = tmp_path / "demo.mcap"
    p = run_cli("run", "--duration", "1", "--record", path, "--jsonl", tmp_path / "o.jsonl", "--no-status",
                timeout=120)
    assert p.returncode == 0, p.stderr
    summary = jsonl((tmp_path / "o.jsonl").read_text())[-1]["summary"]
    topics = by_topic(path)
    assert len(topics["/avstream/heatmap/image"]) == summary["updates"] > 0, summary
    assert summary["updates"] + summary["skipped_updates"] >= 15, summary  # 1 s at 15.6 updates/s
    stamps = [m.log_time_ns for m in topics["/avstream/heatmap/image"]]
    assert stamps == sorted(stamps) and abs(stamps[0] / 1e9 - __import__("time").time()) < 120  # UNIX epoch


def test_no_serializer_is_generated_while_a_run_records(tmp_path):
    """rosbags generates a type's CDR code on its first use, about 0.2 s for our topics: paid on
    a live run's first update it put the run behind real time (updates skipped at the start of
    every recorded run). The typestore is made once per distro with every topic's code, so
    writing a recording with tracks, per-track audio and the overlay generates none."""
    from avstream.sinks.ros_format import typestore

    ts = typestore("jazzy")
    assert typestore("jazzy") is ts  # one per process: the ROS sinks of a run share its code
    before = set(ts.cache)
    path, keep, _ = record(tmp_path, seconds=2.0)
    topics = by_topic(path)
    assert any("source_audio/track_" in t for t in topics) and "/avstream/overlay/image" in topics, sorted(topics)
    assert set(ts.cache) == before


def test_recording_split_by_size(tmp_path):
    """--record-split-mb: rec_0.mcap, rec_1.mcap, ... each a whole file (its own /tf_static
    first), together every update once and in order, each but the last past the size."""
    keep = Collect()
    cfg = load_config(None, {"duration": 6.0, "source.realtime": False, "zmq.endpoint": None, "ros.publish": False,
                             "output.overlay": None})
    sink = McapSink(tmp_path / "rec.mcap", cfg.ros, split_bytes=1_000_000)
    Pipeline(cfg, [keep, sink]).run_sync()
    files = [tmp_path / f"rec_{k}.mcap" for k in range(len(sink.files))]
    assert [str(f) for f in files] == sink.files and len(files) >= 3 and not (tmp_path / "rec.mcap").exists()
    assert sorted(tmp_path.glob("rec_*.mcap")) == sorted(files)
    stamps = []
    for f in files:
        topics = by_topic(f)
        assert len(topics["/tf_static"]) == 1  # latched: again in every file
        stamps += [m.log_time_ns for m in topics["/avstream/heatmap/image"]]
    assert all(f.stat().st_size >= 1_000_000 for f in files[:-1])
    assert len(stamps) == len(keep.maps) and stamps == sorted(stamps) and len(set(stamps)) == len(stamps)


@pytest.mark.parametrize("target,needle", [("nodir/x.mcap", "cannot write"), ("x.bag", "output.record")])
def test_record_bad_paths(tmp_path, target, needle):
    p = run_cli("run", "--duration", "1", "--record", tmp_path / target, "--no-status")
    assert p.returncode == 2 and "Traceback" not in p.stderr and needle in p.stderr, p.stderr


def test_parent_frame_and_camera_in_tf_static(tmp_path):
    """ros.parent_frame_id adds parent -> mic_array (from ros.parent_xyz and ros.parent_rpy_deg)
    to the one /tf_static message, beside mic_array -> camera_optical."""
    from scipy.spatial.transform import Rotation

    path = tmp_path / "tf.mcap"
    cfg = load_config(None, {"duration": 0.3, "ros.parent_frame_id": "base_link", "ros.parent_xyz": [0.1, 0.0, 0.5],
                             "ros.parent_rpy_deg": [0.0, 0.0, 90.0]})
    Pipeline(cfg, [McapSink(path, cfg.ros)]).run_sync()
    (msg,) = by_topic(path)["/tf_static"]
    first, second = msg.ros_msg.transforms
    assert (first.header.frame_id, first.child_frame_id) == ("base_link", "mic_array")
    assert (second.header.frame_id, second.child_frame_id) == ("mic_array", "camera_optical")
    t, q = first.transform.translation, first.transform.rotation
    assert np.allclose([t.x, t.y, t.z], [0.1, 0.0, 0.5])
    # the array's x axis points along the parent's y axis (yaw 90 degrees)
    assert np.allclose(Rotation.from_quat([q.x, q.y, q.z, q.w]).apply([1.0, 0.0, 0.0]), [0.0, 1.0, 0.0], atol=1e-9)
