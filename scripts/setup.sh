#!/usr/bin/env bash
# Install what avstream needs on a fresh Debian/Ubuntu machine, then the package into .venv.
# Idempotent: a second run only checks. Used by `make demo`, `make test` and .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

# espeak-ng: speech for the speech-engine tests. xvfb, fonts and the X/GL libraries of the GUI
# OpenCV: the window tests (--view, calibrate events
# --click) open real windows on an X server. chromium and its driver: the dashboard test opens
# the page in a real headless browser. stress-ng: the CPU hogs of the load test
APT_PACKAGES="portaudio19-dev libsndfile1 pulseaudio pulseaudio-utils libasound2-plugins xvfb fonts-dejavu-core
libgl1 libglib2.0-0 libsm6 libice6 libx11-6 libxext6 espeak-ng chromium chromium-driver stress-ng"
missing=""
for p in $APT_PACKAGES; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing Debian packages:$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  elif command -v sudo >/dev/null; then
    sudo apt-get update -qq
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  else
    echo "setup: please install:$missing (PortAudio headers build PyAudio; PulseAudio runs the device tests)" >&2
    exit 1
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=".venv/.avstream-$(cat setup.py | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[test]'
  rm -f .venv/.avstream-*
  touch "$stamp"
fi

# avstream runs on opencv-python-headless (no windows: robots and servers). The window tests
# put the GUI build of the same version first on the PYTHONPATH of the processes they start.
cv_version=$(.venv/bin/python -c "import importlib.metadata as m; print(m.version('opencv-python-headless'))")
if [ ! -f ".venv/opencv-gui/.version-$cv_version" ]; then
  rm -rf .venv/opencv-gui
  .venv/bin/python -m pip install -q --no-deps --target .venv/opencv-gui "opencv-python==$cv_version"
  touch ".venv/opencv-gui/.version-$cv_version"
fi
