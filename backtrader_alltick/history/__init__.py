"""History: closed bars of a window, from the service (REST and cache) or a relay's InfluxDB archive.

:meth:`History.get_range` is the one way in.  ``fetch_klines`` frames what it returns, historical
feeds deliver it, and the live feeds' backfill reads it.  Below it, one module per job:

* :mod:`.window`: what is asked (:class:`Window`, epoch ms only) and answered (:class:`BarRange`);
* :mod:`.loader`: :class:`HistoryLoader`, closed *native* bars of the service, the cache first;
* :mod:`.walk`: :class:`~.walk.PageWalk`, one load's walk over cached stretches and fetched pages;
* :mod:`.archive`: the bars a relay archived in InfluxDB, combined or built from ticks as needed;
* :mod:`.newest`: :class:`~.newest.NewestBars`, the live sources' short backfills of many symbols
  gathered into ``/batch-kline`` calls (the store's ``newest``).

Each is handed what it uses; none calls back up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from ..bars import combine_closed, regular_bars
from ..clock import Clock
from ..errors import ConfigError, SessionPolicyWarning
from ..notices import warn_user
from ..records import Kline
from ..symbols import Instrument
from ..timeframes import BarSpec
from .archive import archived_bars
from .loader import HISTORY_START_TTL_MS, HistoryLoader, cache_namespace, cache_newest_bars
from .walk import Progress
from .window import BarRange, Window

__all__ = [
    "HISTORY_START_TTL_MS",
    "BarRange",
    "History",
    "HistoryLoader",
    "NativeBars",
    "Progress",
    "Window",
    "cache_namespace",
    "cache_newest_bars",
]

SOURCES = (None, "influx")


class NativeBars(Protocol):
    """Closed bars of the service's native periods (:class:`HistoryLoader`)."""

    def native_bars(
        self,
        inst: Instrument,
        period: str,
        start_ms: int | None = None,
        end_ms: int | None = None,
        count: int | None = None,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> BarRange: ...


class History:
    """Closed bars of any supported bar spec, from the service or an archive, by one window rule.

    ``native`` opens the service's loader on first use (so an archive answers without a token);
    ``clock`` is the service's time; ``dialect`` the name archived bars are recorded under.

    Example::

        history = store.history
        got = history.get_range(parse_symbol("BTCUSDT"), spec, Window(count=100))
        got.bars[-1].end <= got.complete_ms
    """

    def __init__(
        self,
        native: Callable[[], NativeBars],
        clock: Clock,
        dialect: str,
        *,
        archive: Callable[..., BarRange] = archived_bars,
    ) -> None:
        self._open_native = native
        self._native: NativeBars | None = None
        self.clock = clock
        self.dialect = dialect
        self._archive = archive

    def __repr__(self) -> str:
        return f"History(dialect={self.dialect!r}, native={self._native!r})"

    def get_range(
        self,
        inst: Instrument,
        spec: BarSpec,
        window: Window,
        *,
        source: str | None = None,
        source_url: str | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        extended_hours: bool = True,
        stats: dict[str, int] | None = None,
    ) -> BarRange:
        """Closed ``spec`` bars of ``inst`` in ``window`` (stamped ``start_ms <= end <= end_ms``, or
        the newest ``count``), oldest first, and the moment up to which they are complete.

        ``source`` None loads them from the service (cache first, then REST); ``"influx"`` from the
        InfluxDB archive at ``source_url``.  Both keep the same bars of the same window.  With
        ``extended_hours`` off, bars of slots without a regular session are left out (the cache
        keeps them: the policy applies on the way out), counted in ``stats["offhours_bars"]``.
        """
        if source not in SOURCES:
            raise ConfigError(f"source must be None (the service) or 'influx', was {source!r}")
        if source is None:
            got = self._from_service(inst, spec, window, on_progress)
        else:
            got = self._archive(
                source_url or "", inst, spec, window, self.clock.now_ms(), dialect=self.dialect
            )
        if extended_hours:
            return got
        return BarRange(self._regular_only(got.bars, inst, spec, stats), got.complete_ms)

    def _from_service(
        self, inst: Instrument, spec: BarSpec, window: Window, on_progress: Callable[[Progress], None] | None
    ) -> BarRange:
        if self._native is None:
            self._native = self._open_native()
        count = window.count
        # One more composed bar's worth: the oldest native bars may start inside a composed slot.
        native_count = None if count is None else (count + 1) * spec.multiple
        got = self._native.native_bars(
            inst,
            spec.native.name,
            window.load_start(spec, inst.market),
            window.end_ms,
            native_count,
            on_progress,
        )
        bars = got.bars
        if not spec.is_native:
            # A composed bar is closed when the service has closed its last native bar.
            bars = combine_closed(bars, spec, inst.market, got.complete_ms)
        return BarRange(window.keep(bars), got.complete_ms)

    @staticmethod
    def _regular_only(
        bars: list[Kline], inst: Instrument, spec: BarSpec, stats: dict[str, int] | None
    ) -> list[Kline]:
        kept = regular_bars(bars, spec, inst.market)
        left_out = len(bars) - len(kept)
        if left_out:
            if stats is not None:
                stats["offhours_bars"] = stats.get("offhours_bars", 0) + left_out
            counted = "" if stats is None else ", counted in stats['offhours_bars']"
            warn_user(
                f"{inst.symbol}: {left_out} {spec.period} bars outside the regular session "
                f"left out (extended_hours=False){counted}; pass extended_hours=True to keep them",
                SessionPolicyWarning,
            )
        return kept
