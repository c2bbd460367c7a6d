"""One threaded HTTP server that answers REST and upgrades WebSocket requests on the same port.

Stdlib only.  The server tracks every accepted socket so that ``close()`` can cut
keep-alive and WebSocket connections and join every thread it started.  Each
WebSocket connection has a writer thread that drains an outbox with one ``sendall``
per batch, so the pusher never blocks on a slow reader.
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qsl, urlsplit

from . import websocket as ws

if TYPE_CHECKING:
    from .control import Counters

logger: logging.Logger = logging.getLogger(__name__)
OUTBOX_LIMIT = 64 << 20  # a reader this far behind is cut off, as iTick does (itick.md 8.6)


@dataclass
class Exchange:
    """An HTTP request as the dialects see it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes = b""
    raw_query: str = ""


@dataclass
class Reply:
    """An HTTP response: status, body and extra headers."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


class Connection:
    """One WebSocket connection: the handler thread reads, a writer thread sends.

    Example::

        connection.send_text('{"cmd_id":22001}')
        connection.abort()        # like a network drop: no close frame
    """

    def __init__(
        self, sock: socket.socket, rfile: ws.ByteReader, connection_id: int, path: str, counters: Counters
    ) -> None:
        self.sock = sock
        self.reader: ws.MessageReader = ws.MessageReader(rfile)
        self.id = connection_id
        self.path = path
        self.counters: Counters = counters
        self.pushed: int = 0  # push frames sent, for the drop-after-N fault
        self.closed: threading.Event = threading.Event()
        self._outbox: list[bytes] = []
        self._outbox_bytes = 0
        self._close_after_flush = False
        self._wake = threading.Condition()
        self._writer = threading.Thread(
            target=self._write_loop, name=f"sim-ws-writer-{connection_id}", daemon=True
        )
        self._writer.start()

    def send_text(self, text: str) -> None:
        self.send_frames([ws.text_frame(text)])

    def send_frames(self, frames: list[bytes], pushes: int = 0) -> None:
        if not frames:
            return
        with self._wake:
            if self._close_after_flush or self.closed.is_set():
                return
            self._outbox.extend(frames)
            self._outbox_bytes += sum(len(frame) for frame in frames)
            self.pushed += pushes
            overflow = self._outbox_bytes > OUTBOX_LIMIT
            self._wake.notify()
        if overflow:
            logger.info("connection %d: reader fell %d bytes behind; closing", self.id, self._outbox_bytes)
            self.abort()

    def send_raw_then_abort(self, data: bytes) -> None:
        """Send bytes that are not a whole frame, then cut the socket (truncated-frame fault)."""
        with self._wake:
            self._outbox.append(data)
        self.cut_after_flush()

    def cut_after_flush(self) -> None:
        """Send what is queued, then cut the socket without a close frame (a drop, but in order)."""
        with self._wake:
            self._close_after_flush = True
            self._wake.notify()

    def close(self, code: int = ws.CLOSE_NORMAL, reason: str = "") -> None:
        """Send a close frame after what is queued, then shut the socket."""
        with self._wake:
            if self._close_after_flush:
                return
            self._outbox.append(ws.close_frame(code, reason))
            self._close_after_flush = True
            self._wake.notify()

    def abort(self) -> None:
        """Cut the connection now, without a close frame (what a network drop looks like)."""
        self.closed.set()
        with self._wake:
            self._wake.notify()
        _shutdown(self.sock)

    def join(self, timeout: float = 5.0) -> None:
        self._writer.join(timeout)

    def _write_loop(self) -> None:
        while True:
            with self._wake:
                while not self._outbox and not self.closed.is_set() and not self._close_after_flush:
                    self._wake.wait()
                batch, self._outbox, self._outbox_bytes = self._outbox, [], 0
                finishing = self._close_after_flush
            if self.closed.is_set():
                return
            if batch:
                data = b"".join(batch)
                try:
                    self.sock.sendall(data)
                except OSError:
                    self.abort()
                    return
                self.counters.add("bytes_sent", len(data))
            if finishing:
                with self._wake:
                    if self._outbox:
                        continue
                self.closed.set()
                _shutdown(self.sock)
                return


class App(Protocol):
    """What a :class:`SimServer` serves: the Simulator."""

    def handle_rest(self, exchange: Exchange) -> Reply: ...

    def handle_websocket(self, exchange: Exchange, handler: RequestHandler) -> None: ...


class SimServer(ThreadingHTTPServer):
    """The listening socket; ``app`` answers REST (``handle_rest``) and WebSockets (``handle_websocket``)."""

    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: App) -> None:
        self.app = app
        self._sockets: set[socket.socket] = set()
        self._handlers: list[threading.Thread] = []
        self._sockets_lock = threading.Lock()
        super().__init__(address, RequestHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Daemon handler threads, so a script that forgets ``sim.close()`` still exits while a client
        # holds a keep-alive socket open; socketserver does not track daemon threads, so they are
        # tracked here and ``server_close`` joins them.
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=f"sim-request-{client_address[1]}",
            daemon=True,
        )
        with self._sockets_lock:
            self._sockets.add(request)
            self._handlers = [handler for handler in self._handlers if handler.is_alive()] + [thread]
        thread.start()

    def server_close(self) -> None:
        super().server_close()
        with self._sockets_lock:
            handlers, self._handlers = self._handlers, []
        for handler in handlers:
            handler.join()

    def shutdown_request(self, request: Any) -> None:
        with self._sockets_lock:
            self._sockets.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError):
            # A client that goes away before its reply (reset, broken pipe) is ordinary for a server.
            logger.debug("simulator: client %s gone (%s)", client_address[0], type(error).__name__)
            return
        logger.exception("simulator: request from %s failed", client_address[0])

    def cut_all(self) -> None:
        """Shut down every accepted socket so handler threads return."""
        with self._sockets_lock:
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)


class RequestHandler(BaseHTTPRequestHandler):
    """One HTTP connection: REST requests, or the upgrade that hands the socket to a WebSocket session."""

    server: SimServer
    protocol_version = "HTTP/1.1"
    server_version = "AllTickSim/0.1"

    def do_GET(self) -> None:  # noqa: N802 - the name http.server dispatches to
        self._dispatch()

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch()

    # Other methods get the service's own refusal (JSON, 405), not http.server's HTML 501 page.
    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch()

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch()

    def do_PATCH(self) -> None:  # noqa: N802
        self._dispatch()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base class
        # Request lines carry the AllTick token in the query string: never log them.
        pass

    def _dispatch(self) -> None:
        parts = urlsplit(self.path)
        headers = {name.lower(): value for name, value in self.headers.items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        exchange = Exchange(
            self.command,
            parts.path,
            dict(parse_qsl(parts.query, keep_blank_values=True)),
            headers,
            body,
            parts.query,
        )
        if ws.is_upgrade(self.headers):
            self.close_connection = True
            self.server.app.handle_websocket(exchange, self)
            return
        reply = self.server.app.handle_rest(exchange)
        self.write_reply(reply)

    def date_time_string(self, timestamp: float | None = None) -> str:
        # The Date header tells the service's (simulated) time, as a real service tells its own.
        clock = getattr(self.server.app, "clock", None)
        if timestamp is None and clock is not None:
            timestamp = clock.now_ms() / 1000
        return super().date_time_string(timestamp)

    def write_reply(self, reply: Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(reply.body)

    def accept_websocket(self) -> None:
        """Finish the upgrade; the caller then builds a Connection on ``self.connection``."""
        self.wfile.write(ws.handshake_response(self.headers["Sec-WebSocket-Key"], self.date_time_string()))
        self.wfile.flush()


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
