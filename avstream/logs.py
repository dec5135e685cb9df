"""Library code logs through ``logging`` (logger "avstream"); the entry points decide where it goes:
the CLI to stderr as ``avstream: ...`` lines, the ROS node to the ROS logger."""
from __future__ import annotations

import logging
import sys


class _Formatter(logging.Formatter):
    def format(self, record):
        prefix = {logging.WARNING: "warning: ", logging.ERROR: "error: "}.get(record.levelno, "")
        return f"avstream: {prefix}{record.getMessage()}"


def to_stderr(level=logging.INFO) -> None:
    """CLI: ``avstream: message`` lines on stderr (``avstream: warning: ...`` for warnings)."""
    logger = logging.getLogger("avstream")
    for h in list(logger.handlers):
        logger.removeHandler(h)
    h = logging.StreamHandler(sys.stderr)
    h.setFormatter(_Formatter())
    logger.addHandler(h)
    logger.setLevel(level)
    logger.propagate = False


class RosLogHandler(logging.Handler):  # pragma: no cover - needs rclpy
    """Hands avstream's log records to an rclpy node's logger."""

    def __init__(self, node):
        super().__init__()
        self.ros = node.get_logger()

    def emit(self, record):
        msg = record.getMessage()
        if record.levelno >= logging.ERROR:
            self.ros.error(msg)
        elif record.levelno >= logging.WARNING:
            self.ros.warning(msg)
        elif record.levelno >= logging.INFO:
            self.ros.info(msg)
        else:
            self.ros.debug(msg)


def to_ros(node) -> None:  # pragma: no cover - needs rclpy
    logger = logging.getLogger("avstream")
    logger.addHandler(RosLogHandler(node))
    logger.setLevel(logging.INFO)
    logger.propagate = False
