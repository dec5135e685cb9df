"""What every audio source and every video source is, so the pipeline never asks which one it has.

An audio source is a synchronous core. A pull source (file, synthetic scene) gives blocks from
``read()`` and the pipeline's capture thread paces it; a push source (a PortAudio device) sets
``pushes`` and writes into the ring buffer from its own thread once ``start_stream`` is called.
"""
from __future__ import annotations


class AudioSource:
    """Base of the audio sources.

    Attributes
    ----------
    sample_rate, n_channels : int
    realtime : bool
        A pull source whose reads the capture thread paces to real time.
    pushes : bool
        Blocks arrive from the source's own thread (``start_stream``), not from ``read``.
    overflows : int
        Input overflows the device reported.
    state : str
        "running", "closed", ...: shown in the status and /diagnostics.
    device_name : str
        What the status calls the source (default: the class name).
    reconnects, gap_samples : int
        Times the source reopened after its device went away, and the samples lost meanwhile.
    """

    sample_rate: int
    n_channels: int
    realtime = False
    pushes = False
    overflows = 0
    state = "running"
    device_name = ""
    reconnects = 0
    gap_samples = 0

    def describe(self) -> str:
        return self.device_name or type(self).__name__

    def warm_up(self) -> None:
        """Compile what ``read`` runs (before capture starts), changing no state: a source
        whose first read compiles a kernel would otherwise stall the capture thread."""

    def start(self) -> None:
        """Before the first ``read``."""

    def stop(self) -> None:
        """Release the source (and close the ring buffer of a push source)."""

    def read(self):
        """The next (n_channels, n) float32 block, or None at the end."""
        raise NotImplementedError(f"{type(self).__name__} is a push source: use start_stream")

    def start_stream(self, ring, clock) -> None:
        """Push sources: start writing blocks into ``ring``, stamped by ``clock``."""
        raise NotImplementedError(f"{type(self).__name__} is a pull source: use read")

    def watch(self, quiet_s: float) -> bool:
        """Called by the pipeline about twice a second while no block arrives (``quiet_s`` since
        the last). A source that can get its device back (reopen it) tries and returns True:
        keep waiting; the others return False, and a long silence ends the run."""
        return False


class VideoSource:
    """Base of the video source cores that VideoRunner and SyncVideo drive.

    Attributes
    ----------
    kind : str
        "device", "file", "url", "gstreamer" or "synthetic".
    realtime, loop : bool
        Files: pace to real time; start again at the end.
    name : str
    size : (width, height) or None
    """

    kind = "device"
    realtime = True
    loop = False
    name = ""
    size = None

    def set_origin(self, origin) -> None:
        """``origin()`` is the audio stream's first-sample time on the stamp clock (only the
        synthetic camera, which films the audio scene, needs it)."""

    def open(self) -> None:
        raise NotImplementedError

    @property
    def opened(self) -> bool:
        raise NotImplementedError

    def read(self):
        """(image, stamp) or None when no frame came."""
        raise NotImplementedError

    def close(self) -> None:
        pass
