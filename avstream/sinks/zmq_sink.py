"""ZeroMQ stream for live dashboards: a PUB socket that binds, multipart messages.

Wire format (one message per update)::

    frame 0  topic    b"avstream/heatmap\\0"   (NUL-terminated: no topic is a prefix of another)
    frame 1  header   JSON, UTF-8
    frame 2  payload  the heatmap image, raw little-endian float32, rows x cols, C order

The header holds ``stamp`` (capture time of the first sample, UNIX seconds), ``t`` (seconds from
the stream start), ``seq``, ``frame_id``, ``dtype`` ("<f4"), ``shape`` ([rows, cols]), ``grid``
(geometry.grids.ImageLayout.definition: pixel -> direction), ``sources`` (this update's peaks:
azimuth_deg, elevation_deg, power), ``tracks`` (the tracked sources: id, azimuth_deg,
elevation_deg, power, velocity_deg_s, age_s, probability, silent_s; empty when tracking is
off), ``flags``, ``levels`` (per microphone since the previous update: ``rms_dbfs`` and
``peak_dbfs``, the input meters) and ``status`` (updates, skipped_updates, dropped_blocks, overflows, latency_s,
device, device_state and, with a camera, camera and camera_state). Send high-water marks are small, so a slow or dead
subscriber loses messages instead of slowing the pipeline (PUB never blocks).

With a camera, a second message per update carries the overlay picture (the map drawn on the
frame) as JPEG::

    frame 0  topic    b"avstream/overlay\0"
    frame 1  header   JSON: ``stamp`` (the frame's capture time), ``t``, ``seq`` (the heatmap's),
                      ``frame_id`` (camera optical frame), ``format`` ("jpeg"), ``shape`` [h, w, 3]
    frame 2  payload  JPEG bytes (BGR when decoded by OpenCV)

With an audio-visual engine, two more per update: ``avstream/engine_heatmap`` (the engine's
map, float32 rows x cols over the whole picture) and ``avstream/segmentation`` (the mask, uint8
255 on the sounding object); their headers have ``stamp`` (the frame's), ``t``, ``seq``,
``frame_id`` (camera optical frame), ``dtype``, ``shape`` and ``speech``. The heatmap header
also carries ``speech`` (the speech probability of the update, or null) and, with a camera,
``pixels`` (the picture map's peaks, {u, v, power}); each source has ``speech`` when known.

With tracking, each reported track's audio (its delay-and-sum beam, avstream/separate) is one
more message per update::

    frame 0  topic    b"avstream/audio/<id>\0"   (subscribe to b"avstream/audio/" for every track)
    frame 1  header   JSON: ``stamp`` (capture time of the first sample), ``t`` (its stream
                      time), ``seq``, ``id``, ``sample_rate``, ``dtype`` ("<f4"), ``n`` (samples),
                      ``azimuth_deg``, ``elevation_deg``
    frame 2  payload  float32 PCM, mono: the samples this update adds (successive messages join
                      into one continuous signal)

Subscribers choose by topic prefix; ``zmq.overlay_quality: 0`` turns the overlay off,
``zmq.source_audio: false`` the audio.

Optional CURVE encryption: the server's secret key file (from ``zmq.auth.create_certificates``)
and, for client authentication, a folder of allowed client public key files.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..geometry.grids import ImageLayout
from .base import Sink

log = logging.getLogger(__name__)
# the pipeline's counters the header carries (for dashboards)
STATUS_KEYS = ("updates", "skipped_updates", "dropped_blocks", "overflows", "latency_s", "device", "device_state", "camera_state",
               "camera")

LOOPBACK = ("127.0.0.1", "localhost", "::1")  # host names of this machine (the dashboard's too)


def on_loopback(endpoint: str) -> bool:
    """Whether a ZeroMQ endpoint is reachable from this machine only (ipc, inproc, loopback TCP)."""
    transport, _, rest = endpoint.partition("://")
    if transport != "tcp":
        return transport in ("ipc", "inproc")
    host = rest.rpartition(":")[0].strip("[]")
    return host in LOOPBACK or host.startswith("127.")


TOPIC_HEATMAP = b"avstream/heatmap\0"
TOPIC_OVERLAY = b"avstream/overlay\0"
MESSAGES_PER_UPDATE = 4 + 8  # heatmap, engine map, mask, overlay; the audio of up to 8 tracks
TOPIC_ENGINE = b"avstream/engine_heatmap\0"  # float32 rows x cols over the picture
TOPIC_SEGMENTATION = b"avstream/segmentation\0"  # uint8 mask over the picture


def load_key_file(path, secret: bool, option: str):
    """(public, secret) keys from a zmq certificate file, refusing what cannot be used."""
    import zmq.auth

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{option} {p}: key file not found")
    try:
        public, secret_key = zmq.auth.load_certificate(str(p))
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{option} {p}: not a ZeroMQ CURVE certificate ({exc})") from None
    if public is None or len(public) != 40 or (secret and (secret_key is None or len(secret_key) != 40)):
        raise ConfigError(f"{option} {p}: " + ("no secret key in it (give the .key_secret file)" if secret
                                                else "malformed public key"))
    return public, secret_key


class ZmqSink(Sink):
    """Publishes every heatmap on a bound PUB socket.

    Parameters
    ----------
    endpoint : str
        e.g. "tcp://127.0.0.1:5556" (loopback by default), "ipc:///tmp/avstream".
    hwm : int
        Send high-water mark in updates: a subscriber that falls further behind loses whole
        updates. An update is up to MESSAGES_PER_UPDATE messages (heatmap, engine map, mask,
        overlay), so the socket's own mark is that many times larger: with a mark of 2 messages
        a subscriber slowed for a moment lost the third message of an update (the mask) while
        keeping the first two.
    curve_secret_key : str or None
        Server certificate with its secret key: enables CURVE encryption.
    curve_clients : str or None
        Folder of allowed client public keys: enables client authentication (needs the above).
    frame_id : str
    """

    def __init__(self, endpoint="tcp://127.0.0.1:5556", hwm=2, curve_secret_key=None, curve_clients=None,
                 frame_id="mic_array", overlay_quality=80, camera_frame_id="camera_optical", source_audio=True,
                 next_free=0):
        import zmq

        self.endpoint, self.frame_id = endpoint, frame_id
        self.overlay_quality, self.camera_frame_id = int(overlay_quality), camera_frame_id
        self.takes_source_audio = bool(source_audio)
        self._auth = None
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.PUB)
        self.sock.setsockopt(zmq.SNDHWM, hwm * MESSAGES_PER_UPDATE)
        self.sock.setsockopt(zmq.LINGER, 0)
        try:
            if curve_secret_key:
                public, secret = load_key_file(curve_secret_key, True, "--zmq-secret-key")
                if curve_clients:
                    folder = Path(curve_clients)
                    if not folder.is_dir() or not any(folder.glob("*.key")):
                        raise ConfigError(f"--zmq-clients {folder}: no client public key files (*.key) there")
                    from zmq.auth.thread import ThreadAuthenticator

                    self._auth = ThreadAuthenticator(self.ctx)
                    self._auth.start()
                    self._auth.configure_curve(domain="*", location=str(folder))
                self.sock.curve_secretkey = secret
                self.sock.curve_publickey = public
                self.sock.curve_server = True
            elif curve_clients:
                raise ConfigError("--zmq-clients needs --zmq-secret-key (client authentication runs over CURVE)")
            self.endpoint = self._bind(endpoint, next_free)
            if not curve_secret_key and not on_loopback(self.endpoint):
                log.warning("%s is reachable from other machines and the stream is neither encrypted nor "
                            "authenticated: give --zmq-secret-key (and --zmq-clients), or bind tcp://127.0.0.1",
                            self.endpoint)
        except zmq.ZMQError as exc:
            self.close_socket()
            raise ConfigError(f"--zmq {endpoint}: cannot bind ({exc})") from None
        except ConfigError:
            self.close_socket()
            raise
        self.sent = 0

    def _bind(self, endpoint, next_free):
        """Bind ``endpoint``; with ``next_free`` > 0 and its TCP port taken (a second avstream on
        this machine), the next free port of the following ``next_free``. Returns the endpoint bound."""
        import errno

        import zmq

        host, _, port = endpoint.rpartition(":")
        tries = [endpoint] + ([f"{host}:{int(port) + k}" for k in range(1, next_free + 1)]
                              if next_free and endpoint.startswith("tcp://") and port.isdigit() else [])
        for i, ep in enumerate(tries):
            try:
                self.sock.bind(ep)
            except zmq.ZMQError as exc:
                if exc.errno != errno.EADDRINUSE or i == len(tries) - 1:
                    raise
                continue
            if i:
                log.warning("%s is in use (another avstream?): streaming on %s", endpoint, ep)
            return ep
        raise AssertionError("unreachable")

    def open(self, meta):
        self.layout = ImageLayout(meta["grid_object"])
        self.sample_rate = int(meta.get("sample_rate", 0))

    def write(self, heatmap):
        import zmq

        img = self.layout.image(heatmap.values)
        header = {"stamp": heatmap.stamp, "t": heatmap.t, "seq": heatmap.seq, "frame_id": self.frame_id,
                  "dtype": "<f4", "shape": [self.layout.rows, self.layout.cols], "grid": self.layout.definition,
                  "sources": [p.to_dict() for p in heatmap.peaks], "flags": sorted(heatmap.flags),
                  "tracks": [tr.to_dict() for tr in heatmap.tracks or []],
                  "speech": heatmap.speech, "levels": heatmap.levels,
                  "status": {k: v for k, v in (heatmap.status or {}).items() if k in STATUS_KEYS}}
        if heatmap.picture is not None:
            header["pixels"] = heatmap.picture.pixels
        try:
            self.sock.send_multipart([TOPIC_HEATMAP, json.dumps(header).encode(), img.tobytes()], flags=zmq.NOBLOCK)
            self.sent += 1
        except zmq.Again:  # no peer can take it now: drop, never wait
            pass
        pic = heatmap.picture
        if pic is not None:
            for topic, raster in ((TOPIC_ENGINE, pic.engine), (TOPIC_SEGMENTATION, pic.mask)):
                if raster is not None:
                    self._send_raster(topic, heatmap, raster)
        if heatmap.overlay is not None and self.overlay_quality > 0:
            self._send_overlay(heatmap)
        if self.takes_source_audio and heatmap.source_audio:
            self._send_audio(heatmap)

    def _send_audio(self, heatmap):
        import zmq

        stamp = heatmap.source_audio_stamp
        where = {tr.id: tr for tr in heatmap.tracks or []}
        for tid, x in heatmap.source_audio.items():
            tr = where.get(tid)
            header = {"stamp": stamp, "t": heatmap.source_audio_t, "seq": heatmap.seq, "id": tid,
                      "sample_rate": self.sample_rate, "dtype": "<f4", "n": int(len(x)),
                      "azimuth_deg": None if tr is None else round(tr.azimuth_deg, 2),
                      "elevation_deg": None if tr is None else round(tr.elevation_deg, 2)}
            try:
                self.sock.send_multipart([b"avstream/audio/%d\0" % tid, json.dumps(header).encode(),
                                          np.ascontiguousarray(x, dtype="<f4").tobytes()], flags=zmq.NOBLOCK)
                self.sent += 1
            except zmq.Again:
                pass

    def _send_raster(self, topic, heatmap, raster):
        import zmq

        stamp = heatmap.frame.stamp if heatmap.frame is not None else heatmap.stamp
        header = {"stamp": stamp, "t": heatmap.t, "seq": heatmap.seq, "frame_id": self.camera_frame_id,
                  "dtype": raster.dtype.str, "shape": list(raster.shape), "speech": heatmap.speech}
        try:
            self.sock.send_multipart([topic, json.dumps(header).encode(), np.ascontiguousarray(raster).tobytes()],
                                     flags=zmq.NOBLOCK)
            self.sent += 1
        except zmq.Again:
            pass

    def _send_overlay(self, heatmap):
        import cv2
        import zmq

        ok, jpeg = cv2.imencode(".jpg", heatmap.overlay, [cv2.IMWRITE_JPEG_QUALITY, self.overlay_quality])
        if not ok:
            return
        stamp = heatmap.frame.stamp if heatmap.frame is not None else heatmap.stamp
        header = {"stamp": stamp, "t": heatmap.t, "seq": heatmap.seq, "frame_id": self.camera_frame_id,
                  "format": "jpeg", "shape": list(heatmap.overlay.shape)}
        try:
            self.sock.send_multipart([TOPIC_OVERLAY, json.dumps(header).encode(), jpeg.tobytes()], flags=zmq.NOBLOCK)
            self.sent += 1
        except zmq.Again:
            pass

    def close(self, summary):
        self.close_socket()

    def close_socket(self):
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        self.sock.close(linger=0)
        self.ctx.term()


def subscribe(endpoint, server_key=None, client_key=None, hwm=4, topics=(TOPIC_HEATMAP,)):
    """A SUB socket on the heatmap topic, or ``topics`` (CURVE when the server's public key is given)."""
    import zmq

    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.RCVHWM, hwm)
    sock.setsockopt(zmq.LINGER, 0)
    if server_key:
        server_public, _ = load_key_file(server_key, False, "--server-key")
        if client_key:
            public, secret = load_key_file(client_key, True, "--client-key")
        else:
            public, secret = zmq.curve_keypair()
        sock.curve_serverkey = server_public
        sock.curve_publickey = public
        sock.curve_secretkey = secret
    try:
        sock.connect(endpoint)
    except zmq.ZMQError as exc:
        raise ConfigError(f"{endpoint}: cannot connect ({exc})") from None
    for topic in topics:
        sock.setsockopt(zmq.SUBSCRIBE, topic)
    return sock


def decode(frames):
    """(header dict, image ndarray) from a received heatmap message, or from an overlay message
    (a BGR uint8 picture)."""
    import numpy as np

    header = json.loads(frames[1])
    if frames[0] == TOPIC_OVERLAY:
        import cv2

        return header, cv2.imdecode(np.frombuffer(frames[2], np.uint8), cv2.IMREAD_COLOR)
    image = np.frombuffer(frames[2], dtype=header["dtype"]).reshape(header["shape"])
    return header, image
