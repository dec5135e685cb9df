"""``avstream_node`` (``ros2 run avstream avstream_node``): the pipeline as a ROS 2 node.

With rclpy importable, ROS parameters are declared from the configuration schema: one per
configuration key, dotted as in the YAML (``localize.grid``, ``ros.namespace``, ...), with the
same defaults, so a params file and the launch file drive it. Without rclpy it runs the same
pipeline publishing on native DDS (``avstream run`` with the arguments given).
"""
from __future__ import annotations

import logging
import sys
import typing

from .config import Config, load_config, to_dict

# keys that are not ROS parameters: structured lists (a YAML file sets them), and the node's
# namespace, name and remaps, which ROS itself gives a node (__ns:=, __node:=, -r)
_NOT_PARAMETERS = {"source.scene.sources", "ros.namespace", "ros.node_name", "ros.remap"}
# ROS parameters cannot be null and have a fixed type: for an optional key, this value of its
# type stands for null ("not set")
_UNSET = {str: "", float: 0.0, int: 0, tuple[float, float]: [0.0, 0.0]}
# where a node's default differs from the command line's: a node runs until it is shut down
# (the CLI's demo stops after 5 s)
NODE_DEFAULTS = {"duration": None}


def _optional_type(key: str):
    """The non-null type of an Optional configuration key, or None for a required one."""
    cls = Config
    for part in key.split("."):
        hint = typing.get_type_hints(cls)[part]
        cls = hint
    args = typing.get_args(hint)
    if typing.get_origin(hint) is typing.Union and type(None) in args:
        inner = [a for a in args if a is not type(None)][0]
        return inner if inner in _UNSET else None
    return None


def parameter_defaults() -> dict:
    """Dotted configuration key -> default value, for every key a ROS parameter can hold."""
    out = {}

    def walk(prefix, value):
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
        elif prefix not in _NOT_PARAMETERS:
            out[prefix] = list(value) if isinstance(value, tuple) else value

    walk("", to_dict(Config()))
    out.update(NODE_DEFAULTS)
    for k, v in out.items():
        if v is None:
            out[k] = _UNSET[_optional_type(k)]
    return out


def overrides_from_parameters(values: dict) -> dict:
    """Parameter values -> configuration overrides; an optional key's "unset" value is null."""
    o = {}
    for key, value in values.items():
        inner = _optional_type(key)
        o[key] = None if inner is not None and value == _UNSET[inner] else value
    return o


def main(argv=None) -> int:
    try:
        import rclpy  # noqa: F401
    except ImportError:
        from .cli import main as cli_main

        from .logs import to_stderr

        to_stderr()
        logging.getLogger("avstream.ros_node").info("rclpy not found, publishing on native DDS")
        return cli_main(["run", "--duration", "0", *(argv if argv is not None else sys.argv[1:])])
    return _run_rclpy(argv)


def _run_rclpy(argv) -> int:  # pragma: no cover - needs a ROS 2 installation
    """The node on rclpy: parameters declared with descriptors (read-only unless the running
    pipeline can take a change: ``config.is_live``), changes applied through a parameter
    callback, the namespace and remaps rclpy's own."""
    import threading

    import rclpy
    from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult

    from .config import RosConfig, is_live
    from .errors import ConfigError
    from .logs import to_ros
    from .pipeline import Pipeline
    from .sinks.assemble import build_sinks

    rclpy.init(args=argv)
    # the default namespace; ros2 run/launch (__ns:=) replace it
    node = rclpy.create_node(RosConfig.node_name, namespace=RosConfig.namespace)
    to_ros(node)
    defaults = parameter_defaults()
    for key, default in defaults.items():
        node.declare_parameter(key, default, ParameterDescriptor(
            description=f"avstream configuration key {key}" + ("" if is_live(key) else " (restart to change)"),
            read_only=not is_live(key)))
    values = {k: node.get_parameter(k).value for k in defaults}
    cfg = load_config(None, {**overrides_from_parameters(values), "ros.namespace": node.get_namespace(),
                             "ros.node_name": node.get_name()})
    pipe = Pipeline(cfg, build_sinks(cfg, node=node))

    def on_set(params):
        try:
            pipe.reconfigure(overrides_from_parameters({p.name: p.value for p in params}))
        except ConfigError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(on_set)
    spin = threading.Thread(target=rclpy.spin, args=(node,), daemon=True)
    spin.start()
    try:
        pipe.run()
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
