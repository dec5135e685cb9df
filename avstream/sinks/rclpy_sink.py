"""ROS 2 topics through rclpy, when it is importable (a ROS 2 machine).

Thin on purpose: the messages are RosFormatter's CDR bytes, handed to rclpy's
``Publisher.publish(bytes)`` (serialized publish), so both ROS backends send identical bytes.
rclpy cannot be installed on the development machines (not on PyPI, no ROS 2 for Debian 12):
this path is not exercised by the test suite.
"""
from __future__ import annotations

import importlib
import logging

from .base import Sink
from .ros_format import RosFormatter

log = logging.getLogger(__name__)


def _msg_class(typename):
    pkg, kind, name = typename.split("/")
    return getattr(importlib.import_module(f"{pkg}.{kind}"), name)


class RclpySink(Sink):
    def __init__(self, node, namespace="/avstream", frame_id="mic_array", distro="jazzy", qos=None):
        self.node, self.namespace, self.frame_id, self.distro = node, namespace, frame_id, distro
        self.qos = qos
        self._pubs: dict = {}

    def open(self, meta):
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

        self.fmt = RosFormatter.for_run(meta, self.namespace, self.frame_id, self.distro)
        for kind, (topic, typename) in self.fmt.topic_types().items():
            q = getattr(self.qos, kind) if self.qos is not None else None
            profile = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=q.depth if q else 5,
                                 durability=DurabilityPolicy.VOLATILE,
                                 reliability=ReliabilityPolicy.BEST_EFFORT if q and q.reliability == "best_effort"
                                 else ReliabilityPolicy.RELIABLE)
            try:
                cls = _msg_class(typename)
            except ImportError:
                log.warning("%s: %s is not installed (e.g. ros-<distro>-vision-msgs); topic not published", topic,
                            typename.split("/")[0])
                continue
            self._pubs[topic] = self.node.create_publisher(cls, topic, profile)
        static = self.fmt.static_transform(self.node.get_clock().now().nanoseconds)
        if static is not None:  # latched for late joiners, as tf2_ros.StaticTransformBroadcaster does
            latched = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                                 reliability=ReliabilityPolicy.RELIABLE)
            self._pubs[static.topic] = self.node.create_publisher(_msg_class(static.typename), static.topic, latched)
            self._pubs[static.topic].publish(static.cdr)

    def write(self, heatmap):
        for m in self.fmt.messages(heatmap):
            if m.topic in self._pubs:
                self._pubs[m.topic].publish(m.cdr)

    def close(self, summary):
        for p in self._pubs.values():
            self.node.destroy_publisher(p)
        self._pubs.clear()
