"""Bars as parallel numpy arrays, from K-line records or from close stamps, and their bar grid.

Pure.  The data-quality checks (:mod:`backtrader_alltick.quality`) and the analyzer read
bars through these arrays, whatever their source: K-lines, a DataFrame, a Backtrader feed.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter
from typing import NamedTuple

import numpy as np

from .. import timeframes
from ..errors import ConfigError
from ..markets import DAY_MS, Market
from ..records import Kline
from ..timeframes import Period


class BarSeries(NamedTuple):
    """Bars as parallel arrays: ``start`` and ``end`` in epoch ms, prices and volume as floats."""

    start: np.ndarray
    end: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray


def series_from_klines(klines: Sequence[Kline]) -> BarSeries:
    """Parallel arrays of ``klines`` (any order)."""
    return BarSeries(*(np.fromiter(map(attrgetter(name), klines), dtype=np.int64 if name in ("start", "end")
                                   else float, count=len(klines)) for name in BarSeries._fields))


def series_from_ends(end_ms: Sequence[int] | np.ndarray, open_, high, low, close, volume,
                     period: Period, market: Market) -> BarSeries:
    """Parallel arrays of bars known by their close stamps (a DataFrame, a Backtrader feed)."""
    end = np.asarray(end_ms, dtype=np.int64)
    if period.is_intraday:
        start = end - period.millis
    else:
        start = np.array([timeframes.bar_start(period, _inside_last_day(int(ms), market), market)
                          for ms in end], dtype=np.int64)
    prices = (open_, high, low, close, volume)
    return BarSeries(start, end, *(np.asarray(column, dtype=float) for column in prices))


def _inside_last_day(end_ms: int, market: Market) -> int:
    # A plain date (00:00 UTC: fetch_klines' trading-date index, most daily CSV or pandas data) names
    # the trading day itself, so look at its noon; a close instant lies just after the last day's session.
    if end_ms % DAY_MS == 0:
        return end_ms + DAY_MS // 2
    return end_ms - 1


def period_for(timeframe: int, compression: int) -> Period:
    """The bar grid of Backtrader's ``(timeframe, compression)``: minutes x N, or one day, week or month."""
    unit = timeframes.UNIT_OF_TIMEFRAME.get(timeframe)
    if unit is not None and (compression == 1 or unit == "minute" and compression > 1):
        return Period(timeframes.period_name(unit, compression), unit, compression)
    name = timeframes.TIMEFRAME_NAMES.get(timeframe, timeframe)
    raise ConfigError(f"quality checks need Minutes x N or Days, Weeks or Months x 1 bars, "
                      f"was {compression} {name}")


def as_period(period: Period | str) -> Period:
    """A Period from a name such as ``1m``, ``3m``, ``1h``, ``1d`` (any minute multiple works)."""
    if isinstance(period, Period):
        return period
    return period_for(*timeframes.parse_period(period, "period"))
