"""Microphone arrays: presets for real devices and arrays read from YAML.

Array frame (REP 103): x forward, y left, z up, metres. Directions everywhere are
azimuth = atan2(y, x) in degrees counter-clockwise from +x and elevation in degrees up
from the x-y plane.

A device delivers ``n_channels`` interleaved channels; ``mic_channels[k]`` is the input
channel that carries microphone ``k`` at ``positions[k]``. The ReSpeaker USB array with
its 6-channel firmware, for example, puts a processed beam on channel 0, the four raw
microphones on channels 1-4 and the playback reference on channel 5.

An ambisonic array (``kind: ambisonic``) is a first-order B-format microphone: its four
channels are spherical-harmonic components, not positions. The capture path turns them into
AmbiX (ACN order W, Y, Z, X; SN3D) with ``encode``, whatever the file's or device's convention
(AmbiX, or FuMa: W, X, Y, Z with W at -3 dB), and the localizers steer with spherical harmonics.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from ..errors import ConfigError
from ..yamlio import refuse_unknown

SPEED_OF_SOUND = 343.0


@dataclass(frozen=True)
class MicArray:
    """A microphone array.

    Attributes
    ----------
    name : str
        Preset name or the YAML file it came from.
    positions : ndarray, shape (n_mics, 3), float64
        Microphone positions in metres in the array frame, in ``mic_channels`` order.
    n_channels : int
        Channels the device or file delivers (may exceed ``n_mics``).
    mic_channels : tuple of int
        Input channel of each microphone.
    sample_rate : int or None
        The device's native rate, when the array fixes one.
    facing : ndarray, shape (3,)
        Unit normal of the half-space searched by default. For a planar array the map is
        mirror-symmetric about the array plane, so only this side is searched.
    """

    name: str
    positions: np.ndarray
    n_channels: int
    mic_channels: tuple
    sample_rate: int | None = None
    facing: np.ndarray | None = None
    note: str = ""
    kind: str = "mics"  # "mics" (positions) or "ambisonic" (B-format)
    encode: np.ndarray | None = None  # ambisonic: (C, C) input channels -> AmbiX (ACN order, SN3D)
    convention: str = ""  # ambisonic: "ambix", "fuma", "<channel order>/<normalisation>" or "a_format"
    capsules: tuple | None = None  # A-format: (capsule directions (4, 3), radius m, pattern p)
    order: int = 0  # ambisonic: the order read, (order + 1)^2 channels (0 for microphones)

    @property
    def n_mics(self) -> int:
        return len(self.mic_channels)

    @property
    def ambisonic(self) -> bool:
        return self.kind == "ambisonic"

    @property
    def aperture(self) -> float:
        """The largest distance between two microphones, m (0 on an ambisonic array)."""
        if self.ambisonic:
            return 0.0
        pos = np.asarray(self.positions, float)
        return float(np.max(np.linalg.norm(pos[:, None] - pos[None], axis=2)))

    @property
    def planar(self) -> bool:
        """True when all microphones lie in one plane (up/down cannot be told apart)."""
        return False if self.ambisonic else _plane_normal(self.positions)[1]

    def equalizer(self, freqs: np.ndarray, c: float = SPEED_OF_SOUND, max_boost_db: float = 15.0):
        """A-format only: (4, n_freqs) complex gains that undo the capsule spacing per bin (None
        for other arrays). Spaced capsules make the A-to-B matrix's W and X, Y, Z depart from
        ideal harmonics as frequency rises; each order's mean response over the sphere, G_n(f),
        is computed from the capsule geometry and inverted (boosting at most ``max_boost_db``):
        the spacing-correction filters of a tetrahedral microphone."""
        if self.capsules is None:
            return None
        dirs, radius, _ = self.capsules
        k = np.arange(400) + 0.5  # directions all around (a golden spiral)
        z = 1.0 - 2.0 * k / 400
        phi = np.pi * (1.0 + np.sqrt(5.0)) * k
        u = np.stack([np.sqrt(1 - z * z) * np.cos(phi), np.sqrt(1 - z * z) * np.sin(phi), z], axis=1)
        gains = _capsule_gains(self.capsules, u)  # (D, 4)
        phase = np.exp(2j * np.pi * np.asarray(freqs)[:, None, None] * radius * (u @ dirs.T)[None] / c)  # (F, D, 4)
        b = np.einsum("ij,fdj->fdi", self.encode, gains[None] * phase)  # (F, D, 4) AmbiX
        sh = np.stack([np.ones(len(u)), u[:, 1], u[:, 2], u[:, 0]], axis=1)  # (D, 4)
        floor = 10 ** (-max_boost_db / 10)
        eq = np.empty((4, len(freqs)), complex)
        for chans in ((0,), (1, 2, 3)):
            ideal = sh[:, chans]
            g = np.einsum("dc,fdc->f", ideal, b[:, :, chans]) / np.sum(ideal ** 2)
            eq[list(chans)] = (np.conj(g) / np.maximum(np.abs(g) ** 2, floor))[None]
        return eq

    def a_format_model(self, freqs: np.ndarray, c: float = SPEED_OF_SOUND) -> np.ndarray:
        """A-format only: (n_freqs, 4, 4) complex, the capsules' signals to the AmbiX bins the
        capture path makes of them (the A-to-B matrix, then the spacing correction)."""
        return self.equalizer(freqs, c).T[:, :, None] * self.encode[None].astype(complex)

    def steering(self, freqs: np.ndarray, directions: np.ndarray, c: float = SPEED_OF_SOUND) -> np.ndarray:
        """Unit-norm steering vectors (n_freqs, n_dirs, n_mics), complex: a plane wave from each
        direction as the channels see it. Microphones: phases exp(j w r_m . u / c); ambisonic:
        the SN3D spherical harmonics of its order ((1, y, z, x) at first order), the same at every frequency; an
        A-format microphone: what its spaced capsules make of the wave after the capture path's
        A-to-B conversion (so the spacing's departure from ideal harmonics is modelled, not an error)."""
        if self.capsules is not None:
            dirs, radius, _ = self.capsules
            d = np.asarray(directions, dtype=np.float64)
            caps = _capsule_gains(self.capsules, d)[None] * np.exp(
                2j * np.pi * np.asarray(freqs)[:, None, None] * radius * (d @ dirs.T)[None] / c)  # (F, D, 4)
            b = np.einsum("fij,fdj->fdi", self.a_format_model(freqs, c), caps)
            return b / np.linalg.norm(b, axis=2, keepdims=True)
        if self.ambisonic:  # |Y(u)|^2 = order + 1 in SN3D
            sh = harmonics(self.order, np.asarray(directions, dtype=np.float64)) / np.sqrt(self.order + 1.0)
            return np.broadcast_to(sh[None].astype(np.complex128), (len(freqs),) + sh.shape)
        phase = 2.0 * np.pi * np.asarray(freqs)[:, None, None] * (directions @ self.positions.T)[None] / c
        return np.exp(1j * phase) / np.sqrt(len(self.positions))

    def describe(self) -> dict:
        """A JSON-ready summary, including the up/down ambiguity of planar arrays."""
        out = {
            "name": self.name,
            "n_mics": self.n_mics,
            "n_channels": self.n_channels,
            "mic_channels": list(self.mic_channels),
            "planar": bool(self.planar),
        }
        if self.ambisonic:
            out.update(kind="ambisonic", order=self.order, convention=self.convention)
        if self.planar:
            out["ambiguity"] = (
                "planar array: a source and its mirror image through the array plane give the "
                "same signals; only the half-space facing %s is searched"
                % np.round(self.facing, 3).tolist()
            )
        return out


def _plane_normal(positions: np.ndarray) -> tuple[np.ndarray, bool]:
    """Least-squares plane normal of the microphones and whether they are coplanar."""
    centred = positions - positions.mean(axis=0)
    _, s, vt = np.linalg.svd(centred)
    normal = vt[-1]
    scale = max(s[0], 1e-12)
    coplanar = len(positions) <= 3 or s[-1] / scale < 1e-3
    return normal, bool(coplanar)


def _default_facing(positions: np.ndarray) -> np.ndarray:
    normal, coplanar = _plane_normal(positions)
    if not coplanar:
        return np.array([0.0, 0.0, 1.0])
    # Point the normal along its largest component's positive axis: a board lying flat faces
    # up (+z), a board standing upright faces forward (+x).
    k = int(np.argmax(np.abs(normal)))
    return normal if normal[k] > 0 else -normal


def _make(name, positions, n_channels=None, mic_channels=None, sample_rate=None, facing=None, note=""):
    pos = np.asarray(positions, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise ConfigError(f"array {name}: mic_positions must be a list of [x, y, z] rows, got shape {pos.shape}")
    if len(pos) < 2:
        raise ConfigError(f"array {name}: at least two microphones are needed, got {len(pos)}")
    if not np.all(np.isfinite(pos)):
        raise ConfigError(f"array {name}: mic_positions contains a non-finite value")
    if mic_channels is None:
        mic_channels = tuple(range(len(pos)))
    mic_channels = tuple(int(c) for c in mic_channels)
    if len(mic_channels) != len(pos):
        raise ConfigError(
            f"array {name}: mic_channels lists {len(mic_channels)} channels for {len(pos)} microphones"
        )
    if n_channels is None:
        n_channels = max(mic_channels) + 1
    if min(mic_channels) < 0 or max(mic_channels) >= n_channels:
        raise ConfigError(f"array {name}: mic_channels must lie in 0..{n_channels - 1}")
    if len(set(mic_channels)) != len(mic_channels):
        raise ConfigError(f"array {name}: mic_channels repeats a channel")
    d = np.linalg.norm(pos[:, None] - pos[None], axis=-1)[np.triu_indices(len(pos), 1)]
    if d.min() < 1e-4:
        raise ConfigError(f"array {name}: two microphones are at the same position")
    if facing is None:
        facing = _default_facing(pos)
    facing = np.asarray(facing, dtype=np.float64)
    if facing.shape != (3,) or not np.isfinite(facing).all() or np.linalg.norm(facing) == 0:
        raise ConfigError(f"array {name}: facing must be a non-zero [x, y, z] vector")
    facing = facing / np.linalg.norm(facing)
    return MicArray(name, pos, int(n_channels), mic_channels,
                    None if sample_rate is None else int(sample_rate), facing, note)


CHANNEL_ORDERS = ("acn", "fuma")  # ACN: W, Y, Z, X; FuMa: W, X, Y, Z
NORMALISATIONS = ("sn3d", "n3d", "fuma")  # fuma = maxN (first order: W at -3 dB, X Y Z as SN3D)


def harmonics(order: int, u: np.ndarray) -> np.ndarray:
    """(D, (order + 1)^2) real spherical harmonics of unit directions u (D, 3) in AmbiX's
    convention: ACN channel order (n^2 + n + m), SN3D normalisation, no Condon-Shortley phase.
    What an ambisonic microphone's channels hold for a unit plane wave from u: (1, y, z, x) at
    first order, sqrt(3) x y, sqrt(3) y z, (3 z^2 - 1) / 2, sqrt(3) x z, sqrt(3) (x^2 - y^2) / 2
    at second. Associated Legendre functions by the standard recurrences (the synthetic scene
    calls this per block: a few microseconds, not scipy's per-degree calls)."""
    u = np.atleast_2d(np.asarray(u, dtype=np.float64))
    ct = np.clip(u[:, 2], -1.0, 1.0)  # cos of the polar angle
    st = np.hypot(u[:, 0], u[:, 1])
    phi = np.arctan2(u[:, 1], u[:, 0])
    out = np.empty((len(u), (order + 1) ** 2))
    pmm = np.ones(len(u))  # P_m^m = (2m - 1)!! st^m
    for m in range(order + 1):
        if m:
            pmm = pmm * (2 * m - 1) * st
        cos_m, sin_m = np.cos(m * phi), np.sin(m * phi)
        p_prev, p = np.zeros(len(u)), pmm
        for n in range(m, order + 1):
            if n > m:  # (n - m) P_n^m = (2n - 1) ct P_(n-1)^m - (n + m - 1) P_(n-2)^m
                p_prev, p = p, ((2 * n - 1) * ct * p - (n + m - 1) * p_prev) / (n - m)
            norm = math.sqrt((2.0 if m else 1.0) * math.factorial(n - m) / math.factorial(n + m))
            out[:, n * n + n + m] = norm * p * cos_m
            if m:
                out[:, n * n + n - m] = norm * p * sin_m
    return out


def harmonic_degrees(order: int) -> np.ndarray:
    """The degree n of each of the (order + 1)^2 ACN channels (ACN = n^2 + n + m)."""
    return np.floor(np.sqrt(np.arange((order + 1) ** 2)))


def max_di_beams(order: int, u: np.ndarray) -> np.ndarray:
    """(D, (order + 1)^2) weights on AmbiX channels of the max-DI (plane-wave decomposition)
    beams toward unit directions u (D, 3): (2n + 1) Y_nm(u) / (order + 1)^2, unit gain toward u
    (in SN3D, sum_m Y_nm(u) Y_nm(v) = P_n(u . v)); (1, 3y, 3z, 3x) / 4 at first order."""
    return harmonics(order, u) * (2 * harmonic_degrees(order) + 1) / (order + 1) ** 2


def _ambisonic(name, order=1, channel_order="acn", normalisation="sn3d", n_channels=None, mic_channels=None,
               sample_rate=None, note=""):
    """A B-format array of ``order`` 1-7; ``encode`` maps its (order + 1)^2 channels to AmbiX
    (ACN, SN3D). Higher orders come in ACN order (AmbiX) only, as SN3D or N3D."""
    if not isinstance(order, int) or isinstance(order, bool) or not 1 <= order <= 7:
        raise ConfigError(f"array {name}: order {order!r}: must be an integer within 1..7")
    if channel_order not in CHANNEL_ORDERS:
        raise ConfigError(f"array {name}: unknown channel_order {channel_order!r} (known: {', '.join(CHANNEL_ORDERS)})")
    if normalisation not in NORMALISATIONS:
        raise ConfigError(f"array {name}: unknown normalisation {normalisation!r} (known: {', '.join(NORMALISATIONS)})")
    if order > 1 and (channel_order != "acn" or normalisation == "fuma"):
        raise ConfigError(f"array {name}: order {order} needs channel_order acn with normalisation sn3d or n3d "
                          f"(FuMa's higher orders are not read)")
    n = (order + 1) ** 2
    if mic_channels is None:
        mic_channels = tuple(range(n))
    mic_channels = tuple(int(c) for c in mic_channels)
    if len(mic_channels) != n:
        raise ConfigError(f"array {name}: an order-{order} ambisonic array has {n} channels"
                          f"{' (W, X, Y, Z)' if order == 1 else ''}, mic_channels lists {len(mic_channels)}")
    n_channels = int(n_channels) if n_channels is not None else max(mic_channels) + 1
    if min(mic_channels) < 0 or max(mic_channels) >= n_channels or len(set(mic_channels)) != n:
        raise ConfigError(f"array {name}: mic_channels must be {n} different channels in 0..{n_channels - 1}")
    # input order -> ACN, then each component scaled to SN3D
    order_map = list(range(n)) if channel_order == "acn" else [0, 2, 3, 1]  # FuMa W X Y Z: Y=2, Z=3, X=1
    scale = {"sn3d": np.ones(n), "n3d": 1.0 / np.sqrt(2 * harmonic_degrees(order) + 1.0),
             "fuma": np.array([np.sqrt(2.0), 1.0, 1.0, 1.0])}[normalisation]
    encode = np.zeros((n, n))
    for acn, src in enumerate(order_map):
        encode[acn, src] = scale[acn]
    convention = {("acn", "sn3d"): "ambix", ("fuma", "fuma"): "fuma"}.get((channel_order, normalisation),
                                                                          f"{channel_order}/{normalisation}")
    if order > 1:
        convention += f" (order {order})"
    return MicArray(name, np.zeros((n, 3)), n_channels, mic_channels,
                    None if sample_rate is None else int(sample_rate), None, note, "ambisonic", encode, convention,
                    order=order)


# A-format: the tetrahedral capsules front-left-up, front-right-down, back-left-down and
# back-right-up (FACTS 5.3), azimuth and elevation in degrees
TETRAHEDRON = ((45.0, 35.264), (-45.0, -35.264), (135.0, -35.264), (-135.0, 35.264))


def _unit(az_deg, el_deg):
    a, e = np.deg2rad(az_deg), np.deg2rad(el_deg)
    return np.array([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)])


def _capsule_gains(capsules, u):
    """(D, 4) directional gains (1 - p) + p d . u of the capsules toward directions u (D, 3)."""
    dirs, _, p = capsules
    return (1.0 - p) + p * (np.asarray(u) @ dirs.T)


def _a_format(name, capsules=TETRAHEDRON, radius=None, pattern=0.5, n_channels=None, mic_channels=None,
              sample_rate=None, note=""):
    """A tetrahedral A-format microphone: its 4 capsules become AmbiX (W, Y, Z, X; SN3D) by the
    matrix that inverts the coincident capsules' gains, and the spacing-correction filters of
    ``MicArray.equalizer`` in the STFT."""
    try:
        dirs = np.array([_unit(float(a), float(e)) for a, e in capsules])
    except (TypeError, ValueError):
        raise ConfigError(f"array {name}: capsules must be 4 [azimuth, elevation] pairs in degrees") from None
    if dirs.shape != (4, 3):
        raise ConfigError(f"array {name}: capsules must be 4 [azimuth, elevation] pairs, got {len(dirs)}")
    angles = np.degrees(np.arccos(np.clip((dirs @ dirs.T)[np.triu_indices(4, 1)], -1, 1)))
    if np.max(np.abs(angles - 109.47)) > 5.0:
        raise ConfigError(f"array {name}: the capsules are not a tetrahedron (angles between them "
                          f"{np.round(angles, 1).tolist()} degrees; a tetrahedron has 109.5)")
    if not isinstance(radius, (int, float)) or isinstance(radius, bool) or not 0 < radius <= 0.05:
        raise ConfigError(f"array {name}: radius (the capsules' distance from the centre, metres) must be within "
                          f"(0, 0.05], got {radius!r}")
    if not isinstance(pattern, (int, float)) or not 0 < pattern <= 1:
        raise ConfigError(f"array {name}: pattern (first-order p: 0.5 cardioid, 1 figure-of-eight) must be within "
                          f"(0, 1], got {pattern!r}")
    base = _ambisonic(name, 1, "acn", "sn3d", n_channels, mic_channels, sample_rate, note)
    # capsule gains = M [1, x, y, z]; AmbiX = [1, y, z, x] = P M^-1 capsules
    M = np.hstack([np.full((4, 1), 1.0 - pattern), pattern * dirs])
    P = np.zeros((4, 4))
    P[0, 0], P[1, 2], P[2, 3], P[3, 1] = 1, 1, 1, 1
    return MicArray(name, base.positions, base.n_channels, base.mic_channels, base.sample_rate, None, note,
                    "ambisonic", P @ np.linalg.inv(M), "a_format", (dirs, float(radius), float(pattern)), order=1)


def _ring(radius, n, start_deg=0.0):
    ang = np.deg2rad(start_deg + 360.0 * np.arange(n) / n)
    return np.stack([radius * np.cos(ang), radius * np.sin(ang), np.zeros(n)], axis=1)


# Geometries follow ODAS's configuration files (introlab/odas config/odaslive/*.cfg) and, for
# the UMA-16, acoular's minidsp_uma-16.xml (x corrected after acoular 24.03). Channel order is
# the device's; verify yours with a tap test: wrong channel order is the commonest fault.
_PRESETS = {
    "respeaker_usb_4mic": dict(
        positions=[[-0.032, 0.0, 0.0], [0.0, -0.032, 0.0], [0.032, 0.0, 0.0], [0.0, 0.032, 0.0]],
        n_channels=6, mic_channels=(1, 2, 3, 4), sample_rate=16000,
        note="ReSpeaker USB Mic Array v2.0 with the 6-channel firmware: channel 0 is the processed "
             "beam, 1-4 the raw microphones, 5 the playback reference",
    ),
    "respeaker_4mic_hat": dict(
        positions=[[-0.0405, 0.0, 0.0], [0.0, 0.0405, 0.0], [0.0405, 0.0, 0.0], [0.0, -0.0405, 0.0]],
        n_channels=4, sample_rate=16000,
        note="ReSpeaker 4-Mic Array for Raspberry Pi (AC108), 32-bit samples",
    ),
    "respeaker_6mic": dict(
        positions=[[-0.0232, 0.0401, 0.0], [-0.0463, 0.0, 0.0], [-0.0232, -0.0401, 0.0],
                   [0.0232, -0.0401, 0.0], [0.0463, 0.0, 0.0], [0.0232, 0.0401, 0.0]],
        n_channels=8, mic_channels=(0, 1, 2, 3, 4, 5), sample_rate=16000,
        note="ReSpeaker 6-Mic circular array (Pi): channels 6-7 are the playback loopback",
    ),
    "minidsp_uma8": dict(
        positions=[[0.0, 0.0, 0.0], [0.0, 0.043, 0.0], [0.037, 0.021, 0.0], [0.037, -0.021, 0.0],
                   [0.0, -0.043, 0.0], [-0.037, -0.021, 0.0], [-0.037, 0.021, 0.0]],
        n_channels=8, mic_channels=(0, 1, 2, 3, 4, 5, 6), sample_rate=48000,
        note="miniDSP UMA-8: centre microphone plus six on a 43 mm ring; channel 7 unused",
    ),
    "minidsp_uma16": dict(
        positions=[[0.021, -0.063, 0.0], [0.063, -0.063, 0.0], [0.021, -0.021, 0.0], [0.063, -0.021, 0.0],
                   [0.021, 0.021, 0.0], [0.063, 0.021, 0.0], [0.021, 0.063, 0.0], [0.063, 0.063, 0.0],
                   [-0.063, 0.063, 0.0], [-0.021, 0.063, 0.0], [-0.063, 0.021, 0.0], [-0.021, 0.021, 0.0],
                   [-0.063, -0.021, 0.0], [-0.021, -0.021, 0.0], [-0.063, -0.063, 0.0], [-0.021, -0.063, 0.0]],
        n_channels=16,
        note="miniDSP UMA-16: 4x4 grid, 42 mm pitch, board frame (lying flat, facing +z), "
             "acoular's channel order",
    ),
    "matrix_voice": dict(
        positions=[[0.0, 0.0, 0.0], [-0.038133, 0.003576, 0.0], [-0.020980, 0.032043, 0.0],
                   [0.011971, 0.036381, 0.0], [0.035908, 0.013323, 0.0], [0.032805, -0.019767, 0.0],
                   [0.004999, -0.037972, 0.0], [-0.026571, -0.027584, 0.0]],
        n_channels=8, sample_rate=48000,
        note="Matrix Voice, 16-bit, 48 kHz",
    ),
}

# first-order ambisonic microphones, as their B-format files and streams come (FACTS 5.3): the
# A-format capsule microphones (RODE NT-SF1, Sennheiser AMBEO VR, Core Sound TetraMic) through
# their vendors' A-to-B converters, which write AmbiX or FuMa
_AMBISONIC_PRESETS = {
    "zoom_h3vr": dict(channel_order="acn", normalisation="sn3d", sample_rate=48000,
                      note="Zoom H3-VR recording in its AmbiX mode (the recorder converts A to B)"),
    "ambix_foa": dict(channel_order="acn", normalisation="sn3d",
                      note="any first-order AmbiX stream (ACN W, Y, Z, X; SN3D), e.g. from the RODE, "
                           "Sennheiser or Core Sound converters in AmbiX mode"),
    "fuma_foa": dict(channel_order="fuma", normalisation="fuma",
                     note="any first-order FuMa stream (W, X, Y, Z; W at -3 dB)"),
}

# raw A-format tetrahedral microphones (their four capsules, before the vendor's A-to-B
# converter), channels 1-4 = capsules front-left-up, front-right-down, back-left-down,
# back-right-up, taken as cardioids. Capsule order and radii: the Spatial_Audio_Framework's
# array2sh presets (Leo McCormack, ISC licence: saf_utility_sensorarray_presets.c and array2sh's
# preset table), and for the NT-SF1 shaasp's sampling_positions_NTSF1 (Lachlan Birnie, ANU,
# BSD-3-Clause licence), which SAF does not list.
def _tetra(microphone, radius, source="the Spatial_Audio_Framework's array2sh presets", **extra):
    return dict(radius=radius, note=f"{microphone}, raw A-format: channels 1-4 = capsules front-left-up, "
                                    f"front-right-down, back-left-down, back-right-up at {100 * radius:g} cm (capsule "
                                    f"order and radius from {source}, not a vendor datasheet)", **extra)


_A_FORMAT_PRESETS = {
    "rode_nt_sf1": _tetra("RODE NT-SF1", 0.0251, source="shaasp's sampling_positions_NTSF1 (ANU)"),
    "sennheiser_ambeo_vr": _tetra("Sennheiser AMBEO VR Mic", 0.014),
    "core_sound_tetramic": _tetra("Core Sound TetraMic", 0.02),
    "zoom_h3vr_a_format": _tetra("Zoom H3-VR recording in its A-format mode", 0.012, sample_rate=48000),
    "soundfield_sps200": _tetra("SoundField SPS200", 0.02),
}

ALIASES = {"uma16": "minidsp_uma16", "uma8": "minidsp_uma8", "respeaker": "respeaker_usb_4mic"}


def preset_names() -> list[str]:
    return sorted(_PRESETS) + sorted(_AMBISONIC_PRESETS) + sorted(_A_FORMAT_PRESETS)


def alias_names() -> dict:
    """Short names for presets (``--array uma16``)."""
    return dict(ALIASES)


def load_array(spec: str) -> MicArray:
    """Return the array named by a preset or a YAML file path.

    Raises
    ------
    ConfigError
        Unknown preset, unreadable or malformed YAML, or an impossible geometry.
    """
    key = ALIASES.get(spec, spec)
    if key in _PRESETS:
        return _make(key, **_PRESETS[key])
    if key in _AMBISONIC_PRESETS:
        return _ambisonic(key, **_AMBISONIC_PRESETS[key])
    if key in _A_FORMAT_PRESETS:
        return _a_format(key, **_A_FORMAT_PRESETS[key])
    path = Path(spec)
    if path.suffix.lower() not in (".yaml", ".yml") and not path.exists():
        raise ConfigError(
            f"unknown array '{spec}': not a preset ({', '.join(preset_names())}; aliases "
            f"{', '.join(f'{a} = {p}' for a, p in ALIASES.items())}) nor a YAML file"
        )
    return array_from_yaml(path)


def array_from_yaml(path: Path) -> MicArray:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read array file ({exc.strerror or exc})") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: malformed YAML: {exc}") from None
    kind = doc.get("kind", "mics") if isinstance(doc, dict) else "mics"
    if kind == "ambisonic":
        refuse_unknown(doc, ("kind", "order", "channel_order", "normalisation", "n_channels", "mic_channels",
                             "sample_rate", "note"), path, " for kind: ambisonic")
        try:
            return _ambisonic(str(path), doc.get("order", 1), doc.get("channel_order", "acn"),
                              doc.get("normalisation", "sn3d"), doc.get("n_channels"), doc.get("mic_channels"),
                              doc.get("sample_rate"), doc.get("note", ""))
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    if kind == "a_format":
        refuse_unknown(doc, ("kind", "capsules", "radius", "pattern", "n_channels", "mic_channels", "sample_rate",
                             "note"), path, " for kind: a_format")
        try:
            return _a_format(str(path), doc.get("capsules", TETRAHEDRON), doc.get("radius"), doc.get("pattern", 0.5),
                             doc.get("n_channels"), doc.get("mic_channels"), doc.get("sample_rate"), doc.get("note", ""))
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    if kind != "mics":
        raise ConfigError(f"{path}: unknown kind {kind!r} (known: mics, ambisonic, a_format)")
    if not isinstance(doc, dict) or "mic_positions" not in doc:
        raise ConfigError(f"{path}: missing key 'mic_positions' (a list of [x, y, z] rows in metres)")
    refuse_unknown(doc, ("kind", "mic_positions", "mic_channels", "n_channels", "sample_rate", "facing", "note"), path)
    rows = doc["mic_positions"]
    if not isinstance(rows, list) or not all(
        isinstance(r, list) and len(r) == 3 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in r)
        for r in rows
    ):
        raise ConfigError(f"{path}: key 'mic_positions' must be a list of [x, y, z] number rows")
    rate = doc.get("sample_rate")
    if rate is not None and (not isinstance(rate, int) or isinstance(rate, bool) or rate <= 0):
        raise ConfigError(f"{path}: key 'sample_rate' must be a positive integer, got {rate!r}")
    try:
        return _make(str(path), rows, n_channels=doc.get("n_channels"), mic_channels=doc.get("mic_channels"),
                     sample_rate=rate, facing=doc.get("facing"))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}") from None


def baseline_groups(positions: np.ndarray, tol: float = 1e-4):
    """Group microphone pairs that share a baseline vector (up to sign).

    GCC-PHAT of pairs with the same baseline peaks at the same delay for every direction, so
    their cross-spectra can be summed before the direction search: a 4x4 grid has 120 pairs
    but only 24 distinct baselines, which makes the search five times cheaper.

    Returns
    -------
    pair_i, pair_j : ndarray (n_pairs,) int64
        Microphones of each pair, ordered so that ``positions[i] - positions[j]`` equals the
        group's baseline (not its negation).
    pair_group : ndarray (n_pairs,) int64
    baselines : ndarray (n_groups, 3) float64
        ``positions[i] - positions[j]`` for each group, metres.
    group_size : ndarray (n_groups,) int64
    """
    n = len(positions)
    keys: dict = {}
    pi, pj, pg, base = [], [], [], []
    for i in range(n):
        for j in range(i + 1, n):
            d = positions[i] - positions[j]
            # canonical sign: first non-negligible component positive
            nz = np.flatnonzero(np.abs(d) > tol)
            a, b = (i, j) if d[nz[0]] > 0 else (j, i)
            d = positions[a] - positions[b]
            key = tuple(np.round(d / tol).astype(np.int64))
            if key not in keys:
                keys[key] = len(base)
                base.append(d)
            pi.append(a)
            pj.append(b)
            pg.append(keys[key])
    pg = np.asarray(pg, dtype=np.int64)
    return (np.asarray(pi, dtype=np.int64), np.asarray(pj, dtype=np.int64), pg,
            np.asarray(base), np.bincount(pg, minlength=len(base)).astype(np.int64))


def save_array(array: MicArray, path) -> None:
    """Write ``array`` as an array YAML that ``load_array`` reads back to the same array."""
    if array.capsules is not None:
        dirs, radius, pattern = array.capsules
        caps = [[float(np.degrees(np.arctan2(d[1], d[0]))), float(np.degrees(np.arcsin(d[2])))] for d in dirs]
        doc = {"kind": "a_format", "capsules": caps, "radius": radius, "pattern": pattern,
               "mic_channels": [int(c) for c in array.mic_channels], "n_channels": int(array.n_channels)}
        if array.sample_rate:
            doc["sample_rate"] = int(array.sample_rate)
        Path(path).write_text(f"# array {array.name}, as recorded by avstream\n" + yaml.safe_dump(doc, sort_keys=False))
        return
    if array.ambisonic:
        order, norm = {"ambix": ("acn", "sn3d"), "fuma": ("fuma", "fuma")}.get(
            array.convention, tuple(array.convention.split("/")))
        doc = {"kind": "ambisonic", "order": 1, "channel_order": order, "normalisation": norm,
               "mic_channels": [int(c) for c in array.mic_channels], "n_channels": int(array.n_channels)}
        if array.sample_rate:
            doc["sample_rate"] = int(array.sample_rate)
        Path(path).write_text(f"# array {array.name}, as recorded by avstream\n" + yaml.safe_dump(doc, sort_keys=False))
        return
    doc = {"mic_positions": [[float(v) for v in row] for row in array.positions],
           "mic_channels": [int(c) for c in array.mic_channels], "n_channels": int(array.n_channels)}
    if array.sample_rate:
        doc["sample_rate"] = int(array.sample_rate)
    if array.facing is not None:
        doc["facing"] = [float(v) for v in array.facing]
    Path(path).write_text(f"# array {array.name}, as recorded by avstream\n" + yaml.safe_dump(doc, sort_keys=False))
