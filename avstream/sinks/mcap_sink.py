"""Recording: every published topic into an MCAP file that ``ros2 bag play`` and Foxglove open.

Transport only: the messages and their CDR bytes come from RosFormatter, the very bytes the
DDS sink publishes. Schemas are ``ros2msg`` text, messages ``cdr``.

The file on disk is a closed MCAP file at every moment: after each batch of records the writer
hands over (a chunk and its indexes, about once a megabyte), an ending (DataEnd, a Footer without
summary, the magic) follows it, and the next batch overwrites that ending. A run killed outright
leaves every chunk written so far readable; a full disk (or any write error) stops the recording
with what landed, closed, while the run and its live outputs go on (``failure``, then an ERROR
in /diagnostics and the summary).
"""
from __future__ import annotations

import logging
import os
import time

from .ros_transport import RosTransport

log = logging.getLogger(__name__)


def _ending() -> bytes:
    from mcap.data_stream import RecordBuilder
    from mcap.records import DataEnd, Footer
    from mcap.writer import MCAP0_MAGIC

    b = RecordBuilder()
    DataEnd(data_section_crc=0).write(b)
    Footer(summary_start=0, summary_offset_start=0, summary_crc=0).write(b)
    return b.end() + MCAP0_MAGIC


class _ClosedAtEveryWrite:
    """The recording's file as the MCAP writer sees it: each write goes after the last whole one
    and is followed by a provisional ending; a write that fails is cut off and the ending put back
    after the last whole write, in bytes the file already held (no new space needed)."""

    def __init__(self, path):
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self.end = _ending()
        self.good = 0  # end of the last whole write

    def _put(self, data, at):
        view = memoryview(data)
        while len(view):
            n = os.pwrite(self.fd, view, at)
            view, at = view[n:], at + n

    def write(self, data) -> int:
        try:
            self._put(data, self.good)
        except OSError:
            self._put(self.end, self.good)  # over the failed write's first bytes: already on disk
            os.ftruncate(self.fd, self.good + len(self.end))
            raise
        self.good += len(data)
        self._put(self.end, self.good)
        return len(data)

    def tell(self) -> int:
        return self.good

    def flush(self) -> None:
        pass

    def close(self, finished=True) -> None:
        """``finished``: the writer wrote its own ending and summary: drop the provisional one."""
        if self.fd is not None:
            if finished:
                os.ftruncate(self.fd, self.good)
            os.close(self.fd)
            self.fd = None



class McapSink(RosTransport):
    """Writes every topic the DDS path publishes (same names, same bytes) and, with tracking,
    each track's audio (``source_audio/track_<id>``) to ``path``.

    With ``split_bytes``, the recording is split as ``ros2 bag record --max-bag-size`` splits
    it: ``<stem>_0.mcap``, ``<stem>_1.mcap``, ... beside ``path``, a new file once the current
    one holds ``split_bytes``; each file is whole on its own (its latched ``/tf_static`` and
    ``audio_info`` again at its start)."""

    def __init__(self, path, ros=None, split_bytes=None):
        super().__init__(ros)
        self.path = str(path)
        self.split_bytes = int(split_bytes) if split_bytes else None
        self.files: list = []  # the paths written, in order
        self._fh = None
        self._writer = None
        self._channels: dict = {}
        self.n_messages = 0

    def _next_path(self) -> str:
        if not self.split_bytes:
            return self.path
        stem = self.path[:-len(".mcap")] if self.path.endswith(".mcap") else self.path
        return f"{stem}_{len(self.files)}.mcap"

    def _start_file(self):
        from mcap.writer import Writer

        path = self._next_path()
        self._fh = _ClosedAtEveryWrite(path)
        self.files.append(path)
        self._writer = Writer(self._fh)
        self._writer.start(profile="ros2", library="avstream")
        self._channels = {}
        self._latched()

    def open(self, meta):
        super().open(meta)
        try:
            self._start_file()
        except OSError as exc:
            from ..errors import ConfigError

            raise ConfigError(f"--record {self.path}: cannot write ({exc.strerror})") from None

    def _rotate(self):
        """Close the current file and start the next one once it holds ``split_bytes``."""
        if self.split_bytes and self._writer is not None and self._fh.tell() >= self.split_bytes:
            self._writer.finish()
            self._fh.close()
            self._start_file()

    def _latched(self):
        for m in self.fmt.latched(time.time_ns()):  # once, at the start: players and Foxglove latch them
            self._writer.add_message(channel_id=self._channel(m.topic, m.typename), log_time=m.stamp_ns,
                                     publish_time=m.stamp_ns, data=m.cdr)
            self.n_messages += 1

    def _guarded(self, step):
        """Run ``step`` (writer calls); on a write error stop recording, keeping what landed."""
        if self._writer is None:
            return
        try:
            step()
        except OSError as exc:
            path = self.files[-1] if self.files else self.path
            self.failure = f"recording: {exc.strerror or exc} ({path}; the file keeps what was written " \
                           f"before, closed)"
            log.error("recording to %s stopped: %s; the run goes on", path, exc.strerror or exc)
            self._writer = None
            self._fh.close(finished=False)

    def _channel(self, topic, typename):
        if topic not in self._channels:
            schema = self._writer.register_schema(name=typename, encoding="ros2msg",
                                                  data=self.fmt.msgdef(typename).encode())
            self._channels[topic] = self._writer.register_channel(topic=topic, message_encoding="cdr",
                                                                  schema_id=schema)
        return self._channels[topic]

    def write(self, heatmap):
        if self._writer is None:
            return
        now = time.time_ns()

        def step():
            for m in self.update_messages(heatmap):
                self._writer.add_message(channel_id=self._channel(m.topic, m.typename), log_time=m.stamp_ns,
                                         publish_time=now, data=m.cdr, sequence=heatmap.seq)
                self.n_messages += 1
            self._rotate()

        self._guarded(step)

    def stalled(self, seconds):
        """The recording keeps the /diagnostics that say the device is gone, as DDS sends them."""
        m = self.fmt.stalled(seconds, time.time_ns(), self._device)

        def step():
            self._writer.add_message(channel_id=self._channel(m.topic, m.typename), log_time=m.stamp_ns,
                                     publish_time=m.stamp_ns, data=m.cdr)
            self.n_messages += 1

        self._guarded(step)

    def close(self, summary):
        def finish():
            self._writer.finish()
            self._fh.close()
            self._writer = None

        self._guarded(finish)
