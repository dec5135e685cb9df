"""ROS 2 topics straight on DDS with cyclonedds, for machines without rclpy.

What ``ros2 topic echo`` expects on the wire (docs FACTS section 1): DDS topic ``rt<name>``, type
``pkg::msg::dds_::Type_``, plain CDR, ``typehash=RIHS01_...;`` in the writer's USER_DATA (Iron
and later), ``enclave=/;`` in the participant's, domain ``ROS_DOMAIN_ID``. The bytes come from
RosFormatter (rosbags) and go out through cyclonedds' own write call, skipping its per-element
Python serialization (44 ms for a 640x480 float image; this path well under 1 ms).
"""
from __future__ import annotations

import logging
import os
import time

from ..errors import ConfigError
from .dds_types import IdlTypes
from .ros_transport import RosTransport

log = logging.getLogger(__name__)
RANGES = ("OFF", "LOCALHOST", "SUBNET", "SYSTEM_DEFAULT")


def domain_id() -> int:
    raw = os.environ.get("ROS_DOMAIN_ID", "0") or "0"
    try:
        d = int(raw)
    except ValueError:
        raise ConfigError(f"ROS_DOMAIN_ID={raw!r}: not an integer") from None
    if not 0 <= d <= 232:
        raise ConfigError(f"ROS_DOMAIN_ID={d}: must be within 0..232")
    return d


def discovery_range() -> str:
    """The discovery range rcl would use: ``ROS_LOCALHOST_ONLY=1`` (Humble; still honoured by
    Jazzy) wins, then ``ROS_AUTOMATIC_DISCOVERY_RANGE`` (Iron and later; unset = SUBNET, an
    unknown value = LOCALHOST with a warning, as rcl does)."""
    if os.environ.get("ROS_LOCALHOST_ONLY", "") == "1":
        return "LOCALHOST"
    raw = os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE", "")
    if raw == "":
        return "SUBNET"
    if raw not in RANGES:
        log.warning("ROS_AUTOMATIC_DISCOVERY_RANGE=%s: not one of %s; assuming LOCALHOST (as rcl does)", raw,
                    ", ".join(RANGES))
        return "LOCALHOST"
    return raw


def discovery_config(rng: str, peers=(), pid=None) -> str | None:
    """The Cyclone DDS configuration rmw_cyclonedds builds for a discovery range (None: Cyclone's
    own defaults). LOCALHOST: no multicast, localhost and ``ROS_STATIC_PEERS`` as unicast peers;
    OFF: no multicast and a domain tag nobody else has; SUBNET: the static peers, if any."""
    localhost = rng == "LOCALHOST"
    static = list(peers) if rng in ("LOCALHOST", "SUBNET") else []
    no_multicast = rng in ("LOCALHOST", "OFF")
    if not (localhost or static or no_multicast):
        return None
    xml = "<CycloneDDS><Domain>"
    if no_multicast:
        xml += "<General><AllowMulticast>false</AllowMulticast></General>"
    if rng == "OFF":
        xml += f"<Discovery><ParticipantIndex>none</ParticipantIndex><Tag>ros_discovery_off_{pid or os.getpid()}</Tag>"
    else:
        xml += "<Discovery><ParticipantIndex>auto</ParticipantIndex><MaxAutoParticipantIndex>32</MaxAutoParticipantIndex>"
    if localhost or static:
        xml += "<Peers>" + ('<Peer address="localhost"/>' if localhost else "") + "".join(
            f'<Peer address="{p}"/>' for p in static) + "</Peers>"
    return xml + "</Discovery></Domain></CycloneDDS>"


class DdsSink(RosTransport):
    """Publishes every topic of RosFormatter (heatmap, sources, markers, tracks, audio, 1 Hz
    diagnostics, ...) as ROS 2 topics on DDS, under the node's namespace with its remaps.

    Parameters
    ----------
    ros : RosConfig
        Names, frames, distro, per-topic QoS (default RELIABLE, KEEP_LAST 5: RViz and
        best-effort subscribers both match), audio and the respeaker topics.
    """

    def __init__(self, ros=None):
        from cyclonedds.core import DDSException, Policy, Qos
        from cyclonedds.domain import Domain, DomainParticipant

        super().__init__(ros)
        self.domain = domain_id()
        self.range = discovery_range()
        peers = [p for p in os.environ.get("ROS_STATIC_PEERS", "").split(";") if p.strip()]
        config = discovery_config(self.range, peers)
        try:
            if config is not None:  # as rmw_cyclonedds: its fragment first, then CYCLONEDDS_URI's
                uri = os.environ.get("CYCLONEDDS_URI", "")
                self._domain = Domain(self.domain, config + ("," + uri if uri else ""))
            self.participant = DomainParticipant(self.domain, qos=Qos(Policy.Userdata(data=b"enclave=/;")))
        except DDSException as exc:
            raise ConfigError(f"DDS domain {self.domain}: cannot create a participant ({exc})") from None
        self._writers: dict = {}
        self.sent = self.failed = 0

    def open(self, meta):
        super().open(meta)
        self.idl = IdlTypes(self.fmt.ts)
        for kind, (topic, typename, qos_key) in self.fmt.topic_types().items():  # discovery before the first update
            self._writers[topic] = self._make_writer(qos_key, topic, typename)
        for m in self.fmt.latched(time.time_ns()):  # once, kept for late joiners (transient local)
            self._send(m)
        log.info("ROS 2 node %s on DDS domain %d (%s types, discovery %s): %s", self.names.fully_qualified,
                 self.domain, self.ros.distro, self.range, ", ".join(sorted(self._writers)))

    def _make_writer(self, qos_key, topic, typename):
        from cyclonedds.core import Policy, Qos
        from cyclonedds.pub import DataWriter
        from cyclonedds.topic import Topic
        from cyclonedds.util import duration

        latched = qos_key is None
        q = getattr(self.ros.qos, qos_key) if not latched else None
        reliable = q is None or q.reliability == "reliable"
        policies = [Policy.Reliability.Reliable(max_blocking_time=duration(milliseconds=100)) if reliable
                    else Policy.Reliability.BestEffort,
                    Policy.History.KeepLast(1 if latched else q.depth),
                    Policy.Durability.TransientLocal if latched else Policy.Durability.Volatile]
        if self.ros.distro != "humble":  # Humble has no type hashes
            policies.append(Policy.Userdata(data=f"typehash={self.fmt.type_hash(typename)};".encode()))
        tp = Topic(self.participant, "rt" + topic, self.idl[typename])
        return DataWriter(self.participant, tp, qos=Qos(*policies))

    def write(self, heatmap):
        for m in self.update_messages(heatmap):
            self._send(m)

    def _drop_topic(self, topic):
        self._writers.pop(topic, None)  # dropping the last reference deletes the DDS writer

    def stalled(self, seconds):
        self._send(self.fmt.stalled(seconds, time.time_ns(), self._device))

    def _send(self, m):
        """Write pre-serialized CDR; a failed write is counted (diagnostics say how many), not raised."""
        from cyclonedds._clayer import ddspy_write_ts

        if m.topic not in self._writers:  # a track's audio: its topic appears with the track
            self._writers[m.topic] = self._make_writer(self.fmt.qos_key_of(m.typename), m.topic, m.typename)
        buf = m.cdr + b"\0" * (-len(m.cdr) % 4)
        if ddspy_write_ts(self._writers[m.topic]._ref, buf, max(m.stamp_ns, 0)) >= 0:
            self.sent += 1
        else:
            self.failed += 1
            self.fmt.failed_writes = self.failed

    def close(self, summary):
        self._writers.clear()
        self.participant = None
        self._domain = None
