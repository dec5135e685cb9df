"""Channel check: is the array wired the way its description says?

From a recording of one source at a known direction: each microphone's level finds dead
channels; the time differences of arrival between every pair (GCC-PHAT over the whole
recording, 16x interpolated lags) are compared with what the geometry predicts for that
direction under each candidate wiring: the stated one, every swap of two channels, and every
rotation or mirror image of the array onto itself (a board mounted turned or flipped). The
best-fitting wiring is reported when it explains the delays clearly better than the stated
one. Each candidate may correct the stated direction by up to ``search_deg``.

Without a known direction: tap each microphone in turn (mic 0 first, as the array description
numbers them). Each tap is loudest on the channel of the tapped microphone, so the order in which
channels light up is the wiring (``check_taps``).

A wiring change that does not alter any delay for the given direction (for example swapping
two microphones on a line along which the source lies broadside) cannot be seen from that
recording; the report lists such look-alikes so a second recording from another direction can
settle them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from ..errors import InputError
from ..geometry.grids import fibonacci_sphere, to_unit

DEAD_DB = -30.0  # a channel this far below the median level is dead
INTERP = 16  # GCC lag interpolation factor


@dataclass
class ChannelReport:
    ok: bool
    dead: list  # channel indices (file channels)
    levels_db: list  # per microphone, relative to the median
    wiring: str  # "as stated" or a description of the better wiring
    permutation: list  # best wiring: entry k is the microphone recorded on the k-th mic channel
    residual_us: float  # RMS delay misfit of the best wiring
    stated_residual_us: float  # of the stated wiring
    direction: tuple  # (azimuth, elevation) that fits best
    lookalikes: list = field(default_factory=list)  # wirings this recording cannot tell from the best

    def to_dict(self) -> dict:
        return {k: (round(v, 2) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def _symmetries(pos: np.ndarray, tol: float = 1e-3) -> dict:
    """Name -> permutation for rotations about z and mirrors that map the mic set onto itself."""
    centred = pos - pos.mean(axis=0)
    out = {}
    for deg in (90, 180, 270, 60, 120, 240, 45, 135, 225, 315, 72, 144, 216, 288):
        a = np.deg2rad(deg)
        R = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
        out[f"turned {deg} degrees about z"] = R
    out["mirrored left-right (y -> -y)"] = np.diag([1.0, -1.0, 1.0])
    out["mirrored front-back (x -> -x)"] = np.diag([-1.0, 1.0, 1.0])
    perms = {}
    for name, R in out.items():
        moved = centred @ R.T
        d = np.linalg.norm(moved[:, None, :] - centred[None, :, :], axis=2)
        j = d.argmin(axis=1)
        if np.all(d[np.arange(len(pos)), j] < tol) and len(set(j)) == len(pos):
            perms[name] = j
    return perms


def _levels(x: np.ndarray, array):
    """(mic signals float64, level per mic in dB re the median, dead mic indices, live mic
    indices) of a recording checked against the array; a dead mic is DEAD_DB below the median
    or constant."""
    if x.shape[0] != array.n_channels:
        raise InputError(f"the recording has {x.shape[0]} channels but array {array.name} expects "
                         f"{array.n_channels}")
    if not np.isfinite(x).all():
        raise InputError("the recording holds NaN or Inf samples")
    mics = x[list(array.mic_channels)].astype(np.float64)
    rms = np.sqrt(np.mean(mics ** 2, axis=1))
    ref = float(np.median(rms))
    if ref <= 0:
        raise InputError("the recording is silent on most channels")
    levels = 20 * np.log10(np.maximum(rms, 1e-12) / ref)
    dead = [i for i in range(array.n_mics) if levels[i] < DEAD_DB or np.ptp(mics[i]) == 0]
    return mics, levels, dead, [i for i in range(array.n_mics) if i not in dead]


def measure_delays(x: np.ndarray, sample_rate: float, max_lag_s: float, frame: int = 1024,
                   band=(300.0, 6000.0)) -> np.ndarray:
    """(n_mics, n_mics) delays in seconds, tau[i, j] > 0 when mic i hears later than mic j,
    by GCC-PHAT accumulated over the recording."""
    from scipy.signal import stft

    _, _, X = stft(x, fs=sample_rate, nperseg=frame, noverlap=frame // 2, axis=-1)  # (mics, freqs, frames)
    freqs = np.arange(X.shape[1]) * sample_rate / frame
    keep = (freqs >= band[0]) & (freqs <= min(band[1], sample_rate / 2))
    n = x.shape[0]
    tau = np.zeros((n, n))
    n_fft = frame * INTERP
    max_k = int(np.ceil(max_lag_s * sample_rate * INTERP)) + INTERP
    for i, j in combinations(range(n), 2):
        cross = X[i] * np.conj(X[j])
        cross = cross / np.maximum(np.abs(cross), 1e-12)
        spec = np.where(keep[:, None], cross, 0).sum(axis=1)
        cc = np.fft.irfft(spec, n_fft)
        lags = np.concatenate([np.arange(0, max_k + 1), np.arange(-max_k, 0)])
        k = lags[np.argmax(cc[lags])]
        tau[i, j] = k / (sample_rate * INTERP)
        tau[j, i] = -tau[i, j]
    return tau


def check_channels(x: np.ndarray, array, azimuth_deg: float, elevation_deg: float = 0.0,
                   speed_of_sound: float = 343.0, search_deg: float = 15.0, band=(300.0, 6000.0)) -> ChannelReport:
    """Check ``x`` (n_channels, n) recorded by ``array`` from a source at the given direction."""
    mics, levels, dead_mics, live = _levels(x, array)
    if len(live) < 3:
        raise InputError(f"only {len(live)} live microphones: cannot check the wiring")
    pos = np.asarray(array.positions, float)
    max_lag = array.aperture / speed_of_sound
    tau = measure_delays(mics, array.sample_rate or 16000, max_lag, band=band)
    # candidate directions: within search_deg of the stated one
    u0 = to_unit(azimuth_deg, elevation_deg)
    cands = fibonacci_sphere(20000)
    cands = np.vstack([u0, cands[cands @ u0 >= np.cos(np.deg2rad(search_deg))]])
    delay = -(cands @ pos.T) / speed_of_sound  # (dirs, mics): arrival time of each mic
    pairs = [(i, j) for i, j in combinations(live, 2)]
    ii = np.array([p[0] for p in pairs])
    jj = np.array([p[1] for p in pairs])
    measured = tau[ii, jj]

    def fit(perm):
        """RMS misfit (s) and best direction when channel k carries microphone perm[k]."""
        pred = delay[:, perm[ii]] - delay[:, perm[jj]]
        err = np.sqrt(np.mean((pred - measured[None]) ** 2, axis=1))
        k = int(np.argmin(err))
        return float(err[k]), k

    identity = np.arange(array.n_mics)
    candidates = {"as stated": identity}
    for a, b in combinations(range(array.n_mics), 2):
        p = identity.copy()
        p[a], p[b] = b, a
        candidates[f"channels {array.mic_channels[a]} and {array.mic_channels[b]} swapped"] = p
    for name, p in _symmetries(pos).items():
        candidates[f"array {name}"] = p
    scores = {name: fit(p) for name, p in candidates.items()}
    stated_err = scores["as stated"][0]
    best = min(scores, key=lambda n: scores[n][0])
    # another wiring must fit clearly better (by half, and by more than a tenth of a sample)
    one_tenth = 0.1 / (array.sample_rate or 16000)
    if best != "as stated" and not (scores[best][0] < 0.5 * stated_err and stated_err - scores[best][0] > one_tenth):
        best = "as stated"
    err, k = scores[best]
    lookalikes = sorted(n for n, (e, _) in scores.items() if n != best and abs(e - err) <= max(0.1 * err, 1e-7))
    az, el = np.rad2deg(np.arctan2(cands[k, 1], cands[k, 0])), np.rad2deg(np.arcsin(np.clip(cands[k, 2], -1, 1)))
    dead = [int(array.mic_channels[i]) for i in dead_mics]
    return ChannelReport(ok=not dead and best == "as stated", dead=dead, levels_db=[round(float(v), 1) for v in levels],
                         wiring=best, permutation=[int(v) for v in candidates[best]], residual_us=err * 1e6,
                         stated_residual_us=stated_err * 1e6, direction=(round(float(az), 1), round(float(el), 1)),
                         lookalikes=lookalikes)


def format_report(r: ChannelReport, array) -> str:
    lines = []
    for i, ch in enumerate(array.mic_channels):
        mark = "  DEAD" if ch in r.dead else ""
        lines.append(f"  channel {ch:2d} (mic {i:2d}): level {r.levels_db[i]:+6.1f} dB re median{mark}")
    if r.dead:
        lines.append(f"dead channels: {', '.join(map(str, r.dead))} (more than {-DEAD_DB:.0f} dB below the others, "
                     "or constant): check the cable, the mic or the channel map")
    taps = not np.isfinite(r.direction[0])
    if r.wiring == "as stated":
        lines.append("wiring: as stated (each tap was loudest on its own channel)" if taps else
                     f"wiring: as stated (delays fit within {r.residual_us:.1f} us RMS, source at az "
                     f"{r.direction[0]:+.1f} el {r.direction[1]:+.1f})")
    elif taps:
        lines.append(f"wiring: {r.wiring}; channel k carries microphone {r.permutation} "
                     "(give these mic_channels in the array YAML)")
    else:
        lines.append(f"wiring: {r.wiring}: delays fit within {r.residual_us:.1f} us RMS against "
                     f"{r.stated_residual_us:.1f} us as stated; channel k carries microphone "
                     f"{r.permutation} (give these mic_channels in the array YAML)")
    if r.lookalikes:
        lines.append("this recording cannot tell that from: " + "; ".join(r.lookalikes[:6])
                     + (" ..." if len(r.lookalikes) > 6 else "") + " (record a source from another direction)")
    lines.append("result: " + ("OK" if r.ok else "PROBLEMS FOUND"))
    return "\n".join(lines)


def check_taps(x: np.ndarray, array, threshold_db: float = 12.0, window_s: float = 0.03) -> ChannelReport:
    """Wiring from a recording in which microphones 0, 1, ... were tapped in that order (one or
    more taps each). Raises InputError when the taps do not cover every live microphone."""
    from .events import detect_onsets

    mics, levels, dead_mics, live = _levels(x, array)
    rate = array.sample_rate or 16000
    onsets = detect_onsets(mics, rate, threshold_db=threshold_db, min_gap_s=0.15)
    loudest = []
    for t in onsets:
        # the direct sound's peak: a tap 1 cm from a mic is several times louder there than at
        # the next mic; reflections arrive later and weaker
        a = max(0, int((t - 0.01) * rate))
        seg = mics[:, a:a + int((0.01 + window_s) * rate)]
        if seg.shape[1]:
            loudest.append(int(np.argmax(np.max(np.abs(seg), axis=1))))
    order = [m for k, m in enumerate(loudest) if k == 0 or m != loudest[k - 1]]  # repeated taps count once
    if sorted(order) != live:
        raise InputError(f"found {len(order)} tapped microphones in the order {order} (by position on the mic "
                         f"channels); expected each of the {len(live)} live microphones once, in order: "
                         "tap mic 0, then 1, ..., with a pause between microphones")
    # tap k (the k-th live mic) sounded loudest on recorded mic slot order[k]: slot order[k] carries mic live[k]
    perm = np.arange(array.n_mics)
    for k, slot in enumerate(order):
        perm[slot] = live[k]
    swapped = [i for i in range(array.n_mics) if perm[i] != i]
    if not swapped:
        wiring = "as stated"
    elif len(swapped) == 2:
        a, b = swapped
        wiring = f"channels {array.mic_channels[a]} and {array.mic_channels[b]} swapped"
    else:
        wiring = "channels reordered: " + ", ".join(f"channel {array.mic_channels[i]} carries mic {perm[i]}"
                                                    for i in swapped)
    dead = [int(array.mic_channels[i]) for i in dead_mics]
    return ChannelReport(ok=not dead and not swapped, dead=dead, levels_db=[round(float(v), 1) for v in levels],
                         wiring=wiring, permutation=[int(v) for v in perm], residual_us=0.0, stated_residual_us=0.0,
                         direction=(float("nan"), float("nan")))
