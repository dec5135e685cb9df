#!/usr/bin/env bash
# Train the audio-visual engines shipped in engines/ (engines/README.md says what each is).
# About 25 minutes on 2 cores. Needs the train extra (scripts/setup.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
export NUMBA_CACHE_DIR=${NUMBA_CACHE_DIR:-$HOME/.cache/avstream/numba} OPENBLAS_NUM_THREADS=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
PY=.venv/bin/python
AV=.venv/bin/avstream

# 1. avset.onnx: the synthetic audio-visual set of the tests (tests/avscenes.py): a 4-mic array,
#    four sound classes with their own looks, random backgrounds. Seeds 0-299; the tests
#    evaluate it on other seeds (unseen positions and backgrounds).
$PY tests/avscenes.py "$work/avset" 0 300
$AV train "$work"/avset/scene* --out engines/avset.onnx --epochs 25

# 2. demo_av.onnx: recordings of the built-in demo scene (UMA-16, synthetic camera) with the
#    talker and the noise source in random places in front of the board.
for k in $(seq 0 59); do
  sources=$($PY -c "
import random; r = random.Random($k)
az = lambda: r.uniform(-180, 180)
print('[{kind: speech, azimuth_deg: %.1f, elevation_deg: %.1f, level_db: -20},'
      ' {kind: noise, azimuth_deg: %.1f, elevation_deg: %.1f, level_db: %.1f}]'
      % (az(), r.uniform(55, 85), az(), r.uniform(55, 85), r.uniform(-30, -20)))")
  $AV record --duration 2 --fast --out "$work/demo/r$k" --no-status --speech off \
      --set "source.scene.sources=$sources" --set source.scene.seed=$k 2>/dev/null
done
$AV train "$work"/demo/r* --out engines/demo_av.onnx --epochs 20
$AV engines list engines
