"""One family's WebSocket connection for :class:`~backtrader_alltick.stream.StreamHub`.

A :class:`_Link` owns a reader thread that loops over sessions (connect, resubscribe, read until an
error, back off) and, per session, a writer thread for subscriptions and heartbeats that also
force-closes a connection whose heartbeats go unanswered.  Foreign errors are translated here, in
:func:`_map_errors`, and nowhere else.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING

import websocket

from . import wire
from .errors import (
    AllTickError,
    APIError,
    AuthError,
    ConnectError,
    PlanLimitError,
    ProtocolError,
    RateLimited,
    Timeout,
    TransportError,
    is_retryable,
    redact,
)
from .redaction import detached
from .stream_policy import StreamStatus, backoff, cap_subscriptions
from .symbols import Instrument

if TYPE_CHECKING:
    from .stream import StreamHub

logger = logging.getLogger("backtrader_alltick.stream")

# itick.md 11: wait for the auth verdict before subscribing; AllTick has no login message (5.1).
_AUTH_FIRST = {"itick"}
# itick.md 8.2: subscriptions add up and unsubscribe may close the socket; only AllTick replaces lists.
_ADDITIVE = {"itick"}
_COALESCE_SECONDS = 0.05  # lets feeds that subscribe together share one message
_OPCODE_CLOSE = websocket.ABNF.OPCODE_CLOSE
_READ_CHUNK = 65536

@contextlib.contextmanager
def _map_errors(safe_url: str, token: str, *, connecting: bool) -> Iterator[None]:
    # The single translation point from websocket-client and socket errors into our tree.  Foreign
    # texts may carry the URL (and so the token): redact them and raise from None; whoever keeps
    # the error (_Session.close, _Link._run) cuts the foreign one off its __context__.
    try:
        yield
    except AllTickError:
        raise
    except websocket.WebSocketBadStatusException as e:
        raise _upgrade_error(safe_url, e.status_code, e.resp_headers) from None
    except (websocket.WebSocketTimeoutException, TimeoutError) as e:
        raise Timeout(f"WebSocket {safe_url} did not answer in time ({redact(str(e), token)}); "
                      "check the network or raise connect_timeout") from None
    except (websocket.WebSocketAddressException, websocket.WebSocketProxyException,
            ConnectionRefusedError, ssl.SSLError, socket.gaierror) as e:
        raise ConnectError(f"cannot open WebSocket {safe_url}: {type(e).__name__}: "
                           f"{redact(str(e), token)}; check the ws URL and the network") from None
    except (websocket.WebSocketException, OSError) as e:
        # Framing and payload violations break the connection, not one frame: reconnecting helps.
        cls = ConnectError if connecting else TransportError
        raise cls(f"WebSocket {safe_url} failed: {type(e).__name__}: {redact(str(e), token) or 'closed'}; "
                  "the stream reconnects") from None


def _upgrade_error(safe_url: str, status: int, headers: dict | None) -> APIError:
    if status in (401, 403):
        return AuthError(f"token rejected by {safe_url} (HTTP {status}); check the token or ALLTICK_TOKEN",
                         status=status)
    if status == 429:
        retry_after = (headers or {}).get("retry-after")
        return RateLimited(f"WebSocket {safe_url} refused the upgrade (HTTP 429); reconnecting too fast",
                           status=status, retry_after=float(retry_after) if retry_after else None)
    return APIError(f"WebSocket {safe_url} refused the upgrade (HTTP {status}); "
                    "check the ws URL or retry later", status=status)


def _close_error(safe_url: str, payload: bytes, token: str) -> AllTickError:
    # RFC 6455 7.4: a close frame carries a status and a reason.  A refused token (alltick.md 7
    # "token invalid", itick.md 7.3 "auth failed", both with 1008) must end the stream, not loop.
    code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
    reason = redact(payload[2:].decode("utf-8", "replace"), token)
    said = f"close status {code}, reason {reason!r}" if code else "no close status"
    words = reason.lower()
    if "auth" in words or ("token" in words and "level" not in words):
        return AuthError(f"token rejected by {safe_url} ({said}); check the token or ALLTICK_TOKEN",
                         code=code)
    if "limit" in words or "too many" in words:
        return RateLimited(f"{safe_url} closed the connection ({said}); close other clients of this "
                           "token or wait", code=code)
    return TransportError(f"WebSocket {safe_url} was closed by the server ({said}); reconnecting")


class _ChunkedReads:
    # websocket-client asks the socket for exactly the bytes of the next frame part: two or three
    # system calls per frame, each letting the other threads take the interpreter.  This reads a
    # chunk at a time and hands out the parts it is asked for, in order.

    def __init__(self, ws: websocket.WebSocket) -> None:
        self._recv = ws._recv  # keeps websocket-client's timeout and closed-socket errors
        self._data, self._at = b"", 0
        ws.frame_buffer.recv = self.read

    def read(self, wanted: int) -> bytes:
        if self._at >= len(self._data):
            self._data, self._at = self._recv(_READ_CHUNK), 0
        part = self._data[self._at:self._at + wanted]
        self._at += len(part)
        return part


class _Session:
    # One connection, shared by its reader and writer threads; closed once, by whoever sees the end first.

    def __init__(self, ws: websocket.WebSocket, safe_url: str) -> None:
        self.ws, self.safe_url = ws, safe_url
        self.ready, self.over = threading.Event(), threading.Event()
        self.error: AllTickError | None = None
        self.is_healthy = False  # got a record, a pong or an ack: the backoff starts over
        self.last_frame = time.monotonic()
        # Liveness is judged by heartbeat answers, never by ticks: a closed market sends none.
        self.unanswered_since: float | None = None  # when the oldest unanswered heartbeat went out
        self.next_seq = 1
        self.pending: deque[int] = deque(maxlen=64)  # sequence numbers of requests awaiting an ack
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
            self.ws.sock.shutdown(socket.SHUT_RDWR)


_CONTROL = (wire.Ack, wire.Pong, wire.AuthResult, wire.Connected, wire.ServerError, APIError)
_COUNTERS = ("connects", "reconnects", "connect_failures", "frames", "records", "malformed",
             "heartbeats_sent", "heartbeats_answered", "subscribe_messages", "acks", "rejected",
             "server_errors", "callback_errors", "stale_timeouts")


class _Link:
    # One family's connection: a reader thread looping over sessions, plus a writer thread per session.
    # Each counter is written by one thread only, so plain ints need no lock.

    def __init__(self, hub: StreamHub, family: str) -> None:
        self.hub, self.family = hub, family
        self.stats: dict = dict.fromkeys(_COUNTERS, 0)
        self.stats["dropped"] = []
        self.wake = threading.Event()
        self._session: _Session | None = None
        self._down_since: int | None = None
        self._attempt = 0
        self.ended = False  # gave up (fatal): no more attempts on this link
        self.thread = threading.Thread(target=self._run, name=f"alltick-stream-{family}", daemon=True)

    def interrupt(self) -> None:
        self.wake.set()
        session = self._session
        if session is not None:
            session.close(None)

    def _run(self) -> None:
        hub = self.hub
        delays = backoff(*hub.backoff_args)
        last_attempt, retries, last_kind, floor = None, 0, "", 0.0
        while not hub._stopping.is_set():
            if last_attempt is not None:
                # Never reconnect faster than the plan allows, counted from the previous attempt.
                floor = max(floor, hub.min_reconnect_interval - (time.monotonic() - last_attempt))
                if hub._stopping.wait(max(next(delays), floor)):
                    break
            last_attempt, session = time.monotonic(), None
            self._attempt += 1
            try:
                session = self._connect()
                error = self._serve(session)
            except AllTickError as e:
                error = detached(e)  # the handshake's foreign exception holds the URL, token included
            except Exception as e:  # a defect must end the stream visibly, never leave its feeds waiting
                error = AllTickError(f"stream {self.family} failed unexpectedly ({type(e).__name__}: "
                                     f"{redact(str(e), hub._token)}); please report it")
                detached(error)
            now_ms, was_connected = hub.clock.now_ms(), session is not None and session.ready.is_set()
            if was_connected:
                # The gap to backfill starts with the last frame, not when the loss was noticed.
                silent_ms = (time.monotonic() - session.last_frame) * 1000 * hub.clock.speed
                self._down_since, self._attempt = int(now_ms - silent_ms), 0
                last_kind, retries = "connected", 0
                if session.is_healthy:
                    delays = backoff(*hub.backoff_args)
            else:
                self.stats["connect_failures"] += 1
            if hub._stopping.is_set() or error is None:
                if last_kind == "connected":
                    hub._emit(StreamStatus(self.family, "disconnected", now_ms, now_ms))
                break
            floor = getattr(error, "retry_after", None) or 0.0
            if not is_retryable(error) or not hub.reconnect or 0 <= hub.reconnections <= retries:
                with hub._lock:
                    self.ended = True  # from now on a new subscriber opens a new link
                hub._emit(StreamStatus(self.family, "fatal", now_ms, self._down_since, self._attempt, error))
                break
            if last_kind != "disconnected":
                hub._emit(StreamStatus(self.family, "disconnected", now_ms, self._down_since,
                                       self._attempt, error))
                last_kind = "disconnected"
            else:
                logger.info("stream %s attempt %d failed: %s", self.family, self._attempt, error)
            retries += 1

    def _connect(self) -> _Session:
        hub = self.hub
        url, headers = hub.dialect.ws_connect(hub.ws_root, self.family, hub._token)
        safe_url = redact(url, hub._token)
        with _map_errors(safe_url, hub._token, connecting=True):
            # UTF-8 checking in pure Python costs three quarters of the read rate; a bad byte
            # still fails in the JSON parser and is counted as a malformed frame.
            ws = websocket.create_connection(url, header=headers, timeout=hub.connect_timeout,
                                             skip_utf8_validation=True)
            # Every read is bounded; the writer's watchdog normally closes a silent socket first.
            ws.settimeout(hub.stale_after)
            _ChunkedReads(ws)
        return _Session(ws, safe_url)

    def _serve(self, session: _Session) -> AllTickError | None:
        self._session = session
        with self.hub._lock:
            # A fresh socket carries only the desired set: nothing unsubscribed lingers on it.
            self.hub._lingering.setdefault(self.family, set()).clear()
        if self.hub._stopping.is_set():
            session.close(None)
        writer = threading.Thread(target=self._write_loop, args=(session,),
                                  name=f"alltick-heartbeat-{self.family}", daemon=True)
        writer.start()
        try:
            if self.hub.dialect.NAME not in _AUTH_FIRST:
                self._on_ready(session)
            self._read_loop(session)
        except AllTickError as e:
            session.close(e)
        finally:
            session.close(TransportError(f"WebSocket {session.safe_url} closed"))
            self.wake.set()
            writer.join()
            self._session = None
            with contextlib.suppress(Exception):
                session.ws.shutdown()
        return session.error

    def _on_ready(self, session: _Session) -> None:
        session.ready.set()
        self.stats["connects"] += 1
        self.stats["reconnects"] += self.stats["connects"] > 1
        self.hub._emit(StreamStatus(self.family, "connected", self.hub.clock.now_ms(),
                                    self._down_since if self.stats["connects"] > 1 else None, self._attempt))
        self.wake.set()

    def _read_loop(self, session: _Session) -> None:
        hub, stats = self.hub, self.stats
        # recv_data, not recv: recv turns a close frame into "", losing the status and reason.
        parse, on_event, recv, monotonic = hub.dialect.parse_frame, hub.on_event, session.ws.recv_data, \
            time.monotonic
        lingering = hub._lingering.setdefault(self.family, set())
        # One translation scope for the whole loop: parsers and handlers raise only our own errors,
        # and entering a context manager per frame would cost the hot path.
        with _map_errors(session.safe_url, hub._token, connecting=False):
            while not session.over.is_set():
                opcode, text = recv()
                if opcode == _OPCODE_CLOSE or not text:
                    raise _close_error(session.safe_url, text if opcode == _OPCODE_CLOSE else b"", hub._token)
                session.last_frame = monotonic()
                stats["frames"] += 1
                try:
                    events = parse(text)
                except ProtocolError as e:
                    stats["malformed"] += 1
                    hub._emit(StreamStatus(self.family, "malformed", hub.clock.now_ms(), error=e))
                    continue
                except APIError as e:
                    events = [e]
                for event in events:
                    if isinstance(event, _CONTROL):
                        self._on_control(session, event)
                    elif not lingering or getattr(event, "symbol", None) not in lingering:
                        session.is_healthy = True
                        stats["records"] += 1
                        try:
                            on_event(event)
                        except Exception:
                            stats["callback_errors"] += 1
                            logger.exception("on_event callback failed for %r", event)

    def _on_control(self, session: _Session, event: object) -> None:
        if isinstance(event, wire.Pong):
            self.stats["heartbeats_answered"] += 1
            session.unanswered_since = None
            session.is_healthy = True
        elif isinstance(event, wire.Ack):
            # Match the echoed sequence number; dialects without one (iTick) acknowledge in order.
            if event.seq in session.pending:
                session.pending.remove(event.seq)
            elif session.pending:
                session.pending.popleft()
            self.stats["acks" if event.ok else "rejected"] += 1
            session.is_healthy |= event.ok
            if not event.ok:
                logger.warning("stream %s: server refused %s: %s", self.family, event.action, event.message)
        elif isinstance(event, wire.AuthResult) and event.ok:
            if not session.ready.is_set():
                self._on_ready(session)
        elif isinstance(event, wire.AuthResult) and "limit" in event.message.lower():
            # iTick refuses a socket over the plan's connection cap with a failed auth; the server may
            # still count our previous socket after a drop, so this one is worth a later retry.
            raise RateLimited(f"{session.safe_url} refused the connection ({event.message!r}); "
                              "close other clients of this token or wait")
        elif isinstance(event, wire.AuthResult) or str(getattr(event, "code", "")) == "401":
            message = redact(str(event.message), self.hub._token)
            raise AuthError(f"token rejected by {session.safe_url} ({message!r}); check the token",
                            code=getattr(event, "code", None))
        elif isinstance(event, AuthError):
            raise event
        elif isinstance(event, (wire.ServerError, APIError)):
            self.stats["server_errors"] += 1
            logger.warning("stream %s server error %s: %s", self.family, event.code,
                           redact(str(event.message), self.hub._token))

    def _write_loop(self, session: _Session) -> None:
        hub, stats = self.hub, self.stats
        ready_by = time.monotonic() + hub.connect_timeout
        outbox: deque[tuple[int, str]] = deque()
        sent_version = next_heartbeat = None
        last_request = float("-inf")
        while not session.over.is_set():
            self.wake.clear()
            now = time.monotonic()
            if not session.ready.is_set():
                if now >= ready_by:
                    session.close(Timeout(f"WebSocket {session.safe_url} sent no auth verdict in "
                                          f"{hub.connect_timeout} s; check the token or connect_timeout"))
                self.wake.wait(ready_by - now)
                continue
            next_heartbeat = next_heartbeat or now + hub.heartbeat_interval
            # With heartbeats every heartbeat_interval, this is stale_after after the last answer.
            stale_at = (session.unanswered_since or now) + hub.stale_after - hub.heartbeat_interval
            if now >= stale_at:
                stats["stale_timeouts"] += 1
                waited = now - session.unanswered_since
                session.close(Timeout(f"stream {self.family} got no answer to a heartbeat sent "
                                      f"{waited:.1f} s ago (stale_after={hub.stale_after} s); reconnecting"))
                return
            wake_at = min(next_heartbeat, stale_at)
            (version, changed_at), trades, depth = hub._desired(self.family)
            if version != sent_version and now < changed_at + _COALESCE_SECONDS:
                wake_at = min(wake_at, changed_at + _COALESCE_SECONDS)
            elif version != sent_version:
                # The full merged list replaces whatever was still queued (AllTick keeps the last one).
                outbox, sent_version = deque(self._subscribe_messages(session, trades, depth)), version
            if (outbox or now >= next_heartbeat) and now < last_request + hub.request_spacing:
                wake_at = min(wake_at, last_request + hub.request_spacing)
            elif outbox or now >= next_heartbeat:
                if outbox:
                    seq, text = outbox.popleft()
                    session.pending.append(seq)  # before send: the ack may arrive before send returns
                    stats["subscribe_messages"] += 1
                else:
                    text = hub.dialect.heartbeat_message(hub.clock.now_ms(), session.next_seq)
                    session.next_seq += 1
                    next_heartbeat = now + hub.heartbeat_interval
                    session.unanswered_since = session.unanswered_since or now
                    stats["heartbeats_sent"] += 1
                try:
                    with _map_errors(session.safe_url, hub._token, connecting=False):
                        session.ws.send(text)
                except AllTickError as e:
                    session.close(e)
                last_request = time.monotonic()
                continue
            self.wake.wait(max(0.0, wake_at - now))

    def _subscribe_messages(self, session: _Session, trades: list[Instrument],
                            depth: list[Instrument]) -> list[tuple[int, str]]:
        hub = self.hub
        trades, depth, dropped = cap_subscriptions(trades, depth, hub.symbol_limit,
                                                   shared=hub.dialect.NAME in _ADDITIVE)
        names = [inst.symbol for inst in dropped]
        if names and names != self.stats["dropped"]:
            error = PlanLimitError(f"plan {hub.plan.name!r} serves {hub.symbol_limit} codes per connection; "
                                   f"not subscribed: {', '.join(names)}; subscribe fewer symbols or "
                                   "choose a higher plan")
            hub._emit(StreamStatus(self.family, "dropped", hub.clock.now_ms(), error=error,
                                   symbols=tuple(names)))
        self.stats["dropped"] = names
        seq = session.next_seq
        messages = hub.dialect.subscribe_messages(self.family, trades, depth, seq)
        session.next_seq += 1
        return [(seq, text) for text in messages]
