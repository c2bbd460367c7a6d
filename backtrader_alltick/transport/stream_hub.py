"""WebSocket transport: the plan's connections per endpoint family, shared by every feed of a store.

The hub keeps the reference-counted subscriptions (:mod:`.subscriptions`), places each code on one
of its family's connections (:mod:`.shards`: as many as the plan allows, each up to the plan's codes
per connection) and runs one :class:`~.stream_link.StreamLink` per connection.  Wanting more codes
than the plan serves is a ConfigError at subscribe time, never a silent drop.  Each link runs a reader thread
looping over connections (connect, resubscribe the merged set, read until an error, wait out the
backoff) and, per connection, a writer thread that sends what the connection's sans-I/O
:class:`~.stream_protocol.StreamProtocol` asks for: subscriptions (spaced per the plan),
heartbeats, and the close of a silent connection.  The hub fans each record out on the reader
thread to the receivers subscribed to its symbol, and each connection change
(:class:`~.stream_protocol.StreamStatus`) to the receivers of the codes that connection carries,
then to ``on_status``.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any

from .. import plans, wire
from ..clock import Clock
from ..records import Tick
from ..redaction import protect
from ..symbols import Instrument, parse_symbol
from .shards import PACING_MARGIN, Capacity, Pacer, Shards, over_capacity
from .stream_link import LinkHost, StreamLink
from .stream_protocol import ADDITIVE, Desired, StreamStatus, connection_name
from .stream_settings import StreamSettings
from .subscriptions import KINDS, SubscriptionRegistry

logger: logging.Logger = logging.getLogger(__name__)


class StreamHub:
    """The plan's WebSocket connections per endpoint family, shared by every feed of a store.

    Codes fill one connection before the next opens.  When a connection drops, the family's
    connections that are up take its codes into their room (:meth:`.Shards.rebalance`); the rest,
    with the ones added meanwhile, are resubscribed when it is back.  A code on a working connection
    is never moved, no connection is given more than its cap, and no code is left without one.
    A connection left without codes (all unsubscribed, or moved away after a drop) is closed, so it
    holds none of the plan's connections; the next code placed on it opens it again.
    Connection attempts and subscribe requests of different connections of a family are
    ``min_reconnect_interval`` apart (alltick.md 5.5, 6.3).  :attr:`stats` sums the counters of a
    family's connections (``links``: how many were opened).

    Parameters follow the store: defaults come from the dialect (heartbeats) and the plan
    (reconnect interval, request spacing, codes per list); :attr:`settings` holds the result.
    Each subscriber's ``on_record`` gets the records of its symbol and its ``on_status`` the
    statuses of the connection that carries it; ``on_status`` given here gets every status and
    ``on_event`` every record.  All of them run on socket threads and must not block.  A trade's
    stamp also tells the clock the service's time (``observe_server_time``, where the clock has it).
    ``reconnections=-1`` retries forever.

    Example::

        hub = StreamHub(wire.get_dialect("alltick"), sim.ws_url, sim.token, plan,
                        on_status=statuses.append)
        hub.subscribe("BTCUSDT", on_record=queue.put_nowait); hub.start(); ...; hub.stop()
    """

    def __init__(
        self,
        dialect: str | ModuleType,
        ws_root: str,
        token: str,
        plan: plans.Plan,
        *,
        on_event: Callable[[object], None] | None = None,
        on_status: Callable[[StreamStatus], None] | None = None,
        heartbeat_interval: float | None = None,
        stale_after: float | None = None,
        reconnect: bool = True,
        reconnections: int = -1,
        backoff_initial: float = 1.0,
        backoff_factor: float = 2.0,
        backoff_cap: float = 60.0,
        min_reconnect_interval: float | None = None,
        request_spacing: float | None = None,
        connect_timeout: float = 10.0,
        clock: Clock | None = None,
    ) -> None:
        self.dialect: ModuleType = wire.get_dialect(dialect) if isinstance(dialect, str) else dialect
        self.settings: StreamSettings = StreamSettings.build(
            self.dialect,
            ws_root,
            token,
            plan,
            heartbeat_interval=heartbeat_interval,
            stale_after=stale_after,
            reconnect=reconnect,
            reconnections=reconnections,
            backoff_initial=backoff_initial,
            backoff_factor=backoff_factor,
            backoff_cap=backoff_cap,
            min_reconnect_interval=min_reconnect_interval,
            request_spacing=request_spacing,
            connect_timeout=connect_timeout,
            clock=clock,
        )
        protect(token, self)  # the URL carries it; websocket-client's trace logs the handshake
        self.on_event: Callable[[object], None] | None = on_event
        self.on_status: Callable[[StreamStatus], None] | None = on_status
        self._observe = getattr(self.settings.clock, "observe_server_time", None)
        self._host = LinkHost(
            threading.Event(),
            self._desired,
            self._emit,
            self._fan_out,
            self._retire,
            self._pacer,
            self._label,
        )
        self._lock = threading.Lock()
        self._registry = SubscriptionRegistry()
        self.capacity: Capacity = Capacity.of(self.dialect.NAME, plan)
        self._shards: dict[str, Shards] = {}
        self._pacers: dict[str, tuple[Pacer, Pacer]] = {}  # family -> (connection attempts, requests)
        self._versions: dict[tuple[str, int], tuple[int, float]] = {}  # (family, slot) -> (changes, when)
        self._links: dict[tuple[str, int], StreamLink] = {}
        self._replaced: list[StreamLink] = []  # links another took the place of, joined on stop()
        self._started = False

    def __repr__(self) -> str:
        families = sorted({family for family, _ in self._links})
        return f"StreamHub({self.dialect.NAME!r}, {self.settings.ws_root!r}, families={families})"

    def subscribe(
        self,
        inst: Instrument | str,
        *,
        trades: bool = True,
        depth: bool = False,
        on_record: Callable[[object], None] | None = None,
        on_status: Callable[[StreamStatus], None] | None = None,
    ) -> None:
        """Add one subscriber for the instrument's trades and/or depth (reference counted).

        ``on_record`` then gets each record of the symbol, ``on_status`` each status of the
        connection that carries it.
        Raises ConfigError, changing nothing, when the plan cannot serve one more code.
        """
        self._change(inst, trades, depth, on_record, on_status, adding=True)

    def check(
        self, instruments: Iterable[Instrument | str], *, trades: bool = True, depth: bool = False
    ) -> None:
        """Raise ConfigError when the plan cannot serve ``instruments`` on top of today's subscriptions.

        Lets a caller with a whole universe fail before it subscribes (and connects) anything.
        """
        del trades, depth  # a code takes one place whatever its kinds
        with self._lock:
            counts = {family: len(shards) for family, shards in self._shards.items()}
            for inst in dict.fromkeys(parse_symbol(item) for item in instruments):
                family = self.dialect.family(inst)
                if not self._registry.is_wanted(family, inst):
                    counts[family] = counts.get(family, 0) + 1
        error = over_capacity(self.capacity, counts)
        if error is not None:
            raise error

    def unsubscribe(
        self,
        inst: Instrument | str,
        *,
        trades: bool = True,
        depth: bool = False,
        on_record: Callable[[object], None] | None = None,
        on_status: Callable[[StreamStatus], None] | None = None,
    ) -> None:
        """Drop one subscriber (the same arguments); the code leaves the merged list with its last one."""
        self._change(inst, trades, depth, on_record, on_status, adding=False)

    def start(self) -> None:
        """Open one connection per family that has subscribers; later families open on subscribe."""
        with self._lock:
            if self._started or self._host.stopping.is_set():
                return
            self._started = True
            for family in self._registry.families():
                for slot, size in enumerate(self._shards[family].sizes()):
                    if size:
                        self._open_link(family, slot)

    def stop(self, timeout: float = 5.0) -> None:
        """Close every connection and join every thread; safe to call twice."""
        self._host.stopping.set()
        with self._lock:
            links = [*self._links.values(), *self._replaced]
        for link in links:
            link.interrupt()
        for link in links:
            link.thread.join(timeout)
            if link.thread.is_alive():
                logger.warning("stream thread of %s did not stop within %s s", link.name, timeout)

    def is_connected(self, family: str, inst: Instrument | str | None = None) -> bool:
        """True while every socket of the family is up (after auth, where there is one); with
        ``inst``, while the socket that carries it is."""
        with self._lock:
            if inst is None:
                links = [
                    link for (name, _), link in self._links.items() if name == family and not link.closed
                ]
            else:
                shards = self._shards.get(family)
                slot = shards.slot_of(parse_symbol(inst)) if shards is not None else None
                link = self._links.get((family, slot)) if slot is not None else None
                links = [link] if link is not None else []
        return bool(links) and all(link.is_connected for link in links)

    def read_through(
        self, family: str, inst: Instrument | str, now_ms: int, grace_ms: int = 0, *, fresh: bool = False
    ) -> int:
        """Market ms through which the connection that carries ``inst`` has handed out every record it
        received: ``now_ms`` (read before calling) when nothing is unread, earlier while its reader is
        behind or while the service sends later than ``grace_ms`` after the stamps (see
        :class:`~.read_mark.ReadMark`).  A bar closes only once this has passed its end plus grace."""
        with self._lock:
            shards = self._shards.get(family)
            slot = shards.slot_of(parse_symbol(inst)) if shards is not None else None
            link = self._links.get((family, slot)) if slot is not None else None
        # Without a connection no trade can be unread, and a live bar has none to wait for.
        return now_ms if link is None else link.read_mark.through(now_ms, grace_ms, fresh=fresh)

    @property
    def stats(self) -> dict[str, dict[str, Any]]:
        """Counters per family, summed over its connections: connects, reconnects, frames, records,
        malformed, heartbeats, dropped, ...; ``links``: the connections opened."""
        with self._lock:
            links = list(self._links.items())
        out: dict[str, dict[str, Any]] = {}
        for (family, _), link in sorted(links, key=lambda item: item[0]):
            total = out.setdefault(family, {"links": 0})
            total["links"] += 1
            for key, value in link.stats.items():
                total[key] = total.get(key, [] if isinstance(value, list) else 0) + value
        return out

    def placement(self, family: str) -> list[int]:
        """Codes per connection of ``family``, connection 0 first."""
        with self._lock:
            shards = self._shards.get(family)
            return shards.sizes() if shards is not None else []

    def _change(
        self, inst: Instrument | str, trades: bool, depth: bool, on_record, on_status, *, adding: bool
    ) -> None:
        inst = parse_symbol(inst)
        family = self.dialect.family(inst)
        update = self._registry.add if adding else self._registry.remove
        closing: StreamLink | None = None
        closing_name = ""
        with self._lock:
            shards = self._shards.setdefault(family, Shards(self.capacity.per_link))
            if adding and shards.slot_of(inst) is None:
                counts = {name: len(placed) for name, placed in self._shards.items()}
                counts[family] += 1
                error = over_capacity(self.capacity, counts)
                if error is not None:
                    raise error
            route = self._registry.attach if adding else self._registry.detach
            route(family, inst, on_record, on_status)
            changes = [update(family, inst, kind) for kind, wanted in zip(KINDS, (trades, depth)) if wanted]
            if not any(changes):
                return
            wanted = self._registry.is_wanted(family, inst)
            slot = shards.place(inst) if wanted else shards.slot_of(inst)
            if slot is None:
                return
            key = (family, slot)
            link = self._links.get(key)
            if link is not None and adding:
                link.keep(inst.symbol)
            elif link is not None and self.dialect.NAME in ADDITIVE and not wanted:
                link.linger(inst.symbol)
            if not wanted:
                # Its room goes to the next new code; until then, the connection's list just shrinks.
                shards.release(inst)
                if link is not None and not shards.sizes()[slot]:
                    closing_name = self._label_locked(key)
                    closing = self._close_empty(link)
            self._versions[key] = (self._versions.get(key, (0, 0.0))[0] + 1, time.monotonic())
            opening = self._started and not self._host.stopping.is_set()
            if (link is None or (adding and (link.ended or link.closed))) and opening and wanted:
                # After a fatal error a new subscriber gets one new attempt and its own verdict, not silence.
                link = self._open_link(family, slot)
        if closing is not None:
            logger.info("stream %s closed: it carries no code", closing_name)
            closing.interrupt()  # out of the lock: closing the socket sends a frame
        elif link is not None:
            link.wake.set()

    def _open_link(self, family: str, slot: int) -> StreamLink:
        previous = self._links.get((family, slot))
        if previous is not None:
            self._replaced = [link for link in self._replaced if link.thread.is_alive()]
            self._replaced.append(previous)
        # A replaced link has ended (fatal) or is ending (closed without codes): its counters go on.
        link = self._links[(family, slot)] = StreamLink(
            family,
            self.settings,
            self._host,
            slot=slot,
            stats=previous.stats if previous is not None else None,
        )
        link.thread.start()
        return link

    def _close_empty(self, link: StreamLink) -> StreamLink | None:
        # Under the lock.  A connection without codes would only hold one of the plan's connections
        # (and be reconnected after each drop): it is closed, and the next code placed on its slot
        # opens a new one.  Returns the link for the caller to interrupt out of the lock.
        if link.closed or link.ended:
            return None
        link.closed = True
        return link

    def _label(self, key: tuple[str, int]) -> str:
        with self._lock:
            return self._label_locked(key)

    def _label_locked(self, key: tuple[str, int]) -> str:
        return connection_name(*key, self._open_count(key[0]))

    def _open_count(self, family: str) -> int:
        # Under the lock: the family's connections, open or being opened (a closed one no longer counts).
        return sum(name == family and not link.closed for (name, _), link in self._links.items())

    def _desired(self, key: tuple[str, int]) -> Desired:
        family, slot = key
        with self._lock:
            version, changed_at = self._versions.get(key, (0, 0.0))
            trades, depth = self._registry.desired(family)
            shards = self._shards.get(family)
            if shards is not None:
                trades = [inst for inst in trades if shards.slot_of(inst) == slot]
                depth = [inst for inst in depth if shards.slot_of(inst) == slot]
            return (version, changed_at, trades, depth)

    def _pacer(self, family: str, kind: str) -> Pacer:
        # One pair per family: its connections' attempts, and their requests, are spaced between them.
        with self._lock:
            pacers = self._pacers.get(family)
            if pacers is None:
                spacing = self.settings.min_reconnect_interval
                spacing += PACING_MARGIN if spacing else 0.0
                pacers = self._pacers[family] = (Pacer(spacing), Pacer(spacing))
            return pacers[0] if kind == "connect" else pacers[1]

    def _retire(self, link: StreamLink) -> None:
        with self._lock:
            link.ended = True  # from now on a new subscriber opens a new link

    def _fan_out(self, record: object) -> None:
        # The reader thread's hot path: one lookup, then the symbol's receivers.
        if self._observe is not None and type(record) is Tick:
            self._observe(record.time)  # keeps "is this bar closed?" on the service's time
        if self.on_event is not None:
            self.on_event(record)
        # A record without a symbol (none today) reaches no receiver: no symbol is "".
        for receiver in self._registry.receivers.get(getattr(record, "symbol", ""), ()):
            receiver(record)

    def _emit(self, status: StreamStatus) -> None:
        with self._lock:
            status = dataclasses.replace(status, connections=self._open_count(status.family))
        log = logger.warning if status.error is not None else logger.info
        log(
            "stream %s %s (attempt %d)%s",
            status.connection,
            status.kind,
            status.attempt,
            f": {status.error}" if status.error else "",
        )
        moved: dict[Instrument, int] = {}
        if status.kind in ("disconnected", "fatal"):
            moved = self._rebalance(status.family, status.slot)
        # Each status reaches the subscribers of the codes its connection carries, never the
        # family's other connections' (theirs are fine).
        self._tell(self._status_receivers(status.family, status.slot), status)
        if moved:
            # They were on the dropped connection, so they lost trades: down, then up where they are now.
            down = dataclasses.replace(status, kind="disconnected")
            for inst, slot in moved.items():
                receivers = self._status_receivers(status.family, slot, (inst,))
                self._tell(receivers, down)
                self._tell(receivers, dataclasses.replace(down, kind="connected", error=None, slot=slot))
        if self.on_status is not None:
            self._tell((self.on_status,), status)

    def _status_receivers(
        self, family: str, slot: int, codes: Iterable[Instrument] | None = None
    ) -> tuple[Callable[[StreamStatus], None], ...]:
        with self._lock:
            shards = self._shards.get(family)
            if codes is None:
                codes = shards.codes_on(slot) if shards is not None else ()
            routes = self._registry.status_receivers
            # A subscriber of several codes on one connection hears each status once.
            return tuple(
                dict.fromkeys(receiver for inst in codes for receiver in routes.get(inst.symbol, ()))
            )

    @staticmethod
    def _tell(receivers: Iterable[Callable[[StreamStatus], None]], status: StreamStatus) -> None:
        for receiver in receivers:
            try:
                receiver(status)
            except Exception:
                logger.exception("on_status callback failed for %s", status)

    def _rebalance(self, family: str, slot: int) -> dict[Instrument, int]:
        # The dropped connection's codes are served by nobody until it is back: the family's
        # connections that are up take what they have room for (each re-sends its list; the codes
        # it already serves go on), the rest wait for their own connection.
        with self._lock:
            shards = self._shards.get(family)
            if shards is None or self._host.stopping.is_set():
                return {}
            up = [
                index
                for (name, index), link in self._links.items()
                if name == family and link.is_connected and not link.ended
            ]
            moved = shards.rebalance(slot, up)
            if not moved:
                return moved
            now = time.monotonic()
            for key in {(family, slot), *((family, index) for index in moved.values())}:
                self._versions[key] = (self._versions.get(key, (0, 0.0))[0] + 1, now)
            links = [self._links[(family, index)] for index in sorted(set(moved.values()))]
            names = [self._label_locked(key) for key in ((family, slot), *(link.key for link in links))]
            down = self._links.get((family, slot))
            closing = self._close_empty(down) if down is not None and not shards.sizes()[slot] else None
        logger.info("stream %s: %d codes moved to %s", names[0], len(moved), ", ".join(names[1:]))
        for link in links:
            link.wake.set()
        if closing is not None:
            logger.info("stream %s closed: it carries no code", names[0])
            closing.interrupt()
        return moved
