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

def test_clock_stamps_stay_in_order_on_a_loaded_machine():
    """Arrivals as on a loaded machine: the first second of blocks 200 ms late (the stream
    starting up), then stalls of up to 300 ms released in bursts. Each block's stamp (taken as
    capture takes it, after observing the block) follows the one before by about its length,
    and the newest sample's stamp still comes down to the least-delayed arrivals. Re-fitting the rate about
    the first sample, or jumping down to a new early arrival, stamped blocks out of order here."""
    rng = np.random.default_rng(1)
    c = SampleClock(16000)
    t0, n, stamps, pos = 500.0, 1024, [], 0
    late = 0.0
    for k in range(1, 600):
        end = pos + n
        if k < 16:
            delay = 0.2
        else:
            late = rng.uniform(0.05, 0.3) if rng.random() < 0.05 else max(0.0, late - n / 16000)
            delay = late + rng.uniform(0.0, 0.003)
        c.observe(end, t0 + end / 16000 + delay)
        stamps.append(c.stamp(pos))
        pos = end
    gaps = np.diff(stamps)
    assert np.all(gaps > 0.3 * n / 16000), gaps.min()
    assert abs((c.stamp(pos) - c.epoch_offset) - (t0 + pos / 16000)) < 0.01  # now, the newest sample


def test_clock_stamps_stay_in_order_after_a_gap():
    """A device comes back after a gap that capture estimated 0.5 s too long (the index jumps
    3 s where 2.5 s passed): the block after the jump must not count as 3 s long when the clock
    pulls its mapping back, or its stamp lands 0.48 s before the one before it."""
    c = SampleClock(16000)
    n, pos, stamps = 256, 0, []
    for k in range(400):
        if k == 200:
            pos += 48000
        end = pos + n
        c.observe(end, 100.0 + end / 16000 - 0.5 * (k >= 200))
        stamps.append(c.stamp(pos))
        pos = end
    steps = np.diff(stamps)
    assert np.all(steps > 0.3 * n / 16000), steps.min()
    assert steps.max() > 2.4  # the gap itself is in the stamps


def test_update_stamps_stay_in_order_through_a_startup_backlog():
    """What the device test saw under two CPU hogs: the stream starts with 0.7 s of backlog
    arriving at once, then stalls now and then. Each update's stamp, and that of the first sample
    it adds (the raw /audio message's stamp, taken when the update is made, so that updates
    skipped under load and sent with the next one keep theirs), follow the previous update's:
    a recording's log-time order is the samples' order. (Stamping carried samples later, from
    the next update's stamp at the nominal rate, put one /audio message 0.24 s early there.)"""
    from avstream.frames import AudioBlock
    from avstream.geometry.arrays import load_array
    from avstream.spectral import AudioFrontEnd

    rate, n = 16000, 256
    fe = AudioFrontEnd(load_array("minidsp_uma16"), rate, 512, 256, "hann", 4, n)
    c = SampleClock(rate)
    rng = np.random.default_rng(2)
    wins, pos, late = [], 0, 0.0
    for k in range(800):
        end = pos + n
        if k < 44:  # 0.7 s of backlog, all there at the first callback
            arrival = 10.0
        else:
            late = rng.uniform(0.05, 0.3) if rng.random() < 0.03 else max(0.0, late - n / rate)
            arrival = 10.0 + (end - 44 * n) / rate + late + rng.uniform(0.0, 0.002)
        c.observe(end, arrival)
        block = AudioBlock(rng.standard_normal((16, n)).astype(np.float32), pos, c.stamp(pos), k)
        for w in fe.process(block):
            new_t = w.t + (fe.window_samples - w.new_samples) / rate
            wins.append((w.stamp, w.stamp_at(new_t)))
        pos = end
    stamps, new_stamps = np.array(wins).T
    assert len(wins) > 150
    assert np.all(np.diff(stamps) > 0) and np.all(np.diff(new_stamps) > 0)
    assert np.all(new_stamps[1:] > stamps[1:])  # new samples come after the window's first


def test_ring_ramp_reads_back_sample_for_sample():
    """A ramp through the ring in blocks of changing size comes out exactly, every channel, with
    each block's first-sample index matching its content: one lost or repeated sample fails."""
    r = RingBuffer(8, 3, 64)
    ramp = np.arange(50_000, dtype=np.float32)
    got, pos, sizes = [], 0, [64, 1, 63, 17, 40, 64, 2]
    k = 0
    while pos < len(ramp):
        n = min(sizes[k % len(sizes)], len(ramp) - pos)
        r.write(np.stack([ramp[pos:pos + n], -ramp[pos:pos + n], ramp[pos:pos + n] + 0.5]), pos, pos / 16000)
        b = r.read(timeout=0.1)
        assert b.index == int(b.data[0, 0]) and b.data.shape == (3, n)
        got.append(b.data)
        pos, k = pos + n, k + 1
    out = np.concatenate(got, axis=1)
    assert np.array_equal(out[0], ramp) and np.array_equal(out[1], -ramp) and np.array_equal(out[2], ramp + 0.5)
    assert r.dropped == 0


def test_ring_counts_each_single_write_past_capacity():
    """Every write into a full ring drops exactly the oldest block, counted then and there, and
    what is read after is the newest n_slots blocks in order, the first flagged."""
    n_slots = 5
    r = RingBuffer(n_slots, 1, 4)
    for k in range(n_slots):
        r.write(np.full((1, 4), k, np.float32), 4 * k, 0.0)
    assert r.dropped == 0
    for extra in range(1, 12):
        r.write(np.full((1, 4), n_slots - 1 + extra, np.float32), 4 * (n_slots - 1 + extra), 0.0)
        assert r.dropped == extra
    blocks = [r.read(timeout=0.1) for _ in range(n_slots)]
    assert [int(b.data[0, 0]) for b in blocks] == list(range(11, 11 + n_slots))
    assert FLAG_OVERRUN in blocks[0].flags and not any(FLAG_OVERRUN in b.flags for b in blocks[1:])
    assert r.read(timeout=0.05) is None
    # one more drop after a read: flagged once more, counted once more
    for k in range(n_slots + 1):
        r.write(np.full((1, 4), 100 + k, np.float32), 0, 0.0)
    assert r.dropped == 12
    b = r.read(timeout=0.1)
    assert int(b.data[0, 0]) == 101 and FLAG_OVERRUN in b.flags
