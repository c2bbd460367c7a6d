"""Closed native K-lines of the service: the cache first, the service only for what is missing.

:class:`HistoryLoader` checks what is asked and aims a :class:`~.walk.PageWalk` at the bars the
service has closed by its clock; the walk does the paging (its docstring says how).  It opens an
in-memory cache for a load when it has no cache file, so a walk always has somewhere to keep
what it proved.  It does no network or disk I/O of its own.  Native periods only: composing
(3m from 1m), the archive and the session policy are :class:`~backtrader_alltick.history.History`'s.
:func:`cache_newest_bars` keeps what a ``/batch-kline`` answer proves, as a walk keeps a page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol, cast
from urllib.parse import urlsplit

from .. import timeframes
from ..cache import MEMORY, KlineCache
from ..clock import CLOSE_LAG_S, Clock, ServiceClock, as_service_clock
from ..errors import ConfigError, UnsupportedTimeframe
from ..param_checks import check_window
from ..records import Kline
from ..symbols import Instrument, parse_symbol
from .walk import HISTORY_START_TTL_MS, KlineService, KlineStore, PageWalk, Progress, Service, ServiceTime
from .window import BarRange

logger: logging.Logger = logging.getLogger(__name__)

__all__ = ["HISTORY_START_TTL_MS", "HistoryLoader", "Progress", "cache_namespace", "cache_newest_bars"]


class _LearnsTime(Protocol):
    clock: ServiceClock | None


class HistoryLoader:
    """Load closed K-lines of one native period, cached, in as few requests as the service allows.

    Parameters
    ----------
    rest : KlineService
        Sends the K-line requests (a :class:`~backtrader_alltick.transport.rest.RestClient`).
    cache : KlineStore or None
        Where bars and coverage persist (a :class:`~backtrader_alltick.cache.KlineCache`); None
        keeps nothing between loads: each load then walks through an in-memory cache of its own.
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
        got = loader.native_bars("BTCUSDT", "1m", count=100_000)   # 200 requests cold, none warm
    """

    def __init__(
        self,
        rest: KlineService,
        cache: KlineStore | None,
        dialect: Any,
        clock: Clock,
        namespace: str | None = None,
    ) -> None:
        self.rest = rest
        self.cache = cache
        self.dialect = dialect
        self.clock: ServiceTime = as_service_clock(clock)
        if isinstance(self.clock, ServiceClock) and getattr(rest, "clock", False) is None:
            # The client's answers tell the service's time (HTTP Date); getattr proved it has the slot.
            cast(_LearnsTime, rest).clock = self.clock
        self.namespace: str = namespace or dialect.NAME
        # What every walk of this loader uses, the service's recent answers included.
        self.service: Service = Service(rest, dialect, self.clock, self.namespace)

    def __repr__(self) -> str:
        return f"HistoryLoader(namespace={self.namespace!r}, cache={self.cache!r})"

    def native_bars(
        self,
        inst: Instrument | str,
        period: str,
        start_ms: int | None = None,
        end_ms: int | None = None,
        count: int | None = None,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> BarRange:
        """Closed bars of a native ``period``, oldest first, without duplicates, and the moment up to
        which they are complete: every bar of the window final by it (:func:`timeframes.final_at`)
        is there; later ones the service had not closed (or were not asked for).

        Bars satisfy ``start_ms <= bar.start`` and ``bar.end <= end_ms`` (``end_ms`` None:
        the service's now).  With ``count``, only the newest ``count`` of them; with neither
        ``start_ms`` nor ``count``, the newest ``KLINE_LIMIT`` bars.
        """
        inst = parse_symbol(inst)
        natives = tuple(self.dialect.native_periods(inst))
        if period not in natives:
            raise UnsupportedTimeframe(
                period, inst.symbol, natives, f"not a native {self.dialect.NAME} period"
            )
        check_window(start_ms, end_ms, ("start_ms", "end_ms"))
        if count is not None and count < 1:
            raise ConfigError(f"count must be 1 or more, was {count!r}")
        most = timeframes.bars_since_earliest(period, self.clock.now_ms())
        if count is not None and count > most:
            raise ConfigError(
                f"count must be at most {most:,}, the {period} bars since 1970 (no service has "
                f"older ones), was {count:,}"
            )
        if start_ms is None and count is None:
            count = self.dialect.KLINE_LIMIT
        lo = 0 if start_ms is None else int(start_ms)
        learnt = self.clock.learnt
        # Without a cache file the walk still needs somewhere to keep what it proved: an in-memory one.
        own: KlineCache | None = None
        store: KlineStore
        if self.cache is not None:
            store = self.cache
        else:
            store = own = KlineCache(MEMORY)
        try:
            end, hi = self._window(period, inst, end_ms)
            while True:
                walk = PageWalk(self.service, store, inst, period, lo, hi, count, on_progress, start_ms, end)
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
            if own is not None:
                own.close()
        # The walk holds every bar starting before hi, or only those starting before the top the
        # service has closed: every bar final by that moment is here.
        proven = min(walk.top, walk.hi)
        bars = [
            bar
            for bar in bars
            if bar.start < proven
            and (end_ms is None or bar.end <= end_ms)
            and (start_ms is None or bar.start >= start_ms)
        ]
        if count is not None:
            bars = bars[-count:]
        logger.info(
            "loaded %d closed %s bars of %s (%d requests)", len(bars), period, inst.symbol, walk.requests
        )
        return BarRange(bars, proven)

    def _window(self, period: str, inst: Instrument, end_ms: int | None) -> tuple[int, int]:
        """(the end of the window, the start of the first bar to leave out), by the service's now.

        Only bars the service has closed count, and only those are ever cached (PageWalk._closed_edge):
        a bar not final by now, or stamped after ``end_ms``, is left out.
        """
        now = self.clock.now_ms() - int(CLOSE_LAG_S * 1000 * self.clock.speed)
        hi = timeframes.first_open_start(period, now, inst.market)
        if end_ms is None:
            return now, hi
        end = int(end_ms)
        return min(end, now), min(hi, timeframes.first_stamped_after(period, end, inst.market))


def cache_namespace(dialect: Any, base_url: str | None) -> str:
    """Name under which bars from ``base_url`` are cached: the dialect alone for its real service."""
    if not base_url or base_url.rstrip("/") == dialect.DEFAULT_REST_URL.rstrip("/"):
        return dialect.NAME
    return f"{dialect.NAME}@{urlsplit(base_url).netloc}"


def cache_newest_bars(
    cache: KlineStore, namespace: str, clock: Clock, found: dict[str, list[Kline]], period: str, sent: int
) -> None:
    """Cache the closed bars of a ``/batch-kline`` answer and mark the stretch it proves covered.

    ``found`` is ``{symbol: the service's newest bars}`` as ``RestClient.batch_klines`` returns it,
    asked at our clock's ``sent``.  The answer's bars are the service's newest, with none between
    them, so it proves what a walk's newest page proves (``PageWalk._closed_edge``): every bar
    from its oldest up to the first the service may not have closed.  An answer of fewer than two
    bars proves nothing (a symbol missing from it reads the same as a quiet one) and is left out.

    Example::

        sent = clock.mark()
        found = rest.batch_klines(insts, "1m", 2)
        cache_newest_bars(cache, "alltick", clock, found, "1m", sent)
    """
    service = as_service_clock(clock)
    for symbol, bars in found.items():
        if len(bars) < 2:
            continue
        market = parse_symbol(symbol).market
        newest = bars[-1]
        service.observe_server_time(newest.start)  # the service's time has reached the newest bar
        closed_until = service.closed_until(sent)
        if closed_until is None or timeframes.final_at(period, newest.start, market) > closed_until:
            edge = newest.start
        else:
            edge = timeframes.first_open_start(period, closed_until, market)
        cache.put(namespace, [bar for bar in bars if bar.start < edge])
        cache.mark_covered(namespace, symbol, period, bars[0].start, edge)
