"""The streaming spine: source -> ring buffer -> STFT -> localizer -> sinks.

``Pipeline.process_block`` is the synchronous core (tests and ``avstream locate`` drive it
directly, deterministically); ``Pipeline.run`` adds the capture thread and the ring buffer.
"""
from __future__ import annotations

import threading
import time
from collections import Counter

import numpy as np

from .capture.clock import SampleClock
from .capture.file import FileSource
from .capture.ring import RingBuffer
from .capture.synthetic import SyntheticScene
from .config import Config, to_dict
from .errors import ConfigError, InputError
from .frames import FLAG_CLIPPED, FLAG_NONFINITE, FLAG_SILENT, AudioBlock
from .geometry.arrays import load_array
from .kernels.levels import select_and_scan
from .geometry.grids import parse_grid
from .localize import make_localizer
from .spectral import StreamingSTFT

STALL_SECONDS = 5.0  # no audio for this long while running is an error, not a hang
CLIP_LEVEL = 0.999  # |sample| at or above this (full scale 1) counts as clipped


def make_source(cfg: Config, array):
    s = cfg.source
    if s.kind == "synthetic":
        return SyntheticScene(array, s.scene, block=s.block, speed_of_sound=cfg.localize.speed_of_sound)
    if s.kind == "file":
        return FileSource(s.path, array, block=s.block, realtime=s.realtime, target_rate=array.sample_rate,
                          loop=s.loop)
    from .capture.device import DeviceSource

    rate = s.sample_rate or array.sample_rate or 16000
    return DeviceSource(s.device, array.n_channels, rate, block=s.block, sample_format=s.sample_format)


class Pipeline:
    """Everything between the audio source and the sinks, configured once.

    Parameters
    ----------
    cfg : Config
    sinks : list of Sink
    source : optional
        A source core to use instead of the one ``cfg.source`` describes.
    status : StatusLine or None
    """

    def __init__(self, cfg: Config, sinks=(), source=None, status=None):
        self.cfg = cfg
        self.array = load_array(cfg.array)
        self.source = source if source is not None else make_source(cfg, self.array)
        self.sample_rate = int(self.source.sample_rate)
        self.grid = parse_grid(cfg.localize.grid, self.array)
        st, lc = cfg.stft, cfg.localize
        nyquist = self.sample_rate / 2
        if lc.band[0] >= nyquist:
            raise ConfigError(f"key 'localize.band': {list(lc.band)} Hz lies above Nyquist ({nyquist:g} Hz)")
        band = (lc.band[0], min(lc.band[1], nyquist))
        self.stft = StreamingSTFT(self.array.n_mics, st.frame, st.hop, st.window, max_block=cfg.source.block)
        try:
            self.localizer = make_localizer(
                lc.method, array=self.array, grid=self.grid, sample_rate=self.sample_rate, frame=st.frame,
                band=band, n_sources=lc.sources, exclusion_deg=lc.exclusion_deg, smoothing=lc.smoothing,
                speed_of_sound=lc.speed_of_sound, onset_floor=lc.onset_floor)
        except KeyError as exc:
            raise ConfigError(f"key 'localize.method': {exc.args[0]}") from None
        except ValueError as exc:
            raise ConfigError(f"key 'localize.band': {exc}") from None
        self.sinks = list(sinks)
        self.status = status
        self._mic_idx = np.asarray(self.array.mic_channels, dtype=np.int64)
        self._mic_buf = np.zeros((self.array.n_mics, cfg.source.block), dtype=np.float32)
        self._frames = np.zeros((lc.update_frames, self.array.n_mics, self.stft.n_freq), dtype=np.complex64)
        self._weights = np.ones(lc.update_frames, dtype=np.float32)
        self._n_frames = 0
        self._update_start = 0
        self._update_flags: set = set()
        self._stamp_ref = (0, 0.0)
        self.n_updates = 0
        self.n_samples = 0
        self.flag_counts: Counter = Counter()
        self.ring = None
        self.last_peaks: list = []
        self.max_samples = None if cfg.duration is None else int(round(cfg.duration * self.sample_rate))
        self._stop = threading.Event()

    # --- metadata ------------------------------------------------------------------------
    def meta(self) -> dict:
        return {"array": self.array.describe(), "grid": self.grid.definition, "grid_spec": self.grid.spec,
                "grid_object": self.grid, "sample_rate": self.sample_rate, "config": to_dict(self.cfg)}

    def summary(self) -> dict:
        k = self.cfg.localize.sources
        return {"peaks": [p.to_dict() for p in self.localizer.summary_peaks(k)], "updates": self.n_updates,
                "seconds": round(self.n_samples / self.sample_rate, 4), "array": self.array.describe(),
                "dropped_blocks": self.dropped, "overflows": self.overflows,
                "input_flags": dict(self.flag_counts)}

    @property
    def dropped(self) -> int:
        return self.ring.dropped if self.ring is not None else 0

    @property
    def overflows(self) -> int:
        return int(getattr(self.source, "overflows", 0))

    # --- synchronous core ----------------------------------------------------------------
    def process_block(self, block: AudioBlock) -> list:
        """Feed one block; return the heatmaps it completed (already sent to the sinks)."""
        x = block.data
        if x.shape[0] != self.array.n_channels:
            raise ValueError(f"block has {x.shape[0]} channels, array {self.array.name} needs "
                             f"{self.array.n_channels}")
        n = x.shape[1]
        if self.max_samples is not None:
            n = min(n, max(0, self.max_samples - block.index))
        if n > self._mic_buf.shape[1]:
            self._mic_buf = np.zeros((self.array.n_mics, n), dtype=np.float32)
        mics = self._mic_buf[:, :n]
        n_bad, peak = select_and_scan(np.ascontiguousarray(x, dtype=np.float32), self._mic_idx, n, mics)
        flags = set(block.flags)
        if n_bad:
            flags.add(FLAG_NONFINITE)
        if peak == 0.0:
            flags.add(FLAG_SILENT)
        elif peak >= CLIP_LEVEL:
            flags.add(FLAG_CLIPPED)
        for f in flags:
            self.flag_counts[f] += 1
        self._update_flags |= flags
        self._stamp_ref = (block.index, block.stamp)
        self.n_samples = block.index + mics.shape[1]
        out = []
        for start, frames in self.stft.push(mics):
            for k in range(frames.shape[0]):
                if self._n_frames == 0:
                    self._update_start = start + k * self.stft.hop
                self._frames[self._n_frames] = frames[k]
                self._n_frames += 1
                if self._n_frames == len(self._frames):
                    out.append(self._emit())
        return out

    def _emit(self):
        self._n_frames = 0
        idx = self._update_start
        ref_index, ref_stamp = self._stamp_ref
        stamp = ref_stamp + (idx - ref_index) / self.sample_rate
        hm = self.localizer.process(self._frames, self._weights, t=idx / self.sample_rate, stamp=stamp,
                                    seq=self.n_updates, flags=self._update_flags)
        self._update_flags = set()
        self.n_updates += 1
        hm.status = {"updates": self.n_updates, "dropped_blocks": self.dropped, "overflows": self.overflows,
                     "latency_s": round(max(0.0, time.time() - stamp), 4) if stamp > 1e9 else 0.0,
                     "device": getattr(self.source, "device_name", type(self.source).__name__),
                     "device_state": getattr(self.source, "state", "running")}
        self.last_peaks = hm.peaks
        for sink in self.sinks:
            sink.write(hm)
        if self.status is not None:
            self.status.update(self.n_updates, self.dropped, self.overflows, self.flag_counts, hm.peaks)
        return hm

    def _done(self) -> bool:
        return self.max_samples is not None and self.n_samples >= self.max_samples

    # --- runners -------------------------------------------------------------------------
    def warm_up(self):
        """Run every kernel once on noise, then reset: Numba compiles (or loads its cache)
        here, before capture starts, not while the ring buffer fills up."""
        rng = np.random.default_rng(0)
        block = rng.standard_normal((self.array.n_channels, self.cfg.source.block)).astype(np.float32) * 0.01
        select_and_scan(block, self._mic_idx, block.shape[1], self._mic_buf)
        for _ in self.stft.push(self._mic_buf):
            pass
        self.stft.reset()
        frames = (rng.standard_normal(self._frames.shape) + 1j * rng.standard_normal(self._frames.shape))
        self.localizer.process(frames.astype(np.complex64), self._weights)
        self.localizer.reset()

    def run_sync(self) -> dict:
        """Read the source to its end (or the duration) in this thread, as fast as possible."""
        for sink in self.sinks:
            sink.open(self.meta())
        index = seq = 0
        try:
            self.source.start()
            while not self._done() and not self._stop.is_set():
                data = self.source.read()
                if data is None:
                    break
                self.process_block(AudioBlock(data, index, index / self.sample_rate, seq))
                index += data.shape[1]
                seq += 1
        finally:
            self.source.stop()
        return self._finish()

    def run(self) -> dict:
        """Capture on its own thread into the ring buffer; process here until done or stopped."""
        self.warm_up()
        for sink in self.sinks:
            sink.open(self.meta())
        block = self.cfg.source.block
        n_slots = max(4, int(self.cfg.source.ring_seconds * self.sample_rate / block))
        self.ring = RingBuffer(n_slots, self.array.n_channels, block)
        clock = SampleClock(self.sample_rate)
        capture = None
        if hasattr(self.source, "start_stream"):
            self.source.start_stream(self.ring, clock)
        else:
            capture = threading.Thread(target=self._capture_loop, args=(clock,), name="avstream-capture",
                                       daemon=True)
            capture.start()
        seq = 0
        last_data = time.monotonic()
        try:
            while not self._done() and not self._stop.is_set():
                blk = self.ring.read(timeout=0.5)
                if blk is None:
                    if self.ring.closed:
                        break
                    if time.monotonic() - last_data > STALL_SECONDS:
                        raise InputError(f"the audio source delivered nothing for {STALL_SECONDS:g} s "
                                         f"(device unplugged or stalled?)")
                    continue
                last_data = time.monotonic()
                blk.seq = seq
                seq += 1
                self.process_block(blk)
        except KeyboardInterrupt:
            pass  # a stop like any other: fall through to the summary
        finally:
            self._stop.set()
            if capture is not None:
                capture.join(timeout=2.0)
            self.source.stop()
        return self._finish()

    def _capture_loop(self, clock):
        """Thin runner for pull sources: read, pace to real time if asked, write, never wait."""
        src, ring = self.source, self.ring
        paced = getattr(src, "realtime", False)
        index = 0
        start = time.monotonic()
        try:
            src.start()
            while not self._stop.is_set():
                data = src.read()
                if data is None:
                    break
                n = data.shape[1]
                if paced:
                    lag = start + (index + n) / self.sample_rate - time.monotonic()
                    if lag > 0:
                        time.sleep(lag)
                clock.observe(index + n, time.monotonic())
                ring.write(data, index, clock.stamp(index))
                index += n
        finally:
            ring.close()

    def stop(self):
        self._stop.set()

    def _finish(self) -> dict:
        summary = self.summary()
        for sink in self.sinks:
            sink.close(summary)
        if self.status is not None:
            self.status.close()
        return summary
