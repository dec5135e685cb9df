"""The streaming spine: a short chain of stages, each a synchronous core.

    capture (capture/)            audio blocks, camera frames, each with its capture time
    -> front end (spectral.py)    channel pick, input checks, STFT: one UpdateWindow per update
    -> localizer (localize/)      the array's map over the grid and its peaks: a Heatmap
    -> pairing (fusion/)          the camera frame nearest the update
    -> engines (engines/)         learned maps over the picture, speech probabilities
    -> fusion (fusion/)           array x engine map over the picture, its pixels, the overlay
    -> sinks (sinks/)             ROS 2, ZeroMQ, MCAP, files, windows

``Pipeline.process_block`` runs the chain once per block in the caller's thread (tests and
``avstream locate`` drive it directly, deterministically); ``Pipeline.run`` adds the capture
thread and the ring buffer in front of it. The pipeline only wires the stages.
"""
from __future__ import annotations

import logging
import threading
import time

import numpy as np

from .capture.clock import SampleClock
from .capture.file import FileSource
from .capture.ring import RingBuffer
from .capture.synthetic import SyntheticScene
from .config import Config, band_plan, is_live, stft_plan, to_dict, updated
from .errors import ConfigError, InputError
from .frames import AudioBlock
from .geometry.arrays import load_array
from .geometry.grids import parse_grid
from .localize import make_localizer
from .spectral import AudioFrontEnd
from .capture.video import OpenCvCamera, SyncVideo, SyntheticCamera, VideoRunner
from .fusion.pairing import FramePairing

STALL_SECONDS = 5.0  # no audio for this long while running is an error, not a hang
TRACK_LOG_MAX = 1000  # tracks the summary keeps (the latest); ids keep counting
BEHIND_FRACTION = 0.1  # updates are skipped while more than this share of the ring waits unread

log = logging.getLogger(__name__)


def open_recording(cfg: Config):
    """The recording folder ``source.kind: recording`` reads (checked once), else None."""
    if cfg.source.kind != "recording":
        return None
    from .capture.recording import Recording

    return Recording(cfg.source.path)


def resolve_array(cfg: Config, rec=None) -> str:
    """The array spec: as configured, or for ``auto`` the recording's array.yaml (when it has
    one) or the default minidsp_uma16."""
    if cfg.array != "auto":
        return cfg.array
    return rec.array if rec is not None and rec.array else "minidsp_uma16"


def make_source(cfg: Config, array, rec=None):
    s = cfg.source
    if rec is not None:
        return FileSource(rec.audio, array, block=s.block, realtime=s.realtime, target_rate=array.sample_rate,
                          loop=s.loop)
    if s.kind == "synthetic":
        return SyntheticScene(array, s.scene, block=s.block, speed_of_sound=cfg.localize.speed_of_sound)
    if s.kind == "file":
        return FileSource(s.path, array, block=s.block, realtime=s.realtime, target_rate=array.sample_rate,
                          loop=s.loop)
    from .capture.device import DeviceSource

    rate = s.sample_rate or array.sample_rate or 16000
    return DeviceSource(s.device, array.n_channels, rate, block=s.block, sample_format=s.sample_format)


def make_camera(cfg: Config, audio_source, array, rec=None):
    """(camera model, extrinsics, video core or None) for ``cfg.camera``, or Nones without a camera.

    The video source is opened here, so a missing camera is an error at start-up (or, with
    ``camera.optional``, a warning and audio only until it appears).
    """
    from .geometry.camera import default_camera, default_extrinsics, generic_camera, load_camera, load_extrinsics

    c = cfg.camera
    spec = cfg.camera_source
    intrinsics, extrinsics_file, times = c.intrinsics, c.extrinsics, None
    if spec == "recording":  # the recording's video, frame times and calibration (flags win)
        spec, times = str(rec.video), rec.frame_times
        intrinsics, extrinsics_file = intrinsics or rec.camera, extrinsics_file or rec.extrinsics
    camera = load_camera(intrinsics) if intrinsics else None
    extrinsics = load_extrinsics(extrinsics_file) if extrinsics_file else default_extrinsics(array)
    core = None
    if spec == "synthetic":
        if not isinstance(audio_source, SyntheticScene):
            raise ConfigError("key 'camera.source': the synthetic camera films the synthetic audio scene")
        camera = camera or default_camera()
        core = SyntheticCamera(audio_source, camera, extrinsics, c.source_distance_m, c.fps)
    elif spec is not None:
        core = OpenCvCamera(spec, realtime=c.realtime and cfg.source.realtime, loop=c.loop, frame_times=times)
        try:
            core.open()
        except InputError as exc:
            if not c.optional:
                raise InputError(f"{exc} (set camera.optional: true to run on audio alone until it appears)") \
                    from None
            log.warning("%s; camera.optional is set: audio only, retrying every %g s", exc, c.retry_s)
        if camera is None:
            if core.size is None:
                log.warning("no camera.intrinsics and the camera is not there to measure: no overlay")
                return None, None, None
            camera = generic_camera(*core.size)
            log.info("note: no camera.intrinsics: assuming a %dx%d pinhole with a 70-degree horizontal field of "
                     "view (calibrate it: avstream calibrate camera)", camera.width, camera.height)
        elif core.size is not None and core.size != (camera.width, camera.height):
            core.close()
            raise InputError(f"camera.source {core.name} delivers {core.size[0]}x{core.size[1]} images but "
                             f"camera.intrinsics {c.intrinsics} is for {camera.width}x{camera.height}")
    return camera, extrinsics, core


def build_localizer(cfg, array, grid, sample_rate):
    """(localizer, method name) for ``cfg`` on an array, grid and sample rate.

    Raises
    ------
    ConfigError
        Naming the key: a band above Nyquist, an unknown method or a refused option.
    """
    lc = cfg.localize
    frame, hop, _ = stft_plan(cfg, array.kind, sample_rate)
    band = band_plan(cfg, array, sample_rate)
    method = lc.resolve(array.n_mics, array.kind)
    try:
        localizer = make_localizer(
            method, array=array, grid=grid, sample_rate=sample_rate, frame=frame, hop=hop,
            band=band, n_sources=lc.sources, exclusion_deg=lc.exclusion_deg, smoothing=lc.smoothing,
            speed_of_sound=lc.speed_of_sound, onset_floor=lc.onset_floor, options=lc.options(method),
            min_power=lc.min_power, min_relative=lc.min_relative)
    except KeyError as exc:
        raise ConfigError(f"key 'localize.method': {exc.args[0]}") from None
    except ValueError as exc:  # the localizer names the key
        raise ConfigError(str(exc)) from None
    return localizer, method


class Pipeline:
    """The stages between the audio source and the sinks, configured once.

    Parameters
    ----------
    cfg : Config
    sinks : list of Sink
    source : AudioSource, optional
        A source core to use instead of the one ``cfg.source`` describes.
    status : StatusLine or None
    """

    def __init__(self, cfg: Config, sinks=(), source=None, status=None):
        sinks = list(sinks)
        self.cfg = cfg
        rec = open_recording(cfg)
        self.array = load_array(resolve_array(cfg, rec))
        self.source = source if source is not None else make_source(cfg, self.array, rec)
        self.sample_rate = int(self.source.sample_rate)
        self.camera, self.extrinsics, self._video_core = make_camera(cfg, self.source, self.array, rec)
        view = None if self.camera is None else (self.camera, self.extrinsics, cfg.camera.source_distance_m)
        spec = cfg.localize.grid
        if spec == "auto":
            spec = f"camera:{cfg.camera.block}" if self.camera is not None else "sphere:2562"
        self.grid = parse_grid(spec, self.array, view)
        lc = cfg.localize
        frame, hop, per_update = self.stft_plan = stft_plan(cfg, self.array.kind, self.sample_rate)
        self.localizer, self.method = build_localizer(cfg, self.array, self.grid, self.sample_rate)
        self._pending = None  # a configuration to switch to between two blocks (reconfigure)
        self._pending_lock = threading.Lock()
        self.tracker = None
        self.track_log: dict = {}  # track id -> first and last detection, last direction (the summary)
        if cfg.track.enabled:
            from .track import Tracker

            tc = cfg.track
            self.tracker = Tracker(self.localizer.projection, self.localizer.radial_weight, tc.gate_deg,
                                   tc.measurement_deg, tc.accel_deg_s2, tc.confirm, tc.silence_s,
                                   coast_s=tc.coast_s, max_speed_deg_s=tc.max_speed_deg_s,
                                   min_age_s=tc.min_age_s)
        from .engines.stage import EngineStage

        self.engines = EngineStage.from_config(cfg, self.array, self.sample_rate, self.camera)
        self.separate = None  # per-track audio, computed only when a sink takes it
        if self.tracker is not None and any(s.takes_source_audio for s in sinks):
            from .separate import SourceAudio

            self.separate = SourceAudio(self.array, self.sample_rate, hop * per_update,
                                        (per_update - 1) * hop + frame, lc.speed_of_sound, cfg.track.audio_mask)
        # the microphones' own samples, every one once, for the ROS audio topic
        self.raw_audio = cfg.ros.audio_on(self.array.n_mics, self.sample_rate) and any(s.takes_audio for s in sinks)
        window = (per_update - 1) * hop + frame
        keep = max(self.engines.keep_samples if self.engines else 0, self.separate.keep_samples if self.separate else 0,
                   window if self.raw_audio else 0)
        self.frontend = AudioFrontEnd(self.array, self.sample_rate, frame, hop, cfg.stft.window, per_update,
                                      cfg.source.block, keep)
        # an update covers (update_frames - 1) hops plus one frame; frames pair with its middle
        self._window_s = self.frontend.window_samples / self.sample_rate
        self.fusion = None
        if self.camera is not None and (self._video_core is not None or self.engines is not None):
            from .fusion.fuse import Fusion

            self.fusion = Fusion(self.grid, self.camera, self.extrinsics, cfg.camera.source_distance_m,
                                 cfg.engine.fusion, n_pixels=lc.sources, draw=self._video_core is not None)
        self.pairing = None  # set when the video starts
        self.recorder = None
        if cfg.output.recording:
            from .capture.recording import RecordingWriter

            self.recorder = RecordingWriter(cfg.output.recording, self.sample_rate, self.array.n_channels,
                                            self.array, self.camera, self.extrinsics, cfg.camera.fps)
        self.video = None
        self.sinks = list(sinks)
        self.status = status
        self.n_updates = 0
        self.skipped_updates = 0  # completed while behind real time, not run (their samples were)
        self._carry_flags, self._carry_audio = set(), []  # of skipped updates, for the next one
        self.ring = None
        self.last_peaks: list = []
        self.max_samples = None if cfg.duration is None else int(round(cfg.duration * self.sample_rate))
        self._stop = threading.Event()
        self._rate = None  # (wall time, updates, rate) for the overlay's status line, from the first update

    @property
    def overlay(self):
        """The overlay drawer (None without a camera)."""
        return self.fusion.overlay if self.fusion is not None and self.fusion.draw else None

    @property
    def stft(self):
        return self.frontend.stft

    @property
    def n_samples(self) -> int:
        return self.frontend.n_samples

    @property
    def flag_counts(self):
        return self.frontend.flag_counts

    def reconfigure(self, overrides: dict):
        """Switch to the configuration with ``overrides`` (live keys only: ``config.is_live``) from the
        next block on; safe from another thread (a ROS parameter callback). Returns the new
        configuration.

        Raises
        ------
        ConfigError
            For a key that needs a restart, or a value the configuration refuses (nothing changes).
        """
        fixed = sorted(k for k in overrides if not is_live(k))
        if fixed:
            raise ConfigError(f"{', '.join(fixed)}: read-only while running (restart to change)")
        cfg = updated(self.cfg, overrides)
        # built here, so a bad value fails in the caller, not in the processing thread
        localizer, method = build_localizer(cfg, self.array, self.grid, self.sample_rate)
        with self._pending_lock:
            self._pending = (cfg, localizer, method)
        return cfg

    def _apply_pending(self):
        with self._pending_lock:
            pending, self._pending = self._pending, None
        if pending is not None:
            self.cfg, self.localizer, self.method = pending
            log.info("now %s, %s", self.method, ", ".join(f"{k} {v}" for k, v in sorted(
                {"band": list(band_plan(self.cfg, self.array, self.sample_rate)),
                 "sources": self.cfg.localize.sources}.items())))

    # --- metadata ------------------------------------------------------------------------
    def meta(self) -> dict:
        return {"array": self.array.describe(), "method": self.method, "grid": self.grid.definition,
                "grid_spec": self.grid.spec,
                "grid_object": self.grid, "sample_rate": self.sample_rate, "config": to_dict(self.cfg),
                "camera": self.camera if self.overlay is not None else None,
                "extrinsics": self.extrinsics if self.overlay is not None else None,
                "picture": self.fusion.picture_layout() if self.fusion is not None else None,
                "engines": self.engines.describe() if self.engines is not None else None,
                "update_rate": self.sample_rate / (self.stft_plan[1] * self.stft_plan[2])}

    def summary(self) -> dict:
        k = self.cfg.localize.sources
        out = {"peaks": [p.to_dict() for p in self.localizer.summary_peaks(k)], "method": self.method,
               "updates": self.n_updates, "skipped_updates": self.skipped_updates,
               "seconds": round(self.n_samples / self.sample_rate, 4), "array": self.array.describe(),
               "dropped_blocks": self.dropped, "overflows": self.overflows,
               "input_flags": dict(self.flag_counts)}
        if self.source.reconnects:
            out.update(reconnects=self.source.reconnects, gap_samples=self.source.gap_samples)
        if self.failed_outputs():
            out["failed_outputs"] = self.failed_outputs()
        if self.tracker is not None:
            out["tracks"] = [{k: round(v, 3 if k.endswith("_s") else 2) if isinstance(v, float) else v
                              for k, v in seen.items()} for seen in self.track_log.values()]  # the latest TRACK_LOG_MAX
        if self.video is not None:
            out["video"] = self.video.counters()
        if self.engines is not None:
            out["engines"] = self.engines.summary()
        return out

    def failed_outputs(self) -> dict:
        """{output: why} for the sinks that stopped for good (the run goes on without them)."""
        return dict(s.failure.split(": ", 1) for s in self.sinks if s.failure)

    @property
    def dropped(self) -> int:
        return self.ring.dropped if self.ring is not None else 0

    @property
    def overflows(self) -> int:
        return int(self.source.overflows)

    # --- synchronous core ----------------------------------------------------------------
    def process_block(self, block: AudioBlock, skip: bool = False) -> list:
        """Run one block through the chain; return the heatmaps it completed (already sent).

        With ``skip`` the block still goes through the recorder and the STFT (no sample is lost
        and the next update sees a continuous stream), but the updates it completes are counted
        in ``skipped_updates`` instead of run: what a pipeline behind real time gives up first."""
        if self._pending is not None:
            self._apply_pending()
        if self.recorder is not None:
            self.recorder.audio(block)
        wins = self.frontend.process(block, self.max_samples)
        if not skip:
            return [self._update(win) for win in wins]
        for win in wins:  # their flags and raw audio go out with the next update that runs
            self.skipped_updates += 1
            self._carry_flags |= win.flags
            if self.raw_audio and win.samples is not None and win.new_samples > 0:
                self._carry_audio.append(self._new_audio(win))
        return []

    def _new_audio(self, win):
        """(stream time of its first sample, its capture time, the samples) a window adds to the
        previous one."""
        new = min(win.new_samples, win.samples.shape[1])
        t = win.t + (self.frontend.window_samples - new) / self.sample_rate
        return t, win.stamp_at(t), win.samples[:, -new:].copy()

    def _update(self, win):
        flags = win.flags
        if self._carry_flags:
            flags, self._carry_flags = flags | self._carry_flags, set()
        hm = self.localizer.process(win.frames, win.weights, t=win.t, stamp=win.stamp, seq=self.n_updates,
                                    flags=flags)
        self.n_updates += 1
        hm.levels = win.levels
        hm.status = {"updates": self.n_updates, "skipped_updates": self.skipped_updates,
                     "dropped_blocks": self.dropped, "overflows": self.overflows,
                     "latency_s": round(max(0.0, time.time() - hm.stamp), 4) if hm.stamp > 1e9 else 0.0,
                     "device": self.source.describe(), "device_state": self.source.state}
        if self.source.reconnects:
            hm.status.update(reconnects=self.source.reconnects, gap_samples=self.source.gap_samples)
        failed = self.failed_outputs()
        if failed:
            hm.status["failed_outputs"] = failed
        if self.pairing is not None:
            self.pairing.process(hm)
            if self.recorder is not None:
                for frame in self.video.frames_since(self.recorder.last_seq):
                    self.recorder.frame(frame)
        if self.raw_audio and win.samples is not None and win.new_samples > 0:
            parts = self._carry_audio + [self._new_audio(win)]
            self._carry_audio = []
            hm.audio_t, hm.audio_stamp = parts[0][0], parts[0][1]
            hm.audio = parts[0][2] if len(parts) == 1 else np.concatenate([a for _, _, a in parts], axis=1)
        if self.engines is not None:
            self.engines.process(hm, win)
        if self.tracker is not None:  # after the engines: a track carries its peak's speech probability
            hm.tracks = self.tracker.process(hm.t, hm.peaks)
            if self.separate is not None:
                self.separate.process(hm, win)
            for tr in hm.tracks:
                seen = self.track_log.get(tr.id)
                if seen is None:
                    seen = self.track_log[tr.id] = {"id": tr.id, "first_s": hm.t}
                    if len(self.track_log) > TRACK_LOG_MAX:  # a days-long run: the oldest go
                        del self.track_log[next(iter(self.track_log))]
                if tr.silent_s == 0.0:
                    seen.update(last_s=hm.t, azimuth_deg=tr.azimuth_deg, elevation_deg=tr.elevation_deg)  # rounded in summary()
        if self.fusion is not None:
            self.fusion.process(hm, self._overlay_text(hm) if self.fusion.draw else "")
        self.last_peaks = hm.peaks
        for sink in self.sinks:
            sink.write(hm)
        if self.status is not None:
            extra = ""
            if self.video is not None:
                off = hm.status.get("video_offset_ms")
                extra = f"  video {hm.status['camera_state']}" + (f" {off:+.0f} ms" if off is not None else "")
            if hm.speech is not None:
                extra += f"  speech {hm.speech:.2f}"
            if self.skipped_updates:
                extra += f"  skipped {self.skipped_updates}"
            self.status.update(self.n_updates, self.dropped, self.overflows, self.flag_counts, hm.peaks, extra)
        return hm

    def _overlay_text(self, hm) -> str:
        now = time.monotonic()
        if self._rate is None:  # the rate window starts at the first update, not when the pipeline was built
            self._rate = (now, self.n_updates, 0.0)
        t0, n0, rate = self._rate
        if now - t0 >= 1.0:
            rate = (self.n_updates - n0) / (now - t0)
            self._rate = (now, self.n_updates, rate)
        elif rate == 0.0 and self.n_updates - n0 >= 2:  # the first second: the rate so far
            rate = (self.n_updates - n0 - 1) / max(now - t0, 1e-3)
        off = hm.status.get("video_offset_ms")
        speech = f"  speech {hm.speech:.2f}" if hm.speech is not None else ""
        return (f"{rate:4.1f} updates/s  latency {hm.status['latency_s'] * 1000:4.0f} ms  video "
                + (f"{off:+5.0f} ms" if off is not None else hm.status.get("camera_state", "none"))
                + f"  dropped {self.dropped}  t {hm.t:6.2f} s{speech}")

    def _done(self) -> bool:
        return self.max_samples is not None and self.n_samples >= self.max_samples

    # --- runners -------------------------------------------------------------------------
    def warm_up(self):
        """Run every kernel and engine once on noise, then reset: Numba compiles (or loads its
        cache) and the engines load here, before capture starts, not while the ring fills."""
        rng = np.random.default_rng(0)
        shape = self.frontend.warm_up(rng)
        frames = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)
        self.localizer.process(frames, np.ones(shape[0], np.float32))
        self.localizer.reset()
        if self.tracker is not None:
            self.tracker.warm_up()
        self.source.warm_up()
        if self.engines is not None:
            self.engines.warm_up()

    def _start_video(self, runner):
        self.video = runner
        self.pairing = FramePairing(runner, self.camera, self._window_s, self.cfg.camera.max_offset_s)

    def run_sync(self) -> dict:
        """Read the source to its end (or the duration) in this thread, as fast as possible."""
        for sink in self.sinks:
            sink.open(self.meta())
        index = seq = 0
        if self._video_core is not None:
            self._start_video(SyncVideo(self._video_core))
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
        behind = max(2, int(BEHIND_FRACTION * n_slots))
        clock = SampleClock(self.sample_rate)
        if self._video_core is not None:
            self._start_video(VideoRunner(self._video_core, origin=lambda: clock.stamp(0),
                                          retry_s=self.cfg.camera.retry_s))
            self.video.start()
        capture = None
        if self.source.pushes:
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
                    quiet = time.monotonic() - last_data
                    # a device source looks for its device again and the run waits for it; any
                    # other source that falls silent ends the run
                    if not self.source.watch(quiet) and quiet > STALL_SECONDS:
                        raise InputError(f"the audio source delivered nothing for {STALL_SECONDS:g} s "
                                         f"(device unplugged or stalled?)")
                    if quiet >= 1.0:  # the read times out every 0.5 s: live outputs hear of it
                        for sink in self.sinks:
                            sink.stalled(quiet)
                    continue
                last_data = time.monotonic()
                blk.seq = seq
                seq += 1
                # behind real time (a slow engine or sink, a starved CPU): skip updates, never
                # samples, until the ring is nearly drained again
                self.process_block(blk, skip=self.ring.backlog > behind)
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
        index = 0
        start = time.monotonic()
        try:
            src.start()
            while not self._stop.is_set():
                data = src.read()
                if data is None:
                    break
                n = data.shape[1]
                if src.realtime:
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
        if self.recorder is not None:
            summary["recording"] = self.recorder.close()
        for sink in self.sinks:
            sink.close(summary)
        if self.status is not None:
            self.status.close()
        return summary
