"""Live capture from a PortAudio device through PyAudio.

The callback runs on PortAudio's thread and only converts and copies the block into the ring
buffer and counts status flags: no allocation beyond the conversion, no logging, no waiting.
Input overflows are counted, never fatal.
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np

from ..errors import InputError
from .base import AudioSource

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
        token = _quiet_portaudio()
        try:
            self._pa = pyaudio.PyAudio()
        finally:
            _restore(token)
        self.device_index, self.device_name = self._find(device)
        self.overflows = 0
        self.callbacks = 0
        self.index = 0
        self._stream = None
        self.ring = None
        self.clock = None
        self.state = "closed"

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
        if status & self._pyaudio.paInputOverflow:
            self.overflows += 1
        self.callbacks += 1
        block = self._convert(in_data)
        n = block.shape[1]
        self.clock.observe(self.index + n, arrival)
        self.ring.write(block, self.index, self.clock.stamp(self.index))
        self.index += n
        return None, self._pyaudio.paContinue

    def start_stream(self, ring, clock):
        """Open the stream; blocks flow into ``ring`` from PortAudio's thread."""
        self.ring, self.clock = ring, clock
        try:
            self._stream = self._pa.open(format=self._format, channels=self.n_channels, rate=self.sample_rate,
                                         input=True, input_device_index=self.device_index,
                                         frames_per_buffer=self.block, stream_callback=self._callback)
        except (IOError, OSError, ValueError) as exc:
            raise InputError(f"device {self.device_index} '{self.device_name}': cannot open "
                             f"{self.n_channels} ch at {self.sample_rate} Hz {self.sample_format} ({exc})") from None
        self.state = "running"

    @property
    def active(self) -> bool:
        return self._stream is not None and self._stream.is_active()

    def stop(self):
        if self._stream is not None:
            try:
                self._stream.stop_stream()
                self._stream.close()
            except (IOError, OSError):
                pass
            self._stream = None
        self._pa.terminate()
        self.state = "closed"
        if self.ring is not None:
            self.ring.close()
