"""The sans-I/O half of one WebSocket connection: what to send when, and what the server's answers mean.

A :class:`StreamProtocol` holds the state of one connection of one endpoint family and is driven by
calls that carry the time, ``now`` (monotonic seconds); it does no I/O, starts no thread and reads
no clock of its own (the ``websockets`` library's protocol/connection split is the model):

- :meth:`StreamProtocol.receive` takes one frame and returns the records to deliver; control
  messages (acks, pongs, the auth verdict, server errors) are settled inside, and a close frame, a
  refused token or a connection over the plan's cap raise the error that ends the connection;
- :meth:`StreamProtocol.poll` says what the writer does next (:class:`Step`): send a subscription
  or a heartbeat, close a connection that is stale or never authenticated, or sleep until a time;
- :attr:`StreamProtocol.notices` collects what the reader reports upward: :data:`READY` and
  :class:`Report` (``malformed``); a :class:`Step` carries the writer's (``dropped``).

:class:`~backtrader_alltick.transport.stream_link.StreamLink` is the thread-and-socket shell around it.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import wire
from ..errors import (
    AllTickError,
    APIError,
    AuthError,
    PlanLimitError,
    ProtocolError,
    RateLimited,
    Timeout,
    TransportError,
    redact,
)
from ..symbols import Instrument
from .shards import PACING_MARGIN
from .stream_settings import StreamSettings
from .subscriptions import cap_subscriptions

logger: logging.Logger = logging.getLogger(__name__)

# itick.md 11: wait for the auth verdict before subscribing; AllTick has no login message (5.1).
AUTH_FIRST = frozenset({"itick"})
# itick.md 8.2: subscriptions add up and unsubscribe may close the socket; only AllTick replaces lists.
ADDITIVE = frozenset({"itick"})
COALESCE_SECONDS = 0.05  # lets feeds that subscribe together share one message
COUNTERS = (
    "connects",
    "reconnects",
    "connect_failures",
    "frames",
    "records",
    "malformed",
    "heartbeats_sent",
    "heartbeats_answered",
    "subscribe_messages",
    "acks",
    "rejected",
    "server_errors",
    "callback_errors",
    "stale_timeouts",
)
_CONTROL = (wire.Ack, wire.Pong, wire.AuthResult, wire.Connected, wire.ServerError, APIError)
# The subscriptions a hub wants on a family: (change count, monotonic time of the change, trades, depth).
Desired = tuple[int, float, list[Instrument], list[Instrument]]


@dataclass(frozen=True)
class StreamStatus:
    """A change of one family's connection state, in market time from the hub's clock.

    ``kind`` is ``connected``, ``disconnected``, ``fatal`` (no more attempts), ``malformed`` (a
    frame was skipped: whatever it carried is lost, so consumers rebuild the bars in progress
    from REST) or ``dropped`` (``symbols`` are past the plan's cap and not subscribed).  What a drop
    cut is for each consumer to work out from the bars it has (the seam rebuilds them from REST).
    ``attempt`` counts connection attempts since the last good session; ``slot`` says which of the
    family's connections it is (0: the first), ``connections`` how many the family had open then,
    and :attr:`connection` names it for people (``stock#2``, or ``stock`` when it is the only one).

    Example::

        def on_status(status):
            if status.kind == "disconnected":
                print(f"{status.connection} dropped at {status.at_ms}: {status.error}")
    """

    family: str
    kind: str
    at_ms: int
    attempt: int = 0
    error: AllTickError | None = None
    symbols: tuple[str, ...] = ()
    slot: int = 0
    connections: int = 1

    @property
    def connection(self) -> str:
        """The connection's name in messages: the family, numbered when it has several (``stock#2``)."""
        return connection_name(self.family, self.slot, self.connections)


def connection_name(family: str, slot: int, connections: int = 1) -> str:
    """``family#n`` for the n-th connection (slot n-1) of a family that has several, else ``family``.

    Example::

        connection_name("stock", 1, 2), connection_name("stock", 0, 1)   # ("stock#2", "stock")
    """
    return f"{family}#{slot + 1}" if slot or connections > 1 else family


@dataclass(frozen=True)
class Report:
    """News for the hub's subscribers: a ``malformed`` frame, or codes ``dropped`` past the cap."""

    kind: str
    error: AllTickError
    symbols: tuple[str, ...] = ()


READY = "ready"  # the notice that the connection is usable: authenticated (where there is a login) or open


@dataclass(frozen=True)
class Step:
    """The writer's next move: send ``text``, or close with ``error``, else sleep until ``wake_at``.

    ``reports`` are to be told first (codes ``dropped`` past the plan's cap).
    """

    text: str | None = None
    error: AllTickError | None = None
    wake_at: float = float("inf")
    reports: tuple[Report, ...] = ()


def new_counters() -> dict[str, Any]:
    """Return the counters of one family, all at zero (``dropped`` lists the codes past the cap)."""
    return {**dict.fromkeys(COUNTERS, 0), "dropped": []}


def close_error(safe_url: str, payload: bytes, token: str) -> AllTickError:
    """Return the error a close frame's status and reason (RFC 6455 7.4) stand for.

    A refused token (alltick.md 7 "token invalid", itick.md 7.3 "auth failed", both with 1008)
    must end the stream, not loop: it becomes AuthError; "limit" or "too many" RateLimited.
    """
    code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
    reason = redact(payload[2:].decode("utf-8", "replace"), token)
    said = f"close status {code}, reason {reason!r}" if code else "no close status"
    words = reason.lower()
    if "auth" in words or ("token" in words and "level" not in words):
        return AuthError(
            f"token rejected by {safe_url} ({said}); check the token or ALLTICK_TOKEN", code=code
        )
    if "limit" in words or "too many" in words:
        return RateLimited(
            f"{safe_url} closed the connection ({said}); close other clients of this token or wait", code=code
        )
    return TransportError(f"WebSocket {safe_url} was closed by the server ({said}); reconnecting")


class StreamProtocol:
    """The state of one connection: auth, ack matching, heartbeats, staleness, subscription pacing.

    Liveness is judged by heartbeat answers, never by ticks: a closed market sends none.  Each
    counter in ``stats`` is written by one thread only (the reader through :meth:`receive`, the
    writer through :meth:`poll`), so the shell needs no lock around them.

    Example::

        protocol = StreamProtocol(settings, "crypto", "ws://127.0.0.1:8080/...", now=0.0)
        protocol.want((1, 0.0, [parse_symbol("BTCUSDT")], []))
        protocol.poll(0.1)                     # Step(text='{"cmd_id":22004,...}')
        protocol.sent(0.1)
        protocol.receive(b'{"cmd_id":22005,"seq_id":1,"ret":200,...}', 0.2)   # [] (the ack)
    """

    def __init__(
        self,
        settings: StreamSettings,
        family: str,
        safe_url: str,
        now: float,
        *,
        stats: dict[str, Any] | None = None,
    ) -> None:
        self.settings: StreamSettings = settings
        self.family: str = family
        self.safe_url: str = safe_url
        self.stats: dict[str, Any] = stats if stats is not None else new_counters()
        self.notices: list[str | Report] = []  # READY, or a Report for the hub
        self.ready: bool = False
        self.ready_by: float = now + settings.connect_timeout
        self.healthy: bool = False  # got a record, a pong or an ack: the backoff starts over
        self.last_frame: float = now
        self.unanswered_since: float | None = None  # when the oldest unanswered heartbeat went out
        self.next_seq: int = 1
        self.pending: deque[int] = deque(maxlen=64)  # sequence numbers of requests awaiting an ack
        self.lingering: set[str] = set()  # unsubscribed codes an additive dialect still sends us
        self._parse = settings.dialect.parse_frame
        self._desired: Desired = (0, 0.0, [], [])
        self._sent_version: int | None = None
        self._outbox: deque[tuple[int, str]] = deque()
        self._next_heartbeat: float | None = None
        self._last_request = float("-inf")
        # Spacing against the family's other connections: returns 0 (and books the turn) or seconds to wait.
        self.gate: Callable[[float], float] | None = None
        if settings.dialect.NAME not in AUTH_FIRST:
            self._become_ready()

    # -- The reader's side -------------------------------------------------------------

    def receive(self, data: bytes, now: float, closing: bool = False) -> list[object]:
        """Take one frame (``closing``: a close frame) and return the records to deliver, in order.

        Raises the AllTickError that ends the connection.
        """
        if closing or not data:
            raise close_error(self.safe_url, data if closing else b"", self.settings.token)
        self.last_frame = now
        stats = self.stats
        stats["frames"] += 1
        try:
            events = self._parse(data)
        except ProtocolError as e:
            stats["malformed"] += 1
            self.notices.append(Report("malformed", e))
            return []
        except APIError as e:
            events = [e]
        lingering = self.lingering
        for event in events:  # the hot path: a frame of records only, nothing unsubscribed lingering
            if lingering or isinstance(event, _CONTROL):
                events = self._settle(events)
                break
        if events:
            self.healthy = True
            stats["records"] += len(events)
        return events

    def _settle(self, events: list) -> list:
        records, lingering = [], self.lingering
        for event in events:
            if isinstance(event, _CONTROL):
                self._on_control(event)
            elif not lingering or getattr(event, "symbol", None) not in lingering:
                records.append(event)
        return records

    def _on_control(self, event: object) -> None:
        stats, token = self.stats, self.settings.token
        if isinstance(event, wire.Pong):
            stats["heartbeats_answered"] += 1
            self.unanswered_since = None
            self.healthy = True
        elif isinstance(event, wire.Ack):
            # Match the echoed sequence number; dialects without one (iTick) acknowledge in order.
            if event.seq is not None and event.seq in self.pending:
                self.pending.remove(event.seq)
            elif self.pending:
                self.pending.popleft()
            stats["acks" if event.ok else "rejected"] += 1
            self.healthy |= event.ok
            if not event.ok:
                logger.warning("stream %s: server refused %s: %s", self.family, event.action, event.message)
        elif isinstance(event, wire.AuthResult) and event.ok:
            if not self.ready:
                self._become_ready()
        elif isinstance(event, wire.AuthResult) and "limit" in event.message.lower():
            # iTick refuses a socket over the plan's connection cap with a failed auth; the server may
            # still count our previous socket after a drop, so this one is worth a later retry.
            raise RateLimited(
                f"{self.safe_url} refused the connection ({event.message!r}); "
                "close other clients of this token or wait"
            )
        elif isinstance(event, wire.AuthResult) or (
            isinstance(event, (wire.ServerError, APIError)) and str(event.code) == "401"
        ):
            message = redact(str(event.message), token)
            raise AuthError(
                f"token rejected by {self.safe_url} ({message!r}); check the token",
                code=getattr(event, "code", None),
            )
        elif isinstance(event, AuthError):
            raise event
        elif isinstance(event, (wire.ServerError, APIError)):
            stats["server_errors"] += 1
            logger.warning(
                "stream %s server error %s: %s", self.family, event.code, redact(str(event.message), token)
            )

    def _become_ready(self) -> None:
        self.ready = True
        self.notices.append(READY)

    # -- The writer's side -------------------------------------------------------------

    def want(self, desired: Desired) -> None:
        """Note the subscriptions the hub wants now; :meth:`poll` sends them once changes settle."""
        self._desired = desired

    def poll(self, now: float) -> Step:
        """Return the writer's next move at ``now``; a Step with ``text`` is followed by :meth:`sent`."""
        settings = self.settings
        if not self.ready:
            if now >= self.ready_by:
                return Step(
                    error=Timeout(
                        f"WebSocket {self.safe_url} sent no auth verdict in "
                        f"{settings.connect_timeout} s; check the token or "
                        "connect_timeout"
                    )
                )
            return Step(wake_at=self.ready_by)
        heartbeat_interval = settings.heartbeat_interval
        next_heartbeat = self._next_heartbeat = self._next_heartbeat or now + heartbeat_interval
        # With heartbeats every heartbeat_interval, this is stale_after after the last answer.
        asked_at = self.unanswered_since or now
        stale_at = asked_at + settings.stale_after - heartbeat_interval
        if now >= stale_at:
            self.stats["stale_timeouts"] += 1
            return Step(
                error=Timeout(
                    f"stream {self.family} got no answer to a heartbeat sent "
                    f"{now - asked_at:.1f} s ago "
                    f"(stale_after={settings.stale_after} s); reconnecting"
                )
            )
        wake_at = min(next_heartbeat, stale_at)
        version, changed_at, trades, depth = self._desired
        reports: tuple[Report, ...] = ()
        if version != self._sent_version and now < changed_at + COALESCE_SECONDS:
            wake_at = min(wake_at, changed_at + COALESCE_SECONDS)
        elif version != self._sent_version:
            # The full merged list replaces whatever was still queued (AllTick keeps the last one).
            messages, reports = self._subscribe_messages(trades, depth)
            self._outbox, self._sent_version = deque(messages), version
        due = self._outbox or now >= next_heartbeat
        spacing = settings.request_spacing
        spacing += PACING_MARGIN if spacing else 0.0  # the service times a request when it reads it
        if due and now < self._last_request + spacing:
            return Step(wake_at=min(wake_at, self._last_request + spacing), reports=reports)
        if not due:
            return Step(wake_at=wake_at, reports=reports)
        wait = self.gate(now) if self._outbox and self.gate is not None else 0.0
        if wait > 0 and now < next_heartbeat:
            return Step(wake_at=min(wake_at, now + wait), reports=reports)
        if self._outbox and wait <= 0:
            seq, text = self._outbox.popleft()
            self.pending.append(seq)  # before the send: the ack may arrive before send returns
            self.stats["subscribe_messages"] += 1
            return Step(text=text, reports=reports)
        text = settings.dialect.heartbeat_message(settings.clock.now_ms(), self.next_seq)
        self.next_seq += 1
        self._next_heartbeat = now + heartbeat_interval
        self.unanswered_since = self.unanswered_since or now
        self.stats["heartbeats_sent"] += 1
        return Step(text=text)

    def sent(self, now: float) -> None:
        """Note that the last Step's text went out at ``now``: the next request waits the plan's spacing."""
        self._last_request = now

    def _subscribe_messages(
        self, trades: list[Instrument], depth: list[Instrument]
    ) -> tuple[list[tuple[int, str]], tuple[Report, ...]]:
        settings = self.settings
        reports: tuple[Report, ...] = ()
        trades, depth, dropped = cap_subscriptions(
            trades, depth, settings.symbol_limit, shared=settings.dialect.NAME in ADDITIVE
        )
        names = [inst.symbol for inst in dropped]
        if names and names != self.stats["dropped"]:
            error = PlanLimitError(
                f"plan {settings.plan.name!r} serves {settings.symbol_limit} codes per "
                f"connection; not subscribed: {', '.join(names)}; subscribe fewer symbols "
                "or choose a higher plan"
            )
            reports = (Report("dropped", error, tuple(names)),)
        self.stats["dropped"] = names
        seq = self.next_seq
        messages = settings.dialect.subscribe_messages(self.family, trades, depth, seq)
        self.next_seq += 1
        return [(seq, text) for text in messages], reports
