"""WebSocket transport: one connection per endpoint family, shared by every feed of a store.

Each family gets a reader thread running one ``while not stopping`` loop (connect, resubscribe the
merged set, read until an error, wait out the backoff) and, per session, a writer thread that sends
subscriptions (spaced per the plan), heartbeats, and force-closes a silent connection.  Records go
to ``on_event`` on the reader thread; connection changes go to ``on_status`` as :class:`StreamStatus`.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

from . import plans, wire
from .clock import Clock, SystemClock
from .errors import (
    ConfigError,
)
from .redaction import protect
from .stream_link import _ADDITIVE, _Link, _map_errors
from .stream_policy import KINDS, StreamStatus, SubscriptionRegistry, backoff, check_ws_url
from .symbols import Instrument, parse_symbol

__all__ = ["StreamHub", "StreamStatus", "backoff", "_map_errors"]

logger = logging.getLogger(__name__)

# alltick.md 5.3: heartbeat every 10 s, dropped after 30 s; itick.md 8.5: ping every 15-20 s, 60 s limit.
DEFAULT_HEARTBEAT_INTERVAL = {"alltick": 10.0, "itick": 20.0}
DEFAULT_STALE_AFTER = {"alltick": 30.0, "itick": 60.0}
_JITTER_FRACTION = 0.2


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
        self.ws_root, self._token, self.plan = check_ws_url(ws_root, "ws_root", token), token, plan
        protect(token, self)  # the URL carries it; websocket-client's trace logs the handshake
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

    def is_connected(self, family: str) -> bool:
        """True while the family's socket is up and subscribed (after auth, where there is one)."""
        with self._lock:
            link = self._links.get(family)
        session = link._session if link is not None else None
        return session is not None and session.ready.is_set()

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
            if (link is None or (adding and link.ended)) and self._started and not self._stopping.is_set():
                # After a fatal error a new subscriber gets one new attempt and its own verdict, not silence.
                link = self._open_link(family)
        if link is not None:
            link.wake.set()

    def _open_link(self, family: str) -> _Link:
        previous = self._links.get(family)
        link = self._links[family] = _Link(self, family)
        if previous is not None:
            link.stats = previous.stats  # its thread has ended: counters go on where they stopped
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
