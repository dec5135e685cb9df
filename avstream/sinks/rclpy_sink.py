"""ROS 2 topics through rclpy, when it is importable (a ROS 2 machine).

Thin on purpose: the messages are RosFormatter's CDR bytes, handed to rclpy's
``Publisher.publish(bytes)`` (serialized publish), so both ROS backends send identical bytes.
rclpy cannot be installed on the development machines (not on PyPI, no ROS 2 for Debian 12):
this path is not exercised by the test suite.
"""
from __future__ import annotations

import importlib
import logging

from .ros_names import RosNames
from .ros_transport import RosTransport

log = logging.getLogger(__name__)


def _msg_class(typename):
    pkg, kind, name = typename.split("/")
    return getattr(importlib.import_module(f"{pkg}.{kind}"), name)


class RclpySink(RosTransport):
    """The topics through rclpy: publishers take the relative names, so rclpy applies the node's
    namespace, remaps and QoS overrides (``qos_overrides.<topic>.publisher.*`` parameters)."""

    def __init__(self, node, ros=None):
        # the node's own namespace and name (ros2 run/launch set them); remaps are rclpy's to apply
        super().__init__(ros, RosNames(node.get_namespace(), node.get_name()))
        self.node = node
        self._pubs: dict = {}
        self.failed = 0

    def open(self, meta):
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
        from rclpy.qos_overriding_options import QoSOverridingOptions

        super().open(meta)
        for kind, (topic, typename, qos_key) in self.fmt.topic_types().items():
            self._make_publisher(topic, typename, qos_key)
        for m in self.fmt.latched(self.node.get_clock().now().nanoseconds):
            self._publish(m)

    def _make_publisher(self, topic, typename, qos_key):
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
        from rclpy.qos_overriding_options import QoSOverridingOptions

        q = getattr(self.ros.qos, qos_key) if qos_key else None
        if q is None:  # latched, as tf2_ros.StaticTransformBroadcaster does
            profile = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                                 durability=DurabilityPolicy.TRANSIENT_LOCAL, reliability=ReliabilityPolicy.RELIABLE)
        else:
            profile = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=q.depth, durability=DurabilityPolicy.VOLATILE,
                                 reliability=ReliabilityPolicy.BEST_EFFORT if q.reliability == "best_effort"
                                 else ReliabilityPolicy.RELIABLE)
        try:
            cls = _msg_class(typename)
        except ImportError:
            log.warning("%s: %s is not installed (e.g. ros-<distro>-vision-msgs); topic not published", topic,
                        typename.split("/")[0])
            self._pubs[topic] = None
            return
        self._pubs[topic] = self.node.create_publisher(
            cls, self.names.relative(topic), profile,
            qos_overriding_options=QoSOverridingOptions.with_default_policies() if q is not None else None)

    def write(self, heatmap):
        for m in self.update_messages(heatmap):
            self._publish(m)

    def _drop_topic(self, topic):
        pub = self._pubs.pop(topic, None)
        if pub is not None:
            self.node.destroy_publisher(pub)

    def stalled(self, seconds):
        self._publish(self.fmt.stalled(seconds, self.node.get_clock().now().nanoseconds, self._device))

    def _publish(self, m):
        if m.topic not in self._pubs:  # a track's audio: its topic appears with the track
            self._make_publisher(m.topic, m.typename, self.fmt.qos_key_of(m.typename))
        pub = self._pubs[m.topic]
        if pub is None:
            return
        try:
            pub.publish(m.cdr)
        except Exception as exc:  # counted in diagnostics, logged once per kind of failure
            self.failed += 1
            self.fmt.failed_writes = self.failed
            log.debug("publishing %s failed: %s", m.topic, exc)

    def close(self, summary):
        for p in self._pubs.values():
            if p is not None:
                self.node.destroy_publisher(p)
        self._pubs.clear()
