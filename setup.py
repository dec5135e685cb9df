"""avstream: an installable Python package that is also a ROS 2 ament_python package."""
from glob import glob

from setuptools import find_packages, setup

package_name = "avstream"

setup(
    name=package_name,
    version="0.1.0",
    description="Real-time audio-visual sound-source localization for robots",
    packages=find_packages(include=["avstream", "avstream.*"]),
    package_data={"avstream": ["foxglove_layout.json", "web/*.html", "web/*.js"]},
    python_requires=">=3.10",
    # floors that Humble's Ubuntu 22.04 packages satisfy (python3-yaml 5.4.1, python3-zmq 22.3,
    # python3-soundfile 0.10.3, python3-opencv 4.5.4, python3-pyaudio 0.2.11), so rosdep's apt
    # packages do; the numeric stack is pip's: rocket-fft needs numpy >= 2 and numba >= 0.60, which
    # no Ubuntu LTS ships (README, "On a ROS 2 machine")
    install_requires=[
        "numpy>=1.24",
        "scipy>=1.10",
        "numba>=0.59",
        "rocket-fft>=0.2.5",
        "soundfile>=0.10.3",
        "PyYAML>=5.4",
        "pyaudio>=0.2.11",
        "rosbags>=0.10",
        "mcap>=1.1",
        "pyzmq>=22.3",
        "cyclonedds>=0.10.5",
        "opencv-python-headless>=4.5.4",
    ],
    extras_require={
        # learned engines on a robot: ONNX Runtime only (CPU, or CUDA with onnxruntime-gpu); no torch
        "engines": ["onnxruntime>=1.17"],
        # avstream train and the torch backend: torch pinned to the CPU build this machine serves
        "train": ["torch==2.13.0", "onnx>=1.16", "onnxscript>=0.1", "onnxruntime>=1.17"],
        "test": ["pytest>=7", "pyroomacoustics>=0.7", "mcap-ros2-support>=0.5", "wheel", "python-xlib>=0.33",
                 "spaudiopy>=0.2",  # bench W5's peer
                 "foxglove-sdk>=0.30", "websockets>=12", "selenium>=4.10", "hypothesis>=6",
                 "onnxruntime>=1.17", "torch==2.13.0", "onnx>=1.16", "onnxscript>=0.1"],
        # live viewers: the web page (avstream dashboard) and the Foxglove WebSocket server (run --foxglove)
        "dashboard": ["foxglove-sdk>=0.30", "websockets>=12"],
        "bench": ["pyroomacoustics>=0.7", "acoular>=24.3", "spaudiopy>=0.2"],
    },
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/launch", glob("launch/*.py")),
        ("share/" + package_name + "/calibration", glob("calibration/*.yaml")),
        ("share/" + package_name + "/config", glob("config/*.yaml")),
        ("share/" + package_name + "/engines", glob("engines/*.onnx") + glob("engines/*.pt") + glob("engines/LICENSE*")),
    ],
    entry_points={"console_scripts": ["avstream = avstream.cli:main", "avstream_node = avstream.ros_node:main"]},
    zip_safe=False,
)
