"""Launch avstream as a ROS 2 node: ros2 launch avstream avstream.launch.py array:=respeaker_usb_4mic

Every argument maps to the configuration key of the same meaning (see avstream/config.py);
config/avstream.params.yaml holds the rest, and a params_file argument can replace it.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

# (argument, configuration key, default, description, parameter type). The type is explicit:
# launch would turn device:=2 or camera:=0 into an integer and the string parameter's
# declaration would fail.
ARGUMENTS = [
    ("array", "array", "minidsp_uma16",
     "Microphone array: a preset (respeaker_usb_4mic, respeaker_4mic_hat, respeaker_6mic, minidsp_uma8, "
     "minidsp_uma16, matrix_voice; ambisonic: zoom_h3vr, ambix_foa, fuma_foa; A-format: sennheiser_ambeo_vr) or the path of an array YAML file",
     str),
    ("source", "source.kind", "synthetic", "Audio source: synthetic (demo scene), file or device", str),
    ("device", "source.device", "", "Input device index or name substring (source:=device); empty = default", str),
    ("file", "source.path", "", "Audio file (source:=file)", str),
    ("grid", "localize.grid", "auto",
     "Direction grid: auto (registered to the camera when there is one, else sphere:2562), sphere:N, "
     "hemisphere:N, fov:H,V:COLS,ROWS or camera:BLOCK", str),
    ("camera", "camera.source", "auto",
     "Camera: auto (the synthetic camera with the synthetic scene, else none), none, a device index or "
     "/dev/videoN, a video file, an rtsp:// URL or a GStreamer pipeline ending in appsink", str),
    ("intrinsics", "camera.intrinsics", "", "Camera calibration YAML (ROS camera_calibration format); empty = default", str),
    ("extrinsics", "camera.extrinsics", "", "Array-to-camera extrinsics YAML; empty = default", str),
    ("method", "localize.method", "auto",
     "Localization method: auto (tf_sparse on arrays of up to 4 microphones, srp_phat on larger ones, "
     "intensity on ambisonic microphones), srp_phat, tf_sparse, mvdr, music, clean_sc or intensity", str),
    ("sources", "localize.sources", "3", "At most this many sources per update", int),
    ("frame_id", "ros.frame_id", "mic_array", "Array frame in header.frame_id", str),
    ("camera_frame_id", "ros.camera_frame_id", "camera_optical", "Camera optical frame (/tf_static child of frame_id)", str),
    ("parent_frame_id", "ros.parent_frame_id", "",
     "Parent of frame_id in /tf_static (e.g. base_link; pose from ros.parent_xyz, ros.parent_rpy_deg); empty = none", str),
    ("audio", "ros.audio", "auto", "Raw audio topic: auto (up to 8 channels at 48 kHz), on or off", str),
    ("respeaker", "ros.respeaker", "false", "Also respeaker_ros's sound_direction, sound_localization, is_speeching",
     bool),
    ("zmq_endpoint", "zmq.endpoint", "tcp://127.0.0.1:5556", "ZeroMQ PUB endpoint for dashboards; empty = off", str),
    ("record", "output.record", "", "MCAP file recording every topic; empty = off", str),
    ("engine", "engine.path", "", "Audio-visual engine ONNX file (needs a camera); empty = none", str),
    ("fusion", "engine.fusion", "product", "Published picture map: array, engine or product", str),
]


def generate_launch_description():
    params_file = LaunchConfiguration("params_file")
    declared = [DeclareLaunchArgument(
        "params_file",
        default_value=PathJoinSubstitution([FindPackageShare("avstream"), "config", "avstream.params.yaml"]),
        description="ROS parameters file (keys as in avstream's configuration)")]
    declared += [DeclareLaunchArgument(name, default_value=default, description=text)
                 for name, _, default, text, _ in ARGUMENTS]
    declared.append(DeclareLaunchArgument(
        "namespace", default_value="/avstream",
        description="The node's namespace: its topics are <namespace>/heatmap/image, /sources, ... (a second "
                    "array runs beside the first under another namespace)"))
    node = Node(package="avstream", executable="avstream_node", name="avstream", output="screen",
                namespace=LaunchConfiguration("namespace"),
                parameters=[params_file, {key: ParameterValue(LaunchConfiguration(name), value_type=kind)
                                         for name, key, _, _, kind in ARGUMENTS}])
    return LaunchDescription(declared + [node])
