import os
import sys
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
# DDS in tests stays on loopback (unicast discovery to 127.0.0.1); subprocesses inherit this
os.environ["CYCLONEDDS_URI"] = "file://" + str(Path(__file__).parent / "data" / "cyclonedds-loopback.xml")
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))
