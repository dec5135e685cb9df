"""Live capture from a PortAudio device through PyAudio.

The callback runs on PortAudio's thread and only converts and copies the block into the ring
buffer and counts status flags: no allocation beyond the conversion, no logging, no waiting.
Input overflows are counted, never fatal.

A device that goes away (unplugged, its server restarted) is noticed when no callback has come
for ``STALL_S``: the stream is closed and the device is looked up again by the name it had,
with backoff (``RETRY_S`` doubling up to ``RETRY_MAX_S``), through a fresh PortAudio (which
lists devices once per start), so it may come back under another index. A device that comes
back with fewer channels, or that cannot give the sample rate, is refused and retried; its
reason is the state. The first block after the reopening carries the flag ``gap`` and the
sample index jumps by the samples missed (``gap_samples``), so stamps stay monotonic and
nothing downstream mistakes the gap for continuous audio.
"""
from __future__ import annotations

import logging
import os
import sys
import time

import numpy as np

from ..errors import InputError
from ..frames import FLAG_GAP
from .base import AudioSource

log = logging.getLogger(__name__)

STALL_S = 1.0  # no callback for this long: the device is gone
RETRY_S = 0.5  # first wait before looking for it again
RETRY_MAX_S = 5.0

_FORMATS = {  # name -> (pyaudio format attribute, numpy dtype, full scale)
    "int16": ("paInt16", np.int16, 32768.0),
    "int24": ("paInt24", None, 8388608.0),
    "int32": ("paInt32", np.int32, 2147483648.0),
    "float32": ("paFloat32", np.float32, 1.0),
}


def _quiet_portaudio():
    """PortAudio's ALSA and JACK probes print to the C stderr; hide them while it starts."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, ValueError, OSError):
        return None
    saved = os.dup(fd)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)
    return fd, saved


def _restore(token):
    if token:
        fd, saved = token
        os.dup2(saved, fd)
        os.close(saved)


def list_devices() -> list[dict]:
    """Input devices PortAudio sees: index, name, max input channels, default rate."""
    import pyaudio

    token = _quiet_portaudio()
    try:
        pa = pyaudio.PyAudio()
    finally:
        _restore(token)
    try:
        out = []
        for i in range(pa.get_device_count()):
            d = pa.get_device_info_by_index(i)
            if d["maxInputChannels"] > 0:
                out.append({"index": i, "name": d["name"], "channels": int(d["maxInputChannels"]),
                            "rate": d["defaultSampleRate"]})
        return out
    finally:
        pa.terminate()


class DeviceSource(AudioSource):
    """A PortAudio input stream feeding a ring buffer from its callback.

    Parameters
    ----------
    device : str, int or None
        Index, or a substring of the device name (the first input device that matches and has
        enough channels); None is the default input.
    n_channels, sample_rate, block : int
    sample_format : {"int16", "int24", "int32", "float32"}
    """

    realtime = True
    pushes = True

    def __init__(self, device, n_channels, sample_rate, block=256, sample_format="int16"):
        try:
            import pyaudio
        except ImportError as exc:  # pragma: no cover - pyaudio is a dependency
            raise InputError(f"live capture needs PyAudio ({exc})") from None
        self._pyaudio = pyaudio
        self.n_channels, self.sample_rate, self.block = n_channels, int(sample_rate), block
        self.sample_format = sample_format
        fmt_name, self._dtype, self._scale = _FORMATS[sample_format]
        self._format = getattr(pyaudio, fmt_name)
        self._pa = self._portaudio()
        self._gap_pending = False
        self.device_index, self.device_name = self._find(device)
        self.overflows = 0
        self.callbacks = 0
        self.index = 0
        self._stream = None
        self.ring = None
        self.clock = None
        self.state = "closed"
        self.reconnects = self.gap_samples = 0
        self._last_arrival = None  # monotonic time of the last callback
        self._gap_pending = False  # reopened: the next block counts and flags the samples missed
        self._lost_at = self._next_try = 0.0
        self._backoff = RETRY_S
        self._reason = ""

    def _portaudio(self):
        token = _quiet_portaudio()
        try:
            return self._pyaudio.PyAudio()
        finally:
            _restore(token)

    def _find(self, device):
        pa = self._pa
        infos = [pa.get_device_info_by_index(i) for i in range(pa.get_device_count())]
        inputs = [d for d in infos if d["maxInputChannels"] > 0]
        listing = "; ".join(f"{d['index']}: {d['name']} ({d['maxInputChannels']} ch)" for d in inputs) or "none"
        if device is None:
            try:
                d = pa.get_default_input_device_info()
            except (IOError, OSError):
                raise InputError(f"no default input device (input devices: {listing})") from None
        elif str(device).isdigit():
            i = int(device)
            if i >= len(infos) or infos[i]["maxInputChannels"] <= 0:
                raise InputError(f"device {device}: no such input device (input devices: {listing})")
            d = infos[i]
        else:
            matches = [d for d in inputs if str(device).lower() in d["name"].lower()]
            if not matches:
                raise InputError(f"device '{device}': no input device name contains it (input devices: {listing})")
            wide = [d for d in matches if d["maxInputChannels"] >= self.n_channels]
            d = (wide or matches)[0]
        if d["maxInputChannels"] < self.n_channels:
            raise InputError(f"device {d['index']} '{d['name']}' has {d['maxInputChannels']} input channels, "
                             f"the array needs {self.n_channels}")
        return int(d["index"]), d["name"]

    def _convert(self, raw: bytes) -> np.ndarray:
        if self._dtype is None:  # packed 24-bit little endian
            b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3)
            v = (b[:, 0].astype(np.int32) | (b[:, 1].astype(np.int32) << 8) | (b[:, 2].astype(np.int32) << 16))
            v = np.where(v >= 1 << 23, v - (1 << 24), v)
            x = v.astype(np.float32)
        else:
            x = np.frombuffer(raw, dtype=self._dtype).astype(np.float32)
        return (x / self._scale).reshape(-1, self.n_channels).T

    def _callback(self, in_data, frame_count, time_info, status):
        arrival = time.monotonic()
        self._last_arrival = arrival
        if status & self._pyaudio.paInputOverflow:
            self.overflows += 1
        self.callbacks += 1
        block = self._convert(in_data)
        n = block.shape[1]
        flags = ()
        if self._gap_pending:  # the first block since the device came back: skip the missed samples
            self._gap_pending = False
            gap = max(0, int(round((arrival - self._lost_at) * self.sample_rate)) - n)
            self.index += gap
            self.gap_samples += gap
            flags = (FLAG_GAP,)
        self.clock.observe(self.index + n, arrival)
        self.ring.write(block, self.index, self.clock.stamp(self.index), flags)
        self.index += n
        return None, self._pyaudio.paContinue

    def _open(self):
        try:
            self._stream = self._pa.open(format=self._format, channels=self.n_channels, rate=self.sample_rate,
                                         input=True, input_device_index=self.device_index,
                                         frames_per_buffer=self.block, stream_callback=self._callback)
        except (IOError, OSError, ValueError) as exc:
            self._stream = None
            raise InputError(f"device {self.device_index} '{self.device_name}': cannot open "
                             f"{self.n_channels} ch at {self.sample_rate} Hz {self.sample_format} ({exc})") from None

    def start_stream(self, ring, clock):
        """Open the stream; blocks flow into ``ring`` from PortAudio's thread."""
        self.ring, self.clock = ring, clock
        self._open()
        self._last_arrival = time.monotonic()
        self.state = "running"

    def watch(self, quiet_s: float) -> bool:
        """No block for ``quiet_s``: after ``STALL_S`` the device counts as gone; look for it
        again by name, with backoff (see the module docstring)."""
        now = time.monotonic()
        if self.state == "running":
            if quiet_s < STALL_S:
                return True
            self.state = "lost"
            self._lost_at = self._last_arrival or now
            self._next_try, self._backoff = now, RETRY_S
            log.warning("device '%s' delivered nothing for %.1f s: reopening it", self.device_name, quiet_s)
            self._close_stream()
        if self.state == "closed" or now < self._next_try:
            return self.state != "closed"
        try:
            self._pa.terminate()
            self._pa = self._portaudio()  # a fresh device list
            self.device_index, self.device_name = self._find(self.device_name)
            self._open()
        except InputError as exc:
            if str(exc) != self._reason:
                log.warning("device '%s' not back yet: %s (retrying)", self.device_name, exc)
                self._reason = str(exc)
            self.state = "lost: " + str(exc)
            self._next_try, self._backoff = now + self._backoff, min(2 * self._backoff, RETRY_MAX_S)
            return True
        self._gap_pending = True
        self.reconnects += 1
        self._reason = ""
        self.state = "running"
        self._last_arrival = time.monotonic()
        log.warning("device '%s' is back (index %d) after %.1f s", self.device_name, self.device_index,
                    time.monotonic() - self._lost_at)
        return True

    def _close_stream(self):
        if self._stream is not None:
            try:
                # close, not stop_stream then close: Pa_StopStream waits for the buffers in flight,
                # which a device that stopped delivering never completes (35 s in the tests, where
                # a PulseAudio pipe source ran dry); closing an active stream aborts it at once
                self._stream.close()
            except (IOError, OSError):
                pass
            self._stream = None

    @property
    def active(self) -> bool:
        return self._stream is not None and self._stream.is_active()

    def stop(self):
        self._close_stream()
        self._pa.terminate()
        self.state = "closed"
        if self.ring is not None:
            self.ring.close()
