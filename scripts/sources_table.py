"""The README's table of methods on simulated rooms: recall@10 of the tracks, per method.

    .venv/bin/python scripts/sources_table.py [--arrays respeaker_4mic_hat,minidsp_uma8]
        [--methods srp_phat,tf_sparse,mvdr,music] [--kinds speech,noise,dry] [--counts 2,3] [--scenes 3]

Scenes: pyroomacoustics shoebox rooms (tests/simulate.py), seeded: RT60 uniform in 0.3-0.7 s,
SNR 5-20 dB, sources 1.5 m away at elevation 10-30 degrees, each next source 30-90 degrees of
azimuth from the one before, 3 s; real speech from tests/data (one talker per source), white
noise, or ("dry") espeak-ng speech as avstream.bench makes it (the real speech is a loudspeaker
recorded in a room: its own reverberation and background make it far less sparse). Score: per
update after the first second, the share of true sources with a reported track within 10 degrees
(in azimuth on a planar array), averaged over updates and scenes.
Needs the test extras (pyroomacoustics); prints a markdown table and, per scene, the figures.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import numpy as np  # noqa: E402

from avstream.bench import _Keep, _NoSource, _recall  # noqa: E402
from avstream.config import load_config  # noqa: E402
from avstream.frames import AudioBlock  # noqa: E402
from avstream.geometry.arrays import load_array  # noqa: E402
from avstream.geometry.grids import to_unit  # noqa: E402
from avstream.pipeline import Pipeline  # noqa: E402

FS = 16000
HOP = 256


def scene(array, kind, count, seed):
    from simulate import real_speech, room_scene

    rng = np.random.default_rng(1000 * count + seed)
    rt60 = rng.uniform(0.3, 0.7)
    snr = rng.uniform(5.0, 20.0)
    az = [rng.uniform(-180.0, 180.0)]
    for _ in range(count - 1):
        az.append(az[-1] + rng.uniform(30.0, 90.0))
    az = [float((a + 180.0) % 360.0 - 180.0) for a in az]
    el = [float(rng.uniform(10.0, 30.0)) for _ in az]
    if kind == "speech":
        sig = [real_speech(k + seed) for k in range(count)]
    elif kind == "dry":
        from avstream.bench import _speech

        sig = [_speech(k + seed, int(3.0 * FS)) for k in range(count)]
    else:
        sig = None
    x = room_scene(array.positions, az, el, signals=sig, duration=3.0, rt60=rt60, snr_db=snr, seed=seed)
    return x, [to_unit(a, e) for a, e in zip(az, el)], dict(rt60=rt60, snr=snr, az=az)


def run_maps(array_name, method, x, overrides=None):
    """Every heatmap of ``method`` on the array's signals ``x`` fed block by block, without the
    engines (shared with scripts/foa_table.py)."""
    arr = load_array(array_name)
    cfg = load_config(None, {"array": array_name, "localize.method": method, "source.block": HOP, "duration": None,
                             "camera.source": "none", "engine.speech": "off", **(overrides or {})})
    full = np.zeros((arr.n_channels, x.shape[1]), np.float32)
    full[list(arr.mic_channels)] = x
    sink = _Keep()
    pipe = Pipeline(cfg, [sink], source=_NoSource())
    for i, k in enumerate(range(0, full.shape[1] - HOP + 1, HOP)):
        pipe.process_block(AudioBlock(full[:, k:k + HOP], k, 0.0, i))
    return sink.maps


def score(array_name, method, x, truth, overrides=None):
    arr = load_array(array_name)
    late = [h for h in run_maps(array_name, method, x, overrides) if h.t >= 1.0]
    tracks = [_recall([to_unit(t.azimuth_deg, t.elevation_deg) for t in h.tracks or []], truth, arr) for h in late]
    peaks = [_recall([to_unit(p.azimuth_deg, p.elevation_deg) for p in h.peaks], truth, arr) for h in late]
    return float(np.mean(tracks)), float(np.mean(peaks))


def add_run_args(ap, methods):
    """--methods (default ``methods``) and --set, shared with scripts/foa_table.py."""
    ap.add_argument("--methods", default=methods)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config overrides for every run")


def run_args(a):
    """(methods, config overrides) of parsed --methods and --set."""
    import yaml

    return a.methods.split(","), {k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in a.set)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arrays", default="respeaker_4mic_hat,minidsp_uma8,minidsp_uma16")
    ap.add_argument("--kinds", default="speech,noise", help="speech (real, recorded), dry (espeak-ng), noise")
    ap.add_argument("--counts", default="2,3")
    ap.add_argument("--scenes", type=int, default=3)
    add_run_args(ap, "srp_phat,tf_sparse,mvdr,music")
    a = ap.parse_args(argv)
    methods, over = run_args(a)
    print("| array | sources | " + " | ".join(methods) + " |")
    print("|---|---|" + "---|" * len(methods))
    for name in a.arrays.split(","):
        arr = load_array(name)
        for count in map(int, a.counts.split(",")):
            for kind in a.kinds.split(","):
                res = {m: [] for m in methods}
                for s in range(a.scenes):
                    x, truth, info = scene(arr, kind, count, s)
                    for m in methods:
                        t, p = score(name, m, x, truth, over)
                        res[m].append(t)
                        print(f"  {name} {count} {kind} scene {s} (rt60 {info['rt60']:.2f}, snr {info['snr']:.0f}, "
                              f"az {[round(v) for v in info['az']]}): {m} tracks {t:.2f} peaks {p:.2f}",
                              file=sys.stderr, flush=True)
                cells = " | ".join(f"{np.mean(res[m]):.2f}" for m in methods)
                print(f"| {name} | {count} {kind} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
