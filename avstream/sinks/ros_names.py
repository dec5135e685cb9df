"""ROS 2 name resolution: how a node turns its relative topic names into the names on the wire.

The node publishes relative names (``heatmap/image``, ``sources``, ...). As rcl does, a relative
name is put under the node's namespace, ``~/x`` under the node's own name, and an absolute name
(``/diagnostics``, ``/tf_static``) stays; then the first remap rule whose left side resolves to
the same name replaces it (``-r sources:=/robot/sound_sources``). The rclpy path leaves all of
this to rclpy; the DDS path and the MCAP recording use this class, so all three agree.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import ConfigError

_TOKEN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_name(name: str, what: str, absolute: bool = False) -> None:
    """Raise ConfigError unless ``name`` is a valid ROS 2 name (tokens of letters, digits and
    underscores, not starting with a digit, separated by single slashes)."""
    body = name[1:] if name.startswith("/") else name[2:] if name.startswith("~/") else name
    if absolute and not name.startswith("/"):
        raise ConfigError(f"{what} '{name}': must start with '/'")
    if name in ("/", "") and absolute:
        return
    if not body or any(not _TOKEN.match(t) for t in body.split("/")):
        raise ConfigError(f"{what} '{name}': not a valid ROS 2 name (letters, digits and '_' between single "
                          f"slashes, no token starting with a digit)")


@dataclass(frozen=True)
class RosNames:
    """A node's namespace, name and remap rules.

    Parameters
    ----------
    namespace : str
        Absolute, e.g. "/avstream" (the default) or "/robot/left_array"; "" or "/" is the root.
    node : str
        The node's name; diagnostics are named after the fully qualified name.
    remaps : tuple of (str, str)
        (from, to) rules as ROS writes them (``from:=to``), first match wins.
    """

    namespace: str = "/avstream"
    node: str = "avstream"
    remaps: tuple = ()

    @classmethod
    def from_config(cls, ros) -> "RosNames":
        rules = []
        for rule in ros.remap:
            src, dst = rule.split(":=", 1)
            rules.append((src, dst))
        return cls(ros.namespace, ros.node_name, tuple(rules))

    @property
    def fully_qualified(self) -> str:
        """``/<namespace>/<node>``."""
        return self._ns() + "/" + self.node

    def _ns(self) -> str:
        return "/" + self.namespace.strip("/") if self.namespace.strip("/") else ""

    def expand(self, name: str) -> str:
        """The fully qualified form of ``name`` before remapping."""
        if name.startswith("/"):
            return name
        if name.startswith("~"):
            return self.fully_qualified + ("/" + name[1:].lstrip("/") if name[1:].strip("/") else "")
        return self._ns() + "/" + name

    def resolve(self, name: str) -> str:
        """The name on the wire: expanded, then remapped."""
        full = self.expand(name)
        for src, dst in self.remaps:
            if self.expand(src) == full:
                return self.expand(dst)
        return full

    def relative(self, resolved: str) -> str:
        """For rclpy, which applies namespace and remaps itself: the name to create a publisher
        with (relative when it lies under the namespace, else absolute)."""
        prefix = self._ns() + "/"
        return resolved[len(prefix):] if resolved.startswith(prefix) else resolved
