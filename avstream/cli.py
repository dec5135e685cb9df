"""Command line: ``avstream run | locate | bench | devices``."""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading

# Decide the threading of BLAS and Numba together before NumPy loads: one core each for the
# pipeline's math, so the robot keeps the other cores (and two pools never fight over two).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

from .errors import AvstreamError  # noqa: E402

DESCRIPTION = """\
avstream: where sounds come from, live, from a microphone array.

  avstream run                 synthetic demo scene and camera (no microphone or camera needed),
                               5 s, status line; writes the overlay video avstream_overlay.mp4
  avstream run --source device --array minidsp_uma16 --camera 0 --intrinsics cam.yaml \\
               --extrinsics ext.yaml --overlay out.mp4       acoustic camera from real hardware
  avstream run --source file --file rec.wav --array respeaker_usb_4mic --jsonl out.jsonl
  avstream run --source device --device ReSpeaker --array respeaker_usb_4mic --duration 0
  avstream locate rec.wav --array my_array.yaml --sources 2     JSON Lines to stdout
  avstream bench               avstream and its peers side by side
  avstream echo tcp://127.0.0.1:5556     print what the ZeroMQ stream carries
  avstream calibrate camera --images DIR --board 9x6 --square 0.025 --out cam.yaml
  avstream calibrate extrinsics --pairs pairs.csv --camera cam.yaml --out ext.yaml
  avstream calibrate events rec.wav --array minidsp_uma16 --video rec.mp4 --out pairs.csv
  avstream calibrate channels rec.wav --array respeaker_usb_4mic --azimuth 90
  avstream record --duration 60 --out rec1 [run's options]   audio, video and calibration in a folder
  avstream train rec1 rec2 --out engines/mine.onnx     learn an audio-visual engine (no labels)
  avstream run --engine engines/mine.onnx ...          fuse it with the array (needs a camera)
  avstream engines list                 engine files (check: vs torch; quantize: INT8; build: TensorRT)
  avstream devices             list PortAudio input devices

Directions: azimuth = atan2(y, x) in degrees counter-clockwise from +x (x forward, y left,
z up); elevation in degrees up from the x-y plane. A planar array cannot tell up from down:
it searches the half-space it faces (up, for a board lying flat).
"""


def _add_common(p, grid_default=None):
    p.add_argument("--array", help="array preset or YAML file with mic_positions (or kind: ambisonic) "
                                   "(presets: respeaker_usb_4mic, respeaker_4mic_hat, respeaker_6mic, "
                                   "minidsp_uma8, minidsp_uma16, matrix_voice; first-order ambisonic: zoom_h3vr, "
                                   "ambix_foa, fuma_foa; raw A-format: rode_nt_sf1, sennheiser_ambeo_vr, core_sound_tetramic, "
                                   "zoom_h3vr_a_format, soundfield_sps200; aliases uma16, uma8, respeaker = respeaker_usb_4mic). "
                                   "Default: minidsp_uma16 (the run says which array it uses)")
    p.add_argument("--grid", help="sphere:N (about N directions; the half-space faced by a planar array), "
                                  "hemisphere:N (z >= 0), fov:H,V:COLS,ROWS (azimuth/elevation rectangle "
                                  "centred on +x) or camera:BLOCK (one cell per BLOCK-pixel block of the camera "
                                  "picture); default: camera:10 with a camera, else sphere:2562")
    p.add_argument("--method", help="localization method: auto (default: tf_sparse on arrays of up to 8 "
                                    "microphones, srp_phat on larger ones), srp_phat, tf_sparse, mvdr, music or clean_sc; "
                                    "options with --set localize.<method>.<option>=VALUE (README, Methods)")
    p.add_argument("--sources", type=int, help="at most this many sources per update (default 3): a peak is "
                                               "reported only with the evidence of a source")
    p.add_argument("--no-tracking", action="store_true", help="report the peaks of each update only, no tracks")
    p.add_argument("--band", help="band LO,HI in Hz (default 300 up to where the array spans two "
                                          "wavelengths, within 6000-8000 and below Nyquist: 8000 on the 4-mic "
                                          "arrays and UMA-8, 6000 on UMA-16 and ambisonic arrays)")
    p.add_argument("--frame", type=int, help="STFT frame in samples (default 512; on an ambisonic array 8 ms: "
                                             "128 samples at 16 kHz)")
    p.add_argument("--hop", type=int, help="STFT hop in samples (default 256; on an ambisonic array 4 ms)")
    p.add_argument("--update-frames", type=int, help="STFT frames per heatmap update (default 4; on an ambisonic "
                                                     "array 16)")
    eng = p.add_argument_group("learned engines")
    eng.add_argument("--engine", metavar="PATH.onnx",
                     help="audio-visual engine (avstream train makes one; engines/README.md): a map over the picture "
                          "and a mask of the sounding object; needs a camera")
    eng.add_argument("--engine-backend", choices=["auto", "tensorrt", "onnxruntime", "torch"],
                     help="auto (default): TensorRT with a GPU, else ONNX Runtime (CUDA or CPU)")
    eng.add_argument("--fusion", choices=["array", "engine", "product"],
                     help="the published picture map: the array's, the engine's, or (default) their product")
    eng.add_argument("--speech", choices=["auto", "on", "off"],
                     help="speech probability per update and per source (silero-vad; default auto: when ONNX "
                          "Runtime is installed)")
    p.add_argument("--config", help="YAML configuration file (see README); flags override it")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any configuration key, e.g. --set localize.smoothing=0.5 (repeatable)")


def _add_run_options(p):
    """The options of ``run`` (and ``record``, which runs the same pipeline)."""
    _add_common(p)
    p.add_argument("--source", choices=["synthetic", "file", "device", "recording"],
                   help="audio source (default synthetic); recording: a folder avstream record wrote (--file DIR)")
    p.add_argument("--file", help="audio file for --source file (WAV, FLAC, ...), or the folder for --source recording")
    p.add_argument("--fast", action="store_true",
                   help="read a file, recording or the synthetic scene as fast as possible, not in real time")
    p.add_argument("--device", help="input device index or name substring for --source device")
    p.add_argument("--rate", type=int, help="device sample rate (default: the array's, else 16000)")
    p.add_argument("--format", choices=["int16", "int24", "int32", "float32"], help="device sample format")
    p.add_argument("--duration", type=float, help="seconds to run; 0 = until stopped (default 5)")
    p.add_argument("--jsonl", help="write one JSON object per update to this file ('-' = stdout)")
    p.add_argument("--npz", help="write all heatmaps to this .npz at the end")
    p.add_argument("--save-sources", metavar="DIR",
                   help="write each tracked source's audio (a beam toward it) to DIR/track_<id>.wav, and "
                        "DIR/tracks.csv with where each starts")
    p.add_argument("--record", metavar="PATH.mcap",
                     help="record every ROS 2 topic to an MCAP file (ros2 bag play and Foxglove open it)")
    p.add_argument("--record-split-mb", type=float, metavar="MB",
                   help="split the --record file into PATH_0.mcap, PATH_1.mcap, ... of about MB each (as "
                        "ros2 bag record --max-bag-size)")
    p.add_argument("--no-status", action="store_true", help="no live status line")
    p.add_argument("--foxglove", nargs="?", type=int, const=8765, metavar="PORT",
                   help="serve the ROS 2 topics live to the Foxglove app (WebSocket, default port 8765, "
                        "loopback; --set foxglove.host=... to bind wider); needs avstream[dashboard]")
    p.add_argument("--dashboard", nargs="?", type=int, const=8080, metavar="PORT",
                   help="also serve the live web page (avstream dashboard) for this run's ZeroMQ stream "
                        "(default port 8080, loopback), in a process of its own beside the run")
    p.add_argument("--no-ros", action="store_true",
                     help="do not publish ROS 2 topics (default: on DDS, domain ROS_DOMAIN_ID)")
    p.add_argument("--zmq", metavar="ENDPOINT",
                     help="ZeroMQ PUB endpoint for dashboards (default tcp://127.0.0.1:5556)")
    p.add_argument("--no-zmq", action="store_true", help="no ZeroMQ stream")
    p.add_argument("--zmq-secret-key", metavar="FILE", help="server CURVE certificate (.key_secret): encrypt")
    p.add_argument("--zmq-clients", metavar="DIR", help="folder of allowed client public keys: authenticate")
    cam = p.add_argument_group("camera (the heatmap on the picture)")
    cam.add_argument("--camera", metavar="SOURCE",
                     help="camera: device index (0) or /dev/videoN, a video file, an rtsp:// or http:// URL, a "
                          "GStreamer pipeline ending in appsink, 'synthetic' (films the synthetic scene; the "
                          "default with it) or 'none'")
    cam.add_argument("--no-camera", action="store_true", help="no camera, no overlay (same as --camera none)")
    cam.add_argument("--intrinsics", metavar="CAMERA.yaml",
                     help="camera calibration in the ROS camera_calibration YAML format (avstream calibrate camera "
                          "writes it); default: the built-in camera for 'synthetic', else a 70-degree pinhole guess")
    cam.add_argument("--extrinsics", metavar="EXTRINSICS.yaml",
                     help="array-to-camera rotation and translation (avstream calibrate extrinsics writes it); "
                          "default: the camera looks along the side a planar array faces (+x for 3-D arrays)")
    cam.add_argument("--camera-optional", action="store_true",
                     help="a camera missing at start is a warning, not an error: audio only until it appears")
    cam.add_argument("--overlay", metavar="PATH.mp4",
                     help="write the overlay (heatmap on the picture, sources, status) as a video (.mp4 or .avi); "
                          "the demo writes avstream_overlay.mp4 unless --no-overlay")
    cam.add_argument("--no-overlay", action="store_true", help="no overlay video")
    cam.add_argument("--view", action="store_true", help="show the overlay live in a window (needs a display)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="avstream", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run the live pipeline (default: the synthetic demo)",
                         description="Run the streaming pipeline until the duration ends, the file ends or "
                                     "Ctrl-C. With no arguments: the synthetic demo scene for 5 s. ROS 2's own "
                                     "arguments work after --ros-args, as for any node: -r __ns:=/left_array "
                                     "(namespace), -r __node:=NAME, -r sources:=/doa (remap), -p KEY:=VALUE "
                                     "(configuration keys), --params-file FILE.")
    _add_run_options(run)
    rec = sub.add_parser("record", help="record audio, video and calibration into a folder (for avstream train)",
                         description="Run like avstream run (the same sources and options; ROS 2, ZeroMQ and the "
                                     "overlay video are off unless asked for) and write a recording folder: "
                                     "audio.wav (every channel), video.mp4, frames.csv (frame times from the first "
                                     "audio sample), array.yaml, camera.yaml and extrinsics.yaml. avstream run "
                                     "--source recording --file DIR replays it; avstream train learns from it.")
    _add_run_options(rec)
    rec.add_argument("--out", required=True, metavar="DIR", help="the recording folder to write")

    loc = sub.add_parser("locate", help="locate sources in a recording, JSON Lines to stdout",
                         description="Offline localization of an audio file. Writes one JSON object per update "
                                     '{"t", "peaks": [{"azimuth_deg", "elevation_deg", "power"}]} and a last line '
                                     '{"summary": {"peaks": [...]}} with the dominant sources over the file.')
    loc.add_argument("audio_file")
    _add_common(loc)
    lcam = loc.add_argument_group("camera (each line then also has \"pixels\": the picture map's peaks)")
    lcam.add_argument("--video", metavar="FILE", help="video recorded with the audio (starting with it)")
    lcam.add_argument("--intrinsics", metavar="CAMERA.yaml", help="its calibration (ROS camera_calibration YAML)")
    lcam.add_argument("--extrinsics", metavar="EXTRINSICS.yaml", help="array-to-camera rotation and translation")

    bench = sub.add_parser("bench", help="benchmark avstream against its peers, as a table",
                           description="Times avstream and, when installed, pyroomacoustics and acoular on the "
                                       "same scenes in one run; prints ms per update, updates/s, angular error "
                                       "and avstream's speed-up over each peer.")
    bench.add_argument("--workloads", default="W1,W2,W3,W4,W5,P,E,D",
                       help="comma-separated subset of W1,W2,W3 (localization), W4 (three talkers on a 4-mic "
                            "array, every method), W5 (two talkers on an ambisonic microphone, beside "
                            "spaudiopy), P (publishing cost), E (learned engines, needs torch) and D (the "
                            "run's CPU with the dashboard page open in headless Chromium)")
    bench.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke test)")
    bench.add_argument("--no-peers", action="store_true", help="avstream only")

    echo = sub.add_parser("echo", help="print what a ZeroMQ stream carries (rate, sources)",
                          description="Subscribe to an avstream ZeroMQ stream and print one line per heatmap "
                                      "(sequence, stamp, image size, sources), then the rate.")
    echo.add_argument("endpoint", help="e.g. tcp://127.0.0.1:5556")
    echo.add_argument("--count", type=int, default=0, help="stop after N messages (default: until Ctrl-C)")
    echo.add_argument("--seconds", type=float, default=0, help="stop after S seconds")
    echo.add_argument("--server-key", metavar="FILE", help="the server's public certificate (CURVE)")
    echo.add_argument("--client-key", metavar="FILE", help="this client's certificate with secret key (CURVE)")

    cal = sub.add_parser("calibrate", help="calibration: camera, extrinsics, events, channels",
                         description="camera: intrinsics from a chessboard/ChArUco; extrinsics: array-to-camera "
                                     "rotation from direction-pixel pairs; events: those pairs from a recording of "
                                     "claps or clicks; channels: check an array's wiring from a recording.")
    calsub = cal.add_subparsers(dest="what", metavar="WHAT")
    cc = calsub.add_parser("camera", help="camera intrinsics from views of a chessboard or ChArUco board",
                           description="Finds the board in each view (views without it are skipped and counted), "
                                       "calibrates with OpenCV and writes the ROS camera_calibration YAML (with the "
                                       "RMS reprojection error), which --intrinsics and ROS camera_info_manager read.")
    cc.add_argument("--images", metavar="DIR", help="folder of images (png, jpg, ...)")
    cc.add_argument("--video", metavar="FILE", help="a video file; every --step-th frame is a view")
    cc.add_argument("--device", metavar="N", help="a camera (index or /dev/videoN); every --step-th frame")
    cc.add_argument("--board", default="9x6", help="chessboard inner corners COLSxROWS, or ChArUco squares "
                                                   "(default 9x6)")
    cc.add_argument("--square", type=float, default=0.025, help="square size in metres (default 0.025)")
    cc.add_argument("--pattern", choices=["chessboard", "charuco"], default="chessboard")
    cc.add_argument("--marker", type=float, help="ChArUco marker size in metres (default 0.7 x square)")
    cc.add_argument("--dictionary", default="DICT_4X4_50", help="ChArUco ArUco dictionary (default DICT_4X4_50)")
    cc.add_argument("--model", choices=["plumb_bob", "rational_polynomial", "equidistant"], default="plumb_bob",
                    help="distortion model (equidistant: fisheye)")
    cc.add_argument("--step", type=int, default=10, help="video/device: use every N-th frame (default 10)")
    cc.add_argument("--min-views", type=int, default=5, help="views with the board needed (default 5)")
    cc.add_argument("--name", default="camera", help="camera_name in the file")
    cc.add_argument("--out", required=True, help="camera YAML to write")
    ext = calsub.add_parser("extrinsics", help="array-to-camera rotation from direction/pixel pairs",
                            description="Solve the rotation from the array frame to the camera optical frame from "
                                        "pairs of a sound direction and the pixel where its source was seen "
                                        "(CSV columns exactly azimuth_deg,elevation_deg,u,v), rejecting outliers; "
                                        "writes the extrinsics YAML with the residual.")
    ext.add_argument("--pairs", required=True, help="CSV: azimuth_deg,elevation_deg,u,v")
    ext.add_argument("--camera", required=True, help="camera intrinsics (ROS camera_calibration YAML)")
    ext.add_argument("--out", required=True, help="extrinsics YAML to write")
    ext.add_argument("--threshold-deg", type=float, default=3.0, help="inlier threshold (default 3 degrees)")
    ev = calsub.add_parser("events", help="direction-pixel pairs from a recording of claps or clicks",
                           description="Detects impulsive events in a recording, finds each one's direction, and "
                                       "pairs it with the pixel of its source: the brightest new spot (an LED on "
                                       "the clicker) in the video frame nearest the event, the pixel you click in "
                                       "a window showing that frame (--click), or the pixel you give in a CSV "
                                       "time_s,u,v. Writes the pairs CSV for calibrate extrinsics.")
    ev.add_argument("audio_file")
    ev.add_argument("--array", required=True, help="array preset or YAML")
    ev.add_argument("--video", help="video recorded alongside (starts with the audio, or see --video-offset)")
    ev.add_argument("--pixels", help="CSV time_s,u,v: where each event's source was (clicked by you)")
    ev.add_argument("--click", action="store_true",
                    help="with --video: show each event's frame in a window and click its source there "
                         "(Space skips an event, Esc stops; needs a display and a GUI OpenCV)")
    ev.add_argument("--video-offset", default="auto",
                    help="seconds the video starts after the audio, or auto (default): found by lining up "
                         "the LED flashes with the events (with --click: 0)")
    ev.add_argument("--threshold-db", type=float, default=12.0, help="onset rise over the background (default 12)")
    ev.add_argument("--out", required=True, help="pairs CSV to write (azimuth_deg,elevation_deg,u,v)")
    ch = calsub.add_parser("channels", help="check an array's channel order, swaps, mirroring and dead channels",
                           description="From a recording of one source at a known direction (--azimuth, "
                                       "--elevation), or of each microphone tapped in turn (--taps): reports dead "
                                       "channels, and the wiring (swapped channels, a turned or mirrored board) "
                                       "that explains the recording best. Exit status 1 when problems are found.")
    ch.add_argument("audio_file")
    ch.add_argument("--array", required=True, help="array preset or YAML")
    ch.add_argument("--azimuth", type=float, help="source azimuth in degrees (array frame)")
    ch.add_argument("--taps", action="store_true",
                    help="instead of a source at a known direction: the recording has mic 0, 1, ... tapped in turn")
    ch.add_argument("--elevation", type=float, default=0.0, help="source elevation in degrees (default 0)")
    ch.add_argument("--json", action="store_true", help="print the report as JSON")

    tr = sub.add_parser("train", help="learn an audio-visual engine from recording folders (no labels)",
                        description="Trains the audio-visual engine (localizer and segmenter) on recording folders "
                                    "(avstream record writes them) with no labels: audio-visual correspondence plus "
                                    "the calibrated array's map of the same instant as the spatial teacher. Shows "
                                    "progress, saves checkpoints, exports ONNX, checks ONNX Runtime against torch "
                                    "(max abs difference 1e-4) and only then writes --out (and NAME.pt beside it). "
                                    "Needs the train extra (torch).")
    tr.add_argument("folders", nargs="+", metavar="DIR")
    tr.add_argument("--out", required=True, metavar="NAME.onnx")
    tr.add_argument("--epochs", type=int, default=20)
    tr.add_argument("--batch", type=int, default=16, help="recordings per batch (default 16)")
    tr.add_argument("--lr", type=float, default=2e-3)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--array", help="array preset or YAML, for folders without array.yaml")
    tr.add_argument("--intrinsics", metavar="CAMERA.yaml", help="for folders without camera.yaml")
    tr.add_argument("--extrinsics", metavar="EXTRINSICS.yaml", help="for folders without extrinsics.yaml")
    en = sub.add_parser("engines", help="learned engine files: list, check, quantize, build TensorRT plans",
                        description="list: the engine files in a folder (default engines/) with their inputs and "
                                    "outputs. check: runs a file on ONNX Runtime and, when its torch checkpoint "
                                    "(NAME.pt) is beside it, on torch, and compares them (max abs difference at "
                                    "most 1e-4), with the time per run. quantize: an INT8 (Q/DQ) copy of an "
                                    "audio-visual engine, calibrated on your recording folders (TensorRT builds "
                                    "INT8 plans from it; ONNX Runtime runs it on a CPU). build: the TensorRT plan "
                                    "of a file, into the plan cache (needs TensorRT and a GPU).")
    ensub = en.add_subparsers(dest="what", metavar="WHAT")
    el = ensub.add_parser("list", help="engine files in a folder")
    el.add_argument("folder", nargs="?", default="engines")
    ec = ensub.add_parser("check", help="ONNX Runtime against torch, and timings")
    ec.add_argument("path")
    ec.add_argument("--threads", type=int, default=2)
    eq = ensub.add_parser("quantize", help="INT8 copy calibrated on recording folders")
    eq.add_argument("path", help="the FP32 engine (ONNX)")
    eq.add_argument("folders", nargs="+", metavar="FOLDER", help="recording folders (avstream record)")
    eq.add_argument("--out", required=True, help="the INT8 file to write, e.g. engines/mine.int8.onnx")
    eq.add_argument("--per-folder", type=int, default=32, help="updates kept from each folder (default 32)")
    eb = ensub.add_parser("build", help="build the TensorRT plan (GPU only)")
    eb.add_argument("path")
    eb.add_argument("--precision", choices=["fp16", "fp32", "int8"], default="fp16")
    eb.add_argument("--cache-dir", help="plan cache (default ~/.cache/avstream/engines)")
    sub.add_parser("devices", help="list audio input devices")
    db = sub.add_parser("dashboard", help="a live web page over avstream ZeroMQ streams",
                        description="Serve a web page (heatmap, overlay, sources, direction plot, input meters, "
                                    "status) over one or more avstream ZeroMQ streams, bridged over a WebSocket. "
                                    "Needs avstream[dashboard].")
    db.add_argument("endpoints", nargs="*", default=["tcp://127.0.0.1:5556"],
                    help="ZeroMQ PUB endpoints of avstream runs (default tcp://127.0.0.1:5556)")
    db.add_argument("--port", type=int, default=8080, help="HTTP/WebSocket port (default 8080; 0: any free)")
    db.add_argument("--bind", default="127.0.0.1", help="address to serve on (default loopback; others need --token)")
    db.add_argument("--token", help="access token: the page is opened as http://HOST:PORT/?token=TOKEN")
    return parser


# `avstream run` flags that set a configuration key to their value ...
RUN_VALUE_FLAGS = [("source", "source.kind"), ("file", "source.path"), ("device", "source.device"),
                   ("rate", "source.sample_rate"), ("format", "source.sample_format"), ("jsonl", "output.jsonl"),
                   ("npz", "output.npz"), ("save_sources", "output.sources"), ("record", "output.record"),
                   ("record_split_mb", "output.record_split_mb"),
                   ("zmq", "zmq.endpoint"), ("foxglove", "foxglove.port"),
                   ("zmq_secret_key", "zmq.curve_secret_key"), ("zmq_clients", "zmq.curve_clients"),
                   ("camera", "camera.source"), ("intrinsics", "camera.intrinsics"),
                   ("extrinsics", "camera.extrinsics"), ("overlay", "output.overlay")]
# ... and switches that set one to a fixed value
RUN_SWITCHES = [("fast", "source.realtime", False), ("no_status", "output.status", False),
                ("no_ros", "ros.publish", False), ("no_zmq", "zmq.endpoint", None),
                ("no_camera", "camera.source", "none"), ("camera_optional", "camera.optional", True),
                ("no_overlay", "output.overlay", None), ("view", "output.view", True)]


def _overrides(args, command) -> dict:
    from .config import parse_override

    o: dict = {}
    if args.array:
        o["array"] = args.array
    if args.grid:
        o["localize.grid"] = args.grid
    if args.method:
        o["localize.method"] = args.method
    if args.sources is not None:
        o["localize.sources"] = args.sources
    if args.no_tracking:
        o["track.enabled"] = False
    if args.band:
        try:
            lo, hi = (float(v) for v in args.band.split(","))
        except ValueError:
            raise AvstreamError(f"--band '{args.band}': expected LO,HI in Hz, e.g. 300,3500") from None
        o["localize.band"] = [lo, hi]
    if args.frame is not None:
        o["stft.frame"] = args.frame
    if args.hop is not None:
        o["stft.hop"] = args.hop
    if args.update_frames is not None:
        o["localize.update_frames"] = args.update_frames
    for flag, key in (("engine", "engine.path"), ("engine_backend", "engine.backend"), ("fusion", "engine.fusion"),
                      ("speech", "engine.speech")):
        if getattr(args, flag) is not None:
            o[key] = getattr(args, flag)
    if command in ("run", "record"):
        for flag, key in RUN_VALUE_FLAGS:
            value = getattr(args, flag)
            if value is not None and value is not False:
                o[key] = value
        for flag, key, value in RUN_SWITCHES:
            if getattr(args, flag):
                o[key] = value
        if args.file:
            o.setdefault("source.kind", "file")
        if args.device is not None:
            o.setdefault("source.kind", "device")
        if args.duration is not None:
            o["duration"] = None if args.duration == 0 else args.duration
    if command == "record":  # capture only, unless outputs are asked for
        o["output.recording"] = args.out
        o.setdefault("ros.publish", False)
        if args.zmq is None:
            o["zmq.endpoint"] = None
        o.setdefault("output.overlay", None)
    o.update(getattr(args, "ros_overrides", {}))
    for item in args.set:
        k, v = parse_override(item)
        o[k] = v
    return o


def cmd_run(args) -> int:
    from .config import load_config
    from .pipeline import Pipeline
    from .sinks.assemble import build_sinks
    from .sinks.status import StatusLine
    from .sinks.video import VideoFileSink

    cfg = load_config(args.config, _overrides(args, args.command))
    sinks = build_sinks(cfg)
    # the status line rewrites itself with \r: only on a terminal, unless AVSTREAM_STATUS=1
    show = cfg.output.status and (sys.stderr.isatty() or os.environ.get("AVSTREAM_STATUS") == "1")
    status = StatusLine() if show else None
    from .sinks.zmq_sink import ZmqSink

    for z in (s for s in sinks if isinstance(s, ZmqSink)):
        print(f"avstream: ZeroMQ stream on {z.endpoint} (check it: avstream echo {z.endpoint})", file=sys.stderr)
    dash = None
    if getattr(args, "dashboard", None) is not None:
        zmq_sinks = [s for s in sinks if isinstance(s, ZmqSink)]
        if not zmq_sinks:
            raise AvstreamError("--dashboard shows the ZeroMQ stream: drop --no-zmq")
        dash = _DashboardProcess(zmq_sinks[0].endpoint, args.dashboard)
    for f in (s for s in sinks if type(s).__name__ == "FoxgloveSink"):
        print(f"avstream: Foxglove on ws://{f.host}:{f.port} (Foxglove app: Open connection, Foxglove WebSocket; "
              f"layout: {os.path.join(os.path.dirname(__file__), 'foxglove_layout.json')})", file=sys.stderr)
    pipe = Pipeline(cfg, sinks, status=status)
    if cfg.source.kind == "synthetic":
        scene = ", ".join(f"{s.kind} at az {s.azimuth_deg:+.0f} el {s.elevation_deg:+.0f}"
                          + (f" turning {s.azimuth_rate_deg_s:+.0f} deg/s" if s.azimuth_rate_deg_s else "")
                          for s in cfg.source.scene.sources)
        print(f"avstream: synthetic scene on {pipe.array.name} ({pipe.array.n_mics} mics): {scene}",
              file=sys.stderr)
    overlay = next((s for s in sinks if isinstance(s, VideoFileSink)), None)
    signal.signal(signal.SIGTERM, lambda *_: pipe.stop())
    # Ctrl-C asks the pipeline to stop between two blocks, so every update made reaches every sink
    # and the summary counts exactly those; a second Ctrl-C interrupts whatever hangs
    signal.signal(signal.SIGINT, lambda *_: (pipe.stop(), signal.signal(signal.SIGINT, signal.default_int_handler)))
    if _EARLY_STOP:  # told to stop while starting: stop before the first block, closing every output
        pipe.stop()
    # a file read as fast as possible runs in this thread: nothing to pace, nothing to drop,
    # and video frames pair with the audio by stream time exactly
    fast = cfg.source.kind != "device" and not cfg.source.realtime
    try:
        summary = pipe.run_sync() if fast else pipe.run()  # Ctrl-C ends the run like the duration does
    finally:
        if dash is not None:
            dash.stop()
    peaks = ", ".join(f"az {p['azimuth_deg']:+.1f} el {p['elevation_deg']:+.1f} (power {p['power']:.2f})"
                      for p in summary["peaks"]) or "none"
    print(f"avstream: {summary['updates']} updates over {summary['seconds']:.1f} s ({summary['method']}); dominant "
          f"sources: {peaks}; dropped blocks {summary['dropped_blocks']}"
          + (f", skipped updates {summary['skipped_updates']} (behind real time)" if summary.get("skipped_updates") else "")
          + ", input flags "
          f"{summary['input_flags'] or 'none'}", file=sys.stderr)
    if summary.get("tracks"):
        tracks = ", ".join(f"#{t['id']} {t['first_s']:.1f}-{t.get('last_s', t['first_s']):.1f} s"
                           + (f" last at az {t['azimuth_deg']:+.1f} el {t['elevation_deg']:+.1f}" if "azimuth_deg" in t
                              else "") for t in summary["tracks"])
        print(f"avstream: tracks: {tracks}", file=sys.stderr)
    if "video" in summary:
        v = summary["video"]
        print(f"avstream: camera {v['camera']}: {v['video_frames']} frames, {v['video_dropped']} dropped, "
              f"{v['camera_reconnects']} reconnects, state {v['camera_state']}", file=sys.stderr)
    if overlay is not None:
        print(f"avstream: overlay video: {overlay.path.resolve()} ({overlay.frames} frames)", file=sys.stderr)
    if "recording" in summary:
        r = summary["recording"]
        print(f"avstream: recording {r['folder']}: {r['seconds']:.1f} s of audio, {r['frames']} frames", file=sys.stderr)
    if pipe.array.planar:
        print("avstream: note: " + pipe.array.describe()["ambiguity"], file=sys.stderr)
    return 0


def _end_with_parent():
    """In a child, before exec: SIGTERM when the parent dies, even killed outright (Linux prctl
    PR_SET_PDEATHSIG), so no server is left behind a run that was SIGKILLed."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


class _DashboardProcess:
    """`avstream dashboard` for this run's stream, in a process of its own beside the run: its
    bridge and every browser tab cost the run no Python time (no shared GIL), and whatever a
    page or a flood of connections does to it, the run goes on."""

    def __init__(self, endpoint, port):
        self.proc = subprocess.Popen([sys.executable, "-m", "avstream", "dashboard", endpoint, "--port", str(port)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True, preexec_fn=_end_with_parent if sys.platform == "linux" else None)
        said = []
        for line in self.proc.stderr:  # its first line says where it serves, or why it cannot
            said.append(line.rstrip())
            if line.startswith("avstream: dashboard on "):
                break
        else:
            self.proc.wait()
            raise AvstreamError("; ".join(x.removeprefix("avstream: ").removeprefix("error: ") for x in said[-3:])
                                or f"the dashboard exited with status {self.proc.returncode}")
        print(said[-1].split(" (Ctrl-C")[0], file=sys.stderr)
        # what it says later (a stream that is not avstream's) goes on to our stderr
        threading.Thread(target=lambda: [print(x, end="", file=sys.stderr) for x in self.proc.stderr],
                         name="dashboard-stderr", daemon=True).start()

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:  # a dashboard that does not end on SIGTERM is killed
            self.proc.kill()
            self.proc.wait()


def _dashboard(endpoints, port, bind="127.0.0.1", token=None):
    try:
        from .dashboard import Dashboard
    except ImportError as exc:
        raise AvstreamError(f"the dashboard needs websockets: pip install 'avstream[dashboard]' ({exc})") from None
    try:
        return Dashboard(endpoints, bind, port, token).start()
    except ModuleNotFoundError as exc:
        raise AvstreamError(f"the dashboard needs websockets: pip install 'avstream[dashboard]' ({exc})") from None


def cmd_dashboard(args) -> int:
    dash = _dashboard(args.endpoints, args.port, args.bind, args.token)
    print(f"avstream: dashboard on {dash.url} for {', '.join(args.endpoints)} (Ctrl-C stops)", file=sys.stderr)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    dash.stop()
    return 0


def cmd_locate(args) -> int:
    from .config import load_config
    from .pipeline import Pipeline
    from .sinks import JsonlSink

    o = _overrides(args, "locate")
    o["source.kind"] = "file"
    o["source.path"] = args.audio_file
    o["source.realtime"] = False
    o["source.block"] = 4096
    o["duration"] = None
    o["camera.source"] = args.video or "none"
    o["camera.realtime"] = False
    if args.intrinsics:
        o["camera.intrinsics"] = args.intrinsics
    if args.extrinsics:
        o["camera.extrinsics"] = args.extrinsics
    cfg = load_config(args.config, o)
    pipe = Pipeline(cfg, [JsonlSink("-")])
    print(f"avstream: array {pipe.array.name} ({pipe.array.n_mics} microphones"
          + (", the default: --array names yours" if not args.array and not args.config else "") + ")", file=sys.stderr)
    pipe.run_sync()
    if pipe.array.planar:
        print("avstream: note: " + pipe.array.describe()["ambiguity"], file=sys.stderr)
    return 0


def cmd_bench(args) -> int:
    from .bench import main as bench_main

    return bench_main(args.workloads.split(","), quick=args.quick, peers=not args.no_peers)


def cmd_echo(args) -> int:
    import time

    from .sinks.zmq_sink import decode, subscribe

    sock = subscribe(args.endpoint, args.server_key, args.client_key)
    start = time.monotonic()
    first = None
    n = 0
    try:
        while True:
            left = None if not args.seconds else args.seconds - (time.monotonic() - start)
            if left is not None and left <= 0:
                break
            if not sock.poll(500 if left is None else max(1, int(min(left, 0.5) * 1000))):
                continue
            header, image = decode(sock.recv_multipart())
            n += 1
            first = first or time.monotonic()
            src = ", ".join(f"az {p['azimuth_deg']:+.1f} el {p['elevation_deg']:+.1f} ({p['power']:.2f})"
                            for p in header["sources"]) or "none"
            flags = f" flags {','.join(header['flags'])}" if header["flags"] else ""
            print(f"seq {header['seq']:6d}  stamp {header['stamp']:.3f}  {image.shape[0]}x{image.shape[1]}  "
                  f"max {float(image.max()):.3f}  sources: {src}{flags}", flush=True)
            if args.count and n >= args.count:
                break
    except KeyboardInterrupt:
        pass
    finally:
        sock.close(linger=0)
    if n == 0:
        print(f"avstream: no messages from {args.endpoint}", file=sys.stderr)
        return 1
    span = time.monotonic() - first
    rate = (n - 1) / span if n > 1 and span > 0 else 0.0
    print(f"avstream: {n} messages, {rate:.1f}/s", file=sys.stderr)
    return 0


def _read_recording(path, array):
    """(n_channels, n) samples and rate of a whole recording, checked against the array."""
    from .capture.file import FileSource
    from .errors import InputError

    src = FileSource(path, array)
    if array.sample_rate and src.sample_rate != array.sample_rate:
        raise InputError(f"{path}: {src.sample_rate} Hz, but array {array.name} is {array.sample_rate} Hz")
    try:
        return src.read_all(), src.sample_rate
    finally:
        src.stop()


def cmd_calibrate(args) -> int:
    if args.what == "camera":
        return _calibrate_camera(args)
    if args.what == "events":
        return _calibrate_events(args)
    if args.what == "channels":
        return _calibrate_channels(args)
    if args.what != "extrinsics":
        raise AvstreamError("calibrate: say what to calibrate: camera, extrinsics, events or channels")
    from .calibrate.extrinsics import calibrate_extrinsics
    from .geometry.camera import load_camera, save_extrinsics

    ext, fit = calibrate_extrinsics(args.pairs, load_camera(args.camera), args.threshold_deg)
    save_extrinsics(ext, args.out, fit.residual_deg)
    print(f"avstream: rotation from {int(fit.inliers.sum())} of {len(fit.inliers)} pairs "
          f"({int((~fit.inliers).sum())} rejected as outliers), residual {fit.residual_deg:.2f} deg RMS; "
          f"written to {args.out}", file=sys.stderr)
    return 0


def _calibrate_camera(args) -> int:
    from .calibrate.camera import calibrate_camera, iter_views, parse_board
    from .geometry.camera import save_camera

    board = parse_board(args.board)
    views = iter_views(args.images, args.video, args.device, step=max(1, args.step))
    res = calibrate_camera(views, board, args.square, args.pattern, args.model, args.marker, args.dictionary,
                           args.min_views, args.name)
    save_camera(res.camera, args.out, res.rms_px)
    K = res.camera.K
    print(f"avstream: board found in {res.used} views, {res.skipped} skipped (no board"
          + (f": {', '.join(res.skipped_names[:5])}{' ...' if res.skipped > 5 else ''}" if res.skipped else "")
          + f"); fx {K[0, 0]:.2f} fy {K[1, 1]:.2f} cx {K[0, 2]:.2f} cy {K[1, 2]:.2f}, reprojection error "
          f"{res.rms_px:.3f} px RMS; written to {args.out}", file=sys.stderr)
    return 0


def _calibrate_events(args) -> int:
    from .calibrate.events import extract_pairs, write_pairs
    from .geometry.arrays import load_array

    array = load_array(args.array)
    x, rate = _read_recording(args.audio_file, array)
    offset = 0.0 if args.click else None
    if args.video_offset != "auto":
        try:
            offset = float(args.video_offset)
        except ValueError:
            raise AvstreamError(f"--video-offset {args.video_offset}: seconds, or auto") from None
    events, offset = extract_pairs(x[list(array.mic_channels)], rate, array, args.video, args.pixels, offset,
                                   args.threshold_db, click=args.click)
    if args.video and args.video_offset == "auto" and not args.click:
        print(f"avstream: the video starts {offset:+.3f} s after the audio (from the LED flashes)", file=sys.stderr)
    n = write_pairs(events, args.out)
    for e in events:
        px = f"pixel ({e.u:.1f}, {e.v:.1f})" if e.u == e.u else "no pixel"
        print(f"  t {e.time_s:7.3f} s  az {e.azimuth_deg:+7.1f} el {e.elevation_deg:+6.1f}  {px}", file=sys.stderr)
    print(f"avstream: {len(events)} events, {n} with a pixel; pairs written to {args.out} "
          f"(next: avstream calibrate extrinsics --pairs {args.out} --camera CAMERA.yaml --out EXTRINSICS.yaml)",
          file=sys.stderr)
    if n < 3:
        raise AvstreamError(f"only {n} events have both a direction and a pixel; extrinsics need at least 3")
    return 0


def _calibrate_channels(args) -> int:
    import json

    from .calibrate.channels import check_channels, format_report
    from .geometry.arrays import load_array

    array = load_array(args.array)
    x, _ = _read_recording(args.audio_file, array)
    if args.taps:
        from .calibrate.channels import check_taps

        report = check_taps(x, array)
    elif args.azimuth is None:
        raise AvstreamError("calibrate channels: give --azimuth (and --elevation) of the source, or --taps")
    else:
        report = check_channels(x, array, args.azimuth, args.elevation)
    print(json.dumps(report.to_dict()) if args.json else format_report(report, array))
    return 0 if report.ok else 1


def cmd_train(args) -> int:
    import json

    try:
        from .models.train import train
    except ImportError as exc:
        raise AvstreamError(f"avstream train needs PyTorch: pip install 'avstream[train]' ({exc})") from None
    o = {}
    for flag, key in (("array", "array"), ("intrinsics", "camera.intrinsics"), ("extrinsics", "camera.extrinsics")):
        if getattr(args, flag):
            o[key] = getattr(args, flag)
    report = train(args.folders, args.out, epochs=args.epochs, batch=args.batch, lr=args.lr, seed=args.seed,
                   overrides=o)
    print(json.dumps(report))
    return 0


def cmd_engines(args) -> int:
    import json

    from .engines import tools

    if args.what == "list":
        files = tools.engine_files(args.folder)
        for f in files:
            print(tools.describe(f))
        if not files:
            print(f"no engine files in {args.folder}")
        return 0
    if args.what == "check":
        report = tools.check(args.path, args.threads)
        print(json.dumps(report))
        return 0 if report["ok"] else 1
    if args.what == "quantize":
        from .engines.quantize import quantize

        print(json.dumps(quantize(args.path, args.folders, args.out, args.per_folder)))
        return 0
    if args.what == "build":
        print(tools.build(args.path, args.precision, args.cache_dir))
        return 0
    raise AvstreamError("engines: say what to do: list, check, quantize or build")


def cmd_devices(args) -> int:
    from .capture.device import list_devices

    devs = list_devices()
    if not devs:
        print("no audio input devices")
    for d in devs:
        print(f"{d['index']:3d}  {d['name']}  ({d['channels']} ch, {d['rate']:.0f} Hz default)")
    return 0


# stop signals that arrived while a run was starting (before it could stop cleanly): the run
# stops as soon as it can, so its outputs are closed and its summary written
_EARLY_STOP: list = []


def _remember_stop(signum, frame):
    _EARLY_STOP.append(signum)
    if len(_EARLY_STOP) > 1:  # asked twice: interrupt whatever keeps the start from finishing
        raise KeyboardInterrupt


def main(argv=None) -> int:
    from . import ros_args

    argv = list(sys.argv[1:] if argv is None else argv)
    runs = not argv or argv[0] in ("run", "record") or argv[0].startswith("-")
    if runs and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _remember_stop)
        signal.signal(signal.SIGTERM, _remember_stop)
    parser = build_parser()
    argv, ros_tokens = ros_args.split(argv)
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["run"] + list(argv or []))
    from .logs import to_stderr

    to_stderr()
    try:
        # ROS 2's own arguments (ros2 run / launch): namespace, node name, remaps, parameters
        args.ros_overrides = ros_args.to_overrides(ros_tokens) if ros_tokens else {}
        return {"run": cmd_run, "record": cmd_run, "locate": cmd_locate, "bench": cmd_bench, "echo": cmd_echo, "calibrate": cmd_calibrate,
                "engines": cmd_engines, "train": cmd_train, "devices": cmd_devices,
                "dashboard": cmd_dashboard}[args.command](args)
    except AvstreamError as exc:
        print(f"avstream: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
