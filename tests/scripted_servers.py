"""Small misbehaving servers on 127.0.0.1 for tests that the simulator cannot play.

``ScriptedWebSocketServer(script)`` accepts every WebSocket upgrade and hands the socket to
``script(sock)``, which writes frames built with :mod:`backtrader_alltick.sim.websocket`;
``connections`` counts upgrades.  ``JsonRestServer(answer)`` answers every GET with
``answer(path_and_query)`` as JSON.

Example::

    with ScriptedWebSocketServer(close_with(1008, "token invalid")) as server:
        store = AllTickStore(ws_url=server.url, ...)
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from backtrader_alltick.sim import websocket as ws


class ScriptedWebSocketServer:
    def __init__(self, script: Callable[[socket.socket], None]) -> None:
        self.script = script
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"ws://127.0.0.1:{self._listener.getsockname()[1]}"
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, name="test-ws-server", daemon=True)
        self._thread.start()

    def __enter__(self) -> ScriptedWebSocketServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() (close alone does not)
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
        self._thread.join(5)

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:  # closed
                return
            with self._lock:
                self._sockets.append(sock)
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = sock.recv(4096)
                if not chunk:
                    return
                request += chunk
            lines = request.decode("latin-1").split("\r\n")[1:]
            headers = dict(line.split(": ", 1) for line in lines if ": " in line)
            sock.sendall(ws.handshake_response(headers["Sec-WebSocket-Key"]))
            with self._lock:
                self.connections += 1
            self.script(sock)


def close_with(code: int, reason: str) -> Callable[[socket.socket], None]:
    """A script that closes the socket at once with ``code`` and ``reason`` (then drains the peer)."""

    def script(sock: socket.socket) -> None:
        sock.sendall(ws.close_frame(code, reason))
        drain(sock)

    return script


def send_then_drain(*frames: str) -> Callable[[socket.socket], None]:
    """A script that sends text frames, then reads (and ignores) whatever the client sends."""

    def script(sock: socket.socket) -> None:
        for text in frames:
            sock.sendall(ws.text_frame(text))
        drain(sock)

    return script


def drain(sock: socket.socket) -> None:
    while sock.recv(4096):
        pass


class JsonRestServer:
    def __init__(self, answer: Callable[[str], object]) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                body = json.dumps(answer(self.path)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:  # request lines carry the token
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="test-rest-server", daemon=True
        )
        self._thread.start()

    def __enter__(self) -> JsonRestServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
