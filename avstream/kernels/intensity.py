"""Pseudo-intensity kernels for first-order ambisonics (AmbiX: W, Y, Z, X; SN3D).

Per STFT bin, the active intensity I = Re{conj(W) (X, Y, Z)} points at the sound's source and
the energy E = (|W|^2 + |X|^2 + |Y|^2 + |Z|^2) / 2 bounds it: for one plane wave |I| = E, in a
diffuse field |I| << E, so 1 - |I| / E (the diffuseness) says how much a bin is one direct
sound. Symbols: K frames, F bins, D directions.
"""
import numpy as np
from numba import njit


@njit(cache=True, fastmath=True)
def bin_levels(spec, lo, hi, level):
    """level[k, f - lo] = sqrt(E) of each frame's band bin (the input of tfbins.bin_onsets)."""
    for k in range(spec.shape[0]):
        for f in range(lo, hi):
            e = 0.0
            for m in range(4):
                v = spec[k, m, f]
                e += v.real * v.real + v.imag * v.imag
            level[k, f - lo] = np.sqrt(0.5 * e)


@njit(cache=True, fastmath=True, inline="always")
def _bin(spec, k, f):
    """(Ix, Iy, Iz, E) of frame k, bin f."""
    w = spec[k, 0, f]
    y = spec[k, 1, f]
    z = spec[k, 2, f]
    x = spec[k, 3, f]
    ix = w.real * x.real + w.imag * x.imag
    iy = w.real * y.real + w.imag * y.imag
    iz = w.real * z.real + w.imag * z.imag
    e = 0.5 * (w.real * w.real + w.imag * w.imag + x.real * x.real + x.imag * x.imag
               + y.real * y.real + y.imag * y.imag + z.real * z.real + z.imag * z.imag)
    return ix, iy, iz, e


@njit(cache=True, fastmath=True)
def intensity_votes(spec, lo, hi, weights, gain, sharpness, vectors, strength, bins):
    """Each band bin's direction (unit vector) and weight, for the frames with weight > 0.

    The diffuseness of a bin is taken over the update's frames (intensity and energy summed),
    so a bin whose direction holds still counts, one that swings (diffuse sound, two sources
    taking turns) does not; each frame's vote has weight (1 - diffuseness) ** sharpness times the frame's
    weight times gain[k, f - lo] (the bin's onset weight, or 1).
    spec (K, 4, F) complex64; vectors (K * (hi - lo), 3), strength and bins (the vote's bin, for
    correct_a_format) (K * (hi - lo),) out.
    Returns the number of votes written.
    """
    n_frames = spec.shape[0]
    n = 0
    for f in range(lo, hi):
        ix = iy = iz = 0.0
        e = 0.0
        for k in range(n_frames):
            if weights[k] == 0.0:
                continue
            bx, by, bz, be = _bin(spec, k, f)
            ix += bx
            iy += by
            iz += bz
            e += be
        norm = np.sqrt(ix * ix + iy * iy + iz * iz)
        if e <= 0.0 or norm <= 0.0:
            continue
        direct = min(norm / e, 1.0) ** sharpness
        for k in range(n_frames):
            if weights[k] == 0.0:
                continue
            vx, vy, vz, _ = _bin(spec, k, f)
            m = np.sqrt(vx * vx + vy * vy + vz * vz)
            if m <= 0.0:
                continue
            vectors[n, 0] = vx / m
            vectors[n, 1] = vy / m
            vectors[n, 2] = vz / m
            strength[n] = weights[k] * direct * gain[k, f - lo]
            bins[n] = f
            n += 1
    return n


@njit(cache=True, fastmath=True)
def vote_histogram(vectors, strength, n, lut, out):
    """out[cell] += strength of each vote, its cell looked up on an azimuth x elevation raster
    (lut (n_el, n_az) int64: the grid cell nearest each raster point)."""
    n_el, n_az = lut.shape
    for v in range(n):
        az = np.arctan2(vectors[v, 1], vectors[v, 0])
        el = np.arcsin(min(1.0, max(-1.0, vectors[v, 2])))
        i = int((az + np.pi) / (2.0 * np.pi) * n_az + 0.5) % n_az
        j = int((el + 0.5 * np.pi) / np.pi * (n_el - 1) + 0.5)
        out[lut[j, i]] += strength[v]


@njit(cache=True, fastmath=True)
def _measured(u0, u1, u2, model, caps, kr, pattern):
    """The intensity direction an A-format microphone's capture path reports for a plane wave
    from u: capsule gains and phases (kr = 2 pi f r / c), then ``model`` (4, 4) to AmbiX."""
    a = np.empty(4, np.complex128)
    for i in range(4):
        c = caps[i, 0] * u0 + caps[i, 1] * u1 + caps[i, 2] * u2
        a[i] = ((1.0 - pattern) + pattern * c) * np.exp(1j * kr * c)
    b = np.zeros(4, np.complex128)
    for i in range(4):
        for j in range(4):
            b[i] += model[i, j] * a[j]
    w = b[0]
    ix = w.real * b[3].real + w.imag * b[3].imag
    iy = w.real * b[1].real + w.imag * b[1].imag
    iz = w.real * b[2].real + w.imag * b[2].imag
    m = np.sqrt(ix * ix + iy * iy + iz * iz) + 1e-30
    return ix / m, iy / m, iz / m


@njit(cache=True, fastmath=True)
def correct_a_format(vectors, bins, n, lo, models, caps, kr_per_bin, pattern, iterations):
    """Undo an A-format microphone's spatial aliasing per vote: find the direction u whose
    modelled measurement equals the vote's v, by ``iterations`` fixed-point steps
    u <- u - (measured(u) - v) (the bias is small and smooth below kr of about 1)."""
    for v in range(n):
        f = bins[v]
        model = models[f - lo]
        kr = kr_per_bin * f
        t0, t1, t2 = vectors[v, 0], vectors[v, 1], vectors[v, 2]
        u0, u1, u2 = t0, t1, t2
        for _ in range(iterations):
            m0, m1, m2 = _measured(u0, u1, u2, model, caps, kr, pattern)
            u0 -= m0 - t0
            u1 -= m1 - t1
            u2 -= m2 - t2
            norm = np.sqrt(u0 * u0 + u1 * u1 + u2 * u2) + 1e-30
            u0, u1, u2 = u0 / norm, u1 / norm, u2 / norm
        vectors[v, 0], vectors[v, 1], vectors[v, 2] = u0, u1, u2
