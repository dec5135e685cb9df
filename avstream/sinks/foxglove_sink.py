"""The ROS 2 topics live to the Foxglove app, over the Foxglove WebSocket protocol.

Transport only, as the MCAP and DDS sinks: the topic names, ``ros2msg`` schemas and CDR bytes
come from RosFormatter, so Foxglove's panels decode a live run as they decode its recording.
The server is foxglove-sdk's (``pip install 'avstream[dashboard]'``). The protocol has no
authentication: the server binds to loopback unless told otherwise. Foxglove has no latched
topics, so ``/tf_static`` and ``audio_info`` are sent again once a second for viewers that
connect late.
"""
from __future__ import annotations

import time

from ..errors import ConfigError
from .ros_format import DIAGNOSTICS_PERIOD_S
from .ros_transport import RosTransport

BACKLOG = 64  # messages queued per client before the oldest are dropped: a slow viewer never slows the run


class FoxgloveSink(RosTransport):
    """Serves every topic RosFormatter makes (and each track's audio) on ``host:port``."""

    def __init__(self, port=8765, host="127.0.0.1", ros=None):
        try:
            import foxglove
        except ImportError:
            raise ConfigError("--foxglove needs foxglove-sdk: pip install 'avstream[dashboard]'") from None
        super().__init__(ros)
        self._fg = foxglove
        self.context = foxglove.Context()  # this sink's channels only, not the process-wide default
        try:
            self.server = foxglove.start_server(name="avstream", host=host, port=int(port), context=self.context,
                                                message_backlog_size=BACKLOG)
        except Exception as exc:  # noqa: BLE001 - the SDK raises its own error types
            raise ConfigError(f"--foxglove {host}:{port}: cannot serve ({exc})") from None
        self.host, self.port = host, self.server.port
        self._channels: dict = {}
        self._latched: list = []
        self._last_latched = 0.0

    def _channel(self, topic, typename):
        if topic not in self._channels:
            schema = self._fg.Schema(name=typename, encoding="ros2msg", data=self.fmt.msgdef(typename).encode())
            self._channels[topic] = self._fg.Channel(topic, schema=schema, message_encoding="cdr",
                                                     context=self.context)
        return self._channels[topic]

    def open(self, meta):
        super().open(meta)
        for kind, (topic, typename, _) in self.fmt.topic_types().items():  # advertised before the first update
            self._channel(topic, typename)
        self._latched = self.fmt.latched(time.time_ns())
        self._send_latched()

    def _send_latched(self):
        self._last_latched = time.monotonic()
        for m in self._latched:
            self._channel(m.topic, m.typename).log(m.cdr, log_time=m.stamp_ns)

    def write(self, heatmap):
        for m in self.update_messages(heatmap):
            self._channel(m.topic, m.typename).log(m.cdr, log_time=m.stamp_ns)
        if time.monotonic() - self._last_latched >= DIAGNOSTICS_PERIOD_S:
            self._send_latched()

    def _drop_topic(self, topic):
        ch = self._channels.pop(topic, None)  # unadvertised: the app's topic list stays current
        if ch is not None:
            ch.close()

    def close(self, summary):
        for ch in self._channels.values():
            ch.close()
        self.server.stop()
