"""Preallocated ring buffer between a capture thread and the processing loop.

The writer never waits: when the ring is full it overwrites the oldest block and counts it
as dropped. The reader gets copies in order and learns how many blocks it lost.
"""
from __future__ import annotations

import threading

import numpy as np

from ..frames import FLAG_OVERRUN, AudioBlock


class RingBuffer:
    """Ring of ``n_slots`` blocks of up to ``block`` samples over ``n_channels`` channels."""

    def __init__(self, n_slots: int, n_channels: int, block: int):
        self.data = np.zeros((n_slots, n_channels, block), dtype=np.float32)
        self.length = np.zeros(n_slots, dtype=np.int64)
        self.index = np.zeros(n_slots, dtype=np.int64)
        self.stamp = np.zeros(n_slots, dtype=np.float64)
        self.flags = [set() for _ in range(n_slots)]
        self.n_slots = n_slots
        self.written = 0  # blocks ever written
        self.read_pos = 0  # next block the reader wants
        self.dropped = 0  # blocks overwritten before they were read
        self.closed = False
        self._reported = 0  # drops already flagged to the reader
        self._cond = threading.Condition()

    def write(self, samples: np.ndarray, index: int, stamp: float, flags=()) -> None:
        """Copy a block (n_channels, n) in; never blocks on the reader."""
        n = samples.shape[1]
        with self._cond:
            slot = self.written % self.n_slots
            self.data[slot, :, :n] = samples
            self.length[slot] = n
            self.index[slot] = index
            self.stamp[slot] = stamp
            self.flags[slot] = set(flags)
            self.written += 1
            if self.written - self.read_pos > self.n_slots:
                lost = self.written - self.n_slots - self.read_pos
                self.dropped += lost
                self.read_pos += lost
            self._cond.notify()

    @property
    def backlog(self) -> int:
        """Blocks written and not yet read (a racy snapshot: enough to tell the reader it is behind)."""
        return self.written - self.read_pos

    def close(self) -> None:
        """End of stream: the reader drains what is left, then gets None."""
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def read(self, timeout: float | None = None) -> AudioBlock | None:
        """Next block as a copy, or None at end of stream or on timeout."""
        with self._cond:
            while self.read_pos >= self.written:
                if self.closed:
                    return None
                if not self._cond.wait(timeout):
                    return None
            slot = self.read_pos % self.n_slots
            n = int(self.length[slot])
            block = AudioBlock(self.data[slot, :, :n].copy(), int(self.index[slot]), float(self.stamp[slot]),
                               self.read_pos, set(self.flags[slot]))
            self.read_pos += 1
            if self.dropped > self._reported:
                block.flags.add(FLAG_OVERRUN)
                self._reported = self.dropped
            return block


class PairHistory:
    """The newest ``size`` pairs of floats (a sample index or stream time and a time), each
    written twice so that they are always one contiguous slice: the sample clock's arrivals and
    the front end's block stamps, read as arrays without copying a deque."""

    def __init__(self, size: int):
        self.size = int(size)
        self._pairs = np.zeros((2, 2 * self.size))
        self.n = 0  # pairs ever appended

    def append(self, a: float, b: float) -> None:
        k = self.n % self.size
        self._pairs[0, k] = self._pairs[0, k + self.size] = a
        self._pairs[1, k] = self._pairs[1, k + self.size] = b
        self.n += 1

    def newest(self) -> np.ndarray:
        """(2, m) view of the pairs kept, oldest first; valid until the next append."""
        k, m = self.n % self.size, min(self.n, self.size)
        return self._pairs[:, k + self.size - m:k + self.size]

    def clear(self) -> None:
        self.n = 0
