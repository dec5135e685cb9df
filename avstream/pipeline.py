"""The streaming spine: source -> ring buffer -> STFT -> localizer -> sinks.

``Pipeline.process_block`` is the synchronous core (tests and ``avstream locate`` drive it
directly, deterministically); ``Pipeline.run`` adds the capture thread and the ring buffer.
"""
from __future__ import annotations

import threading
import time
from collections import Counter, deque

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
from .capture.video import OpenCvCamera, SyncVideo, SyntheticCamera, VideoRunner

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


def make_camera(cfg: Config, audio_source, array):
    """(camera model, extrinsics, video core or None) for ``cfg.camera``, or Nones without a camera.

    The video source is opened here, so a missing camera is an error at start-up (or, with
    ``camera.optional``, a warning and audio only until it appears).
    """
    import sys

    from .geometry.camera import default_camera, default_extrinsics, generic_camera, load_camera, load_extrinsics

    c = cfg.camera
    spec = cfg.camera_source
    camera = load_camera(c.intrinsics) if c.intrinsics else None
    extrinsics = load_extrinsics(c.extrinsics) if c.extrinsics else default_extrinsics(array)
    core = None
    if spec == "synthetic":
        if not isinstance(audio_source, SyntheticScene):
            raise ConfigError("key 'camera.source': the synthetic camera films the synthetic audio scene")
        camera = camera or default_camera()
        core = SyntheticCamera(audio_source, camera, extrinsics, c.source_distance_m, c.fps)
    elif spec is not None:
        core = OpenCvCamera(spec, realtime=c.realtime, loop=c.loop)
        try:
            core.open()
        except InputError as exc:
            if not c.optional:
                raise InputError(f"{exc} (set camera.optional: true to run on audio alone until it appears)") \
                    from None
            print(f"avstream: warning: {exc}; camera.optional is set: audio only, retrying every "
                  f"{c.retry_s:g} s", file=sys.stderr)
        if camera is None:
            if core.size is None:
                print("avstream: warning: no camera.intrinsics and the camera is not there to measure: "
                      "no overlay", file=sys.stderr)
                return None, None, None
            camera = generic_camera(*core.size)
            print(f"avstream: note: no camera.intrinsics: assuming a {camera.width}x{camera.height} pinhole with "
                  f"a 70-degree horizontal field of view (calibrate it: avstream calibrate camera)",
                  file=sys.stderr)
        elif core.size is not None and core.size != (camera.width, camera.height):
            core.close()
            raise InputError(f"camera.source {core.name} delivers {core.size[0]}x{core.size[1]} images but "
                             f"camera.intrinsics {c.intrinsics} is for {camera.width}x{camera.height}")
    return camera, extrinsics, core


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
        self.camera, self.extrinsics, self._video_core = make_camera(cfg, self.source, self.array)
        view = None if self.camera is None else (self.camera, self.extrinsics, cfg.camera.source_distance_m)
        spec = cfg.localize.grid
        if spec == "auto":
            spec = f"camera:{cfg.camera.block}" if self.camera is not None else "sphere:2562"
        self.grid = parse_grid(spec, self.array, view)
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
        self._fed = 0  # samples fed to the STFT
        self._replaced: deque = deque()  # (first, last) stream samples that were NaN or Inf
        self.n_updates = 0
        self.n_samples = 0
        self.flag_counts: Counter = Counter()
        self.ring = None
        self.last_peaks: list = []
        self.max_samples = None if cfg.duration is None else int(round(cfg.duration * self.sample_rate))
        self._stop = threading.Event()
        # an update covers (update_frames - 1) hops plus one frame; frames pair with its middle
        self._window_s = ((lc.update_frames - 1) * st.hop + st.frame) / self.sample_rate
        self.video = None
        self.overlay = None
        if self.camera is not None and self._video_core is not None:
            from .fusion.overlay import Overlay

            self.overlay = Overlay(self.grid, self.camera, self.extrinsics, cfg.camera.source_distance_m)
        self._rate = (time.monotonic(), 0, 0.0)  # wall time, updates, rate: for the overlay's status line

    # --- metadata ------------------------------------------------------------------------
    def meta(self) -> dict:
        return {"array": self.array.describe(), "grid": self.grid.definition, "grid_spec": self.grid.spec,
                "grid_object": self.grid, "sample_rate": self.sample_rate, "config": to_dict(self.cfg),
                "camera": self.camera if self.overlay is not None else None,
                "update_rate": self.sample_rate / (self.cfg.stft.hop * self.cfg.localize.update_frames)}

    def summary(self) -> dict:
        k = self.cfg.localize.sources
        out = {"peaks": [p.to_dict() for p in self.localizer.summary_peaks(k)], "updates": self.n_updates,
               "seconds": round(self.n_samples / self.sample_rate, 4), "array": self.array.describe(),
               "dropped_blocks": self.dropped, "overflows": self.overflows,
               "input_flags": dict(self.flag_counts)}
        if self.video is not None:
            out["video"] = self.video.counters()
        return out

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
        n_bad, first_bad, last_bad, peak = select_and_scan(np.ascontiguousarray(x, dtype=np.float32),
                                                           self._mic_idx, n, mics)
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
        self._stamp_ref = (self._fed, block.stamp)
        self._fed += mics.shape[1]
        self.n_samples = block.index + mics.shape[1]
        out = []
        for start, frames in self.stft.push(mics):
            for k in range(frames.shape[0]):
                s0 = start + k * self.stft.hop
                if self._n_frames == 0:
                    self._update_start = s0
                self._frames[self._n_frames] = frames[k]
                self._weights[self._n_frames] = 0.0 if self._replaced and self._touches_replaced(s0) else 1.0
                self._n_frames += 1
                if self._n_frames == len(self._frames):
                    out.append(self._emit())
        return out

    def _touches_replaced(self, s0: int) -> bool:
        """Whether the frame starting at stream sample s0 holds samples that were NaN or Inf:
        such a frame is not evidence and gets weight 0."""
        while self._replaced and self._replaced[0][1] < s0:
            self._replaced.popleft()
        # the ranges come in stream order: only the first one left can reach into this frame
        return bool(self._replaced) and self._replaced[0][0] < s0 + self.stft.frame

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
        if self.video is not None:
            self._pair(hm)
        self.last_peaks = hm.peaks
        for sink in self.sinks:
            sink.write(hm)
        if self.status is not None:
            extra = ""
            if self.video is not None:
                off = hm.status.get("video_offset_ms")
                extra = f"  video {hm.status['camera_state']}" + (f" {off:+.0f} ms" if off is not None else "")
            self.status.update(self.n_updates, self.dropped, self.overflows, self.flag_counts, hm.peaks, extra)
        return hm

    def _pair(self, hm):
        """Pair the update with the frame nearest the middle of its audio window; draw the overlay."""
        centre = hm.stamp + self._window_s / 2
        frame = self.video.nearest(centre)
        counters = self.video.counters()
        offset = None if frame is None else frame.stamp - centre
        if offset is not None and abs(offset) > self.cfg.camera.max_offset_s:
            frame, counters["camera_state"] = None, "stale" if counters["camera_state"] == "running" \
                else counters["camera_state"]
        if frame is not None:
            frame = self._fit(frame)
            if frame is None:
                counters["camera_state"] = "wrong frame size"
            else:
                counters["video_offset_ms"] = round(offset * 1000.0, 1)
        hm.frame = frame
        hm.status.update(counters)
        if self.overlay is not None:
            now = time.monotonic()
            t0, n0, rate = self._rate
            if now - t0 >= 1.0:
                rate = (self.n_updates - n0) / (now - t0)
                self._rate = (now, self.n_updates, rate)
            off = counters.get("video_offset_ms")
            text = (f"{rate:4.1f} updates/s  latency {hm.status['latency_s'] * 1000:4.0f} ms  video "
                    + (f"{off:+5.0f} ms" if off is not None else counters["camera_state"])
                    + f"  dropped {self.dropped}  t {hm.t:6.2f} s")
            hm.overlay = self.overlay.render(frame, hm, text)

    def _fit(self, frame):
        """Frames must have the calibrated size; a uniformly scaled stream is resized to it.
        Another aspect ratio (a camera that came back in another mode) cannot be registered:
        the frame is not used, and the status says why (the size at start is checked earlier)."""
        import cv2

        w, h = self.camera.width, self.camera.height
        fh, fw = frame.image.shape[:2]
        if (fw, fh) == (w, h):
            return frame
        if abs(fw / fh - w / h) > 0.01 * w / h:
            return None
        frame.image = cv2.resize(frame.image, (w, h), interpolation=cv2.INTER_AREA)
        return frame

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
        if self._video_core is not None:
            self.video = SyncVideo(self._video_core)
        try:
            if self.video is not None:
                self.video.start()
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
            if self.video is not None:
                self.video.stop()
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
        if self._video_core is not None:
            self.video = VideoRunner(self._video_core, origin=lambda: clock.stamp(0), retry_s=self.cfg.camera.retry_s)
            self.video.start()
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
            if self.video is not None:
                self.video.stop()
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
