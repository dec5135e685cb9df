"""What the four ROS 2 transports (DDS, rclpy, MCAP, Foxglove) share: the configuration they
read, the formatter they open, and the messages of an update. Each adds only how bytes travel."""
from __future__ import annotations

from .base import Sink
from .ros_format import RosFormatter


class RosTransport(Sink):
    """Base of the sinks that carry RosFormatter's messages.

    Parameters
    ----------
    ros : RosConfig or None
        Names, frames, distro, QoS and the optional topics (audio, per-track audio, respeaker).
    names : RosNames or None
        Default: from ``ros`` (rclpy gives the node's own).
    """

    def __init__(self, ros=None, names=None):
        from ..config import RosConfig
        from .ros_names import RosNames

        self.ros = ros if ros is not None else RosConfig()
        self.names = names if names is not None else RosNames.from_config(self.ros)
        self.takes_audio = self.ros.audio != "off"
        self.takes_source_audio = self.ros.source_audio
        self._device = ""  # the audio device's name, for the diagnostics sent while it stalls

    def open(self, meta):
        self.fmt = RosFormatter.for_run(meta, self.ros, self.names)

    def update_messages(self, heatmap) -> list:
        """Every message of one update: the topics, then each track's audio when taken."""
        if heatmap.status:
            self._device = str(heatmap.status.get("device", ""))
        msgs = self.fmt.messages(heatmap)
        if self.takes_source_audio:
            msgs += self.fmt.source_audio(heatmap)
        return msgs
