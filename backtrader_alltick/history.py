"""History loading: closed native K-lines from the cache first, the service only for what is missing.

Glue between :class:`~backtrader_alltick.transport.rest.RestClient` and
:class:`~backtrader_alltick.cache.KlineCache`; it does no network or disk I/O of its own.

The loader walks backwards from the newest closed bar.  Covered stretches come from the
cache; each gap is fetched in pages of ``KLINE_LIMIT`` bars that end just before the
stretch already known, which is the fewest requests the service allows (100,000
one-minute bars of BTCUSDT: 200 requests cold, 0 warm).  Every page proves a range
complete (the service returns the newest bars before the end we sent), and only those
proven ranges are marked covered.  A short page (fewer bars than asked) says history
starts at its oldest bar; that is believed for ``HISTORY_START_TTL_MS`` of the clock and
never cached, so one short answer during a vendor incident cannot hide history for good.
Where the service cannot page back (AllTick stocks:
the newest 500 bars only), the newest page is fetched and cached, and a warning says
older history is unavailable: the cache keeps accumulating it across runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from . import param_checks, timeframes
from .bars import combine_closed
from .cache import MEMORY, KlineCache
from .clock import CLOSE_LAG_S, Clock, ServiceClock, as_service_clock
from .errors import ConfigError, ProtocolError, UnsupportedTimeframe
from .markets import DAY_MS, MINUTE_MS
from .records import Kline, format_utc
from .symbols import Instrument, parse_symbol
from .timeframes import BarSpec, first_slot_start
from .transport.rest import RestClient
from .wire._decode import EARLIEST_MS

logger = logging.getLogger(__name__)

# How long (clock ms) a short page's "history starts here" is believed before the service is asked again.
HISTORY_START_TTL_MS = 3_600_000

_HOUR_MS = 3_600_000
# Shortest possible length of a bar (a DST day lasts 23 hours, February 28 days): bounds
# how many bars fit into a range.
_SHORTEST_MS = {"day": DAY_MS - _HOUR_MS, "week": 7 * DAY_MS - _HOUR_MS, "month": 28 * DAY_MS - _HOUR_MS}


@dataclass(frozen=True)
class Progress:
    """Where a load stands, passed to ``on_progress`` after every request.

    Example::

        loader.load("BTCUSDT", "1m", start, end, on_progress=lambda p: bar.update(p.fraction))
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


class HistoryLoader:
    """Load closed K-lines of one native period, cached, in as few requests as the service allows.

    Parameters
    ----------
    rest : RestClient
        Sends the K-line requests.
    cache : KlineCache or None
        Where bars and coverage persist; None keeps nothing between loads.
    dialect : module
        The wire module (``wire.get_dialect(name)``).
    clock : Clock
        The service's time.  A :class:`~backtrader_alltick.clock.ServiceClock` (the store's)
        learns it from the answers, and a bar is closed only when the service's time has passed
        its end; any other clock is taken as the service's own (a simulator's, in its process).
        A ServiceClock also becomes ``rest``'s clock if it has none, to learn from every answer.
    namespace : str, optional
        The name bars are cached under; default the dialect's name.  Pass
        ``cache_namespace(dialect, rest_url)`` to keep bars of a simulator or another
        host apart from the real service's in a shared cache file.

    Example::

        loader = HistoryLoader(client, KlineCache(), wire.get_dialect("alltick"), SystemClock())
        bars = loader.load("BTCUSDT", "1m", count=100_000)   # 200 requests cold, none warm
    """

    def __init__(self, rest: RestClient, cache: KlineCache | None, dialect: Any, clock: Clock,
                 namespace: str | None = None) -> None:
        self.rest = rest
        self.cache = cache
        self.dialect = dialect
        self.clock = as_service_clock(clock)
        if isinstance(self.clock, ServiceClock) and getattr(rest, "clock", False) is None:
            rest.clock = self.clock  # the client's answers tell the service's time (HTTP Date)
        self.namespace = namespace or dialect.NAME
        # Per (symbol, period): the oldest bar a non-pageable service offered this session.
        self._oldest_offered: dict[tuple[str, str], int] = {}
        # Per (symbol, period): (where a short page said history starts, clock ms when it said so).
        self._history_starts: dict[tuple[str, str], tuple[int, int]] = {}

    def __repr__(self) -> str:
        return f"HistoryLoader(namespace={self.namespace!r}, cache={self.cache!r})"

    def load(self, inst: Instrument | str, period: str, start_ms: int | None = None,
             end_ms: int | None = None, count: int | None = None,
             on_progress: Callable[[Progress], None] | None = None) -> list[Kline]:
        """Return closed bars, oldest first, without duplicates.

        Bars satisfy ``start_ms <= bar.start`` and ``bar.end <= end_ms`` (``end_ms`` None:
        the service's now).  With ``count``, only the newest ``count`` of them; with neither
        ``start_ms`` nor ``count``, the newest ``KLINE_LIMIT`` bars.
        """
        return self.load_closed(inst, period, start_ms, end_ms, count, on_progress)[0]

    def load_closed(self, inst: Instrument | str, period: str, start_ms: int | None = None,
                    end_ms: int | None = None, count: int | None = None,
                    on_progress: Callable[[Progress], None] | None = None) -> tuple[list[Kline], int]:
        """:meth:`load`, and the moment up to which the bars are complete: every bar of the window
        final by it (:func:`timeframes.final_at`) is in the list; later ones the service had not
        closed (or were not asked for)."""
        inst = parse_symbol(inst)
        natives = tuple(self.dialect.native_periods(inst))
        if period not in natives:
            raise UnsupportedTimeframe(period, inst.symbol, natives,
                                       f"not a native {self.dialect.NAME} period")
        param_checks.check_window(start_ms, end_ms, ("start_ms", "end_ms"))
        if count is not None and count < 1:
            raise ConfigError(f"count must be 1 or more, was {count!r}")
        most = bars_since_earliest(period, self.clock.now_ms())
        if count is not None and count > most:
            raise ConfigError(f"count must be at most {most:,}, the {period} bars since 1970 (no service has "
                              f"older ones), was {count:,}")
        if start_ms is None and count is None:
            count = self.dialect.KLINE_LIMIT
        lo = 0 if start_ms is None else int(start_ms)
        learnt = self.clock.learnt
        store = self.cache if self.cache is not None else KlineCache(MEMORY)
        try:
            end, hi = self._window(period, inst, end_ms)
            while True:
                walk = _Walk(self, store, inst, period, lo, hi, count, on_progress, start_ms, end)
                bars = walk.run()
                if learnt or not self.clock.learnt:
                    break
                # Before the service told its time, our clock only aimed the first request; if it ran
                # behind the service's, the present just learnt may hold more closed bars.
                learnt = True
                later_end, later = self._window(period, inst, end_ms)
                if later <= hi:
                    break
                end, hi = later_end, later
        finally:
            if store is not self.cache:
                store.close()
        # The walk holds every bar starting before hi, or only those starting before the top the
        # service has closed: every bar final by that moment is here.
        proven = min(walk.top, walk.hi)
        bars = [bar for bar in bars if bar.start < proven and (end_ms is None or bar.end <= end_ms)
                and (start_ms is None or bar.start >= start_ms)]
        if count is not None:
            bars = bars[-count:]
        logger.info("loaded %d closed %s bars of %s (%d requests)", len(bars), period, inst.symbol,
                    walk.requests)
        return bars, proven

    def _window(self, period: str, inst: Instrument, end_ms: int | None) -> tuple[int, int]:
        """(the end of the window, the start of the first bar to leave out), by the service's now.

        Only bars the service has closed count, and only those are ever cached (_Walk._closed_edge):
        a bar not final by now, or stamped after ``end_ms``, is left out.
        """
        now = self.clock.now_ms() - int(CLOSE_LAG_S * 1000 * self.clock.speed)
        hi = _first_open_start(period, inst, now)
        if end_ms is None:
            return now, hi
        return min(int(end_ms), now), min(hi, _first_stamped_after(period, inst, int(end_ms)))


class _Walk:
    """One load: walks backwards from ``hi`` through cached stretches and fetched pages."""

    def __init__(self, loader: HistoryLoader, store: KlineCache, inst: Instrument, period: str, lo: int,
                 hi: int, count: int | None, on_progress: Callable[[Progress], None] | None,
                 start_ms: int | None, end: int) -> None:
        self.loader, self.store, self.inst, self.period = loader, store, inst, period
        self.dialect = loader.dialect.NAME
        self.namespace = loader.namespace
        self.lo, self.hi, self.count = lo, hi, count
        self.on_progress, self.start_ms, self.end = on_progress, start_ms, end
        self.top = hi  # every bar starting before this is known closed (lowered when the service says so)
        self.newest_served: int | None = None  # start of the newest bar any answer of this walk held
        self.requests = 0
        self.fetched = 0
        self.warned = False

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
            if _most_bars(self.period, gaps[-1][0], cursor) == 0:
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
        if self.loader.dialect.can_page_back(self.inst):
            return self._fetch_page(gap_lo, cursor, have)
        return self._fetch_newest(gap_lo, cursor)

    def _fetch_page(self, gap_lo: int, cursor: int, have: int) -> tuple[int, int] | None:
        start = self._history_start()
        if start is not None and cursor <= start:
            return None  # the service said lately that nothing is older
        limit = self.loader.dialect.KLINE_LIMIT
        wanted = max(1, min(limit, _most_bars(self.period, gap_lo, cursor)))
        if self.count is not None:
            wanted = min(wanted, max(1, self.count - have))
        # The service returns the newest bars starting at or before the end we send.
        sent, bars = self._request(wanted, cursor - 1)
        if not bars:
            return self._nothing_served(cursor, have)
        older = [bar for bar in bars if bar.start < cursor]
        if bars and not older:
            raise ProtocolError(
                f"{self.dialect} answered a K-line request for {self.inst.symbol} {self.period} ending "
                f"at {format_utc(cursor - 1)} with newer bars only, was "
                f"{format_utc(bars[0].start)}..{format_utc(bars[-1].start)}; the service ignored the end "
                "time, so history cannot be paged")
        low = max(gap_lo, self._proven_low(gap_lo, min(bar.start for bar in older), len(bars) < wanted))
        edge = min(cursor, self._closed_edge(bars, sent))
        self._keep([bar for bar in older if bar.start < edge], low, edge)
        return low, edge

    def _fetch_newest(self, gap_lo: int, cursor: int) -> tuple[int, int] | None:
        key = (self.inst.symbol, self.period)
        start = self._history_start()
        if start is not None and cursor <= start:
            return None  # the service said lately that nothing is older
        offered = self.loader._oldest_offered.get(key)
        if offered is not None and cursor <= offered:
            self._warn_unavailable(offered)
            return None
        limit = self.loader.dialect.KLINE_LIMIT
        sent, bars = self._request(limit, None)
        if not bars:
            return self._nothing_served(cursor, 0)
        low = self._proven_low(gap_lo, min(bar.start for bar in bars), len(bars) < limit)
        edge = self._closed_edge(bars, sent)
        self._keep([bar for bar in bars if bar.start < edge], low, edge)
        if len(bars) >= limit:  # a short page is remembered for a while only (_proven_low)
            self.loader._oldest_offered[key] = low
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
        clock = self.loader.clock
        clock.observe_server_time(newest.start)  # the service's time has reached the newest bar
        final = timeframes.final_at(self.period, newest.start, self.inst.market)
        if newest.start < self.newest_served:
            return _first_open_start(self.period, self.inst, max(final, self.newest_served))
        closed_until = clock.closed_until(sent)
        if closed_until is None or final > closed_until:
            return newest.start
        return _first_open_start(self.period, self.inst, closed_until)

    def _nothing_served(self, cursor: int, have: int) -> None:
        # An empty answer proves nothing: iTick sends one for a symbol the plan does not cover,
        # and a glitch looks the same.  Remembering it as "no bars" would hide the history for good.
        # Below bars already found it most likely marks the start of history: no warning then.
        logger.log(logging.INFO if have else logging.WARNING,
                   "%s %s: the service returned no bars up to %s; nothing is cached as known, "
                   "so a later load asks again", self.inst.symbol, self.period, format_utc(cursor))
        return None

    def _proven_low(self, gap_lo: int, oldest: int, short: bool) -> int:
        """Where the proof of a page starts: at its oldest bar, or at ``gap_lo`` if no bar fits between."""
        if _most_bars(self.period, gap_lo, oldest) == 0:
            return min(gap_lo, oldest)
        if short:
            # Fewer bars than asked: the service has nothing older, it says.  A vendor incident can say
            # so too, so this is believed for a while and never cached as known.
            key = (self.inst.symbol, self.period)
            self.loader._history_starts[key] = (oldest, self.loader.clock.now_ms())
        return oldest

    def _history_start(self) -> int | None:
        key = (self.inst.symbol, self.period)
        start, noted = self.loader._history_starts.get(key, (None, 0))
        if start is not None and self.loader.clock.now_ms() - noted >= HISTORY_START_TTL_MS:
            del self.loader._history_starts[key]
            return None
        return start

    def _request(self, count: int, end_ms: int | None) -> tuple[int, list[Kline]]:
        """(our clock when the request was sent, the bars of the answer)."""
        sent = self.loader.clock.mark()
        bars = self.loader.rest.klines(self.inst, self.period, count, end_ms)
        self.requests += 1
        self.fetched += len(bars)
        logger.debug("%s %s: %d bars up to %s (request %d)", self.inst.symbol, self.period, len(bars),
                     "now" if end_ms is None else format_utc(end_ms), self.requests)
        return sent, bars

    def _keep(self, bars: list[Kline], low: int, high: int) -> None:
        # Only bars the service has closed come here: a forming bar is neither cached nor returned.
        self.store.put(self.namespace, bars)
        self.store.mark_covered(self.namespace, self.inst.symbol, self.period, low, high)
        if self.on_progress is not None:
            self.on_progress(Progress(self.inst.symbol, self.period, self.requests, self.fetched,
                                      max(low, self.lo), self.start_ms, self.end))

    def _warn_unavailable(self, oldest: int) -> None:
        if self.warned:
            return
        self.warned = True
        logger.warning(
            "%s serves only the newest %d %s bars of %s: history before %s is not available from the "
            "service (asked from %s); the cache keeps what each run fetches, so history grows across runs",
            self.dialect, self.loader.dialect.KLINE_LIMIT, self.period, self.inst.symbol, format_utc(oldest),
            format_utc(self.lo) if self.start_ms is not None else f"the newest {self.count} bars")


def load_bars(loader: HistoryLoader, inst: Instrument, spec: BarSpec, start_ms: int | None,
              end_ms: int | None, count: int | None,
              on_progress: Callable[[Progress], None] | None = None) -> list[Kline]:
    """Closed ``spec`` bars stamped ``start_ms <= end <= end_ms`` (Backtrader's filter), or the newest
    ``count``.

    The one composition from the service's native bars (3m from 1m) that every REST path
    uses: ``fetch_klines``, historical and live feeds, the relay.

    Example::

        bars = load_bars(store.history, parse_symbol("BTCUSDT"), spec, None, None, 100)
    """
    return load_closed_bars(loader, inst, spec, start_ms, end_ms, count, on_progress)[0]


def load_closed_bars(loader: HistoryLoader, inst: Instrument, spec: BarSpec, start_ms: int | None,
                     end_ms: int | None, count: int | None,
                     on_progress: Callable[[Progress], None] | None = None) -> tuple[list[Kline], int]:
    """:func:`load_bars`, and the moment up to which they are complete (the service had closed
    every bar ending by it; see :meth:`HistoryLoader.load_closed`)."""
    check_window(start_ms, end_ms)
    native_count = None if count is None else (count + 1) * spec.multiple
    bars, proven = loader.load_closed(inst, spec.native.name, window_start(spec, inst, start_ms), end_ms,
                                      native_count, on_progress)
    if not spec.is_native:
        # A composed bar is closed when the service has closed its last native bar.
        bars = combine_closed(bars, spec, inst.market, proven)
    return keep_asked(bars, start_ms, None, count), proven


def check_window(start_ms: int | None, end_ms: int | None) -> None:
    """Refuse a window that ends before it starts."""
    if start_ms is not None and end_ms is not None and start_ms > end_ms:
        raise ConfigError(f"fromdate must not be after todate, "
                          f"was {format_utc(start_ms)} > {format_utc(end_ms)}")


def window_start(spec: BarSpec, inst: Instrument, start_ms: int | None) -> int | None:
    """Where loading must start so every bar stamped at or after ``start_ms`` is whole (None: anywhere)."""
    return None if start_ms is None else first_slot_start(spec, start_ms, inst.market)


def keep_asked(bars: list[Kline], start_ms: int | None, upto_ms: int | None,
               count: int | None) -> list[Kline]:
    """Backtrader's filter (stamped ``start_ms <= end <= upto_ms``), then the newest ``count``."""
    bars = [bar for bar in bars
            if (start_ms is None or bar.end >= start_ms) and (upto_ms is None or bar.end <= upto_ms)]
    return bars if count is None else bars[-count:]


def cache_namespace(dialect: Any, base_url: str | None) -> str:
    """Name under which bars from ``base_url`` are cached: the dialect alone for its real service."""
    if not base_url or base_url.rstrip("/") == dialect.DEFAULT_REST_URL.rstrip("/"):
        return dialect.NAME
    return f"{dialect.NAME}@{urlsplit(base_url).netloc}"


def bars_since_earliest(period: str, now_ms: int) -> int:
    """Most bars of ``period`` that can start between 1970 (the oldest time the wire accepts) and now."""
    return _most_bars(period, EARLIEST_MS, now_ms)


def _first_open_start(period: str, inst: Instrument, moment: int) -> int:
    """Start of the oldest bar not final at ``moment``: every bar before it is (see
    :func:`timeframes.final_at`; the bar in progress at ``moment`` is not, a daily one included)."""
    return timeframes.bar_start(period, moment, inst.market)


def _first_stamped_after(period: str, inst: Instrument, moment: int) -> int:
    """Start of the oldest bar stamped after ``moment``: every bar before it closes by then."""
    market = inst.market
    start = timeframes.bar_start(period, moment, market)
    if timeframes.bar_end(period, start, market) <= moment:
        return timeframes.next_start(period, start, market)
    return start


def _most_bars(period: str, low: int, high: int) -> int:
    """How many bars of ``period`` can start in ``[low, high)``: exact intraday, an upper bound otherwise."""
    length = timeframes.get_period(period)
    if length.is_intraday:
        step = length.count * MINUTE_MS
        first = -(-low // step) * step  # the first grid point at or after low
        return max(0, -(-(high - first) // step))
    if high <= low:
        return 0
    return (high - low) // (_SHORTEST_MS[length.unit] * length.count) + 1

