"""ROS 2 packaging checked without ROS: package.xml, the built wheel, launch file, params YAML."""
import ast
import subprocess
import sys
import types
import xml.etree.ElementTree as ET
import zipfile

import pytest
import yaml

from helpers import ROOT, run_cli

from avstream.config import load_config
from avstream.ros_node import overrides_from_parameters, parameter_defaults

# pip requirement -> the rosdep key that provides it
ROSDEP = {"numpy": "python3-numpy", "scipy": "python3-scipy", "numba": "python3-numba", "rocket-fft": None,
          "soundfile": "python3-soundfile", "PyYAML": "python3-yaml", "pyaudio": "python3-pyaudio",
          "rosbags": None, "mcap": None, "pyzmq": "python3-zmq", "cyclonedds": None,
          "opencv-python-headless": "python3-opencv"}


def test_package_xml():
    root = ET.parse(ROOT / "package.xml").getroot()
    assert root.tag == "package" and root.get("format") == "3"
    assert root.findtext("name") == "avstream"
    assert root.find("export/build_type").text == "ament_python"
    exec_deps = {e.text for e in root.findall("exec_depend")}
    # the node, its launch file, and the package of every message type it publishes
    from avstream.sinks import ros_format

    msgs = {v.split("/")[0] for k, v in vars(ros_format).items() if k.isupper() and isinstance(v, str) and "/msg/" in v}
    assert {"rclpy", "launch_ros", "std_msgs"} | (msgs - {"audio_common_msgs"}) <= exec_deps, msgs - exec_deps
    setup_src = (ROOT / "setup.py").read_text()
    tree = ast.parse(setup_src)
    reqs = next(n for n in ast.walk(tree) if isinstance(n, ast.keyword) and n.arg == "install_requires").value
    names = [ast.literal_eval(e).split(">")[0].split("=")[0] for e in reqs.elts]
    for name in names:
        assert name in ROSDEP, f"{name}: add its rosdep key to package.xml and this table"
        if ROSDEP[name]:
            assert ROSDEP[name] in exec_deps, f"package.xml lacks <exec_depend>{ROSDEP[name]}</exec_depend>"
    # Humble's Ubuntu 22.04 packages satisfy the floors of what rosdep installs from apt; the
    # numeric stack (rocket-fft needs numpy >= 2, numba >= 0.60) comes from pip, as package.xml says
    jammy = {"PyYAML": "5.4.1", "pyzmq": "22.3.0", "soundfile": "0.10.3", "opencv-python-headless": "4.5.4",
             "pyaudio": "0.2.11"}
    floors = {ast.literal_eval(e).split(">=")[0]: ast.literal_eval(e).split(">=")[1] for e in reqs.elts
              if ">=" in ast.literal_eval(e)}
    for name, version in jammy.items():
        have = tuple(int(x) for x in version.split("."))
        need = tuple(int(x) for x in floors[name].split("."))
        assert need <= have, f"{name}>={floors[name]}: Ubuntu 22.04 has {version}"
    assert "numpy >= 2 and numba >= 0.60" in (ROOT / "package.xml").read_text().replace("\n       ", " ")
    pip_only = [n for n in names if ROSDEP[n] is None]
    text = (ROOT / "package.xml").read_text()
    for n in pip_only:  # no rosdep key exists: package.xml must say pip provides them
        assert n in text, f"package.xml should mention that {n} comes from pip"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    p = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                        str(out), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return next(out.glob("avstream-*.whl"))


def test_wheel_installs_ros_files_and_scripts(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    data = [n.split(".data/data/", 1)[1] for n in names if ".data/data/" in n]
    for needed in ["share/ament_index/resource_index/packages/avstream", "share/avstream/package.xml",
                   "share/avstream/launch/avstream.launch.py", "share/avstream/config/avstream.params.yaml"]:
        assert needed in data, needed
    eps = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "avstream = avstream.cli:main" in eps and "avstream_node = avstream.ros_node:main" in eps
    cfg = (ROOT / "setup.cfg").read_text()
    assert "script_dir=$base/lib/avstream" in cfg and "install_scripts=$base/lib/avstream" in cfg


def _launch_module():
    """Load the launch file with stand-ins for launch / launch_ros (ROS 2 is not installable here):
    they only record what the file builds."""

    class Recorder:
        def __init__(self, *args, **kwargs):
            self.args, self.kwargs = args, kwargs

    fakes = {"launch": ["LaunchDescription"], "launch.actions": ["DeclareLaunchArgument"],
             "launch.substitutions": ["LaunchConfiguration", "PathJoinSubstitution"],
             "launch_ros.actions": ["Node"], "launch_ros.substitutions": ["FindPackageShare"],
             "launch_ros.parameter_descriptions": ["ParameterValue"]}
    saved = {k: sys.modules.get(k) for k in list(fakes) + ["launch_ros"]}
    try:
        for mod, names in fakes.items():
            m = types.ModuleType(mod)
            for n in names:
                setattr(m, n, type(n, (Recorder,), {}))
            sys.modules[mod] = m
        sys.modules["launch_ros"] = types.ModuleType("launch_ros")
        ns: dict = {}
        exec(compile((ROOT / "launch/avstream.launch.py").read_text(), "avstream.launch.py", "exec"), ns)
        return ns, ns["generate_launch_description"]()
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def test_launch_file_declares_described_arguments_for_real_keys():
    ns, ld = _launch_module()
    actions = ld.args[0]
    declared = [a for a in actions if type(a).__name__ == "DeclareLaunchArgument"]
    node = [a for a in actions if type(a).__name__ == "Node"][0]
    assert all(a.kwargs.get("description") for a in declared)
    names = {a.args[0] for a in declared}
    params = parameter_defaults()
    for name, key, default, _, _ in ns["ARGUMENTS"]:
        assert name in names and key in params, key
    assert node.kwargs["package"] == "avstream" and node.kwargs["executable"] == "avstream_node"
    mapping = node.kwargs["parameters"][1]
    assert set(mapping) == {key for _, key, _, _, _ in ns["ARGUMENTS"]}
    # every argument reaches its parameter with the parameter's declared type: device:=2 and
    # camera:=0 stay strings (launch alone would make them integers, and declaring the string
    # parameter would fail)
    for name, key, default, _, kind in ns["ARGUMENTS"]:
        value = mapping[key]
        assert type(value).__name__ == "ParameterValue", key
        assert value.kwargs["value_type"] is type(params[key]), (key, value.kwargs["value_type"])
        assert type(value.args[0]).__name__ == "LaunchConfiguration" and value.args[0].args[0] == name
    assert mapping["source.device"].kwargs["value_type"] is str and mapping["camera.source"].kwargs["value_type"] is str
    # the defaults, as the node would receive them (each converted to its declared type, as
    # launch_ros does: "false" is False), make a valid configuration
    values = dict(params)
    for _, key, default, _, kind in ns["ARGUMENTS"]:
        values[key] = (default.lower() == "true") if kind is bool else kind(default)
    cfg = load_config(None, overrides_from_parameters(values))
    assert cfg.ros.respeaker is False and cfg.ros.parent_frame_id is None
    # the namespace is the node's own (launch passes it as __ns:=), not a parameter, so topic
    # names are relative to it and two launches with two namespaces do not collide
    assert type(node.kwargs["namespace"]).__name__ == "LaunchConfiguration"
    assert node.kwargs["namespace"].args[0] == "namespace" and "namespace" in names
    assert "ros.namespace" not in params and "ros.remap" not in params


def test_node_runs_until_shut_down_by_default():
    """ros2 run without a params file: the node's duration parameter says "until stopped" (the
    command line's demo stops after 5 s, and the node used to inherit that)."""
    params = parameter_defaults()
    assert params["duration"] == 0.0
    assert load_config(None, overrides_from_parameters(params)).duration is None
    doc = yaml.safe_load((ROOT / "config/avstream.params.yaml").read_text())
    assert doc["/**"]["ros__parameters"]["duration"] == 0.0


def test_params_yaml_is_a_valid_configuration():
    doc = yaml.safe_load((ROOT / "config/avstream.params.yaml").read_text())
    values = doc["/**"]["ros__parameters"]
    params = parameter_defaults()
    assert set(values) <= set(params), set(values) - set(params)
    for k, v in values.items():  # same types as the declared parameters
        assert type(v) is type(params[k]) or (isinstance(v, list) and isinstance(params[k], list)), k
    cfg = load_config(None, overrides_from_parameters({**params, **values}))
    assert cfg.duration is None and cfg.localize.grid == "auto" and cfg.camera.source == "auto"
    assert cfg.localize.band is None  # [0, 0]: the array's band (config.band_plan)
    assert cfg.output.overlay is None  # the node publishes /avstream/overlay; no video file


def test_node_without_rclpy_runs_on_dds(tmp_path):
    out = tmp_path / "n.jsonl"
    p = subprocess.run([sys.executable, "-m", "avstream.ros_node", "--duration", "1", "--no-zmq", "--no-status",
                        "--jsonl", str(out)], capture_output=True, text=True, timeout=120, cwd=str(ROOT))
    assert p.returncode == 0, p.stderr
    assert "rclpy not found, publishing on native DDS" in p.stderr and "DDS domain" in p.stderr
    assert "summary" in out.read_text().splitlines()[-1]


def test_ros_args_become_configuration(tmp_path):
    """--ros-args as ros2 run / launch pass them, read without rclpy: namespace, node name,
    remaps (node-specific ones only for this node), a params file (wildcard and node sections,
    nested or dotted keys) then -p, in that order."""
    from avstream import ros_args
    from avstream.errors import ConfigError

    params = tmp_path / "p.yaml"
    params.write_text("/**:\n  ros__parameters:\n    localize.sources: 2\n    duration: 0.0\n"
                      "/left/mics:\n  ros__parameters:\n    localize: {method: mvdr}\n"
                      "other:\n  ros__parameters:\n    localize.sources: 9\n")
    argv = ["run", "--ros-args", "-r", "__node:=mics", "-r", "__ns:=/left", "-r", "sources:=doa", "-r",
            "other:markers:=x", "--params-file", str(params), "-p", "localize.band:=[200.0, 4000.0]",
            "--log-level", "info", "--", "--no-zmq"]
    rest, tokens = ros_args.split(argv)
    assert rest == ["run", "--no-zmq"]
    o = ros_args.to_overrides(tokens)
    assert o == {"ros.node_name": "mics", "ros.namespace": "/left", "ros.remap": ["sources:=doa"],
                 "localize.sources": 2, "duration": None, "localize.method": "mvdr", "localize.band": [200.0, 4000.0]}
    cfg = load_config(None, o)
    from avstream.sinks.ros_names import RosNames

    names = RosNames.from_config(cfg.ros)
    assert names.resolve("sources") == "/left/doa" and names.resolve("heatmap/image") == "/left/heatmap/image"
    assert names.resolve("/diagnostics") == "/diagnostics" and names.resolve("~/x") == "/left/mics/x"
    assert names.fully_qualified == "/left/mics"
    for bad, needle in [(["-p", "nope:=1"], "unknown parameter"), (["-r", "__ns:=left"], "must start with '/'"),
                        (["--frobnicate", "x"], "unknown flag"), (["-r", "sources"], "FROM:=TO"),
                        (["--params-file", str(tmp_path / "missing.yaml")], "cannot read"),
                        (["-r", "sources:=9bad"], "not a valid ROS 2 name")]:
        with pytest.raises(ConfigError, match=needle):
            ros_args.to_overrides(bad)


def test_node_without_rclpy_takes_launch_arguments(tmp_path):
    """What launch_ros hands avstream_node (--ros-args with __node, __ns and the package's params
    file), on the DDS path: the node runs under that name and namespace with those parameters."""
    out = tmp_path / "n.jsonl"
    p = subprocess.run([sys.executable, "-m", "avstream.ros_node", "--no-zmq", "--no-status", "--jsonl", str(out),
                        "--ros-args", "-r", "__node:=avstream", "-r", "__ns:=/robot/front",
                        "--params-file", str(ROOT / "config/avstream.params.yaml"), "-p", "duration:=1.0",
                        "-p", "camera.source:=none"],
                       capture_output=True, text=True, timeout=120, cwd=str(ROOT))
    assert p.returncode == 0, p.stderr
    assert "ROS 2 node /robot/front/avstream on DDS" in p.stderr and "/robot/front/heatmap/image" in p.stderr
    summary = [ln for ln in out.read_text().splitlines() if "summary" in ln][-1]
    assert '"seconds": 1.0' in summary
