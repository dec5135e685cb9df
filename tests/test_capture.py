"""Ring buffer (capture never waits, drops counted) and the sample clock."""
import threading

import numpy as np
import pytest

from avstream.capture.clock import SampleClock
from avstream.capture.ring import RingBuffer
from avstream.frames import FLAG_OVERRUN


def test_ring_in_order_and_end_of_stream():
    r = RingBuffer(4, 2, 8)
    for k in range(3):
        r.write(np.full((2, 8), k, np.float32), 8 * k, 0.1 * k)
    r.close()
    got = []
    while (b := r.read(timeout=0.1)) is not None:
        got.append(b)
    assert [int(b.data[0, 0]) for b in got] == [0, 1, 2]
    assert [b.index for b in got] == [0, 8, 16] and r.dropped == 0


def test_ring_drops_oldest_and_counts_without_blocking_writer():
    r = RingBuffer(4, 1, 4)
    for k in range(10):  # nobody reads: the writer must not wait
        r.write(np.full((1, 4), k, np.float32), 4 * k, 0.0)
    assert r.dropped == 6
    first = r.read(timeout=0.1)
    assert int(first.data[0, 0]) == 6 and FLAG_OVERRUN in first.flags
    assert FLAG_OVERRUN not in r.read(timeout=0.1).flags


def test_ring_threaded_reader_sees_everything():
    r = RingBuffer(64, 1, 16)
    got = []

    def reader():
        while (b := r.read(timeout=1.0)) is not None:
            got.append(int(b.data[0, 0]))

    t = threading.Thread(target=reader)
    t.start()
    for k in range(50):
        r.write(np.full((1, 16), k, np.float32), 16 * k, 0.0)
    r.close()
    t.join(5)
    assert got == list(range(50))


def test_clock_tracks_drift_and_ignores_jitter():
    rng = np.random.default_rng(0)
    true_rate = 16000 * (1 + 80e-6)  # device runs 80 ppm fast
    c = SampleClock(16000)
    t0 = 1000.0
    for k in range(1, 400):
        n = 256 * k
        c.observe(n, t0 + n / true_rate + rng.uniform(0.0, 0.004))  # arrivals late by 0-4 ms
    assert abs(c.rate / true_rate - 1) < 20e-6
    # stamps follow sample counts: exact spacing, offset within the jitter
    assert c.stamp(16000) - c.stamp(0) == pytest.approx(16000 / c.rate, abs=1e-6)
    assert abs((c.stamp(0) - c.epoch_offset) - t0) < 0.005
