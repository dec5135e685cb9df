"""Recording: every published topic into an MCAP file that ``ros2 bag play`` and Foxglove open.

Transport only: the messages and their CDR bytes come from RosFormatter, the very bytes the
DDS sink publishes. Schemas are ``ros2msg`` text, messages ``cdr``.
"""
from __future__ import annotations

import time

from .ros_transport import RosTransport



class McapSink(RosTransport):
    """Writes every topic the DDS path publishes (same names, same bytes) and, with tracking,
    each track's audio (``source_audio/track_<id>``) to ``path``."""

    def __init__(self, path, ros=None):
        super().__init__(ros)
        self.path = str(path)
        self._fh = None
        self._writer = None
        self._channels: dict = {}
        self.n_messages = 0

    def open(self, meta):
        from mcap.writer import Writer

        super().open(meta)
        try:
            self._fh = open(self.path, "wb")
        except OSError as exc:
            from ..errors import ConfigError

            raise ConfigError(f"--record {self.path}: cannot write ({exc.strerror})") from None
        self._writer = Writer(self._fh)
        self._writer.start(profile="ros2", library="avstream")
        for m in self.fmt.latched(time.time_ns()):  # once, at the start: players and Foxglove latch them
            self._writer.add_message(channel_id=self._channel(m.topic, m.typename), log_time=m.stamp_ns,
                                     publish_time=m.stamp_ns, data=m.cdr)
            self.n_messages += 1

    def _channel(self, topic, typename):
        if topic not in self._channels:
            schema = self._writer.register_schema(name=typename, encoding="ros2msg",
                                                  data=self.fmt.msgdef(typename).encode())
            self._channels[topic] = self._writer.register_channel(topic=topic, message_encoding="cdr",
                                                                  schema_id=schema)
        return self._channels[topic]

    def write(self, heatmap):
        now = time.time_ns()
        for m in self.update_messages(heatmap):
            self._writer.add_message(channel_id=self._channel(m.topic, m.typename), log_time=m.stamp_ns,
                                     publish_time=now, data=m.cdr, sequence=heatmap.seq)
            self.n_messages += 1

    def close(self, summary):
        if self._writer is not None:
            self._writer.finish()
            self._fh.close()
            self._writer = None
