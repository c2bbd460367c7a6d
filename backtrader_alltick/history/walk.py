"""The walk over pages: one load of closed native K-lines, backwards through the cache and the service.

A walk starts at the newest bar the service has closed and steps back.  Stretches the cache
covers are read from it; each gap is fetched in pages of ``KLINE_LIMIT`` bars that end just
before the stretch already known, which is the fewest requests the service allows.  Every page
proves a range complete (the service returns the newest bars before the end sent), and only
proven ranges are marked covered.  A short page (fewer bars than asked) says history starts at
its oldest bar; that is believed for ``HISTORY_START_TTL_MS`` of the clock and never cached.
Where the service cannot page back (AllTick stocks: the newest 500 bars only), the newest page
is fetched and cached, and a warning says older history is unavailable.

A walk is handed everything it uses (a :class:`Service`, a :class:`KlineStore`) and calls
nothing above it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .. import timeframes
from ..clock import Clock
from ..errors import HistoryLimitWarning, ProtocolError
from ..notices import warn_user
from ..records import Kline, format_utc
from ..symbols import Instrument

logger: logging.Logger = logging.getLogger(__name__)

# How long (clock ms) a short page's "history starts here" is believed before the service is asked again.
HISTORY_START_TTL_MS = 3_600_000


class KlineService(Protocol):
    """What a walk asks of the service (:class:`~backtrader_alltick.transport.rest.RestClient`)."""

    def klines(self, inst: Instrument, period: str, count: int, end_ms: int | None) -> list[Kline]:
        """The newest ``count`` bars starting at or before ``end_ms`` (None: now), oldest first."""


class KlineStore(Protocol):
    """Where a walk keeps bars and the ranges proven complete (the store's ``KlineCache``)."""

    def missing(
        self, namespace: str, symbol: str, period: str, start_ms: int, end_ms: int
    ) -> list[tuple[int, int]]: ...

    def get(self, namespace: str, symbol: str, period: str, start_ms: int, end_ms: int) -> list[Kline]: ...

    def put(self, namespace: str, klines: Iterable[Kline]) -> int: ...

    def mark_covered(self, namespace: str, symbol: str, period: str, start_ms: int, end_ms: int) -> None: ...


class ServiceTime(Clock, Protocol):
    """The service's time as a walk reads it (:func:`~backtrader_alltick.clock.as_service_clock`)."""

    @property
    def learnt(self) -> bool:
        """Whether the service has told its time yet (a clock taken as the service's own: always)."""

    def now_ms(self) -> int:
        """The service's time now, in epoch ms."""

    def mark(self) -> int:
        """Our clock when a request is sent, to pass back to :meth:`closed_until`."""

    def closed_until(self, at: int | None = None) -> int | None:
        """Bars ending by this moment were closed by the service at our moment ``at`` (None: unknown)."""

    def observe_server_time(self, server_ms: int) -> None:
        """Learn that the service's time has reached ``server_ms``."""


@dataclass
class ServiceMemory:
    """What the service said lately, per (symbol, period), kept across the walks of one loader."""

    # The oldest bar a service that cannot page back offered this session.
    oldest_offered: dict[tuple[str, str], int] = field(default_factory=dict)
    # Where a short page said history starts, and the clock ms when it said so.
    history_starts: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class Service:
    """The service a walk pages through: its client, dialect (wire module), clock and cache namespace."""

    rest: KlineService
    dialect: Any
    clock: ServiceTime
    namespace: str
    memory: ServiceMemory = field(default_factory=ServiceMemory)


@dataclass(frozen=True)
class Progress:
    """Where a load stands, passed to ``on_progress`` after every request.

    Example::

        store.fetch_klines("BTCUSDT", "1m", count=5000, on_progress=lambda p: print(p.fraction))
    """

    symbol: str
    period: str
    requests: int  # requests this load has sent so far
    bars: int  # bars they returned
    reached_ms: int  # the loader has everything from here to the end
    start_ms: int | None
    end_ms: int

    @property
    def fraction(self) -> float | None:
        """Share of the asked range already loaded, or None for a load by count."""
        if self.start_ms is None or self.end_ms <= self.start_ms:
            return None
        return min(1.0, max(0.0, (self.end_ms - self.reached_ms) / (self.end_ms - self.start_ms)))


class PageWalk:
    """One load: walks backwards from ``hi`` through cached stretches and fetched pages.

    Example::

        walk = PageWalk(service, cache, parse_symbol("BTCUSDT"), "1m", lo, hi, 100, None, None, hi)
        bars = walk.run()   # then walk.top: every bar starting before it is closed
    """

    def __init__(
        self,
        service: Service,
        store: KlineStore,
        inst: Instrument,
        period: str,
        lo: int,
        hi: int,
        count: int | None,
        on_progress: Callable[[Progress], None] | None,
        start_ms: int | None,
        end: int,
    ) -> None:
        self.service = service
        self.store = store
        self.inst = inst
        self.period = period
        self.dialect: str = service.dialect.NAME
        self.namespace: str = service.namespace
        self.lo = lo
        self.hi = hi
        self.count = count
        self.on_progress = on_progress
        self.start_ms = start_ms
        self.end = end
        # Every bar starting before this is known closed (lowered when the service says so).
        self.top: int = hi
        self.newest_served: int | None = None  # start of the newest bar any answer of this walk held
        self.requests: int = 0
        self.fetched: int = 0
        self.warned: bool = False

    def run(self) -> list[Kline]:
        found: dict[int, Kline] = {}
        cursor = self.hi
        while cursor > self.lo and (self.count is None or len(found) < self.count):
            gaps = self.store.missing(self.namespace, self.inst.symbol, self.period, self.lo, cursor)
            if not gaps or gaps[-1][1] < cursor:
                # The stretch just below the cursor is known: read it from the cache.
                low = gaps[-1][1] if gaps else self.lo
                for bar in self.store.get(self.namespace, self.inst.symbol, self.period, low, cursor):
                    found[bar.start] = bar
                cursor = low
                continue
            if timeframes.most_bars(self.period, gaps[-1][0], cursor) == 0:
                # No bar can start in this sliver (say, before the first minute boundary).
                self.store.mark_covered(self.namespace, self.inst.symbol, self.period, gaps[-1][0], cursor)
                continue
            reached = self._fetch(gaps[-1][0], cursor, len(found))
            if reached is None:
                # The service cannot reach this gap; older stretches cached by earlier runs still count.
                cursor = gaps[-1][0]
                continue
            low, edge = reached
            if edge < cursor:
                # The service has not closed [edge, cursor) yet: nothing there is final.
                self.top = min(self.top, edge)
                cursor = edge
            elif low >= cursor:
                break
        return [found[start] for start in sorted(found)]

    def _fetch(self, gap_lo: int, cursor: int, have: int) -> tuple[int, int] | None:
        """Fetch what ends at ``cursor``, cache what the service has closed, mark what it proves.

        Returns ``(low, edge)``: every bar starting in ``[low, edge)`` is now cached (``edge`` is
        below ``cursor`` when the service has not closed everything below it yet), or None.
        """
        if self.service.dialect.can_page_back(self.inst):
            return self._fetch_page(gap_lo, cursor, have)
        return self._fetch_newest(gap_lo, cursor)

    def _fetch_page(self, gap_lo: int, cursor: int, have: int) -> tuple[int, int] | None:
        start = self._history_start()
        if start is not None and cursor <= start:
            return None  # the service said lately that nothing is older
        limit = self.service.dialect.KLINE_LIMIT
        wanted = max(1, min(limit, timeframes.most_bars(self.period, gap_lo, cursor)))
        if self.count is not None:
            wanted = min(wanted, max(1, self.count - have))
        # The service returns the newest bars starting at or before the end we send.
        sent, bars = self._request(wanted, cursor - 1)
        if not bars:
            self._nothing_served(cursor, have)
            return None
        older = [bar for bar in bars if bar.start < cursor]
        if bars and not older:
            raise ProtocolError(
                f"{self.dialect} answered a K-line request for {self.inst.symbol} {self.period} ending "
                f"at {format_utc(cursor - 1)} with newer bars only, was "
                f"{format_utc(bars[0].start)}..{format_utc(bars[-1].start)}; the service ignored the end "
                "time, so history cannot be paged"
            )
        low = max(gap_lo, self._proven_low(gap_lo, min(bar.start for bar in older), len(bars) < wanted))
        edge = min(cursor, self._closed_edge(bars, sent))
        self._keep([bar for bar in older if bar.start < edge], low, edge)
        return low, edge

    def _fetch_newest(self, gap_lo: int, cursor: int) -> tuple[int, int] | None:
        key = (self.inst.symbol, self.period)
        start = self._history_start()
        if start is not None and cursor <= start:
            return None  # the service said lately that nothing is older
        offered = self.service.memory.oldest_offered.get(key)
        if offered is not None and cursor <= offered:
            self._warn_unavailable(offered)
            return None
        limit = self.service.dialect.KLINE_LIMIT
        sent, bars = self._request(limit, None)
        if not bars:
            self._nothing_served(cursor, 0)
            return None
        low = self._proven_low(gap_lo, min(bar.start for bar in bars), len(bars) < limit)
        edge = self._closed_edge(bars, sent)
        self._keep([bar for bar in bars if bar.start < edge], low, edge)
        if len(bars) >= limit:  # a short page is remembered for a while only (_proven_low)
            self.service.memory.oldest_offered[key] = low
        edge = min(cursor, edge)
        if low >= edge:
            self.top = min(self.top, edge)
            if edge == cursor:
                self._warn_unavailable(low)
            return None
        return low, edge

    def _closed_edge(self, bars: list[Kline], sent: int) -> int:
        """Start of the oldest bar of the answer the service may not have closed; all before it have.

        A bar older than one the service has served is closed.  The newest bar is closed only
        when the service's clock, when the request was sent, had passed its end (plus the lag).
        """
        newest = bars[-1]
        if self.newest_served is None or newest.start > self.newest_served:
            self.newest_served = newest.start
        clock = self.service.clock
        clock.observe_server_time(newest.start)  # the service's time has reached the newest bar
        final = timeframes.final_at(self.period, newest.start, self.inst.market)
        if newest.start < self.newest_served:
            return timeframes.first_open_start(self.period, max(final, self.newest_served), self.inst.market)
        closed_until = clock.closed_until(sent)
        if closed_until is None or final > closed_until:
            return newest.start
        return timeframes.first_open_start(self.period, closed_until, self.inst.market)

    def _nothing_served(self, cursor: int, have: int) -> None:
        # An empty answer proves nothing: iTick sends one for a symbol the plan does not cover,
        # and a glitch looks the same.  Remembering it as "no bars" would hide the history for good.
        # Below bars already found it most likely marks the start of history: no warning then.
        logger.log(
            logging.INFO if have else logging.WARNING,
            "%s %s: the service returned no bars up to %s; nothing is cached as known, "
            "so a later load asks again",
            self.inst.symbol,
            self.period,
            format_utc(cursor),
        )

    def _proven_low(self, gap_lo: int, oldest: int, short: bool) -> int:
        """Where the proof of a page starts: at its oldest bar, or at ``gap_lo`` if no bar fits between."""
        if timeframes.most_bars(self.period, gap_lo, oldest) == 0:
            return min(gap_lo, oldest)
        if short:
            # Fewer bars than asked: the service has nothing older, it says.  A vendor incident can say
            # so too, so this is believed for a while and never cached as known.
            key = (self.inst.symbol, self.period)
            self.service.memory.history_starts[key] = (oldest, self.service.clock.now_ms())
        return oldest

    def _history_start(self) -> int | None:
        key = (self.inst.symbol, self.period)
        start, noted = self.service.memory.history_starts.get(key, (None, 0))
        if start is not None and self.service.clock.now_ms() - noted >= HISTORY_START_TTL_MS:
            del self.service.memory.history_starts[key]
            return None
        return start

    def _request(self, count: int, end_ms: int | None) -> tuple[int, list[Kline]]:
        """(our clock when the request was sent, the bars of the answer)."""
        sent = self.service.clock.mark()
        bars = self.service.rest.klines(self.inst, self.period, count, end_ms)
        self.requests += 1
        self.fetched += len(bars)
        logger.debug(
            "%s %s: %d bars up to %s (request %d)",
            self.inst.symbol,
            self.period,
            len(bars),
            "now" if end_ms is None else format_utc(end_ms),
            self.requests,
        )
        return sent, bars

    def _keep(self, bars: list[Kline], low: int, high: int) -> None:
        # Only bars the service has closed come here: a forming bar is neither cached nor returned.
        self.store.put(self.namespace, bars)
        self.store.mark_covered(self.namespace, self.inst.symbol, self.period, low, high)
        if self.on_progress is not None:
            self.on_progress(
                Progress(
                    self.inst.symbol,
                    self.period,
                    self.requests,
                    self.fetched,
                    max(low, self.lo),
                    self.start_ms,
                    self.end,
                )
            )

    def _warn_unavailable(self, oldest: int) -> None:
        if self.warned:
            return
        self.warned = True
        asked = format_utc(self.lo) if self.start_ms is not None else f"the newest {self.count} bars"
        warn_user(
            f"{self.inst.symbol}: {self.dialect} serves only the newest {self.service.dialect.KLINE_LIMIT} "
            f"{self.period} bars, so history before {format_utc(oldest)} is not available from the service "
            f"(asked from {asked}); keep the K-line cache on, which keeps what each run fetches so history "
            "grows across runs, or ask for a later fromdate",
            HistoryLimitWarning,
        )
