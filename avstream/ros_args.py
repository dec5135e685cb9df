"""ROS 2 command-line arguments for the DDS path: ``--ros-args ... [--]``, as rcl reads them.

``ros2 run`` and ``ros2 launch`` hand a node its namespace, name, remaps and parameters this
way (``--ros-args -r __ns:=/left -r __node:=mics -r sources:=doa -p localize.sources:=2
--params-file params.yaml``). Without rclpy, ``avstream run`` and ``avstream_node`` read them
here and turn them into configuration overrides (``ros.namespace``, ``ros.node_name``,
``ros.remap`` and the parameters' keys), so a launch file drives both paths alike.
"""
from __future__ import annotations

import yaml

from .errors import ConfigError

# rcl flags that take a value, and flags that take none: accepted, and without effect here
_IGNORED_WITH_VALUE = {"--log-level", "-e", "--enclave", "--log-file-name", "--log-config-file"}
_IGNORED_FLAGS = {"--enable-rosout-logs", "--disable-rosout-logs", "--enable-stdout-logs", "--disable-stdout-logs",
                  "--enable-external-lib-logs", "--disable-external-lib-logs"}


def split(argv: list) -> tuple[list, list]:
    """(the other arguments, the tokens of every ``--ros-args`` section)."""
    rest, ros, inside = [], [], False
    for a in argv:
        if a == "--ros-args":
            inside = True
        elif inside and a == "--":
            inside = False
        elif inside:
            ros.append(a)
        else:
            rest.append(a)
    return rest, ros


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict):
            out.update(_flatten(v, key))
        else:
            out[key] = v
    return out


def _params_file(path: str, node: str, namespace: str) -> dict:
    """The parameters a params file gives this node: under ``/**``, ``<node>``, ``/<node>`` or
    ``<namespace>/<node>`` (ROS's matching, without partial wildcards), each ``ros__parameters``."""
    from .yamlio import load_mapping

    doc = load_mapping(path, f"--params-file {path}")
    ns = "/" + namespace.strip("/") if namespace.strip("/") else ""
    matches = {"/**", node, "/" + node, f"{ns}/{node}", f"{ns}/{node}".lstrip("/"), f"{ns}/*", "/*"}
    out: dict = {}
    for who, section in doc.items():
        if str(who) in matches and isinstance(section, dict):
            params = section.get("ros__parameters")
            if not isinstance(params, dict):
                raise ConfigError(f"--params-file {path}: '{who}' has no ros__parameters mapping")
            out.update(_flatten(params))
    return out


def to_overrides(tokens: list, namespace: str = "/avstream", node: str = "avstream") -> dict:
    """Configuration overrides from ``--ros-args`` tokens.

    Raises
    ------
    ConfigError
        For an unknown flag, a rule without ``:=``, a missing value or an unknown parameter.
    """
    from .ros_node import overrides_from_parameters, parameter_defaults
    from .sinks.ros_names import check_name

    remaps, files, params = [], [], []
    i = 0
    while i < len(tokens):
        flag = tokens[i]
        if flag in _IGNORED_FLAGS:
            i += 1
            continue
        if i + 1 >= len(tokens):
            raise ConfigError(f"--ros-args {flag}: expects a value" if flag.startswith("-")
                              else f"--ros-args: unexpected '{flag}' (expected -r, -p, --params-file)")
        value = tokens[i + 1]
        if flag in ("-r", "--remap"):
            if ":=" not in value:
                raise ConfigError(f"--ros-args -r {value}: expected FROM:=TO")
            remaps.append(value)
        elif flag in ("-p", "--param"):
            if ":=" not in value:
                raise ConfigError(f"--ros-args -p {value}: expected NAME:=VALUE")
            params.append(value)
        elif flag == "--params-file":
            files.append(value)
        elif flag not in _IGNORED_WITH_VALUE:
            raise ConfigError(f"--ros-args: unknown flag '{flag}' (known: -r, -p, --params-file, --log-level)")
        i += 2
    o: dict = {}
    rules = []
    for rule in remaps:
        src, dst = rule.split(":=", 1)
        if ":" in src and not src.startswith("__"):  # node-specific: "<node>:from:=to"
            who, src = src.split(":", 1)
            if who != node:
                continue
        if src == "__ns":
            check_name(dst, "__ns", absolute=True)
            namespace = o["ros.namespace"] = dst
        elif src in ("__node", "__name"):
            check_name(dst, src)
            node = o["ros.node_name"] = dst
        else:
            check_name(src, "remap rule")
            check_name(dst, "remap rule")
            rules.append(f"{src}:={dst}")
    if rules:
        o["ros.remap"] = rules
    known = parameter_defaults()
    values: dict = {}
    for f in files:
        values.update(_params_file(f, node, namespace))
    for p in params:
        name, raw = p.split(":=", 1)
        values[name] = yaml.safe_load(raw) if raw.strip() else ""
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"--ros-args: unknown parameter(s) {', '.join(unknown)} (parameters are avstream's "
                          f"configuration keys, e.g. localize.sources)")
    o.update(overrides_from_parameters(values))
    return o
