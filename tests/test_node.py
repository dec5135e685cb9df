"""The running node: live parameter changes and a stalled device, through the pipeline's own
synchronous core and threaded runner (the ROS parameter callback and /diagnostics sit on these)."""
import threading

import numpy as np
import pytest

from helpers import Collect

from avstream.capture.base import AudioSource
from avstream.config import load_config
from avstream.errors import ConfigError, InputError
from avstream.frames import AudioBlock
from avstream.pipeline import Pipeline


def _blocks(pipe, seconds, start=0):
    src = pipe.source
    src.start()
    out, index = [], start
    while index < start + seconds * pipe.sample_rate:
        data = src.read()
        out += pipe.process_block(AudioBlock(data, index, index / pipe.sample_rate, 0))
        index += data.shape[1]
    return out, index


def test_live_change_takes_effect_between_blocks_and_refuses_restart_keys():
    """localize.* keys change while running (the ROS node's parameter callback calls this); keys
    that need a restart, and values the configuration refuses, fail and change nothing."""
    pipe = Pipeline(load_config(None, {"localize.sources": 3, "camera.source": "none", "track.enabled": False}))
    before, index = _blocks(pipe, 1.5)
    assert max(len(hm.peaks) for hm in before) >= 2  # the demo's talker and noise source
    with pytest.raises(ConfigError, match="localize.grid: read-only"):
        pipe.reconfigure({"localize.grid": "sphere:642"})
    with pytest.raises(ConfigError, match="Nyquist"):
        pipe.reconfigure({"localize.band": [9000.0, 9500.0]})
    with pytest.raises(ConfigError, match="localize.sources"):
        pipe.reconfigure({"localize.sources": 65})
    assert pipe.cfg.localize.sources == 3 and pipe._pending is None
    cfg = pipe.reconfigure({"localize.sources": 1, "localize.method": "mvdr"})
    assert cfg.localize.sources == 1 and pipe.method != "mvdr"  # not yet: between two blocks
    after, _ = _blocks(pipe, 1.5, index)
    assert pipe.method == "mvdr" and pipe.cfg.localize.sources == 1
    assert max(len(hm.peaks) for hm in after) == 1 and sum(len(hm.peaks) for hm in after) > 10


class Hangs(AudioSource):
    """A pull source that delivers half a second of noise and then never returns (a device that
    stalled without closing; it cannot reopen itself, so the run ends)."""

    sample_rate, n_channels, realtime = 16000, 6, True

    def __init__(self):
        self.sent = 0
        self.release = threading.Event()

    def describe(self):
        return "hw:2,0 (stalls)"

    def start(self):
        pass

    def stop(self):
        self.release.set()

    def read(self):
        if self.sent >= 8000:
            self.release.wait(30)
            return None
        self.sent += 256
        return np.random.default_rng(self.sent).standard_normal((6, 256)).astype(np.float32) * 0.05


class Stalls(Collect):
    def __init__(self):
        super().__init__()
        self.stalls = []

    def stalled(self, seconds):
        self.stalls.append(seconds)


def test_stalled_device_is_an_error_on_diagnostics_then_stops_the_run():
    from avstream.sinks.ros_format import DIAGNOSTIC_ARRAY, RosFormatter

    sink = Stalls()
    pipe = Pipeline(load_config(None, {"array": "respeaker_usb_4mic", "camera.source": "none", "duration": None}),
                    [sink], source=Hangs())
    with pytest.raises(InputError, match="delivered nothing"):
        pipe.run()
    assert len(sink.maps) >= 5 and len(sink.stalls) >= 3  # told about once a second
    assert sink.stalls == sorted(sink.stalls) and 1.0 <= sink.stalls[0] < 2.0
    # what the ROS sinks publish then: the audio status at ERROR, naming the device
    fmt = RosFormatter(pipe.grid)
    msg = fmt.stalled(sink.stalls[-1], 10**18, "hw:2,0 (stalls)")
    status = fmt.ts.deserialize_cdr(msg.cdr, DIAGNOSTIC_ARRAY).status[0]
    assert msg.topic == "/diagnostics" and status.level == 2 and status.name == "avstream/avstream: audio"
    assert status.hardware_id == "hw:2,0 (stalls)" and "stalled" in status.message


def test_rclpy_parameter_change_takes_effect(tmp_path):
    """On a ROS 2 machine: the node's live parameter (localize.sources) set through rclpy's
    parameter service takes effect, and a read-only one (localize.grid) is refused."""
    rclpy = pytest.importorskip("rclpy", reason="rclpy is not installable here (not on PyPI, no ROS 2 for "
                                                "Debian 12); runs on a ROS 2 machine")
    import subprocess
    import sys
    import time

    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter

    from helpers import ROOT

    node_proc = subprocess.Popen([sys.executable, "-m", "avstream.ros_node", "--ros-args", "-r", "__ns:=/ptest",
                                  "-p", "camera.source:=none", "-p", "zmq.endpoint:="], cwd=str(ROOT))
    rclpy.init()
    client_node = rclpy.create_node("avstream_param_test")
    try:
        cli = client_node.create_client(SetParameters, "/ptest/avstream/set_parameters")
        assert cli.wait_for_service(timeout_sec=60)
        for name, value, ok in [("localize.sources", 1, True), ("localize.grid", "sphere:642", False)]:
            req = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()])
            fut = cli.call_async(req)
            rclpy.spin_until_future_complete(client_node, fut, timeout_sec=30)
            assert fut.result().results[0].successful is ok, (name, fut.result())
        time.sleep(1.0)
    finally:
        node_proc.terminate()
        node_proc.wait(timeout=30)
        client_node.destroy_node()
        rclpy.shutdown()
