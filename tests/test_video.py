"""The acoustic camera: video capture, pairing, the camera-registered grid and the overlay.

Layers: the synthetic camera films the synthetic scene (ground truth: the objects' pixels);
real video files and an HTTP stream on loopback through OpenCV's FFmpeg backend; a camera
that disappears mid-run and comes back; the overlay video read back frame by frame.
"""
from __future__ import annotations

import http.server
import shutil
import socketserver
import threading
import time

import cv2
import numpy as np
import pytest

from avstream.capture.video import OpenCvCamera, VideoRunner
from avstream.config import load_config
from avstream.errors import ConfigError, InputError
from avstream.geometry.camera import Extrinsics, load_camera
from avstream.geometry.grids import angular_distance_deg, to_unit
from avstream.pipeline import Pipeline
from avstream.sinks.ros_format import RosFormatter
from helpers import ROOT, Collect, run_cli

NOISE_BGR = np.array([255, 200, 0])  # the synthetic camera's colour for a noise source
# a steady source to look for, and an intermittent talker elsewhere in the picture
SCENE = {"sources": [{"kind": "noise", "azimuth_deg": 30.0, "elevation_deg": 70.0, "level_db": -20.0},
                     {"kind": "speech", "azimuth_deg": -100.0, "elevation_deg": 62.0, "level_db": -23.0}],
         "snr_db": 20.0}


def write_clip(path, seconds=1.0, fps=20, size=(320, 240)):
    """A video whose frame k shows k in its pixel values (so frames can be told apart)."""
    fourcc = "MJPG" if str(path).endswith(".avi") else "mp4v"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    assert w.isOpened()
    for k in range(int(seconds * fps)):
        img = np.full((size[1], size[0], 3), 10 + 8 * (k % 30), np.uint8)
        cv2.putText(img, str(k), (20, 120), cv2.FONT_HERSHEY_SIMPLEX, 2, (255, 255, 255), 3)
        w.write(img)
    w.release()
    return path


def object_centroid(image, colour=NOISE_BGR, tol=40):
    """Pixel centroid of the synthetic object of this colour, or None when not in the picture."""
    mask = np.all(np.abs(image.astype(int) - colour) <= tol, axis=2)
    if mask.sum() < 20:
        return None
    v, u = np.nonzero(mask)
    return float(u.mean()), float(v.mean())


def run_sync(overrides, sinks=None):
    sink = Collect()
    pipe = Pipeline(load_config(None, overrides), [sink] + list(sinks or []))
    pipe.run_sync()
    return pipe, sink


def run_live_while(overrides, action):
    """Run the threaded pipeline while ``action`` (in another thread) does something to the camera."""
    sink = Collect()
    pipe = Pipeline(load_config(None, overrides), [sink])
    t = threading.Thread(target=action)
    t.start()
    summary = pipe.run()
    t.join()
    return pipe, sink, summary


# --- the camera-registered grid ---------------------------------------------------------------

@pytest.mark.parametrize("intrinsics", [None, "example_fisheye.yaml"])
def test_camera_grid_cells_look_where_their_pixels_are(intrinsics):
    """Each cell's direction, carried back through the extrinsics (with parallax) and the camera
    model, lands on its block's centre pixel: the map is computed where the picture is."""
    o = {"duration": 0.1}
    if intrinsics:
        o["camera.intrinsics"] = str(ROOT / "calibration" / intrinsics)
    pipe = Pipeline(load_config(None, o))
    cam, ext, grid = pipe.camera, pipe.extrinsics, pipe.grid
    rows, cols = grid.shape
    assert grid.definition["type"] == "camera" and (cols, rows) == (round(cam.width / 10), round(cam.height / 10))
    n = rows * cols  # the image cells; the surround comes after them
    assert grid.n_image == n and grid.n_dirs > n
    seen = np.ones(n, bool) if grid.valid is None else grid.valid[:n]
    assert seen.mean() > 0.8  # a fisheye's corners lie outside its image circle: no direction there
    u, v = cam.project(ext.to_camera(grid.directions[:n][seen], pipe.cfg.camera.source_distance_m))
    uu, vv = np.meshgrid((np.arange(cols) + 0.5) * cam.width / cols - 0.5, (np.arange(rows) + 0.5) * cam.height / rows - 0.5)
    miss = np.hypot(u - uu.ravel()[seen], v - vv.ravel()[seen])
    # OpenCV's iterative undistortion leaves hundredths of a pixel (up to half a pixel at the
    # rim of a fisheye's image circle, where rays graze 90 degrees)
    assert np.isfinite(miss).all() and np.median(miss) < 0.05
    assert miss.max() < (0.05 if cam.model == "plumb_bob" else 0.5)
    # and parallax matters: without the distance correction the same cells miss by pixels
    u2, v2 = cam.project(ext.to_camera(grid.directions[:n][seen]))
    assert np.nanmax(np.hypot(u2 - uu.ravel()[seen], v2 - vv.ravel()[seen])) > 1.0


# --- the synthetic camera and the overlay --------------------------------------------------

@pytest.mark.parametrize("intrinsics", [None, "example_fisheye.yaml", "example_equirectangular.yaml"])
def test_heatmap_peak_lands_on_the_object(intrinsics):
    """A steady source: its object's centroid in the rendered frame (found by colour) and the
    heatmap's peak on the overlay agree within a few pixels, update by update, for the built-in
    distorted pinhole, a fisheye and a 360-degree camera."""
    o = {"duration": 2.0, "source.scene": SCENE}
    if intrinsics:
        o["camera.intrinsics"] = str(ROOT / "calibration" / intrinsics)
    pipe, sink = run_sync(o)
    assert len(sink.maps) >= 25
    errors, argmax_errors = [], []
    scale = pipe.camera.width / 640
    for hm in sink.maps:
        truth = object_centroid(hm.frame.image)
        assert truth is not None
        assert hm.overlay.shape == hm.frame.image.shape
        peaks = pipe.overlay.peak_pixels(hm.peaks)
        errors.append(min(np.hypot(u - truth[0], v - truth[1]) for u, v in peaks if np.isfinite(u)))
        m = pipe.overlay.map_image(hm.values)
        r, c = np.unravel_index(np.argmax(m), m.shape)
        cu = (c + 0.5) * pipe.camera.width / m.shape[1] - 0.5
        cv = (r + 0.5) * pipe.camera.height / m.shape[0] - 0.5
        argmax_errors.append(np.hypot(cu - truth[0], cv - truth[1]))
    # a few pixels: 5.6 px is one degree at the centre of the built-in camera
    assert np.median(errors) <= 6 * scale, np.round(errors, 1)
    assert np.max(errors) <= 10 * scale, np.round(errors, 1)
    assert np.median(argmax_errors) <= 10 * scale, np.round(argmax_errors, 1)


def test_nothing_lights_up_without_a_source():
    """Diffuse noise alone leaves the picture almost untouched (no colour, no marks); a source
    colours it."""
    quiet = {"sources": [{"kind": "noise", "azimuth_deg": 0.0, "elevation_deg": 80.0, "level_db": -90.0}],
             "snr_db": -40.0}
    change = {}
    for name, scene in [("noise", quiet), ("source", SCENE)]:
        _, sink = run_sync({"duration": 1.0, "source.scene": scene})
        change[name] = np.median([np.abs(hm.overlay[:-24].astype(int) - hm.frame.image[:-24]).mean()
                                  for hm in sink.maps])
    assert change["noise"] < 0.5 and change["source"] > 4.0, change


def test_source_out_of_the_picture_is_found_there_and_pointed_at():
    """A source 80 degrees off the camera axis (outside its 90 x 74 degree view): the camera
    grid's surround finds it where it is; the picture shows no false source on its edge but
    an arrow the way to turn."""
    from avstream.geometry.grids import in_view

    out = {"sources": [{"kind": "noise", "azimuth_deg": 30.0, "elevation_deg": 10.0, "level_db": -20.0}],
           "snr_db": 20.0}
    pipe, sink = run_sync({"duration": 1.5, "source.scene": out})
    grid, truth = pipe.grid, to_unit(30.0, 10.0)
    n = grid.n_image
    assert not in_view(pipe.camera, pipe.extrinsics, truth[None], 3.0)[0]
    # the surround is exactly the part of the searched half-space the picture does not hold
    assert not in_view(pipe.camera, pipe.extrinsics, grid.directions[n:], 3.0).any()
    assert in_view(pipe.camera, pipe.extrinsics, grid.directions[:n], 3.0).mean() > 0.99
    best = sink.summary["peaks"][0]
    assert angular_distance_deg(to_unit(best["azimuth_deg"], best["elevation_deg"]), truth) <= 3.0
    late = sink.maps[len(sink.maps) // 3:]
    for hm in late:
        assert angular_distance_deg(to_unit(hm.peaks[0].azimuth_deg, hm.peaks[0].elevation_deg), truth) <= 5.0
        # nothing marked on the picture: every peak there is a ripple next to the source
        on_picture = [p for (u, _), p in zip(pipe.overlay.peak_pixels(hm.peaks), hm.peaks) if np.isfinite(u)]
        assert all(p.power < 0.5 * hm.peaks[0].power for p in on_picture)
    # the arrow: drawn at its edge point, on the side where the source's direction leaves the picture
    hm = late[-1]
    (x, y), _ = pipe.overlay.edge_point(hm.peaks[0])
    near = hm.overlay[int(y) - 6:int(y) + 7, int(x) - 6:int(x) + 7]
    assert (near.min(axis=2) >= 250).sum() >= 5  # white arrow head
    halfway = to_unit(30.0, 50.0)  # between the camera axis (elevation 90) and the source: in view
    u, v = pipe.camera.project(pipe.extrinsics.to_camera(halfway[None], 3.0))
    c = np.array([319.5, 239.5])
    a, b = np.array([x, y]) - c, np.array([u[0], v[0]]) - c
    assert np.degrees(np.arccos(a @ b / np.linalg.norm(a) / np.linalg.norm(b))) < 10.0


def test_overlay_from_a_sphere_grid_shows_the_same_place():
    """Any grid can be drawn: a sphere map is looked up per pixel block, and its hottest block
    is on the object too."""
    pipe, sink = run_sync({"duration": 1.0, "localize.grid": "sphere:20000", "source.scene": SCENE})
    errs = []
    for hm in sink.maps:
        truth = object_centroid(hm.frame.image)
        m = pipe.overlay.map_image(hm.values)
        r, c = np.unravel_index(np.argmax(m), m.shape)
        errs.append(np.hypot((c + 0.5) * 640 / m.shape[1] - 0.5 - truth[0], (r + 0.5) * 480 / m.shape[0] - 0.5 - truth[1]))
    assert np.median(errs) <= 12, np.round(errs, 1)


# --- real video through OpenCV --------------------------------------------------------------

def test_video_file_frames_pair_by_media_time(tmp_path):
    """A 20 fps file read as fast as the audio: each update gets the frame nearest the middle
    of its audio window (offset at most half a frame period), in order."""
    clip = write_clip(tmp_path / "clip.mp4", seconds=3.0, fps=20)
    pipe, sink = run_sync({"duration": 2.0, "camera.source": str(clip)})
    offsets = [hm.status["video_offset_ms"] for hm in sink.maps]
    assert max(abs(o) for o in offsets) <= 25.0 + 1e-6, offsets
    seqs = [hm.frame.seq for hm in sink.maps]
    assert seqs == sorted(seqs) and seqs[-1] - seqs[0] >= 30
    # an uncalibrated camera: a generic pinhole of the file's size, grid registered to it
    assert (pipe.camera.width, pipe.camera.height) == (320, 240) and pipe.grid.definition["type"] == "camera"
    assert sink.maps[-1].overlay.shape == (240, 320, 3)


def test_http_stream_on_loopback(tmp_path):
    """A network stream (HTTP on loopback, FFmpeg backend) is read live: frames arrive with
    epoch stamps and the runner counts them."""
    # Motion JPEG in AVI plays from the first byte (an MP4 needs seeking to its index, which a
    # plain HTTP server without range requests cannot give)
    write_clip(tmp_path / "clip.avi", seconds=2.0, fps=20)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(tmp_path), **k)

        def log_message(self, *a):
            pass

    with socketserver.TCPServer(("127.0.0.1", 0), Quiet) as httpd:
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        cam = OpenCvCamera(f"http://127.0.0.1:{httpd.server_address[1]}/clip.avi")
        assert cam.kind == "url"
        cam.open()
        runner = VideoRunner(cam)
        runner.start()
        deadline = time.monotonic() + 10
        while runner.captured < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        frame = runner.nearest(time.time())
        runner.stop()
        httpd.shutdown()
    assert runner.captured >= 20 and frame is not None
    assert abs(frame.stamp - time.time()) < 10 and frame.image.shape == (240, 320, 3)


def test_latest_frame_wins_and_drops_are_counted(tmp_path):
    """Capture never waits for the consumer: a consumer that does not look loses old frames,
    and they are counted; one that looks every time loses none."""
    clip = write_clip(tmp_path / "clip.mp4", seconds=2.0, fps=20)
    cam = OpenCvCamera(str(clip), realtime=False)
    cam.open()
    runner = VideoRunner(cam, history=4)
    runner.start()
    deadline = time.monotonic() + 10
    while runner.state != "ended" and time.monotonic() < deadline:
        time.sleep(0.02)
    runner.stop()
    assert runner.captured == 40 and runner.dropped == 40 - 4
    newest = runner.nearest(1e9)
    assert newest.seq == 39


def test_gstreamer_pipeline_without_gstreamer_is_a_clear_error():
    from avstream.capture.video import has_gstreamer

    if has_gstreamer():
        pytest.skip("this OpenCV has GStreamer")
    with pytest.raises(ConfigError, match="GStreamer"):
        OpenCvCamera("videotestsrc ! videoconvert ! appsink drop=1 max-buffers=1")


# --- faults -------------------------------------------------------------------------------

def test_camera_missing_at_start(tmp_path):
    missing = tmp_path / "nope.mp4"
    p = run_cli("run", "--duration", "1", "--camera", missing, "--no-ros", "--no-zmq", "--no-status")
    assert p.returncode == 2 and "nope.mp4" in p.stderr and "camera.optional" in p.stderr
    assert "Traceback" not in p.stderr
    out = tmp_path / "o.jsonl"
    p = run_cli("run", "--duration", "1", "--camera", missing, "--camera-optional", "--intrinsics",
                ROOT / "calibration" / "example_pinhole.yaml", "--no-ros", "--no-zmq", "--no-status",
                "--jsonl", out)
    assert p.returncode == 0, p.stderr
    assert "audio only" in p.stderr
    lines = [ln for ln in out.read_text().splitlines() if ln]
    assert len(lines) > 10  # the audio went on


def test_camera_lost_and_restored(tmp_path):
    """A looping video file vanishes mid-run and comes back: every audio update is made, the
    updates meanwhile say the camera is lost (an ERROR on its diagnostic status), and video resumes."""
    clip = write_clip(tmp_path / "clip.mp4", seconds=0.5, fps=20)
    hidden = tmp_path / "hidden.mp4"

    def vanish():
        time.sleep(2.0)
        shutil.move(clip, hidden)
        time.sleep(2.0)
        shutil.move(hidden, clip)

    pipe, sink, summary = run_live_while({"duration": 6.0, "camera.source": str(clip), "camera.loop": True,
                                          "camera.retry_s": 0.2, "camera.max_offset_s": 0.3}, vanish)
    states = [hm.status["camera_state"] for hm in sink.maps]
    assert summary["updates"] >= 90 and summary["dropped_blocks"] == 0
    assert states[0] == "running" and states[-1] == "running", states
    lost = [i for i, s in enumerate(states) if s in ("lost", "stale")]
    assert len(lost) >= 10, states
    assert summary["video"]["camera_reconnects"] >= 1
    # live, the file's frames sit on the audio clock: each update got a frame within about half
    # a frame period (25 ms at 20 fps) of the middle of its audio window
    offsets = [abs(hm.status["video_offset_ms"]) for hm in sink.maps if "video_offset_ms" in hm.status]
    assert len(offsets) >= 50 and np.median(offsets) <= 40, offsets
    # a lost camera shows as "no camera frame", an ERROR on the camera's own diagnostic status
    # (named after the node, with the camera as hardware id) and the audio's status still OK
    gone = [i for i in lost if states[i] == "lost"]
    hm = sink.maps[gone[len(gone) // 2]]
    assert hm.frame is None and hm.overlay is not None
    audio, camera, _ = RosFormatter(pipe.grid).diagnostics_of(hm)
    assert camera["name"] == "avstream/avstream: camera" and camera["hardware_id"] == str(clip)
    assert camera["level"] == 2 and "camera lost" in camera["message"] and audio["level"] == 0


def test_frame_size_must_match_the_calibration(tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", size=(320, 200))
    with pytest.raises(InputError, match="320x200"):
        Pipeline(load_config(None, {"camera.source": str(clip),
                                    "camera.intrinsics": str(ROOT / "calibration" / "example_pinhole.yaml")}))


def test_camera_back_in_another_shape_is_skipped_not_fatal(tmp_path):
    """A looping video file replaced mid-run by one of another aspect ratio (a camera that came
    back in another mode): its frames cannot be registered, so they are not drawn on, the
    status and diagnostics say why, and the audio goes on."""
    clip = write_clip(tmp_path / "clip.mp4", seconds=0.5, fps=20, size=(320, 240))
    other = write_clip(tmp_path / "other.mp4", seconds=0.5, fps=20, size=(320, 200))

    def swap():
        time.sleep(1.0)
        shutil.move(other, clip)

    pipe, sink, summary = run_live_while({"duration": 3.0, "camera.source": str(clip), "camera.loop": True,
                                          "camera.retry_s": 0.2}, swap)
    states = [hm.status["camera_state"] for hm in sink.maps]
    assert summary["updates"] >= 40 and summary["dropped_blocks"] == 0
    assert states[0] == "running" and states[-1] == "wrong frame size", states
    hm = sink.maps[-1]
    assert hm.frame is None and hm.overlay is not None
    audio, camera, _ = RosFormatter(pipe.grid).diagnostics_of(hm)
    assert camera["level"] == 2 and "wrong frame size" in camera["message"] and audio["level"] == 0


def test_synthetic_camera_needs_the_synthetic_scene(tmp_path):
    with pytest.raises(ConfigError, match="camera.source"):
        load_config(None, {"source.kind": "file", "source.path": "x.wav", "camera.source": "synthetic"})
    with pytest.raises(ConfigError, match="needs a camera"):
        Pipeline(load_config(None, {"camera.source": "none", "localize.grid": "camera:10"}))


# --- the command line ----------------------------------------------------------------------

def test_demo_writes_the_overlay_video(tmp_path):
    """`avstream run` writes an overlay video and prints its path; the file reads back with
    one frame per update, the size of the camera."""
    video = tmp_path / "demo.mp4"
    out = tmp_path / "o.jsonl"
    p = run_cli("run", "--duration", "2", "--overlay", video, "--jsonl", out, "--no-ros", "--no-zmq", "--no-status")
    assert p.returncode == 0, p.stderr
    assert f"overlay video: {video}" in p.stderr
    n_updates = len([ln for ln in out.read_text().splitlines() if ln]) - 1
    cap = cv2.VideoCapture(str(video))
    frames = 0
    while True:
        ok, img = cap.read()
        if not ok:
            break
        frames += 1
        assert img.shape == (480, 640, 3)
    assert frames == n_updates and frames > 20


def test_view_without_a_gui_is_a_clear_error():
    p = run_cli("run", "--duration", "1", "--view", "--no-ros", "--no-zmq", "--no-status", "--no-overlay")
    assert p.returncode == 2 and "--view" in p.stderr and "Traceback" not in p.stderr


def test_overlay_without_a_camera_is_a_clear_error(tmp_path):
    p = run_cli("run", "--duration", "1", "--no-camera", "--overlay", tmp_path / "x.mp4", "--no-ros", "--no-zmq",
                "--no-status")
    assert p.returncode == 2 and "no camera" in p.stderr


def test_extrinsics_roundtrip_to_array():
    rng = np.random.default_rng(1)
    R, _ = cv2.Rodrigues(rng.normal(size=3))
    ext = Extrinsics(R, np.array([0.1, -0.05, 0.02]))
    d = to_unit(rng.uniform(-180, 180, 50), rng.uniform(-60, 60, 50))
    back = ext.to_array(ext.to_camera(d, 2.0), 2.0)
    assert angular_distance_deg(back, d).max() < 1e-6
    assert load_camera(ROOT / "calibration" / "example_pinhole.yaml").width > 0
