"""Closed bars for a backtest or a download, from the service (REST and cache) or a relay's archive."""

from __future__ import annotations

from collections.abc import Callable

from ..errors import ConfigError
from ..history import Progress, load_bars
from ..records import Kline
from ..store import AllTickStore
from ..symbols import Instrument
from ..timeframes import BarSpec


def load_history(store, inst: Instrument, spec: BarSpec, start_ms: int | None, end_ms: int | None,
                 count: int | None, *, source: str | None = None, source_url: str | None = None,
                 on_progress: Callable[[Progress], None] | None = None) -> list[Kline]:
    """Closed ``spec`` bars stamped ``start_ms <= end <= end_ms``, or the newest ``count``.

    ``source`` None loads them through ``store`` (cache first, then REST); ``"influx"`` from
    the InfluxDB archive at ``source_url``.  Both keep the same bars of the same window.

    Example::

        bars = load_history(store, parse_symbol("BTCUSDT"), spec, None, None, 100)
    """
    if source is None:
        return load_bars(store.history, inst, spec, start_ms, end_ms, count, on_progress)
    if source == "influx":
        from .archive import load_archived_bars

        return load_archived_bars(source_url or "", inst, spec, start_ms, end_ms, count,
                                  store.clock.now_ms(), dialect=store.p.dialect)
    raise ConfigError(f"source must be None (the service) or 'influx', was {source!r}")


# The store's fetch_klines loads through this, without importing the layer above it.
AllTickStore.history_source = staticmethod(load_history)
