"""The README's first-order ambisonic figures for dry talkers: per-talker track recall@10.

    .venv/bin/python scripts/foa_table.py [--talkers 2,3] [--methods intensity,music,mvdr]
        [--set localize.intensity.memory_s=1.5] [--formats ambix,core_sound_tetramic] [--seeds 9]

Scenes: pyroomacoustics shoebox rooms rendered to AmbiX with every image source encoded along
its own direction (tests/simulate.py foa_room_scene), RT60 0.2, 0.4 and 0.6 s, ``--seeds``
(3) each; talkers 1.5 m away, the first at a random azimuth, each next 60-120 degrees of azimuth
from the one before, elevations -20 to +30 degrees; 4 s of espeak-ng speech, a different
voice per talker, as avstream.bench makes it. Score: per talker, the share of updates after the
first quarter with a track within 10 degrees (3-D angle), averaged over the scenes.
``--formats``: besides AmbiX, the same rooms as an A-format preset's capsules hear them (cardioids
on a tetrahedron of the preset's radius, each with its own delay; converted in the capture path)
in a column of their own.
Needs the test extras (pyroomacoustics) and espeak-ng; prints a markdown table and, per scene,
the figures.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import numpy as np  # noqa: E402

from avstream.bench import _speech  # noqa: E402
from avstream.geometry.grids import angular_distance_deg, to_unit  # noqa: E402
from sources_table import add_run_args, run_args, run_maps  # noqa: E402  (scripts/, beside this file)

FS = 16000
SECONDS = 4.0
RT60S = (0.2, 0.4, 0.6)


def scene(count, rt60, seed, fmt="ambix"):
    """(signals (4, n), azimuths, elevations) of ``count`` dry talkers in one room, as AmbiX or
    as the capsules of A-format preset ``fmt``."""
    from simulate import foa_room_scene

    from avstream.geometry.arrays import load_array

    rng = np.random.default_rng(100 + seed)
    az = [rng.uniform(-180.0, 180.0)]
    for _ in range(count - 1):
        az.append(az[-1] + rng.uniform(60.0, 120.0))
    az = [float((a + 180.0) % 360.0 - 180.0) for a in az]
    el = [float(rng.uniform(-20.0, 30.0)) for _ in az]
    n = int(SECONDS * FS)
    render = {} if fmt == "ambix" else {"convention": "a_format", "capsule_radius": load_array(fmt).capsules[1]}
    x = foa_room_scene(az, el, [_speech(seed + k, n) for k in range(count)], rt60=rt60, seed=seed, duration=SECONDS,
                       **render)
    return x, az, el


def score(x, az, el, method, overrides=None, fmt="ambix"):
    """Per talker: share of late updates with a track within 10 degrees; median error."""
    maps = run_maps("ambix_foa" if fmt == "ambix" else fmt, method, x, {"localize.sources": 3, **(overrides or {})})
    truth = [to_unit(a, e) for a, e in zip(az, el)]
    err = []
    for h in maps[len(maps) // 4:]:
        found = np.array([to_unit(t.azimuth_deg, t.elevation_deg) for t in h.tracks or []])
        err.append([float(np.min(angular_distance_deg(found, t))) if len(found) else 180.0 for t in truth])
    err = np.array(err)
    return (err <= 10.0).mean(0), np.median(err, 0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--talkers", default="2,3")
    ap.add_argument("--formats", default="ambix", help="ambix and/or A-format presets, e.g. ambix,core_sound_tetramic")
    ap.add_argument("--seeds", type=int, default=3, help="rooms per RT60")
    add_run_args(ap, "intensity,music,mvdr")
    a = ap.parse_args(argv)
    methods, over = run_args(a)
    columns = [(f, m) for f in a.formats.split(",") for m in methods]
    name = lambda f, m: m if f == "ambix" else f"{m} ({f})"  # noqa: E731
    print("| talkers | " + " | ".join(name(f, m) for f, m in columns) + " |")
    print("|---|" + "---|" * len(columns))
    for count in map(int, a.talkers.split(",")):
        hits = {c: [] for c in columns}
        errs = {c: [] for c in columns}
        for rt60 in RT60S:
            for seed in range(a.seeds):
                for fmt in a.formats.split(","):
                    x, az, el = scene(count, rt60, seed, fmt)
                    for m in methods:
                        hit, med = score(x, az, el, m, over, fmt)
                        hits[fmt, m].append(hit)
                        errs[fmt, m].append(med)
                        print(f"  {count} talkers, RT60 {rt60}, seed {seed}, az {[round(v) for v in az]} el "
                              f"{[round(v) for v in el]}: {name(fmt, m)} recall {np.round(hit, 2).tolist()} median "
                              f"error {np.round(med, 1).tolist()}", file=sys.stderr, flush=True)
        cells = " | ".join(", ".join(f"{v:.2f}" for v in np.mean(hits[c], 0)) for c in columns)
        print(f"| {count} | {cells} |", flush=True)
        print("  median of the scenes' median errors (degrees): " + "; ".join(
            f"{name(*c)} " + ", ".join(f"{v:.1f}" for v in np.median(errs[c], 0)) for c in columns), file=sys.stderr)


if __name__ == "__main__":
    main()
