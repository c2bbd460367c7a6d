"""WebSocket transport: one connection per endpoint family, shared by every feed of a store.

Each family gets a reader thread running one ``while not stopping`` loop (connect, resubscribe the
merged set, read until an error, wait out the backoff) and, per session, a writer thread that sends
subscriptions (spaced per the plan), heartbeats, and force-closes a silent connection.  Records go
to ``on_event`` on the reader thread; connection changes go to ``on_status`` as :class:`StreamStatus`.
"""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator

import websocket

from . import plans, wire
from .clock import Clock, SystemClock
from .errors import (
    AllTickError,
    APIError,
    AuthError,
    ConfigError,
    ConnectError,
    ProtocolError,
    RateLimited,
    Timeout,
    TransportError,
    is_retryable,
    redact,
)
from .stream_policy import KINDS, StreamStatus, SubscriptionRegistry, backoff, cap_subscriptions
from .symbols import Instrument, parse_symbol

__all__ = ["StreamHub", "StreamStatus", "backoff"]

logger = logging.getLogger(__name__)

# alltick.md 5.3: heartbeat every 10 s, dropped after 30 s; itick.md 8.5: ping every 15-20 s, 60 s limit.
DEFAULT_HEARTBEAT_INTERVAL = {"alltick": 10.0, "itick": 20.0}
DEFAULT_STALE_AFTER = {"alltick": 30.0, "itick": 60.0}
# itick.md 11: wait for the auth verdict before subscribing; AllTick has no login message (5.1).
_AUTH_FIRST = {"itick"}
# itick.md 8.2: subscriptions add up and unsubscribe may close the socket; only AllTick replaces lists.
_ADDITIVE = {"itick"}
_COALESCE_SECONDS = 0.05  # lets feeds that subscribe together share one message
_JITTER_FRACTION = 0.2


@contextlib.contextmanager
def _map_errors(safe_url: str, token: str, *, connecting: bool) -> Iterator[None]:
    # The single translation point from websocket-client and socket errors into our tree.  Foreign
    # texts may carry the URL (and so the token): redact them and raise from None.
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


class StreamHub:
    """One WebSocket connection per endpoint family, shared by every feed of a store.

    Parameters follow the store: defaults come from the dialect (heartbeats) and the plan
    (reconnect interval, request spacing, codes per list).  ``on_event`` and ``on_status``
    run on socket threads and must not block; ``reconnections=-1`` retries forever.

    Example::

        hub = StreamHub(wire.get_dialect("alltick"), sim.ws_url, sim.token, plan,
                        on_event=queue.put_nowait, on_status=statuses.append)
        hub.subscribe("BTCUSDT"); hub.start(); ...; hub.stop()
    """

    def __init__(self, dialect, ws_root: str, token: str, plan: plans.Plan, *,
                 on_event: Callable[[object], None], on_status: Callable[[StreamStatus], None],
                 heartbeat_interval: float | None = None, stale_after: float | None = None,
                 reconnect: bool = True, reconnections: int = -1,
                 backoff_initial: float = 1.0, backoff_factor: float = 2.0, backoff_cap: float = 60.0,
                 min_reconnect_interval: float | None = None, request_spacing: float | None = None,
                 connect_timeout: float = 10.0, clock: Clock | None = None) -> None:
        self.dialect = wire.get_dialect(dialect) if isinstance(dialect, str) else dialect
        name = self.dialect.NAME
        self.heartbeat_interval = float(heartbeat_interval or DEFAULT_HEARTBEAT_INTERVAL[name])
        self.stale_after = float(stale_after or DEFAULT_STALE_AFTER[name])
        if not 0 < self.heartbeat_interval < self.stale_after:
            raise ConfigError(f"stale_after must be greater than heartbeat_interval "
                              f"({self.heartbeat_interval} s), was {self.stale_after!r}")
        if reconnections < -1:
            raise ConfigError(f"reconnections must be -1 (forever) or >= 0, was {reconnections!r}")
        self.ws_root, self._token, self.plan = ws_root, token, plan
        self.on_event, self.on_status = on_event, on_status
        self.reconnect, self.reconnections = reconnect, reconnections
        self.backoff_args = (backoff_initial, backoff_factor, backoff_cap, _JITTER_FRACTION, random.Random())
        self.min_reconnect_interval = plan.reconnect_interval if min_reconnect_interval is None \
            else float(min_reconnect_interval)
        self.request_spacing = plan.ws_request_spacing if request_spacing is None else float(request_spacing)
        self.connect_timeout = connect_timeout
        self.clock = clock or SystemClock()
        self.symbol_limit = plan.ws_symbols if name != "itick" else \
            min(plan.ws_symbols, plans.ITICK_SYMBOLS_PER_CONNECTION)
        self._lock = threading.Lock()
        self._registry = SubscriptionRegistry()
        self._versions: dict[str, tuple[int, float]] = {}  # family -> (change count, monotonic time)
        self._lingering: dict[str, set[str]] = {}  # unsubscribed symbols still flowing (additive dialect)
        self._links: dict[str, _Link] = {}
        self._started = False
        self._stopping = threading.Event()

    def __repr__(self) -> str:
        return f"StreamHub({self.dialect.NAME!r}, {self.ws_root!r}, families={sorted(self._links)})"

    def subscribe(self, inst: Instrument | str, *, trades: bool = True, depth: bool = False) -> None:
        """Add one subscriber for the instrument's trades and/or depth (reference counted)."""
        self._change(inst, trades, depth, adding=True)

    def unsubscribe(self, inst: Instrument | str, *, trades: bool = True, depth: bool = False) -> None:
        """Drop one subscriber; the code leaves the merged list when its last subscriber goes."""
        self._change(inst, trades, depth, adding=False)

    def start(self) -> None:
        """Open one connection per family that has subscribers; later families open on subscribe."""
        with self._lock:
            if self._started or self._stopping.is_set():
                return
            self._started = True
            for family in self._registry.families():
                self._open_link(family)

    def stop(self, timeout: float = 5.0) -> None:
        """Close every connection and join every thread; safe to call twice."""
        self._stopping.set()
        with self._lock:
            links = list(self._links.values())
        for link in links:
            link.interrupt()
        for link in links:
            link.thread.join(timeout)
            if link.thread.is_alive():
                logger.warning("stream thread of family %s did not stop within %s s", link.family, timeout)

    @property
    def stats(self) -> dict[str, dict]:
        """Counters per family: connects, reconnects, frames, records, malformed, heartbeats, dropped, ..."""
        with self._lock:
            return {family: dict(link.stats) for family, link in self._links.items()}

    def _change(self, inst: Instrument | str, trades: bool, depth: bool, *, adding: bool) -> None:
        inst = parse_symbol(inst)
        family = self.dialect.family(inst)
        update = self._registry.add if adding else self._registry.remove
        with self._lock:
            changes = [update(family, inst, kind) for kind, wanted in zip(KINDS, (trades, depth)) if wanted]
            if not any(changes):
                return
            lingering = self._lingering.setdefault(family, set())
            if adding:
                lingering.discard(inst.symbol)
            elif self.dialect.NAME in _ADDITIVE and not self._registry.is_wanted(family, inst):
                lingering.add(inst.symbol)
            self._versions[family] = (self._versions.get(family, (0, 0.0))[0] + 1, time.monotonic())
            link = self._links.get(family)
            if link is None and self._started and not self._stopping.is_set():
                link = self._open_link(family)
        if link is not None:
            link.wake.set()

    def _open_link(self, family: str) -> _Link:
        link = self._links[family] = _Link(self, family)
        link.thread.start()
        return link

    def _desired(self, family: str) -> tuple[tuple[int, float], list[Instrument], list[Instrument]]:
        with self._lock:
            return (self._versions.get(family, (0, 0.0)), *self._registry.desired(family))

    def _emit(self, status: StreamStatus) -> None:
        log = logger.warning if status.error is not None else logger.info
        log("stream %s %s (attempt %d)%s", status.family, status.kind, status.attempt,
            f": {status.error}" if status.error else "")
        try:
            self.on_status(status)
        except Exception:
            logger.exception("on_status callback failed for %s", status)


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
            self.error = error
            self.over.set()
        with contextlib.suppress(Exception):
            if error is None:
                self.ws.send_close()
        # abort() shuts the socket down, which wakes the reader blocked in recv().
        with contextlib.suppress(Exception):
            self.ws.abort()


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
                error = e
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
        parse, on_event, recv, monotonic = hub.dialect.parse_frame, hub.on_event, session.ws.recv, \
            time.monotonic
        lingering = hub._lingering.setdefault(self.family, set())
        # One translation scope for the whole loop: parsers and handlers raise only our own errors,
        # and entering a context manager per frame would cost the hot path.
        with _map_errors(session.safe_url, hub._token, connecting=False):
            while not session.over.is_set():
                text = recv()
                if not text:
                    raise TransportError(f"WebSocket {session.safe_url} was closed by the server; "
                                         "reconnecting")
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
            logger.warning("stream %s: plan %r serves %d codes per connection; not subscribed: %s",
                           self.family, hub.plan.name, hub.symbol_limit, ", ".join(names))
        self.stats["dropped"] = names
        seq = session.next_seq
        messages = hub.dialect.subscribe_messages(self.family, trades, depth, seq)
        session.next_seq += 1
        return [(seq, text) for text in messages]
