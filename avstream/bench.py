"""``avstream bench``: avstream and its peers on the same scenes, in one run, side by side.

Workloads (from the project's issue; peers' published figures are in docs/ANCHORS.md):

W1  UMA-16, 16 kHz, frame 512, hop 256, 4 frames per update, fov:90,70:64,48, 300-3500 Hz.
W2  UMA-16, sphere:2562 (half-space), hop 128, one update per hop (125/s), 4 sources, 300-8000
    Hz: CPU share of one core in real time. The peers here cannot run at 125 updates/s; the
    row for ODAS quotes its published figure (8.7 %, docs/ANCHORS.md) and is not measured.
W3  ReSpeaker 4-mic, sphere:2562 (half-space), frame 512, hop 256, 4 frames per update.
W4  ReSpeaker 4-mic, three talkers at once (azimuth 180, 225 and 270, espeak-ng speech), RT60
    0.3 s: every avstream method against pyroomacoustics' MUSIC, NormMUSIC and SRP and acoular's
    CLEAN-SC (when installed): ms per update and recall@10 (the share of true sources with a
    reported peak within 10 degrees of azimuth, per update: the array is planar and the
    Multi_SSL anchor is in azimuth; for avstream also of its tracks). Multi_SSL
    (DUET + SRP-PHAT, the tf_sparse idea) is quoted: about 0.3 s per source per estimate.
W5  First-order ambisonic microphone (AmbiX), full sphere 2562, frame 512, hop 256, 4 frames per
    update, two talkers (azimuth/elevation 40/10 and 130/-20, espeak-ng speech), RT60 0.3 s, every
    image source encoded per reflection (``foa_scene``): avstream's intensity, PWD, MVDR and MUSIC
    against spaudiopy's SH-domain MUSIC, MVDR (MPDR power map) and pseudo-intensity: ms per
    update and recall@10 (3-D angle). spaudiopy gets the band-passed signal and the true source
    count; its maps' peaks are picked greedily 20 degrees apart.
D   Dashboard: the run's CPU (its process, steady state) in real time with the dashboard page
    open in a headless Chromium against without it, and the page's updates per second.
P   Publishing: cost per heatmap for ROS 2 on DDS, ZeroMQ and MCAP at 64x48 and 640x480.
E   Engines: time per frame of the learned engines on 2 CPU threads, ONNX Runtime against
    torch eager, at the default size (96x128, localizer and segmenter in one network) and at
    224x224 with a ResNet18-sized image encoder; the speech engine per update. Needs torch.
    TensorRT is not measured here (no GPU).

Scenes are pyroomacoustics rooms (RT60 0.3 s, SNR 20 dB). avstream's time per update covers
STFT, localization and peaks (a null sink), on one core. pyroomacoustics is timed on
``locate_sources`` alone with its STFT done beforehand (in its favour); acoular on its
PowerSpectra + BeamformerBase per update. Error: the angle from each true source to the
nearest reported peak, median over updates (pyroomacoustics: its own peaks; acoular: the
map's maximum against the nearest source).
"""
from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from .capture.base import AudioSource  # noqa: E402
from .config import load_config  # noqa: E402
from .frames import AudioBlock  # noqa: E402
from .geometry.arrays import harmonics, load_array  # noqa: E402
from .geometry.grids import angular_distance_deg, parse_grid, to_unit  # noqa: E402
from .pipeline import Pipeline  # noqa: E402
from .sinks.base import Sink  # noqa: E402

FS = 16000

# W1 and W3 keep the peers' band of ../shared/docs/ANCHORS.md (300-3500 Hz); W2 (ODAS's setup,
# quoted, no band given) runs to 8 kHz: with 3.5 kHz its four sources' lobes merge and its tracked
# error was 17 degrees, with 6 kHz (UMA-16's default) 7.2, with 8 kHz 2.4
WORKLOADS = {
    "W1": dict(array="minidsp_uma16", grid="fov:90,70:64,48", frame=512, hop=256, update_frames=4,
               band=(300.0, 3500.0), sources=[(20.0, 10.0), (-25.0, 20.0)]),
    "W2": dict(array="minidsp_uma16", grid="sphere:2562", frame=512, hop=128, update_frames=1,
               band=(300.0, 8000.0), sources=[(30.0, 10.0), (120.0, 30.0), (-100.0, 20.0), (-20.0, 45.0)],
               peers=False, quoted=("ODAS (C), quoted from docs, not run here", 8.7)),
    "W3": dict(array="respeaker_4mic_hat", grid="sphere:2562", frame=512, hop=256, update_frames=4,
               band=(300.0, 3500.0), sources=[(60.0, 15.0), (-150.0, 25.0)]),
    "W4": dict(array="respeaker_4mic_hat", grid="sphere:2562", frame=512, hop=256, update_frames=4,
               band=(300.0, 6000.0), sources=[(180.0, 20.0), (-135.0, 25.0), (-90.0, 15.0)], speech=True),
    "W5": dict(array="ambix_foa", grid="sphere:2562", frame=512, hop=256, update_frames=4,
               band=(300.0, 6000.0), sources=[(40.0, 10.0), (130.0, -20.0)], speech=True),
}
FOA_METHODS = ["intensity", "pwd", "mvdr", "music"]
METHOD_PEERS = {"srp_phat": ["SRP"], "music": ["MUSIC", "NormMUSIC"], "tf_sparse": [], "mvdr": [], "clean_sc": []}
# (clean_sc's peer is acoular's CLEAN-SC: bench_acoular_cleansc)


class _Keep(Sink):
    def __init__(self):
        self.maps = []

    def write(self, heatmap):
        self.maps.append(heatmap)


def _speech(k, n):
    """Speech for the bench's talkers: espeak-ng when installed (distinct sentences), else
    coloured noise bursts with speech-like pauses."""
    import shutil
    import subprocess
    import tempfile

    sentences = ["the robot turns toward the voice and stops", "please hand me the red box on the table",
                 "is anybody there, can you hear me now"]
    if shutil.which("espeak-ng"):
        import soundfile as sf
        from scipy.signal import resample_poly

        with tempfile.TemporaryDirectory() as tmp:
            wav = f"{tmp}/s.wav"
            subprocess.run(["espeak-ng", "-w", wav, "-s", str(150 + 15 * k), "-p", str(30 + 20 * k),
                            sentences[k % 3]], check=True, capture_output=True)
            y, rate = sf.read(wav)
        y = resample_poly(y, FS, rate)
        return np.resize(np.roll(y, k * FS // 3), n)
    rng = np.random.default_rng(k)
    env = np.repeat(rng.random(n // 1600 + 1) > 0.3, 1600)[:n]
    return rng.standard_normal(n) * env


def _scene(array, sources, seconds, seed=0, speech=False):
    import pyroomacoustics as pra

    rng = np.random.default_rng(seed)
    room_dim = [6.0, 5.0, 3.0]
    e_abs, max_order = pra.inverse_sabine(0.3, room_dim)
    room = pra.ShoeBox(room_dim, fs=FS, materials=pra.Material(e_abs), max_order=max_order)
    center = np.array([3.1, 2.4, 1.3])
    n = int(seconds * FS)
    for k, (az, el) in enumerate(sources):
        sig = _speech(k, n) if speech else rng.standard_normal(n)
        room.add_source(center + 1.5 * to_unit(az, el), signal=sig / (np.std(sig) + 1e-12))
    room.add_microphone_array(pra.MicrophoneArray(array.positions.T + center[:, None], FS))
    pra.random.seed(seed)  # the sensor noise too: every run scores the same scene
    room.simulate(snr=20)
    x = room.mic_array.signals[:, :int(seconds * FS)]
    return (x / np.abs(x).max() * 0.5).astype(np.float32)


def foa_scene(sources, seconds, signals, seed=0, rt60=0.3, snr_db=20.0, distance=1.5, convention="ambix",
              capsule_radius=0.015, order=1):
    """A first-order ambisonic recording of sources (azimuth, elevation) in the bench's room:
    pyroomacoustics' image sources (positions and wall damping), each encoded into first-order
    spherical harmonics along its own direction with its delay and 1/r spreading, as a
    coincident B-format microphone hears them (``rt60`` None: the direct sound alone);
    uncorrelated sensor noise at ``snr_db``.

    ``signals``: one per source. Returns (4, n) float32 in ``convention`` ("ambix": W, Y, Z, X,
    SN3D, or with ``order`` above 1 the (order + 1)^2 AmbiX channels of that order; "fuma": W at -3 dB, X, Y, Z; "a_format": four cardioid capsules on a tetrahedron of
    ``capsule_radius`` (front-left-up, front-right-down, back-left-down, back-right-up), each
    hearing every image with its own gain and its own delay), scaled to peak 0.5.
    """
    import pyroomacoustics as pra
    from scipy.signal import fftconvolve, resample_poly

    room_dim = [6.0, 5.0, 3.0]
    if rt60 is None:  # the direct sound alone (free field)
        room = pra.ShoeBox(room_dim, fs=FS, max_order=0)
    else:
        e_abs, max_order = pra.inverse_sabine(rt60, room_dim)
        room = pra.ShoeBox(room_dim, fs=FS, materials=pra.Material(e_abs), max_order=max_order)
    center = np.array([3.1, 2.4, 1.3])
    n = int(seconds * FS)
    for az, el in sources:
        room.add_source(center + distance * to_unit(az, el))
    room.add_microphone_array(pra.MicrophoneArray(center[:, None], FS))
    room.image_source_model()
    c = pra.constants.get("c")
    if order > 1 and convention != "ambix":
        raise ValueError("higher orders are rendered as AmbiX only")
    n_ch = (order + 1) ** 2
    out = np.zeros((n_ch, n))
    for src, sig in zip(room.sources, signals):
        v = src.images.T - center
        r = np.linalg.norm(v, axis=1)
        u = v / r[:, None]
        amp = src.damping.reshape(-1)[: len(r)] / (4 * np.pi * r)
        up = 4  # the responses are built at 4x the rate, then brought down: a fraction of a sample holds
        delay = r / c * FS * up
        rir = np.zeros((n_ch, int(delay.max()) + 2 + up * int(capsule_radius / c * FS + 2)))
        if convention == "a_format":
            caps = np.array([to_unit(a, e) for a, e in ((45, 35.264), (-45, -35.264), (135, -35.264), (-135, 35.264))])
            gains = 0.5 * (1 + u @ caps.T).T  # (4, images): cardioids
            delays = delay[None] - capsule_radius * (u @ caps.T).T / c * FS * up  # a capsule nearer the image hears it earlier
        else:
            gains = harmonics(order, u).T  # AmbiX: W, Y, Z, X (SN3D), then the higher orders
            delays = np.broadcast_to(delay, gains.shape)
        for ch in range(n_ch):  # each image split linearly between its two nearest samples
            i0 = np.floor(delays[ch]).astype(int)
            frac = delays[ch] - i0
            np.add.at(rir[ch], i0, gains[ch] * amp * (1 - frac))
            np.add.at(rir[ch], i0 + 1, gains[ch] * amp * frac)
        rir = resample_poly(rir, 1, up, axis=1) * up
        for ch in range(n_ch):
            out[ch] += fftconvolve(np.resize(np.asarray(sig, float), n), rir[ch])[:n]
    noise = np.random.default_rng(seed + 1).standard_normal(out.shape)
    out += noise * np.sqrt(np.mean(out[0] ** 2)) / 10 ** (snr_db / 20)
    if convention == "fuma":
        out = np.stack([out[0] / np.sqrt(2.0), out[3], out[1], out[2]])
    elif convention not in ("ambix", "a_format"):
        raise ValueError(f"unknown convention {convention!r}")
    return (out / np.abs(out).max() * 0.5).astype(np.float32)


def _errors(found_dirs, truth_dirs, azimuth_only=False):
    """Per true source: angle to the nearest found direction (degrees); with ``azimuth_only``
    the azimuth difference alone (W4's recall on a planar array, which the peers' and the
    Multi_SSL anchor's figures are in: a planar array hardly sees elevation)."""
    if len(found_dirs) == 0:
        return [180.0] * len(truth_dirs)
    f = np.asarray(found_dirs)
    if azimuth_only:
        az = np.arctan2(f[:, 1], f[:, 0])
        return [float(np.min(np.rad2deg(np.abs(np.angle(np.exp(1j * (az - np.arctan2(t[1], t[0])))))))) for t in truth_dirs]
    return [float(np.min(angular_distance_deg(f, t))) for t in truth_dirs]


def _recall(found_dirs, truth_dirs, array):
    """Share of the true sources with a found direction within 10 degrees (in azimuth on a
    planar array)."""
    return float(np.mean(np.array(_errors(found_dirs, truth_dirs, azimuth_only=array.planar)) <= 10.0))


def bench_avstream(w, x, truth, repeat, method="auto", recall=False):
    """(s per update, median error of the peaks, of the tracks, updates) or, with ``recall``,
    (s per update, recall@10 of the peaks, of the tracks, updates). Times cover STFT,
    localization, peaks and tracking."""
    arr = load_array(w["array"])
    cfg = load_config(None, {"array": w["array"], "localize.grid": w["grid"], "stft.frame": w["frame"],
                             "stft.hop": w["hop"], "localize.update_frames": w["update_frames"],
                             "localize.band": list(w["band"]), "localize.sources": len(w["sources"]),
                             "localize.method": method, "source.block": w["hop"], "duration": None,
                             "camera.source": "none",
                             "engine.speech": "off"})  # localization alone: the engines have workload E
    full = np.zeros((arr.n_channels, x.shape[1]), np.float32)
    full[list(arr.mic_channels)] = x
    blocks = [full[:, k:k + w["hop"]] for k in range(0, full.shape[1] - w["hop"] + 1, w["hop"])]
    best = np.inf
    for r in range(repeat + 1):  # first pass warms up the JIT
        sink = _Keep()
        pipe = Pipeline(cfg, [sink], source=_NoSource())
        t0 = time.perf_counter()
        for i, b in enumerate(blocks):
            pipe.process_block(AudioBlock(b, i * w["hop"], 0.0, i))
        dt = (time.perf_counter() - t0) / max(pipe.n_updates, 1)
        if r:
            best = min(best, dt)
    late = sink.maps[len(sink.maps) // 4:]
    if recall:
        hit = lambda found: _recall(found, truth, arr)  # noqa: E731
        peaks = [hit([to_unit(p.azimuth_deg, p.elevation_deg) for p in h.peaks]) for h in late]
        tracks = [hit([to_unit(t.azimuth_deg, t.elevation_deg) for t in h.tracks or []]) for h in late]
        return best, float(np.mean(peaks)), float(np.mean(tracks)), pipe.n_updates
    errs = [np.mean(_errors([to_unit(p.azimuth_deg, p.elevation_deg) for p in h.peaks], truth)) for h in late]
    tracked = [np.mean(_errors([to_unit(t.azimuth_deg, t.elevation_deg) for t in h.tracks], truth))
               for h in late if h.tracks]
    return best, float(np.median(errs)), float(np.median(tracked)) if tracked else None, pipe.n_updates


class _NoSource(AudioSource):
    sample_rate = FS


def bench_pyroomacoustics(w, x, truth, grid, algo, max_updates, recall=False):
    import pyroomacoustics as pra

    arr = load_array(w["array"])
    X = np.array([pra.transform.stft.analysis(s, w["frame"], w["hop"]).T for s in x])  # (M, F, S)
    if grid.half_space is None:
        az = np.arctan2(grid.directions[:, 1], grid.directions[:, 0])
        col = np.arccos(np.clip(grid.directions[:, 2], -1, 1))
        doa = pra.doa.algorithms[algo](arr.positions.T, FS, w["frame"], c=343.0, num_src=len(truth),
                                       azimuth=az, colatitude=col, dim=3)
    else:
        # pyroomacoustics' peak search never returned on a half-sphere point set here, so it
        # gets its own full sphere with twice the points (the same density on the half that
        # counts) and its answers are folded into that half before scoring
        doa = pra.doa.algorithms[algo](arr.positions.T, FS, w["frame"], c=343.0, num_src=len(truth),
                                       n_grid=2 * grid.n_dirs, dim=3)
    n_frames = w["update_frames"] if w["update_frames"] > 1 else 4  # pyroomacoustics needs a few frames
    starts = list(range(X.shape[2] // 4, X.shape[2] - n_frames, n_frames))[:max_updates]
    errs, hits = [], []
    t0 = time.perf_counter()
    for s in starts:
        doa.locate_sources(X[:, :, s:s + n_frames], freq_range=list(w["band"]))
        found = np.stack([np.sin(doa.colatitude_recon) * np.cos(doa.azimuth_recon),
                          np.sin(doa.colatitude_recon) * np.sin(doa.azimuth_recon),
                          np.cos(doa.colatitude_recon)], axis=1)
        if grid.half_space is not None:
            h = found @ grid.half_space
            found = found - 2.0 * np.minimum(h, 0.0)[:, None] * grid.half_space[None, :]
        errs.append(_errors(found, truth))
        hits.append(_recall(found, truth, arr))
    dt = (time.perf_counter() - t0) / len(starts)
    if recall:
        return dt, float(np.mean(hits)), len(starts)
    return dt, float(np.median(np.mean(errs, axis=1))), len(starts)


def bench_sources(w, x, truth, grid, quick):
    """W4 rows: (method, s/update, recall peaks, recall tracks, peer, peer s/update, peer recall)."""
    rows = []
    for method, peers in METHOD_PEERS.items():
        print(f"bench: W4 avstream {method} ...", file=sys.stderr, flush=True)
        t, r_peaks, r_tracks, _ = bench_avstream(w, x, truth, 1 if quick else 2, method=method, recall=True)
        rows.append((f"avstream {method}", t, r_peaks, r_tracks, None))
        for algo in peers:
            print(f"bench: W4 pyroomacoustics {algo} ...", file=sys.stderr, flush=True)
            tp, rp, _ = bench_pyroomacoustics(w, x, truth, grid, algo, 3 if quick else 10, recall=True)
            rows.append((f"pyroomacoustics {algo}", tp, rp, None, tp / t))
        if method == "clean_sc":
            print("bench: W4 acoular CLEAN-SC ...", file=sys.stderr, flush=True)
            try:
                ta, ra, _ = bench_acoular_cleansc(w, x, truth, grid, 3 if quick else 10)
                rows.append(("acoular CLEAN-SC", ta, ra, None, ta / t))
            except ImportError:
                rows.append(("acoular CLEAN-SC (not installed)", None, None, None, None))
    rows.append(("Multi_SSL DUET + SRP-PHAT (quoted, not run: about 300 ms of CPU per source per estimate)",
                 None, None, None, None))
    return rows


def bench_foa(w, x, truth, grid, quick, peers=True):
    """W5 rows: (system, s/update, recall peaks, recall tracks, speed-up of avstream's nearest kin)."""
    rows, ours = [], {}
    for method in FOA_METHODS:
        print(f"bench: W5 avstream {method} ...", file=sys.stderr, flush=True)
        t, r_peaks, r_tracks, _ = bench_avstream(w, x, truth, 1 if quick else 2, method=method, recall=True)
        ours[method] = t
        rows.append((f"avstream {method}", t, r_peaks, r_tracks, None))
    if not peers:
        return rows
    for algo, kin in [("MUSIC", "music"), ("MVDR", "mvdr"), ("pseudo-intensity", "intensity")]:
        print(f"bench: W5 spaudiopy {algo} ...", file=sys.stderr, flush=True)
        try:
            t, r = bench_spaudiopy(w, x, truth, grid, algo, 3 if quick else 10)
        except ImportError:
            rows.append((f"spaudiopy {algo} (not installed)", None, None, None, None))
            continue
        rows.append((f"spaudiopy {algo}", t, r, None, t / ours[kin]))
    return rows


def _spaudiopy():
    """spaudiopy 0.2.0 calls scipy.special.sph_harm and numpy.trapz, which SciPy 1.17 and NumPy 2
    removed: it gets their documented replacements (same values) before it is imported."""
    import scipy.special as ss

    if not hasattr(ss, "sph_harm"):
        ss.sph_harm = lambda m, n, azi, zen: ss.sph_harm_y(n, m, zen, azi)
    if not hasattr(np, "trapz"):
        np.trapz = np.trapezoid
    import spaudiopy

    return spaudiopy


def _greedy_peaks(power, dirs, k, exclusion_deg=20.0):
    found = []
    for i in np.argsort(power)[::-1]:
        if all(angular_distance_deg(dirs[i][None], f)[0] > exclusion_deg for f in found):
            found.append(dirs[i])
            if len(found) == k:
                break
    return found


def bench_spaudiopy(w, x, truth, grid, algo, max_updates):
    """spaudiopy on the W5 scene: (s per update, recall@10). MUSIC and MVDR on each update's
    SH covariance (N3D, band-passed samples); pseudo-intensity on the whole signal, its
    per-sample vectors averaged over each update."""
    from scipy.signal import butter, sosfiltfilt

    spa = _spaudiopy()
    arr = load_array(w["array"])
    sos = butter(4, list(w["band"]), btype="band", fs=FS, output="sos")
    xb = sosfiltfilt(sos, x.astype(np.float64), axis=1) * np.array([1.0, np.sqrt(3.0), np.sqrt(3.0), np.sqrt(3.0)])[:, None]
    dirs = grid.directions
    azi, zen = np.arctan2(dirs[:, 1], dirs[:, 0]), np.arccos(np.clip(dirs[:, 2], -1, 1))
    step, length = w["hop"] * w["update_frames"], (w["update_frames"] - 1) * w["hop"] + w["frame"]
    starts = list(range(xb.shape[1] // 4, xb.shape[1] - length, step))[:max_updates]
    hits = []
    if algo == "pseudo-intensity":
        b = spa.sig.AmbiBSignal([xb[0], xb[3], xb[1], xb[2]], FS)  # W, X, Y, Z
        t0 = time.perf_counter()
        i_azi, i_zen, i_r = spa.parsa.pseudo_intensity(b, jobs_count=1)
        dt = (time.perf_counter() - t0) / (xb.shape[1] / step)
        vec = np.stack([np.sin(i_zen) * np.cos(i_azi), np.sin(i_zen) * np.sin(i_azi), np.cos(i_zen)], 1) * i_r[:, None]
        for s0 in starts:
            v = vec[s0:s0 + length].sum(axis=0)
            hits.append(_recall([v / (np.linalg.norm(v) + 1e-30)], truth, arr))
        return dt, float(np.mean(hits))
    t0 = time.perf_counter()
    for s0 in starts:
        seg = xb[:, s0:s0 + length]
        cov = seg @ seg.T
        if algo == "MUSIC":
            power = spa.parsa.sh_music(cov, len(truth), azi, zen)
        else:
            weights = spa.parsa.sh_mvdr(cov, azi, zen)  # (g, 4)
            power = np.sum(np.abs(weights @ seg) ** 2, axis=1)
        hits.append(_recall(_greedy_peaks(np.real(power), dirs, len(truth)), truth, arr))
    return (time.perf_counter() - t0) / len(starts), float(np.mean(hits))


def _sources_table(rows, updates_per_s):
    lines = ["| system | ms/update | real-time CPU (1 core) | recall@10 peaks | recall@10 tracks | "
             "avstream speed-up |", "|---|---:|---:|---:|---:|---:|"]
    f = lambda v, fmt: "-" if v is None else format(v, fmt)  # noqa: E731
    for label, t, rp, rt, ratio in rows:
        lines.append(f"| {label} | {f(t and t * 1e3, '.3f')} | {f(t and 100 * t * updates_per_s, '.1f')}"
                     f"{'%' if t else ''} | {f(rp, '.2f')} | {f(rt, '.2f')} | "
                     f"{f(ratio, ',.0f' if ratio and ratio >= 10 else '.2f')}{'x' if ratio else ''} |")
    return "\n".join(lines)


def _acoular_maps(w, x, grid, max_updates, beamformer):
    """acoular on the workload's frames, update by update: yields each update's map summed over
    the band (``beamformer`` "base": delay-and-sum, "cleansc": CLEAN-SC), timed by the caller
    around the whole loop (PowerSpectra + beamformer)."""
    import acoular as ac

    ac.config.global_caching = "none"
    arr = load_array(w["array"])
    mg = ac.MicGeom(pos_total=arr.positions.T)
    g = ac.ImportGrid(pos=(grid.directions * 1.5).T)
    st = ac.SteeringVector(grid=g, mics=mg, steer_type="true level")
    hop, frame, n = w["hop"], w["frame"], w["update_frames"]
    span = frame + (n - 1) * hop
    lo, hi = int(w["band"][0] * frame / FS), int(w["band"][1] * frame / FS)
    for s in list(range(x.shape[1] // 4, x.shape[1] - span, span))[:max_updates]:
        ts = ac.TimeSamples(data=x[:, s:s + span].T.astype(np.float64), sample_freq=FS)
        ps = ac.PowerSpectra(source=ts, block_size=frame, overlap="50%" if hop * 2 == frame else "75%",
                             window="Hanning", cached=False)
        bf = ac.BeamformerBase(freq_data=ps, steer=st, r_diag=True, cached=False) if beamformer == "base" else \
            ac.BeamformerCleansc(freq_data=ps, steer=st, r_diag=False, cached=False)
        yield bf.result[lo:hi].sum(0)


def bench_acoular(w, x, truth, grid, max_updates):
    """acoular's delay-and-sum: (s per update, median error of the map's maximum, updates)."""
    errs = []
    t0 = time.perf_counter()
    for m in _acoular_maps(w, x, grid, max_updates, "base"):
        errs.append(min(_errors(grid.directions[[int(np.argmax(m))]], truth)))
    return (time.perf_counter() - t0) / len(errs), float(np.median(errs)), len(errs)


def bench_acoular_cleansc(w, x, truth, grid, max_updates, exclusion_deg=10.0):
    """acoular's CLEAN-SC (BeamformerCleansc, its defaults: damping 0.6, automatic iterations)
    per update on the same frames and band: (s per update, recall@10, updates). Its map is a
    set of clean components; the strongest, no two within ``exclusion_deg``, one per true
    source, are its peaks."""
    arr = load_array(w["array"])
    hits = []
    t0 = time.perf_counter()
    for m in _acoular_maps(w, x, grid, max_updates, "cleansc"):
        found = []
        for i in np.argsort(m)[::-1]:
            if m[i] <= 0 or len(found) == len(truth):
                break
            if all(angular_distance_deg(grid.directions[i], f) > exclusion_deg for f in found):
                found.append(grid.directions[i])
        hits.append(_recall(found, truth, arr))
    return (time.perf_counter() - t0) / len(hits), float(np.mean(hits)), len(hits)


def main(names, quick=False, peers=True):
    rows = []
    names = [n.strip().upper() for n in names]
    publish = "P" in names
    engines = "E" in names
    dashboard = "D" in names
    sources_rows = foa_rows = None
    for name in [n for n in names if n not in ("P", "E", "D")]:
        if name not in WORKLOADS:
            raise SystemExit(f"unknown workload {name} (W1, W2, W3, W4, W5, P, E, D)")
        w = WORKLOADS[name]
        arr = load_array(w["array"])
        grid = parse_grid(w["grid"], arr)
        truth = [to_unit(az, el) for az, el in w["sources"]]
        seconds = 3.0 if quick else 6.0
        if arr.ambisonic:
            n = int(seconds * FS)
            x = foa_scene(w["sources"], seconds, [_speech(k, n) for k in range(len(w["sources"]))], seed=1)
        else:
            x = _scene(arr, w["sources"], seconds, seed=1, speech=w.get("speech", False))
        if name == "W5":
            foa_rows = bench_foa(w, x, truth, grid, quick, peers)
            continue
        if name == "W4":
            sources_rows = bench_sources(w, x, truth, grid, quick) if peers else \
                [(f"avstream {m}", *bench_avstream(w, x, truth, 1, method=m, recall=True)[:3], None)
                 for m in METHOD_PEERS]
            continue
        t_av, e_av, e_tracks, n_av = bench_avstream(w, x, truth, 1 if quick else 3)
        updates_per_s = FS / (w["hop"] * w["update_frames"])
        rows.append((name, "avstream", t_av, e_av, n_av, updates_per_s, None))
        rows.append((name, "avstream, its tracks (same run)", t_av, e_tracks, n_av, updates_per_s, None))
        if "quoted" in w:
            label, cpu = w["quoted"]
            rows.append((name, label, cpu / 100 / updates_per_s, None, 0, updates_per_s, None))
        if peers and w.get("peers", True):
            max_up = 3 if quick else 10
            for label, fn in [("pyroomacoustics SRP", lambda: bench_pyroomacoustics(w, x, truth, grid, "SRP", max_up)),
                              ("pyroomacoustics NormMUSIC",
                               lambda: bench_pyroomacoustics(w, x, truth, grid, "NormMUSIC", max_up)),
                              ("acoular delay-and-sum", lambda: bench_acoular(w, x, truth, grid, max_up))]:
                print(f"bench: {name} {label} ...", file=sys.stderr, flush=True)
                try:
                    t, e, n = fn()
                except ImportError:
                    rows.append((name, label + " (not installed)", None, None, 0, updates_per_s, None))
                    continue
                rows.append((name, label, t, e, n, updates_per_s, t / t_av))
    if rows:
        print(_table(rows))
    if sources_rows:
        w = WORKLOADS["W4"]
        print("\nW4: three talkers on the 4-mic array, every method (recall@10: share of the true sources "
              "found within 10 degrees of azimuth per update; a planar array hardly sees elevation):\n")
        print(_sources_table(sources_rows, FS / (w["hop"] * w["update_frames"])))
    if foa_rows:
        w = WORKLOADS["W5"]
        print("\nW5: two talkers on a first-order ambisonic microphone (recall@10: share of the true sources "
              "found within 10 degrees, 3-D angle, per update):\n")
        print(_sources_table(foa_rows, FS / (w["hop"] * w["update_frames"])))
    if publish:
        print("\nPublishing cost per heatmap (serialise + send, no subscriber):\n")
        print(_publish_table(bench_publish(quick)))
    if dashboard:
        print("\nThe run's CPU with the dashboard page open in a headless browser (the demo, 15.6 updates/s):\n")
        try:
            print(_dashboard_table(bench_dashboard(quick)))
        except (ImportError, FileNotFoundError) as exc:
            print(f"(not measured: {exc}; needs avstream[dashboard], selenium, chromium and chromium-driver)")
    if engines:
        print("\nLearned engines, time per frame on 2 CPU threads:\n")
        try:
            print(_engine_table(bench_engines(quick)))
        except ImportError as exc:
            print(f"(not measured: {exc}; pip install 'avstream[train]')")
    return 0


# --- dashboard ------------------------------------------------------------------------------

def _stat(pid: int) -> list:
    """The fields of /proc/PID/stat after the command name (Linux)."""
    return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list:
    """The processes whose parent is ``pid``."""
    out = []
    for d in filter(str.isdigit, os.listdir("/proc")):
        try:
            if int(_stat(int(d))[1]) == pid:
                out.append(int(d))
        except (OSError, ValueError, IndexError):  # a process that ended meanwhile
            pass
    return out


def bench_dashboard(quick=False):
    """[(configuration, run CPU % of one core, dashboard process CPU %, page updates/s)]: the
    demo in real time without and with ``--dashboard`` and a headless Chromium showing the page;
    CPU measured over a steady window (after start-up) on the run's process and on the
    dashboard process it starts beside itself, not on the browser."""
    import shutil
    import socket
    import subprocess

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        raise FileNotFoundError("chromium / chromedriver")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    window = 5.0 if quick else 15.0
    rows = []
    for with_page in (False, True):
        with socket.socket() as sk:
            sk.bind(("127.0.0.1", 0))
            port = sk.getsockname()[1]
        args = [sys.executable, "-m", "avstream", "run", "--duration", str(window + 12), "--no-ros", "--no-status",
                "--no-overlay", "--zmq", f"tcp://127.0.0.1:{port}"] + (["--dashboard", str(port + 1)] if with_page else [])
        run = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        browser, rate = None, None
        try:
            if with_page:
                opts = Options()
                opts.binary_location = chromium
                for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
                    opts.add_argument(a)
                time.sleep(6.0)  # the run starts and serves
                browser = webdriver.Chrome(service=Service(driver), options=opts)
                browser.get(f"http://127.0.0.1:{port + 1}/")
                time.sleep(2.0)
            else:
                time.sleep(8.0)
            kids = _children(run.pid)
            c0, n0, t0 = _cpu_seconds(run.pid), browser and browser.execute_script("return window.avstream.updates"), \
                time.monotonic()
            k0 = sum(_cpu_seconds(k) for k in kids)
            time.sleep(window)
            c1, t1 = _cpu_seconds(run.pid), time.monotonic()
            k1 = sum(_cpu_seconds(k) for k in kids)
            if browser is not None:
                rate = (browser.execute_script("return window.avstream.updates") - n0) / (t1 - t0)
            rows.append(("demo, dashboard page open" if with_page else "demo, no dashboard",
                         100.0 * (c1 - c0) / (t1 - t0), 100.0 * (k1 - k0) / (t1 - t0) if kids else None, rate))
        finally:
            if browser is not None:
                browser.quit()
            run.terminate()
            run.wait(30)
    return rows


def _dashboard_table(rows):
    lines = ["| configuration | run CPU (% of one core) | dashboard process CPU | page updates/s |",
             "|---|---:|---:|---:|"]
    for label, cpu, side, rate in rows:
        lines.append(f"| {label} | {cpu:.1f}% | {'-' if side is None else format(side, '.1f') + '%'} | "
                     f"{'-' if rate is None else format(rate, '.1f')} |")
    if len(rows) == 2:
        lines.append(f"| difference (the run's side) | {rows[1][1] - rows[0][1]:+.1f} points | | |")
    return "\n".join(lines)


# --- engines --------------------------------------------------------------------------------

def bench_engines(quick=False):
    """[(engine, size, ms on ONNX Runtime, ms on torch)] on 2 threads; torch and onnx needed."""
    import tempfile
    from pathlib import Path

    import torch

    from .engines.runtime import open_engine
    from .engines.speech import SpeechDetector
    from .engines.tools import random_feeds
    from .models import AVNet, export_onnx, save_checkpoint
    from .models.resnet import ResNet18Encoder

    reps = 10 if quick else 50
    rows = []
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as d:
        av = Path(d) / "av.onnx"
        model = AVNet().eval()
        export_onnx(model, av)
        save_checkpoint(model, av.with_suffix(".pt"))
        ort, ref = open_engine(av, "onnxruntime", 2), open_engine(av, "torch", 2)
        feeds = random_feeds(ort.info, np.random.default_rng(0))
        rows.append(("localizer + segmenter (avstream default)", "96x128", _per_run(ort, feeds, reps),
                     _per_run(ref, feeds, reps)))
        enc = ResNet18Encoder().eval()
        big = Path(d) / "resnet18.onnx"
        torch.onnx.export(enc, (torch.zeros(1, 3, 224, 224),), str(big), input_names=["image"], output_names=["f"],
                          opset_version=17, dynamo=False)
        ort = open_engine(big, "onnxruntime", 2)
        x = np.random.default_rng(1).standard_normal((1, 3, 224, 224)).astype(np.float32)
        torch.set_num_threads(2)
        with torch.inference_mode():
            t_torch = _timed(lambda: enc(torch.from_numpy(x)), reps)
        rows.append(("ResNet18-sized image encoder", "224x224", _per_run(ort, {"image": x}, reps), t_torch))
    vad = SpeechDetector(4)
    block = np.zeros((4, 1024), np.float32)
    rows.append(("speech (silero-vad), mix + 3 sources, per update", "1024 samples",
                 _timed(lambda: vad.process(block), reps), None))
    return rows


def _per_run(engine, feeds, reps):
    return _timed(lambda: engine.run(dict(feeds)), reps)


def _timed(fn, reps):
    for _ in range(3):
        fn()
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t) / reps


def _engine_table(rows):
    lines = ["| engine | input | ONNX Runtime ms | fps | torch eager ms | ONNX Runtime speed-up | TensorRT |",
             "|---|---|---:|---:|---:|---:|---|"]
    for name, size, t_ort, t_torch in rows:
        torch_ms = "-" if t_torch is None else f"{t_torch * 1e3:.2f}"
        ratio = "-" if t_torch is None else f"{t_torch / t_ort:.1f}x"
        lines.append(f"| {name} | {size} | {t_ort * 1e3:.2f} | {1 / t_ort:,.0f} | {torch_ms} | {ratio} | "
                     "not measured here |")
    return "\n".join(lines)


def _table(rows):
    head = ("| workload | system | ms/update | updates/s | real-time CPU (1 core) | median error (deg) | "
            "avstream speed-up |\n|---|---|---:|---:|---:|---:|---:|")
    lines = [head]
    for name, system, t, e, n, need, ratio in rows:
        if t is None:
            lines.append(f"| {name} | {system} | - | - | - | - | - |")
            continue
        err = "-" if e is None else f"{e:.1f}"
        lines.append(f"| {name} | {system} | {t * 1e3:.3f} | {1 / t:,.0f} | {100 * t * need:.1f}% | {err} | "
                     + ("-" if ratio is None else f"{ratio:,.0f}x") + " |")
    return "\n".join(lines)


# --- publishing cost ------------------------------------------------------------------------

def bench_publish(quick=False):
    """Cost of serialising and sending one heatmap per transport, at 64x48 and 640x480, and of
    one update with a 640x480 camera overlay (its drawing included).

    No subscriber is connected (the cost a node pays whatever the listeners do). The reference
    row is cyclonedds' ordinary DataWriter.write of the same Image (per-element Python
    serialisation of the uint8 sequence), which avstream's DDS path replaces; for the overlay
    case, of the bgr8 overlay image.
    """
    import tempfile

    from .frames import Heatmap, Peak, VideoFrame
    from .fusion.overlay import Overlay
    from .geometry.camera import default_camera, default_extrinsics
    from .geometry.grids import camera_grid, fov_grid
    from .sinks.dds_sink import DdsSink
    from .sinks.mcap_sink import McapSink
    from .sinks.zmq_sink import ZmqSink

    rows = []
    n = 20 if quick else 100
    tmp = tempfile.mkdtemp(prefix="avstream-bench-")
    cam, ext = default_camera(), default_extrinsics()
    for case in ["64x48", "640x480", "overlay"]:
        if case == "overlay":
            grid = camera_grid(cam, ext, 10, 3.0)
            label_size = "64x48 + 640x480 overlay"
        else:
            cols, rws = (int(v) for v in case.split("x"))
            grid = fov_grid(90.0, 70.0, cols, rws)
            label_size = case
        meta = {"grid_object": grid, "camera": cam if case == "overlay" else None}
        rng = np.random.default_rng(0)
        maps = [Heatmap(rng.random(grid.n_dirs, dtype=np.float32), 0.0, 1.7e9 + k / 15.0, k,
                        [Peak(10.0, 60.0, 0.8), Peak(-40.0, 72.0, 0.4)], set()) for k in range(n)]
        overlay = Overlay(grid, cam, ext, 3.0) if case == "overlay" else None
        picture = rng.integers(0, 255, (cam.height, cam.width, 3), dtype=np.uint8)
        for m in maps:
            m.status = {"updates": m.seq, "dropped_blocks": 0, "overflows": 0}
            if overlay is not None:
                m.frame = VideoFrame(picture, m.stamp, m.seq)
        if overlay is not None:  # drawing the overlay is part of what each update costs
            t0 = time.perf_counter()
            for m in maps:
                m.overlay = overlay.render(m.frame, m, "15.6 updates/s  latency 80 ms  video +3 ms")
            rows.append((label_size, "drawing the overlay (fusion.overlay)", (time.perf_counter() - t0) / n))
        sinks = [("ROS 2 / DDS (avstream: rosbags CDR + raw write)", lambda: DdsSink()),
                 ("ZeroMQ PUB", lambda: ZmqSink(f"ipc://{tmp}/bench.sock")),
                 ("MCAP file", lambda: McapSink(f"{tmp}/bench.mcap"))]
        for label, make in sinks:
            sink = make()
            sink.open(meta)
            sink.write(maps[0])
            t0 = time.perf_counter()
            for m in maps:
                sink.write(m)
            dt = (time.perf_counter() - t0) / n
            sink.close({})
            rows.append((label_size, label, dt))
        if overlay is None:
            payload, encoding, (h, w), step = [m.values.astype("<f4").view(np.uint8) for m in maps], "32FC1", \
                grid.shape, 4 * grid.shape[1]
        else:
            payload, encoding, (h, w), step = [m.overlay.reshape(-1) for m in maps], "bgr8", \
                (cam.height, cam.width), 3 * cam.width
        rows.append((label_size, "cyclonedds DataWriter.write (reference)",
                     _plain_cyclonedds_write(payload, h, w, step, encoding, max(3, n // 10))))
    return rows


def _plain_cyclonedds_write(payloads, h, wd, step, encoding, n):
    """One Image through cyclonedds' own serializer (every byte a Python int in a list)."""
    from cyclonedds.domain import DomainParticipant
    from cyclonedds.pub import DataWriter
    from cyclonedds.topic import Topic

    from .sinks.dds_sink import domain_id
    from .sinks.dds_types import IdlTypes
    from .sinks.ros_format import IMAGE, typestore

    ts = typestore("jazzy")
    Img = IdlTypes(ts)[IMAGE]
    Header = IdlTypes(ts)["std_msgs/msg/Header"]
    Time = IdlTypes(ts)["builtin_interfaces/msg/Time"]
    dp = DomainParticipant(domain_id())
    w = DataWriter(dp, Topic(dp, "rt/avstream_bench/plain", Img))
    t0 = time.perf_counter()
    for data in payloads[:n]:
        w.write(Img(header=Header(stamp=Time(sec=1, nanosec=0), frame_id="mic_array"), height=h, width=wd,
                    encoding=encoding, is_bigendian=0, step=step, data=list(data)))
    return (time.perf_counter() - t0) / n


def _publish_table(rows):
    ref = {size: t for size, label, t in rows if "reference" in label}
    lines = ["| image | transport | ms per heatmap | vs cyclonedds DataWriter.write |", "|---|---|---:|---:|"]
    for size, label, t in rows:
        ratio = "-" if "reference" in label or "drawing" in label else f"{ref[size] / t:,.0f}x faster"
        lines.append(f"| {size} | {label} | {t * 1e3:.3f} | {ratio} |")
    return "\n".join(lines)
