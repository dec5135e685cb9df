"""The one place that turns the configuration into sinks, for ``avstream run`` and the ROS node."""
from __future__ import annotations

DEMO_OVERLAY = "avstream_overlay.mp4"
ZMQ_NEXT_FREE = 20  # ports after the default ZeroMQ port tried when it is taken


def build_sinks(cfg, node=None) -> list:
    """Every sink ``cfg`` asks for, in the order they are written to.

    Files (JSON Lines, .npz), the MCAP recording, the ZeroMQ stream, the Foxglove WebSocket
    server, the ROS 2 topics (through rclpy on ``node`` when one is given, else straight on DDS)
    and the overlay video and window.
    A sink that cannot start (a port in use, a bad path) raises here, before anything runs.
    """
    from . import JsonlSink, NpzSink

    o, ros = cfg.output, cfg.ros
    sinks = []
    if o.jsonl:
        sinks.append(JsonlSink(o.jsonl))
    if o.npz:
        sinks.append(NpzSink(o.npz))
    if o.sources:
        from .sources_wav import SourceWavSink

        sinks.append(SourceWavSink(o.sources))
    if o.record:
        from .mcap_sink import McapSink

        sinks.append(McapSink(o.record, ros, split_bytes=o.record_split_mb * 1e6 if o.record_split_mb else None))
    if cfg.zmq.endpoint:
        from .zmq_sink import ZmqSink

        from ..config import ZmqConfig

        z = cfg.zmq
        # the default port taken (a second array on this robot): the next free one, said in a warning
        sinks.append(ZmqSink(z.endpoint, z.hwm, z.curve_secret_key, z.curve_clients, ros.frame_id,
                             z.overlay_quality, ros.camera_frame_id, z.source_audio,
                             next_free=ZMQ_NEXT_FREE if z.endpoint == ZmqConfig.endpoint else 0))
    if cfg.foxglove.port is not None:
        from .foxglove_sink import FoxgloveSink

        sinks.append(FoxgloveSink(cfg.foxglove.port, cfg.foxglove.host, ros))
    if node is not None:
        from .rclpy_sink import RclpySink

        sinks.append(RclpySink(node, ros))
    elif ros.publish:
        from .dds_sink import DdsSink

        sinks.append(DdsSink(ros))
    path = o.overlay
    if path == "auto":
        path = DEMO_OVERLAY if cfg.camera_source == "synthetic" else None
    if path:
        from .video import VideoFileSink

        sinks.append(VideoFileSink(path))
    if o.view:
        from .video import ViewSink

        sinks.append(ViewSink())
    return sinks
