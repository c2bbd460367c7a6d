"""One endpoint family's WebSocket connection for the stream hub: the thread-and-socket shell.

A :class:`StreamLink` runs a reader thread that loops over connections (connect, serve, back off)
and, per connection, a writer thread.  Both threads only move bytes and wait; what to send and when,
what a frame means and when a connection is dead is decided by the connection's
:class:`~backtrader_alltick.transport.stream_protocol.StreamProtocol`.  A link knows its hub only
through a :class:`LinkHost`.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import websocket

from ..errors import AllTickError, TransportError, is_retryable, redact
from ..redaction import detached
from .read_mark import ReadMark
from .rest import parse_http_date
from .retry import backoff
from .shards import PACING_MARGIN, Pacer
from .stream_protocol import Desired, Report, StreamProtocol, StreamStatus, connection_name, new_counters
from .stream_settings import RECONNECT_JITTER, StreamSettings
from .websocket_errors import map_errors

logger: logging.Logger = logging.getLogger(__name__)

_OPCODE_CLOSE = websocket.ABNF.OPCODE_CLOSE
_OPCODE_PING, _OPCODE_PONG = websocket.ABNF.OPCODE_PING, websocket.ABNF.OPCODE_PONG
_OPCODE_TEXT, _OPCODE_BINARY = websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY
_OPCODE_CONT = websocket.ABNF.OPCODE_CONT
_READ_CHUNK = 65536


@dataclass(frozen=True)
class LinkHost:
    """What a link may use of its hub.

    ``stopping`` is set once the hub stops; ``desired((family, slot))`` returns the subscriptions
    wanted now on that connection; ``emit`` reports a status to the hub's subscribers; ``on_event``
    takes each record; ``retire(link)`` marks the link ended, so that a new subscriber opens a new
    one; ``pacer(family, "connect" | "request")`` spaces the attempts, or the subscribe requests,
    of a family's connections between them (None: no spacing); ``label((family, slot))`` names the
    connection in messages (None: the family, numbered from the second connection on).

    Example::

        host = LinkHost(threading.Event(), registry_snapshot, statuses.append, queue.put_nowait,
                        lambda link: None)
    """

    stopping: threading.Event
    desired: Callable[[tuple[str, int]], Desired]
    emit: Callable[[StreamStatus], None]
    on_event: Callable[[object], None]
    retire: Callable[[StreamLink], None]
    pacer: Callable[[str, str], Pacer] | None = None
    label: Callable[[tuple[str, int]], str] | None = None


class _FrameReader:
    # websocket-client parses each frame in several Python calls (header, length, mask, payload,
    # continuation bookkeeping) and asks the socket for each part: a third of a busy reader
    # thread.  A server's frames are unmasked (RFC 6455 5.1), so one chunk read holds many whole
    # frames: this cuts them out of the chunk directly.  Same contract as ``recv_data``: returns
    # (opcode, payload) of each text, binary or close message, answers pings, joins fragments.

    def __init__(self, ws: websocket.WebSocket, mark: ReadMark | None = None) -> None:
        self._ws = ws
        self._recv = ws._recv  # keeps websocket-client's timeout and closed-socket errors
        self._mark = mark
        self._data, self._at = b"", 0
        self._parts: list[bytes] = []
        self._first_opcode = 0

    def _need(self, count: int) -> None:
        while len(self._data) - self._at < count:
            if self._at == len(self._data) and not self._parts and self._mark is not None:
                self._wait()  # every whole message read so far has been handed out
            chunk = self._recv(_READ_CHUNK)
            self._data, self._at = self._data[self._at :] + chunk, 0

    def _wait(self) -> None:
        sock, mark = self._ws.sock, self._mark
        if sock is not None and mark is not None and not mark.wait_readable(sock, sock.gettimeout()):
            raise websocket.WebSocketTimeoutException("Connection timed out")

    def recv_data(self) -> tuple[int, bytes]:
        while True:
            self._need(2)
            data, at = self._data, self._at
            first, second = data[at], data[at + 1]
            if first & 0x70:
                raise websocket.WebSocketProtocolException("reserved bits set in a frame")
            opcode, length, head = first & 0x0F, second & 0x7F, 2
            if length == 126:
                self._need(4)
                data, at = self._data, self._at
                length, head = int.from_bytes(data[at + 2 : at + 4], "big"), 4
            elif length == 127:
                self._need(10)
                data, at = self._data, self._at
                length, head = int.from_bytes(data[at + 2 : at + 10], "big"), 10
            mask = b""
            if second & 0x80:  # a server must not mask; tolerated as websocket-client does
                self._need(head + 4)
                mask, head = self._data[self._at + head : self._at + head + 4], head + 4
            self._need(head + length)
            data, at = self._data, self._at
            payload = data[at + head : at + head + length]
            self._at = at + head + length
            if mask:
                payload = websocket.ABNF.mask(mask, payload)
            message = self._take(first & 0x80, opcode, payload)
            if message is not None:
                return message

    def _take(self, fin: int, opcode: int, payload: bytes) -> tuple[int, bytes] | None:
        if opcode == _OPCODE_CLOSE:
            with contextlib.suppress(Exception):
                self._ws.send_close()
            return opcode, payload
        if opcode == _OPCODE_PING:
            if len(payload) >= 126:
                raise websocket.WebSocketProtocolException("Ping message is too long")
            self._ws.pong(payload)
            return None
        if opcode == _OPCODE_PONG:
            return None
        if opcode == _OPCODE_CONT:
            if not self._parts:
                raise websocket.WebSocketProtocolException("continuation frame without a first frame")
        elif opcode in (_OPCODE_TEXT, _OPCODE_BINARY):
            if self._parts:
                raise websocket.WebSocketProtocolException("new message inside a fragmented one")
            if fin:
                return opcode, payload
            self._first_opcode = opcode
        else:
            raise websocket.WebSocketProtocolException(f"unknown opcode {opcode}")
        self._parts.append(payload)
        if not fin:
            return None
        message, self._parts = b"".join(self._parts), []
        return self._first_opcode, message


class _Connection:
    # One open socket, shared by its reader and writer threads; closed once, by whoever sees the end first.

    def __init__(
        self, ws: websocket.WebSocket, protocol: StreamProtocol, mark: ReadMark | None = None
    ) -> None:
        self.ws, self.protocol, self.safe_url = ws, protocol, protocol.safe_url
        self.frames = _FrameReader(ws, mark)
        self.over = threading.Event()
        self.error: AllTickError | None = None
        self._lock = threading.Lock()

    def close(self, error: AllTickError | None) -> None:
        with self._lock:
            if self.over.is_set():
                return
            self.error = error if error is None else detached(error)
            self.over.set()
        with contextlib.suppress(Exception):
            if error is None:
                self.ws.send_close()
        # Shutting the socket down wakes the reader blocked in recv().  Not ws.abort(): after
        # send_close it does nothing, and a server that never answers the close kept stop() waiting.
        with contextlib.suppress(Exception):
            sock = self.ws.sock
            if sock is not None:  # None once websocket-client has closed it itself
                sock.shutdown(socket.SHUT_RDWR)


class StreamLink:
    """One family's connection, reconnected with backoff until the hub stops or an error is fatal.

    Each counter in ``stats`` is written by one thread only, so plain ints need no lock.

    Example::

        link = StreamLink("crypto", settings, host)
        link.thread.start(); ...; link.interrupt(); link.thread.join()
    """

    def __init__(
        self,
        family: str,
        settings: StreamSettings,
        host: LinkHost,
        *,
        slot: int = 0,
        stats: dict[str, Any] | None = None,
    ) -> None:
        self.family: str = family
        self.settings: StreamSettings = settings
        self.host: LinkHost = host
        self.slot: int = slot
        self.key: tuple[str, int] = (family, slot)
        self.name: str = connection_name(family, slot)
        # A replaced link's counters go on.
        self.stats: dict[str, Any] = stats if stats is not None else new_counters()
        self.wake: threading.Event = threading.Event()
        # Kept across connections: after a drop it stays where the old socket was last read through.
        self.read_mark: ReadMark = ReadMark(settings.clock)
        self._connection: _Connection | None = None
        self._dialing: websocket.WebSocket | None = None  # the socket of a handshake under way
        self._attempt = 0
        self.ended: bool = False  # gave up (fatal): no more attempts on this link
        # Set by the hub when the connection carries no code any more; interrupt() then ends it quietly.
        self.closed: bool = False
        self._halt = threading.Event()  # interrupt() was called: no more attempts, no more waiting
        self.thread: threading.Thread = threading.Thread(
            target=self._run, name=f"alltick-stream-{self.name}", daemon=True
        )

    @property
    def is_connected(self) -> bool:
        """True while the socket is up and usable (after auth, where there is one)."""
        connection = self._connection
        return connection is not None and connection.protocol.ready

    def linger(self, symbol: str) -> None:
        """Drop records of an unsubscribed code the server goes on sending (an additive dialect)."""
        connection = self._connection
        if connection is not None:  # a fresh socket carries only the desired set: nothing lingers on it
            connection.protocol.lingering.add(symbol)

    def keep(self, symbol: str) -> None:
        """Deliver the code's records again: it has a subscriber once more."""
        connection = self._connection
        if connection is not None:
            connection.protocol.lingering.discard(symbol)

    def interrupt(self) -> None:
        """End the link: close its socket, cut a handshake or a backoff short, make no more attempts."""
        self._halt.set()
        self.wake.set()
        dialing = self._dialing
        if dialing is not None and dialing.sock is not None:
            with contextlib.suppress(Exception):
                dialing.sock.shutdown(socket.SHUT_RDWR)
        connection = self._connection
        if connection is not None:
            connection.close(None)

    def _run(self) -> None:
        settings, host = self.settings, self.host

        def fresh_delays():
            return backoff(
                settings.backoff_initial,
                settings.backoff_cap,
                factor=settings.backoff_factor,
                jitter=RECONNECT_JITTER,
            )

        delays = fresh_delays()
        last_attempt, retries, last_kind, floor = None, 0, "", 0.0
        while not self._stopping():
            if last_attempt is not None:
                # Never reconnect faster than the plan allows, counted from the previous attempt.
                interval = settings.min_reconnect_interval
                interval += PACING_MARGIN if interval else 0.0
                floor = max(floor, interval - (time.monotonic() - last_attempt))
                if self._halt.wait(max(next(delays), floor)) or self._stopping():
                    break
            if self._wait_for_turn("connect"):
                break
            connection = None
            self._attempt += 1
            try:
                try:
                    connection = self._connect()
                finally:
                    # The service timed the attempt before it answered: the spacing counts from the
                    # answer (or the failure), so a slow handshake never brings the next one early.
                    last_attempt = time.monotonic()
                    self._turn_taken("connect", last_attempt)
                error = self._serve(connection)
            except AllTickError as e:
                error = detached(e)  # the handshake's foreign exception holds the URL, token included
            except Exception as e:  # a defect must end the stream visibly, never leave its feeds waiting
                error = AllTickError(
                    f"stream {self._label()} failed unexpectedly ({type(e).__name__}: "
                    f"{redact(str(e), settings.token)}); please report it"
                )
                detached(error)
            now_ms = settings.clock.now_ms()
            if connection is not None and connection.protocol.ready:
                self._attempt = 0
                last_kind, retries = "connected", 0
                if connection.protocol.healthy:
                    delays = fresh_delays()
            else:
                self.stats["connect_failures"] += 1
            if self._stopping() or error is None:
                if last_kind == "connected" and not self.closed:  # closed: it carried nobody's codes
                    host.emit(StreamStatus(self.family, "disconnected", now_ms, slot=self.slot))
                break
            floor = getattr(error, "retry_after", None) or 0.0
            if not is_retryable(error) or not settings.reconnect or 0 <= settings.reconnections <= retries:
                host.retire(self)
                host.emit(StreamStatus(self.family, "fatal", now_ms, self._attempt, error, slot=self.slot))
                break
            if last_kind != "disconnected":
                host.emit(
                    StreamStatus(self.family, "disconnected", now_ms, self._attempt, error, slot=self.slot)
                )
                last_kind = "disconnected"
            else:
                logger.info("stream %s attempt %d failed: %s", self._label(), self._attempt, error)
            retries += 1

    def _label(self) -> str:
        return self.name if self.host.label is None else self.host.label(self.key)

    def _stopping(self) -> bool:
        # The hub sets ``stopping`` and then interrupts each link; a closed link is only interrupted.
        return self._halt.is_set() or self.host.stopping.is_set()

    def _wait_for_turn(self, kind: str) -> bool:
        # The family's other connections went first a moment ago: keep the documented spacing.
        # Returns True when the hub stopped meanwhile.
        if self.host.pacer is None:
            return False
        pacer = self.host.pacer(self.family, kind)
        while (wait := pacer.claim(self.key)) > 0:
            if self._halt.wait(wait) or self.host.stopping.is_set():
                return True
        return self._stopping()

    def _turn_taken(self, kind: str, now: float) -> None:
        if self.host.pacer is not None:
            self.host.pacer(self.family, kind).touch(self.key, now)

    def _connect(self) -> _Connection:
        settings = self.settings
        url, headers = settings.dialect.ws_connect(settings.ws_root, self.family, settings.token)
        safe_url = redact(url, settings.token)
        with map_errors(safe_url, settings.token, connecting=True):
            # UTF-8 checking in pure Python costs three quarters of the read rate; a bad byte
            # still fails in the JSON parser and is counted as a malformed frame.
            ws = websocket.WebSocket(skip_utf8_validation=True)
            ws.settimeout(settings.connect_timeout)
            self._dialing = ws  # interrupt() shuts its socket: stop() must not wait out a stalled handshake
            try:
                if self._stopping():
                    raise TransportError(f"WebSocket {safe_url}: stopped before connecting")
                ws.connect(url, header=headers)
            finally:
                self._dialing = None
            # Every read is bounded; the writer's watchdog normally closes a silent socket first.
            ws.settimeout(settings.stale_after)
        self._learn_time(ws)
        return _Connection(
            ws,
            StreamProtocol(settings, self.family, safe_url, time.monotonic(), stats=self.stats),
            self.read_mark,
        )

    def _learn_time(self, ws: websocket.WebSocket) -> None:
        # The upgrade's Date tells the service's time before its first trade: a seam anchored on that
        # trade then stands on the service's clock even where ours is far off (a simulator in 2024).
        observe = getattr(self.settings.clock, "observe_server_clock", None)
        served = parse_http_date((ws.getheaders() or {}).get("date"))
        if observe is not None and served is not None:
            observe(served)

    def _serve(self, connection: _Connection) -> AllTickError | None:
        self._connection = connection
        if self._stopping():
            connection.close(None)
        writer = threading.Thread(
            target=self._write_loop,
            args=(connection,),
            name=f"alltick-heartbeat-{self.thread.name[15:]}",
            daemon=True,
        )
        writer.start()
        try:
            self._report(connection.protocol)  # ready at once where the dialect has no login
            self._read_loop(connection)
        except AllTickError as e:
            connection.close(e)
        finally:
            connection.close(TransportError(f"WebSocket {connection.safe_url} closed"))
            self.wake.set()
            writer.join()
            self._connection = None
            with contextlib.suppress(Exception):
                connection.ws.shutdown()
        return connection.error

    def _report(self, protocol: StreamProtocol) -> None:
        notices = protocol.notices
        while notices:
            notice = notices.pop(0)
            if isinstance(notice, Report):
                self._tell(notice)
            else:  # READY, the only other notice
                self._on_ready()

    def _tell(self, report: Report) -> None:
        self.host.emit(
            StreamStatus(
                self.family,
                report.kind,
                self.settings.clock.now_ms(),
                error=report.error,
                symbols=report.symbols,
                slot=self.slot,
            )
        )

    def _on_ready(self) -> None:
        self.stats["connects"] += 1
        self.stats["reconnects"] += self.stats["connects"] > 1
        if self.closed:  # closed for want of codes while its handshake went on: nobody to tell
            return
        now_ms = self.settings.clock.now_ms()
        self.host.emit(StreamStatus(self.family, "connected", now_ms, self._attempt, slot=self.slot))
        self.wake.set()

    def _read_loop(self, connection: _Connection) -> None:
        protocol, stats = connection.protocol, self.stats
        # recv_data, not recv: recv turns a close frame into "", losing the status and reason.
        receive, notices, on_event = protocol.receive, protocol.notices, self.host.on_event
        recv, monotonic, close = connection.frames.recv_data, time.monotonic, _OPCODE_CLOSE
        handed_out = self.read_mark.handed_out
        # One translation scope for the whole loop: the protocol and the handlers raise only our own
        # errors, and entering a context manager per frame would cost the hot path.
        with map_errors(connection.safe_url, self.settings.token, connecting=False):
            while not connection.over.is_set():
                opcode, data = recv()
                records = receive(data, monotonic(), opcode == close)
                if notices:
                    self._report(protocol)
                for record in records:
                    try:
                        on_event(record)
                    except Exception:
                        stats["callback_errors"] += 1
                        logger.exception("on_event callback failed for %r", record)
                if records:
                    handed_out(records)

    def _write_loop(self, connection: _Connection) -> None:
        protocol, desired, key = connection.protocol, self.host.desired, self.key
        token = self.settings.token
        pacer = self.host.pacer(self.family, "request") if self.host.pacer is not None else None
        protocol.gate = None if pacer is None else lambda now: pacer.claim(key, now)
        while not connection.over.is_set():
            self.wake.clear()
            protocol.want(desired(key))
            now = time.monotonic()
            step = protocol.poll(now)
            for report in step.reports:
                self._tell(report)
            if step.error is not None:
                connection.close(step.error)
                return
            if step.text is not None:
                try:
                    with map_errors(connection.safe_url, token, connecting=False):
                        connection.ws.send(step.text)
                except AllTickError as e:
                    connection.close(e)
                protocol.sent(time.monotonic())
                continue
            self.wake.wait(max(0.0, step.wake_at - now))
