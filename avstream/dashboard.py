"""``avstream dashboard``: a web page over one or more avstream ZeroMQ streams.

One thread per stream subscribes (ZeroMQ SUB) and keeps only the newest update; a WebSocket
server (the ``websockets`` library, which also serves the page's two files) sends each browser
tab the newest update of the stream it selected, at most ``RATE`` times a second: a slow tab
gets fewer updates, never a queue, and never slows the run. The page (``avstream/web``) is plain
HTML and JavaScript shipped in the package: nothing is fetched from the internet.

Messages to the page: a JSON text ``{"op": "streams", "streams": [...]}`` when a tab connects
and when the set changes; per update ``{"op": "update", "stream", "header", "received"}``
followed by a binary frame ``b"H" + float32 heatmap`` and, with a camera, ``b"O" + JPEG``; and
``{"op": "stale", "stream", "since", "not_avstream"}`` while a stream sends nothing (``since``
null: nothing yet; ``not_avstream``: messages received that are not avstream's stream). The page sends
``{"select": stream}``.
"""
from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from pathlib import Path

from .errors import ConfigError
from .sinks.zmq_sink import LOOPBACK

log = logging.getLogger(__name__)
WEB = Path(__file__).parent / "web"
RATE = 20.0  # updates per second at most, per tab
STALE_S = 1.0  # a stream silent this long is reported as stale
FILES = {"/": ("index.html", "text/html; charset=utf-8"), "/app.js": ("app.js", "text/javascript; charset=utf-8")}


class _Stream:
    """The newest update of one ZeroMQ stream, filled by its subscriber thread."""

    def __init__(self, endpoint):
        self.endpoint = endpoint
        self.lock = threading.Lock()
        self.header = self.heatmap = self.overlay = None
        self.seq = -1
        self.received = None  # wall time of the newest message
        self.errors = 0


class Dashboard:
    """Serves the page on ``host:port`` and bridges ``endpoints`` (ZeroMQ PUB endpoints of
    avstream runs) to it.

    Raises
    ------
    ConfigError
        A bind address other than loopback without a token, a port in use, no endpoint.
    """

    def __init__(self, endpoints, host="127.0.0.1", port=8080, token=None):
        if not endpoints:
            raise ConfigError("avstream dashboard: give at least one ZeroMQ endpoint, e.g. tcp://127.0.0.1:5556")
        if host not in LOOPBACK and not token:
            raise ConfigError(f"--bind {host}: the page would be open to the network; give --token SECRET "
                              f"(the page is then opened as http://HOST:PORT/?token=SECRET)")
        self.host, self.port, self.token = host, int(port), token
        self.streams = {ep: _Stream(ep) for ep in endpoints}
        self._stop = threading.Event()
        self._threads: list = []
        self._loop = None
        self._ready = threading.Event()
        self._error = None

    # --- ZeroMQ side -------------------------------------------------------------------------
    def _subscribe(self, stream):
        import zmq

        ctx = zmq.Context.instance()
        sock = ctx.socket(zmq.SUB)
        sock.setsockopt(zmq.RCVHWM, 4)
        sock.setsockopt(zmq.LINGER, 0)
        for topic in (b"avstream/heatmap\0", b"avstream/overlay\0"):
            sock.setsockopt(zmq.SUBSCRIBE, topic)
        sock.connect(stream.endpoint)
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        try:
            while not self._stop.is_set():
                if not poller.poll(200):
                    continue
                parts = sock.recv_multipart()
                if len(parts) != 3 or not parts[1].startswith(b"{"):
                    stream.errors += 1
                    if stream.errors == 1:
                        log.warning("%s: a message that is not avstream's stream (ignored)", stream.endpoint)
                    continue
                topic, header, payload = parts  # the header goes to the page as it came: no parsing here
                with stream.lock:
                    stream.received = time.time()
                    if topic == b"avstream/heatmap\0":
                        stream.header, stream.heatmap = header, payload
                        stream.seq += 1
                    else:
                        stream.overlay = payload
        finally:
            sock.close()

    # --- WebSocket side ------------------------------------------------------------------------
    def _http(self, connection, request):
        """Serve the page's files; let WebSocket upgrades through (token checked first)."""
        from websockets.datastructures import Headers
        from websockets.http11 import Response

        path, _, query = request.path.partition("?")
        if self.token and f"token={self.token}" not in query.split("&"):
            return connection.respond(403, "a token is needed: open the page as /?token=SECRET\n")
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return None
        if path not in FILES:
            return connection.respond(404, "not found\n")
        name, kind = FILES[path]
        body = (WEB / name).read_bytes()
        return Response(200, "OK", Headers([("Content-Type", kind), ("Content-Length", str(len(body))),
                                            ("Cache-Control", "no-store")]), body)

    async def _client(self, ws):
        names = list(self.streams)
        selected = names[0]
        await ws.send(json.dumps({"op": "streams", "streams": names}))

        async def listen():
            nonlocal selected
            async for msg in ws:
                try:
                    want = json.loads(msg).get("select")
                except (ValueError, AttributeError):
                    continue
                if want in self.streams:
                    selected = want

        reader = asyncio.ensure_future(listen())
        sent = {}
        started = time.time()
        try:
            while not reader.done():
                s = self.streams[selected]
                with s.lock:
                    seq, header, heat, overlay, received = s.seq, s.header, s.heatmap, s.overlay, s.received
                if received is None or time.time() - received > STALE_S:
                    if time.time() - started > STALE_S:  # ... or nothing at all yet
                        await ws.send(json.dumps({"op": "stale", "stream": selected, "since": received,
                                                  "not_avstream": s.errors}))
                elif header is not None and sent.get(selected) != seq:
                    sent[selected] = seq
                    await ws.send('{"op": "update", "stream": %s, "received": %r, "header": %s}'
                                  % (json.dumps(selected), received, header.decode()))
                    await ws.send(b"H" + heat)
                    if overlay is not None:
                        await ws.send(b"O" + overlay)
                await asyncio.sleep(1.0 / RATE)
        except Exception:  # noqa: BLE001 - a tab that goes away ends its own loop, nothing else
            pass
        finally:
            reader.cancel()

    async def _serve(self):
        from websockets.asyncio.server import serve

        try:
            # no per-message deflate: JPEG and float maps hardly compress, and zlib would cost the run CPU
            server = await serve(self._client, self.host, self.port, process_request=self._http,
                                 max_size=2 ** 20, compression=None)
        except OSError as exc:
            self._error = ConfigError(f"dashboard {self.host}:{self.port}: cannot serve ({exc.strerror or exc})")
            self._ready.set()
            return
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            while not self._stop.is_set():
                await asyncio.sleep(0.1)

    def start(self) -> "Dashboard":
        """Start the subscribers and the server in background threads; returns once it listens."""
        for s in self.streams.values():
            t = threading.Thread(target=self._subscribe, args=(s,), name=f"dashboard-sub {s.endpoint}", daemon=True)
            t.start()
            self._threads.append(t)
        t = threading.Thread(target=lambda: asyncio.run(self._serve()), name="dashboard-server", daemon=True)
        t.start()
        self._threads.append(t)
        self._ready.wait(10)
        if self._error is not None:
            self.stop()
            raise self._error
        return self

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/" + (f"?token={self.token}" if self.token else "")

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(timeout=2)
