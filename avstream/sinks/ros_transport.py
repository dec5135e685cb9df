"""What the four ROS 2 transports (DDS, rclpy, MCAP, Foxglove) share: the configuration they
read, the formatter they open, and the messages of an update. Each adds only how bytes travel."""
from __future__ import annotations

import time

from .base import Sink
from .ros_format import RosFormatter

# a track's audio topic (source_audio/track_<id>) is taken down this long after its last
# message: a long run makes new track ids all the time, and each live topic holds a writer
TRACK_TOPIC_IDLE_S = 10.0


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
        self._track_topics: dict = {}  # per-track topic -> monotonic time of its last message

    def open(self, meta):
        self.fmt = RosFormatter.for_run(meta, self.ros, self.names)

    def update_messages(self, heatmap) -> list:
        """Every message of one update: the topics, then each track's audio when taken."""
        if heatmap.status:
            self._device = str(heatmap.status.get("device", ""))
        msgs = self.fmt.messages(heatmap)
        if self.takes_source_audio:
            tracks = self.fmt.source_audio(heatmap)
            now = time.monotonic()
            for m in tracks:
                self._track_topics[m.topic] = now
            msgs += tracks
            # topics silent for TRACK_TOPIC_IDLE_S: their tracks ended (one that comes back is made again)
            for topic in [t for t, last in self._track_topics.items() if now - last > TRACK_TOPIC_IDLE_S]:
                del self._track_topics[topic]
                self._drop_topic(topic)
        return msgs

    def _drop_topic(self, topic) -> None:
        """Take down a per-track topic whose track ended (a writer, publisher or channel); the
        transports that hold one per topic override this."""
