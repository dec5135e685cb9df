"""MCAP recording, read back message for message by independent readers."""
import numpy as np
import pytest

from helpers import Collect, run_cli

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
    audio = {t for t in topics if t.startswith("/avstream/audio/")}  # each track's audio: test_separate
    assert set(topics) - audio == {"/avstream/heatmap", "/avstream/sources", "/avstream/markers", "/diagnostics",
                                   "/avstream/overlay", "/avstream/camera_info", "/avstream/tracks", "/tf_static"}
    # tracks (vision_msgs/Detection3DArray): mcap-ros2-support decodes them from the schema the
    # file carries; the ids are the tracks' of the same update
    for hm, tr in zip(keep.maps, topics["/avstream/tracks"]):
        assert [d.id for d in tr.ros_msg.detections] == [str(t.id) for t in hm.tracks]
    assert any(tr.ros_msg.detections for tr in topics["/avstream/tracks"])
    images, poses = topics["/avstream/heatmap"], topics["/avstream/sources"]
    assert len(images) == len(poses) == len(keep.maps) > 20
    assert 1 <= len(topics["/diagnostics"]) <= 3  # 1 Hz over 1.5 s
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
    """With a camera, /avstream/overlay (bgr8, the very overlay image) and /avstream/camera_info
    (the camera's intrinsics) are recorded, both stamped with the frame's capture time in the
    camera optical frame, so image_transport and RViz pair them."""
    path, keep, pipe = record(tmp_path, "camera:16", 1.0)
    topics = by_topic(path)
    overlays, infos = topics["/avstream/overlay"], topics["/avstream/camera_info"]
    assert len(overlays) == len(infos) == len(keep.maps) > 10
    for hm, ov, ci in zip(keep.maps, overlays, infos):
        m = ov.ros_msg
        assert m.encoding == "bgr8" and (m.height, m.width) == (480, 640) and m.step == 3 * 640
        assert m.header.frame_id == "camera_optical" and ci.ros_msg.header.frame_id == "camera_optical"
        assert np.array_equal(np.frombuffer(bytes(m.data), np.uint8).reshape(480, 640, 3), hm.overlay)
        stamp = int(round(hm.frame.stamp * 1e9))
        assert ov.log_time_ns == ci.log_time_ns == stamp
        assert (m.header.stamp.sec * 10**9 + m.header.stamp.nanosec) == stamp
        info = ci.ros_msg
        assert info.distortion_model == "plumb_bob" and (info.width, info.height) == (640, 640 * 3 // 4)
        assert np.allclose(np.reshape(info.k, (3, 3)), pipe.camera.K) and np.allclose(info.d, pipe.camera.D)


def test_no_camera_no_camera_topics(tmp_path):
    path = tmp_path / "rec.mcap"
    cfg = load_config(None, {"duration": 0.5, "camera.source": "none"})
    Pipeline(cfg, [McapSink(path)]).run_sync()
    topics = {t for t in by_topic(path) if not t.startswith("/avstream/audio/")}  # track audio: test_separate
    assert topics == {"/avstream/heatmap", "/avstream/sources", "/avstream/markers", "/diagnostics", "/avstream/tracks"}


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
        for schema, channel, message in reader.iter_messages(topics=["/avstream/heatmap"]):
            assert schema.encoding == "ros2msg" and channel.message_encoding == "cdr"
            assert message.data[:4] == b"\x00\x01\x00\x00"  # plain CDR, little endian
            img = ts.deserialize_cdr(message.data, schema.name)
            assert np.array_equal(np.frombuffer(img.data.tobytes(), "<f4"), keep.maps[n].values)
            n += 1
    assert n == len(keep.maps)


def test_run_record_cli(tmp_path):
    path = tmp_path / "demo.mcap"
    p = run_cli("run", "--duration", "1", "--record", path, "--no-status", timeout=120)
    assert p.returncode == 0, p.stderr
    topics = by_topic(path)
    assert len(topics["/avstream/heatmap"]) >= 14
    stamps = [m.log_time_ns for m in topics["/avstream/heatmap"]]
    assert stamps == sorted(stamps) and abs(stamps[0] / 1e9 - __import__("time").time()) < 120  # UNIX epoch


@pytest.mark.parametrize("target,needle", [("nodir/x.mcap", "cannot write"), ("x.bag", "output.record")])
def test_record_bad_paths(tmp_path, target, needle):
    p = run_cli("run", "--duration", "1", "--record", tmp_path / target, "--no-status")
    assert p.returncode == 2 and "Traceback" not in p.stderr and needle in p.stderr, p.stderr
