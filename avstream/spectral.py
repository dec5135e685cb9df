"""The audio front end: channel pick, input checks, streaming STFT, update windows."""
from __future__ import annotations

import numpy as np

from .capture.ring import PairHistory
from .frames import FLAG_CLIPPED, FLAG_NONFINITE, FLAG_SILENT, UpdateWindow
from .kernels.levels import accumulate_levels, read_meters, select_and_scan
from .kernels.stft import stft_push

WINDOWS = {"hann": 0.5, "hamming": 0.54}  # periodic a - (1 - a) cos(2 pi n / N), scipy.signal.get_window's


def periodic_window(name: str, n: int) -> np.ndarray:
    """The periodic window scipy.signal.get_window(name, n) gives (float64), without importing
    scipy.signal: a second of every start, which a node on a robot need not pay."""
    a = WINDOWS[name]
    return a - (1.0 - a) * np.cos(2.0 * np.pi * np.arange(n) / n)


class StreamingSTFT:
    """STFT over a stream of blocks with exact overlap state between them.

    Frame k covers stream samples [k * hop, k * hop + frame) and equals the matching column of
    ``scipy.signal.stft(x, window=w, nperseg=frame, noverlap=frame - hop, boundary=None,
    padded=False)`` (same window, same 1 / sum(window) scaling).

    Parameters
    ----------
    n_channels, frame, hop : int
    window : {"hann", "hamming"}
    max_block : int
        Largest block passed to ``push``; bigger blocks are split.
    """

    def __init__(self, n_channels: int, frame: int, hop: int, window: str = "hann", max_block: int = 4096):
        if window not in WINDOWS:
            raise ValueError(f"window must be one of {tuple(WINDOWS)}")
        self.n_channels, self.frame, self.hop = n_channels, frame, hop
        w = periodic_window(window, frame)  # periodic, as scipy.signal.stft uses
        self.window = (w / w.sum()).astype(np.float32)
        self.max_block = max_block
        self.n_freq = frame // 2 + 1
        self._buf = np.zeros((n_channels, frame + max_block), dtype=np.float32)
        self._seg = np.zeros((n_channels, frame), dtype=np.float32)
        self._fill = 0
        self._first = 0  # stream index of buf[:, 0]
        self._out = np.zeros(((frame + max_block) // hop + 1, n_channels, self.n_freq), dtype=np.complex64)

    def reset(self):
        self._fill = 0
        self._first = 0

    def push(self, block: np.ndarray):
        """Feed samples (n_ch, n) float32; yield ``(start_index, frames)`` chunks.

        ``frames`` is a view (n_frames, n_ch, n_freq) valid until the next call; frame k of a
        chunk starts at stream sample ``start_index + k * hop``.
        """
        for s in range(0, block.shape[1], self.max_block):
            part = np.ascontiguousarray(block[:, s:s + self.max_block], dtype=np.float32)
            first = self._first
            self._fill, n, consumed = stft_push(self._buf, self._fill, part, self.window, self.hop, self._out,
                                                        self._seg)
            self._first += consumed
            if n:
                yield first, self._out[:n]

    def frequencies(self, sample_rate: float) -> np.ndarray:
        return np.arange(self.n_freq) * sample_rate / self.frame


CLIP_LEVEL = 0.999  # |sample| at or above this (full scale 1) counts as clipped
STAMP_SLOTS = 1024  # block stamps kept: a window of 1024 blocks (4 s in blocks of 64 samples at 16 kHz)


class AudioFrontEnd:
    """The first stage: audio blocks in, update windows out.

    Picks the microphone channels, replaces NaN/Inf (flagging the frames that held them, which
    then carry weight 0), flags silence and clipping, runs the streaming STFT and gathers
    ``update_frames`` frames into one ``UpdateWindow``. With ``keep_samples`` > 0 it also keeps
    the microphones' last samples, so stages that need the raw audio behind an update (the
    engines) get it with the window.

    Parameters
    ----------
    array : MicArray
    sample_rate : int
    frame, hop : int
        STFT frame and hop, samples.
    window : str
    update_frames : int
    max_block : int
        Largest block ``process`` will see (larger ones grow the buffers once).
    keep_samples : int
        Samples per microphone each window carries (0: none).
    """

    def __init__(self, array, sample_rate, frame, hop, window, update_frames, max_block, keep_samples=0):
        from collections import Counter, deque

        self.array, self.sample_rate = array, int(sample_rate)
        self.stft = StreamingSTFT(array.n_mics, frame, hop, window, max_block=max_block)
        self._mic_idx = np.asarray(array.mic_channels, dtype=np.int64)
        # an ambisonic array's channels become AmbiX (ACN, SN3D) here, whatever their convention
        self._encode = None if array.encode is None or np.array_equal(array.encode, np.eye(len(array.encode))) else \
            np.asarray(array.encode, dtype=np.float32)
        # an A-format microphone's capsule-spacing correction, per STFT bin
        eq = array.equalizer(np.arange(frame // 2 + 1) * self.sample_rate / frame)
        self._eq = None if eq is None else eq.astype(np.complex64)
        self._mic_buf = np.zeros((array.n_mics, max_block), dtype=np.float32)
        self._frames = np.zeros((update_frames, array.n_mics, self.stft.n_freq), dtype=np.complex64)
        self._weights = np.ones(update_frames, dtype=np.float32)
        self.window_samples = (update_frames - 1) * hop + frame  # samples behind one update
        self.keep = int(keep_samples)
        # circular history of the microphones' samples (only when a stage asked for them)
        self._hist = np.zeros((array.n_mics, self.keep + frame + max_block if self.keep else 0), np.float32)
        self._n_frames = 0
        self._update_start = 0
        self._last_end = 0
        self._update_flags: set = set()
        self._stamps = PairHistory(STAMP_SLOTS)  # (stream time, capture stamp) of each block's start
        self._fed = 0  # samples fed to the STFT
        self._replaced = deque()  # (first, last) stream samples that were NaN or Inf
        self.n_samples = 0  # stream samples seen (block.index + its length)
        self._sumsq = np.zeros(array.n_mics)  # per microphone since the last window: the input meters
        self._peak = np.zeros(array.n_mics)
        self._meters = np.zeros((2, array.n_mics))
        self._level_n = 0
        self.seq = 0
        self.flag_counts = Counter()

    def reset(self):
        self.stft.reset()
        self._n_frames = self._fed = self._last_end = self.seq = 0
        self._stamps.clear()
        self._replaced.clear()
        self._update_flags = set()

    def process(self, block, max_samples=None):
        """Feed one AudioBlock; yield the UpdateWindows it completes. A window's frames are a
        view into a buffer the next window overwrites: use each before asking for the next.
        ``max_samples`` stops at that stream sample."""
        x = block.data
        if x.shape[0] != self.array.n_channels:
            raise ValueError(f"block has {x.shape[0]} channels, array {self.array.name} needs "
                             f"{self.array.n_channels}")
        n = x.shape[1]
        if max_samples is not None:
            n = min(n, max(0, max_samples - block.index))
        if n > self._mic_buf.shape[1]:
            self._mic_buf = np.zeros((self.array.n_mics, n), dtype=np.float32)
            if self.keep:
                self._hist = np.zeros((self.array.n_mics, self.keep + self.stft.frame + n), np.float32)
        mics = self._mic_buf[:, :n]
        n_bad, first_bad, last_bad, peak = select_and_scan(np.ascontiguousarray(x, dtype=np.float32),
                                                           self._mic_idx, n, mics)
        if self._encode is not None:
            mics[:] = self._encode @ mics
        flags = set(block.flags)
        if n_bad:
            flags.add(FLAG_NONFINITE)
            self._replaced.append((self._fed + first_bad, self._fed + last_bad))
        if peak == 0.0:
            flags.add(FLAG_SILENT)
        elif peak >= CLIP_LEVEL:
            flags.add(FLAG_CLIPPED)
        for f in flags:
            self.flag_counts[f] += 1
        self._update_flags |= flags
        # Stamps count from the samples fed to the STFT, so blocks the ring buffer dropped do
        # not shift the stamps of the updates after them.
        self._stamps.append(self._fed / self.sample_rate, block.stamp)
        if self.keep:
            self._remember(mics)
        if n:
            accumulate_levels(mics, self._sumsq, self._peak)
            self._level_n += n
        self._fed += n
        self.n_samples = block.index + n
        for start, frames in self.stft.push(mics):
            for k in range(frames.shape[0]):
                s0 = start + k * self.stft.hop
                if self._n_frames == 0:
                    self._update_start = s0
                self._frames[self._n_frames] = frames[k]
                if self._eq is not None:
                    self._frames[self._n_frames] *= self._eq
                self._weights[self._n_frames] = 0.0 if self._replaced and self._touches_replaced(s0) else 1.0
                self._n_frames += 1
                if self._n_frames == len(self._frames):
                    yield self._window()

    def _remember(self, mics):
        """Append to the circular sample history (position = stream sample modulo its length)."""
        size = self._hist.shape[1]
        n = mics.shape[1]
        at = self._fed % size
        first = min(n, size - at)
        self._hist[:, at:at + first] = mics[:, :first]
        self._hist[:, :n - first] = mics[:, first:]

    def _samples(self, end):
        """The ``keep`` samples before stream sample ``end``, (n_mics, keep), a copy."""
        size = self._hist.shape[1]
        idx = np.arange(end - self.keep, end) % size
        out = self._hist[:, idx]
        if end < self.keep:  # the stream is younger than the window: silence before it
            out[:, :self.keep - end] = 0.0
        return out

    def _touches_replaced(self, s0: int) -> bool:
        """Whether the frame starting at stream sample s0 holds samples that were NaN or Inf:
        such a frame is not evidence and gets weight 0."""
        while self._replaced and self._replaced[0][1] < s0:
            self._replaced.popleft()
        # the ranges come in stream order: only the first one left can reach into this frame
        return bool(self._replaced) and self._replaced[0][0] < s0 + self.stft.frame

    def _window(self):
        self._n_frames = 0
        idx = self._update_start
        end = idx + self.window_samples
        t = idx / self.sample_rate
        win = UpdateWindow(self._frames, self._weights, t=t, stamp=0.0, seq=self.seq, flags=self._update_flags,
                           new_samples=end - self._last_end, stamps=self._stamps_since(t))
        win.stamp = win.stamp_at(t)
        if self.keep:
            win.samples = self._samples(end)
        if self._level_n:
            read_meters(self._sumsq, self._peak, self._level_n, self._meters)
            win.levels = {"rms_dbfs": self._meters[0].tolist(), "peak_dbfs": self._meters[1].tolist()}
            self._level_n = 0
        self._last_end = end
        self._update_flags = set()
        self.seq += 1
        return win

    def _stamps_since(self, t):
        """The block stamps from the block holding stream time ``t`` on (copies)."""
        ts, ss = self._stamps.newest()
        first = max(0, int(ts.searchsorted(t, side="right")) - 1)
        return ts[first:].copy(), ss[first:].copy()

    def warm_up(self, rng):
        """Compile (or load) the kernels on noise, then forget it."""
        block = rng.standard_normal((self.array.n_mics, self._mic_buf.shape[1])).astype(np.float32) * 0.01
        for part in (block, block[:, :1]):  # a whole block and a view of one (its layout compiles apart)
            select_and_scan(block, np.arange(self.array.n_mics, dtype=np.int64), part.shape[1],
                            self._mic_buf[:, :part.shape[1]])
            accumulate_levels(part, np.zeros(len(block)), np.zeros(len(block)))
        read_meters(np.ones(len(block)), np.ones(len(block)), 1, np.zeros((2, len(block))))
        for _ in self.stft.push(self._mic_buf):
            pass
        self.stft.reset()
        return self._frames.shape
