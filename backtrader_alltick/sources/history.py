"""Closed bars for a backtest or a download, from the service (REST and cache) or a relay's archive."""

from __future__ import annotations

from collections.abc import Callable

from ..bars import regular_bars
from ..errors import ConfigError, SessionPolicyWarning
from ..history import Progress, load_bars
from ..notices import warn_user
from ..records import Kline
from ..store import AllTickStore
from ..symbols import Instrument
from ..timeframes import BarSpec


def load_history(store, inst: Instrument, spec: BarSpec, start_ms: int | None, end_ms: int | None,
                 count: int | None, *, source: str | None = None, source_url: str | None = None,
                 on_progress: Callable[[Progress], None] | None = None, extended_hours: bool = True,
                 stats: dict | None = None) -> list[Kline]:
    """Closed ``spec`` bars stamped ``start_ms <= end <= end_ms``, or the newest ``count``.

    ``source`` None loads them through ``store`` (cache first, then REST); ``"influx"`` from
    the InfluxDB archive at ``source_url``.  Both keep the same bars of the same window.
    With ``extended_hours`` off, bars of slots without a regular session are left out (the
    cache keeps them: the policy applies on the way out), counted in ``stats["offhours_bars"]``.

    Example::

        bars = load_history(store, parse_symbol("BTCUSDT"), spec, None, None, 100)
    """
    bars = _load(store, inst, spec, start_ms, end_ms, count, source, source_url, on_progress)
    if extended_hours:
        return bars
    kept = regular_bars(bars, spec, inst.market)
    if len(kept) < len(bars):
        if stats is not None:
            stats["offhours_bars"] = stats.get("offhours_bars", 0) + len(bars) - len(kept)
        counted = "" if stats is None else ", counted in stats['offhours_bars']"
        warn_user(f"{inst.symbol}: {len(bars) - len(kept)} {spec.period} bars outside the regular session "
                  f"left out (extended_hours=False){counted}; pass extended_hours=True to keep them",
                  SessionPolicyWarning)
    return kept


def _load(store, inst: Instrument, spec: BarSpec, start_ms: int | None, end_ms: int | None,
          count: int | None, source: str | None, source_url: str | None,
          on_progress: Callable[[Progress], None] | None) -> list[Kline]:
    if source is None:
        return load_bars(store.history, inst, spec, start_ms, end_ms, count, on_progress)
    if source == "influx":
        from .archive import load_archived_bars

        return load_archived_bars(source_url or "", inst, spec, start_ms, end_ms, count,
                                  store.clock.now_ms(), dialect=store.p.dialect)
    raise ConfigError(f"source must be None (the service) or 'influx', was {source!r}")


# The store's fetch_klines loads through this, without importing the layer above it.
AllTickStore.history_source = staticmethod(load_history)
