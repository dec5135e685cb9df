"""The engine runtime and the audio-visual engine's plumbing: ONNX Runtime equals torch, the
TensorRT plan cache is keyed by what makes a plan valid, bad engine files are refused by name,
and the engine's map and mask reach the JSON, MCAP (read back by mcap-ros2-support) and a real
ZeroMQ subscriber. The engine here has random weights: these tests check the plumbing, not
what a trained engine sees."""
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from helpers import ROOT, Collect, jsonl, run_cli

from avstream.config import load_config
from avstream.pipeline import Pipeline

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def engine_file(tmp_path_factory):
    from avstream.models import AVNet, export_onnx, save_checkpoint

    torch.manual_seed(0)
    model = AVNet()
    model.train()
    with torch.no_grad():  # batch-norm statistics that are not the identity
        for _ in range(3):
            model(torch.randn(4, 3, 96, 128), torch.randn(4, 1, 40, 31))
    path = tmp_path_factory.mktemp("engine") / "av.onnx"
    export_onnx(model.eval(), path)
    save_checkpoint(model, path.with_suffix(".pt"))
    return path


def test_onnxruntime_equals_torch(engine_file):
    """Random inputs and real ones (a synthetic-camera frame, the log-mel of the demo scene)."""
    from avstream.engines.av import audio_input, image_input
    from avstream.engines.runtime import open_engine, read_model
    from avstream.engines.tools import compare, random_feeds

    info = read_model(engine_file)
    rng = np.random.default_rng(1)
    feeds = [random_feeds(info, rng) for _ in range(3)]
    sink = Collect()
    Pipeline(load_config(None, {"duration": 1.0, "engine.speech": "off"}), [sink]).run_sync()
    mono = rng.standard_normal(16000).astype(np.float32)
    feeds.append({"image": image_input(sink.maps[-1].frame.image, info.metadata["image_size"]),
                  "audio": audio_input(mono, info.metadata)})
    assert compare(engine_file, feeds) <= 1e-4
    out = open_engine(engine_file, "onnxruntime").run(dict(feeds[-1]))
    assert out["heatmap"].shape == (1, 1, 24, 32) and out["mask"].shape == (1, 1, 24, 32)
    assert 0 <= out["heatmap"].min() and out["heatmap"].max() <= 1


def test_engines_check_and_list_cli(engine_file):
    p = run_cli("engines", "check", engine_file)
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)
    assert report["ok"] and report["max_abs_diff_vs_torch"] <= 1e-4 and report["onnxruntime_ms"] > 0
    p = run_cli("engines", "list", engine_file.parent)
    assert p.returncode == 0 and "av.onnx: kind av" in p.stdout and "image [1, 3, 96, 128]" in p.stdout
    p = run_cli("engines", "build", engine_file)  # no GPU here: a clear refusal
    assert p.returncode == 2 and "TensorRT and a CUDA GPU are needed" in p.stderr


def test_plan_cache_key_and_corrupt_plans(tmp_path):
    """TensorRT cannot run here: the cache's own logic is tested with a stand-in builder."""
    from avstream.engines.cache import PlanCache, PlanKey

    base = PlanKey("a" * 64, "10.3.0", "Orin", "8.7", "fp16", (("image", (1, 3, 96, 128)),))
    variants = [base.__class__(**{**base.__dict__, f: v}) for f, v in (
        ("onnx_sha256", "b" * 64), ("tensorrt_version", "10.4.0"), ("gpu_name", "Xavier"),
        ("compute_capability", "7.2"), ("precision", "int8"), ("input_shapes", (("image", (1, 3, 224, 224)),)))]
    digests = {k.digest() for k in variants} | {base.digest()}
    assert len(digests) == 7  # each part changes the key
    cache = PlanCache(tmp_path / "plans")
    builds = []

    def build():
        builds.append(1)
        return b"PLAN" * 100 + bytes([len(builds)])

    first = cache.get_or_build(base, build)
    assert cache.get_or_build(base, build) == first and len(builds) == 1  # cached
    plan, _ = cache.paths(base)
    plan.write_bytes(first[:50])  # truncated on disk
    again = cache.get_or_build(base, build)
    assert len(builds) == 2 and again != first[:50] and cache.load(base) == again  # rebuilt, not loaded
    assert cache.get_or_build(variants[1], build) and len(builds) == 3  # another TensorRT: another plan


def test_bad_engine_files_are_refused_by_name(engine_file, tmp_path):
    import onnx

    missing = tmp_path / "missing.onnx"
    p = run_cli("run", "--duration", "1", "--no-ros", "--no-zmq", "--no-overlay", "--engine", missing)
    assert p.returncode == 2 and "missing.onnx: engine file not found" in p.stderr, p.stderr
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(engine_file.read_bytes()[:3000])
    p = run_cli("run", "--duration", "1", "--no-ros", "--no-zmq", "--no-overlay", "--engine", corrupt)
    assert p.returncode == 2 and "corrupt.onnx: not a readable ONNX model" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr
    # the graph takes 96x128 pictures, its metadata claims 120x160: refused naming the input
    m = onnx.load(str(engine_file))
    for prop in m.metadata_props:
        if prop.key == "avstream.image_size":
            prop.value = "[120, 160]"
    wrong = tmp_path / "wrong.onnx"
    onnx.save(m, str(wrong))
    p = run_cli("run", "--duration", "1", "--no-ros", "--no-zmq", "--no-overlay", "--engine", wrong)
    assert p.returncode == 2 and "input 'image' has shape [1, 3, 96, 128], expected [1, 3, 120, 160]" in p.stderr
    vad = ROOT / "engines" / "silero_vad.onnx"
    p = run_cli("run", "--duration", "1", "--no-ros", "--no-zmq", "--no-overlay", "--engine", vad)
    assert p.returncode == 2 and "not an audio-visual engine" in p.stderr
    p = run_cli("run", "--duration", "1", "--no-ros", "--no-zmq", "--no-camera", "--engine", engine_file)
    assert p.returncode == 2 and "needs a camera" in p.stderr


def run_engine(engine_file, **o):
    sink = Collect()
    cfg = load_config(None, {"duration": 1.5, "engine.path": str(engine_file), "engine.backend": "onnxruntime", **o})
    pipe = Pipeline(cfg, [sink])
    pipe.run_sync()
    return pipe, sink


def test_engine_maps_are_fused_and_gated(engine_file):
    from avstream.fusion.fuse import combine

    pipe, sink = run_engine(engine_file)
    hm = sink.maps[-1]
    pic = hm.picture
    assert pic.engine.shape == (24, 32) and pic.mask.shape == (24, 32) and pic.array.shape == (48, 64)
    assert set(np.unique(pic.mask)) <= {0, 255}
    med = np.median(pic.array)
    # product: what stands above the array map's median, scaled by the engine's map
    assert np.allclose(pic.fused, combine(pic.array, pic.engine, "product"))
    assert np.all(pic.fused <= np.maximum(pic.array, med) + 1e-6)
    if pic.pixels:  # a random engine may scale every peak below the marking contrast
        assert pic.pixels[0]["power"] == pytest.approx(float(pic.fused.max()), abs=1e-3)
    assert sink.summary["engines"]["engine_runs"] == len(sink.maps)
    # silence: the engine is gated off and the fused map is the array's
    silent = {"sources": [{"kind": "noise", "level_db": -60.0}], "snr_db": 100.0}
    pipe, sink = run_engine(engine_file, **{"source.scene": silent, "engine.gate_db": -40.0})
    assert all(h.picture.gated and h.picture.engine is None for h in sink.maps)
    assert all(np.array_equal(h.picture.fused, h.picture.array) for h in sink.maps)
    _, sink = run_engine(engine_file, **{"engine.fusion": "array"})
    hm = sink.maps[-1]
    pic = hm.picture
    assert np.array_equal(pic.fused, pic.array) and pic.engine is not None
    assert pic.pixels and pic.pixels[0]["power"] == pytest.approx(float(pic.array.max()), abs=1e-3)
    # with an engine the overlay marks the published map's peaks (white crosses there)
    for px in pic.pixels:
        u, v = int(round(px["u"])), int(round(px["v"]))
        near = hm.overlay[max(0, v - 3):v + 4, max(0, u - 3):u + 4]
        assert (near.min(axis=2) >= 240).sum() >= 5, px
    _, sink = run_engine(engine_file, **{"engine.fusion": "engine"})
    assert np.allclose(sink.maps[-1].picture.fused.max(), sink.maps[-1].picture.engine.max(), atol=0.05)


def test_engine_topics_in_mcap(engine_file, tmp_path):
    from test_mcap import by_topic

    path = tmp_path / "e.mcap"
    p = run_cli("run", "--duration", "1.5", "--no-ros", "--no-zmq", "--no-overlay", "--engine", engine_file,
                "--record", path)
    assert p.returncode == 0, p.stderr
    topics = by_topic(path)
    assert {"/avstream/engine/heatmap", "/avstream/engine/segmentation"} <= set(topics)
    heat = topics["/avstream/engine/heatmap"][-1].ros_msg
    seg = topics["/avstream/engine/segmentation"][-1].ros_msg
    assert (heat.encoding, heat.height, heat.width, heat.header.frame_id) == ("32FC1", 24, 32, "camera_optical")
    values = np.frombuffer(bytes(heat.data), np.float32)
    assert values.size == 24 * 32 and 0 <= values.min() and values.max() <= 1
    assert (seg.encoding, seg.height, seg.width) == ("mono8", 24, 32)
    assert set(np.unique(np.frombuffer(bytes(seg.data), np.uint8))) <= {0, 255}
    arrows = topics["/avstream/markers"][-1].ros_msg.markers[1:]  # after the DELETEALL
    # one arrow per track, labelled with its id
    assert arrows and all(m.text.startswith(f"#{m.id} power ") and " speech " in m.text for m in arrows)


def test_engine_topics_on_zeromq(engine_file, tmp_path):
    from test_zmq import free_port

    from avstream.sinks.zmq_sink import TOPIC_ENGINE, TOPIC_HEATMAP, TOPIC_SEGMENTATION, decode, subscribe

    endpoint = f"tcp://127.0.0.1:{free_port()}"
    sub = subscribe(endpoint, hwm=64, topics=(TOPIC_HEATMAP, TOPIC_ENGINE, TOPIC_SEGMENTATION))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    run = subprocess.Popen([sys.executable, "-m", "avstream", "run", "--duration", "3", "--zmq", endpoint, "--no-ros",
                            "--no-status", "--no-overlay", "--engine", str(engine_file)], env=env, cwd=str(tmp_path),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    got = {TOPIC_HEATMAP: [], TOPIC_ENGINE: [], TOPIC_SEGMENTATION: []}
    deadline = time.monotonic() + 90
    while run.poll() is None and time.monotonic() < deadline:
        if sub.poll(100):
            frames = sub.recv_multipart()
            got[frames[0]].append(decode(frames))
    assert run.wait(30) == 0, run.stderr.read()
    sub.close()
    assert len(got[TOPIC_ENGINE]) >= 10 and len(got[TOPIC_SEGMENTATION]) >= 10
    h, img = got[TOPIC_ENGINE][-1]
    assert img.shape == (24, 32) and img.dtype == np.float32 and h["frame_id"] == "camera_optical"
    h, mask = got[TOPIC_SEGMENTATION][-1]
    assert mask.shape == (24, 32) and mask.dtype == np.uint8
    heat_header = got[TOPIC_HEATMAP][-1][0]
    assert "pixels" in heat_header and 0 <= heat_header["speech"] <= 1
    assert all("speech" in s for s in heat_header["sources"])


def test_locate_with_video_gives_pixels(engine_file, tmp_path):
    """locate --video --intrinsics: every line carries the picture map's peaks, on the object."""
    import cv2

    # a recording of the demo scene and its camera, made by the run itself
    wav, video = tmp_path / "scene.wav", tmp_path / "scene.avi"
    pipe, sink = run_engine(engine_file, **{"duration": 2.0})
    frames = [h.frame.image for h in sink.maps]
    assert frames
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 1.0 / 0.064, (640, 480))
    for f in frames:
        writer.write(f)
    writer.release()
    import soundfile as sf

    from avstream.capture.synthetic import SyntheticScene
    from avstream.geometry.arrays import load_array

    arr = load_array("minidsp_uma16")
    scene = SyntheticScene(arr, load_config(None, {}).source.scene, block=4096)
    x = np.concatenate([scene.read() for _ in range(8)], axis=1)
    sf.write(str(wav), x.T, 16000)
    p = run_cli("locate", wav, "--array", "minidsp_uma16", "--video", video, "--speech", "off")
    assert p.returncode == 0, p.stderr
    lines = jsonl(p.stdout)[:-1]
    assert lines and all("pixels" in ln for ln in lines)
    assert all(0 <= px["u"] < 640 and 0 <= px["v"] < 480 for ln in lines for px in ln["pixels"])
