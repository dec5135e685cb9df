"""Audio files through soundfile (WAV, FLAC, and what libsndfile reads)."""
from __future__ import annotations

import logging
from math import gcd

import numpy as np
import soundfile as sf

from ..errors import InputError
from .base import AudioSource

log = logging.getLogger(__name__)

FLAG_TRUNCATED = "truncated"


class FileSource(AudioSource):
    """Synchronous source core over a file: ``read()`` gives (n_channels, block) float32 blocks.

    Parameters
    ----------
    path : str
    array : MicArray
        The file must have ``array.n_channels`` channels.
    block : int
    realtime : bool
        Pace reads to real time (the threaded runner sleeps); otherwise as fast as possible.
    target_rate : int or None
        When set and the file's rate differs, the whole file is resampled (polyphase) to it and
        a note says so on stderr.
    loop : bool
    """

    def __init__(self, path, array, block=256, realtime=False, target_rate=None, loop=False):
        self.path, self.block, self.realtime, self.loop = str(path), block, realtime, loop
        import os

        if not os.path.exists(self.path):
            raise InputError(f"{path}: no such audio file")
        try:
            self._sf = sf.SoundFile(self.path)
        except (sf.LibsndfileError, RuntimeError, OSError) as exc:
            raise InputError(f"{path}: cannot read audio ({_reason(exc)})") from None
        if self._sf.channels != array.n_channels:
            hint = ""
            if self._sf.channels == array.n_mics:
                hint = (f"; it has one channel per microphone, so give an array YAML with "
                        f"mic_channels: {list(range(array.n_mics))}")
            raise InputError(
                f"{path}: has {self._sf.channels} channels but array {array.name} expects "
                f"{array.n_channels} (microphones on channels {list(array.mic_channels)}){hint}")
        self.n_channels = self._sf.channels
        self.file_rate = self._sf.samplerate
        self.declared_frames = max(self._sf.frames, _wav_declared_frames(self.path, self._sf) or 0)
        if self._sf.frames == 0:
            raise InputError(f"{path}: holds no audio samples (a header alone"
                             + (f", declaring {self.declared_frames} frames" if self.declared_frames else "") + ")")
        self.sample_rate = self.file_rate
        self._data = None
        self._pos = 0
        self.truncated = False
        if self.declared_frames > self._sf.frames:
            self._note_truncated(self._sf.frames)
        if target_rate and target_rate != self.file_rate:
            from scipy.signal import resample_poly  # imported here: a second that only resampling needs

            log.info("%s is %d Hz, array %s is %d Hz: resampling to %d Hz", path, self.file_rate, array.name,
                     target_rate, target_rate)
            x = self._read_all()
            g = gcd(int(target_rate), int(self.file_rate))
            self._data = resample_poly(x, target_rate // g, self.file_rate // g, axis=0).astype(np.float32)
            self.sample_rate = int(target_rate)

    def read_all(self) -> np.ndarray:
        """The whole recording (resampled if asked), (n_channels, n) float32."""
        x = self._data if self._data is not None else self._read_all()
        return np.ascontiguousarray(x.T)

    def _read_all(self):
        try:
            x = self._sf.read(dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise InputError(f"{self.path}: cannot read audio ({_reason(exc)})") from None
        if len(x) < self.declared_frames:
            self._note_truncated(len(x))
        return x

    def _note_truncated(self, got):
        if not self.truncated:
            self.truncated = True
            log.warning("%s is truncated: its header declares %d frames, %d could be read; using those",
                        self.path, self.declared_frames, got)

    def read(self):
        """The next block, or None at the end of the file."""
        if self._data is not None:
            if self._pos >= len(self._data):
                if not self.loop or len(self._data) == 0:
                    return None
                self._pos = 0
            x = self._data[self._pos:self._pos + self.block]
            self._pos += len(x)
            return np.ascontiguousarray(x.T)
        try:
            x = self._sf.read(self.block, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as exc:
            self._note_truncated(self._pos)
            return None
        self._pos += len(x)
        if len(x) == 0:
            if self._pos < self.declared_frames:
                self._note_truncated(self._pos)
            if self.loop and self._pos > 0:
                self._sf.seek(0)
                self._pos = 0
                return self.read()
            return None
        return np.ascontiguousarray(x.T)

    def stop(self):
        self._sf.close()


def _wav_declared_frames(path, snd) -> int | None:
    """Frames a WAV header declares in its data chunk (libsndfile reports what is present)."""
    if snd.format not in ("WAV", "WAVEX"):
        return None
    import struct

    try:
        with open(path, "rb") as fh:
            if fh.read(4) != b"RIFF":
                return None
            fh.read(8)
            while True:
                head = fh.read(8)
                if len(head) < 8:
                    return None
                cid, size = head[:4], struct.unpack("<I", head[4:])[0]
                if cid == b"data":
                    bytes_per_frame = snd.channels * {"PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4,
                                                      "DOUBLE": 8, "PCM_U8": 1}.get(snd.subtype, 0)
                    return size // bytes_per_frame if bytes_per_frame else None
                fh.seek(size + (size & 1), 1)
    except OSError:
        return None


def _reason(exc) -> str:
    text = str(exc).strip()
    return text.split(": ", 1)[-1] if text else type(exc).__name__
