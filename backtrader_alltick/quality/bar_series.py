"""Bars as parallel numpy arrays, from K-line records or from close stamps.

Pure.  The data-quality checks (:mod:`backtrader_alltick.quality`) and the analyzer read
bars through these arrays, whatever their source: K-lines, a DataFrame, a Backtrader feed.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from .. import timeframes
from ..markets import Market
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
    return BarSeries(
        *(
            np.fromiter(
                map(attrgetter(name), klines),
                dtype=np.int64 if name in ("start", "end") else float,
                count=len(klines),
            )
            for name in BarSeries._fields
        )
    )


def series_from_ends(
    end_ms: Sequence[int] | np.ndarray,
    open_: ArrayLike,
    high: ArrayLike,
    low: ArrayLike,
    close: ArrayLike,
    volume: ArrayLike,
    period: Period,
    market: Market,
) -> BarSeries:
    """Parallel arrays of bars known by their close stamps (a DataFrame, a Backtrader feed)."""
    end = np.asarray(end_ms, dtype=np.int64)
    if period.is_intraday:
        start = end - period.millis  # an intraday bar spans exactly its period
    else:
        start = np.array(
            [timeframes.bar_start_of_stamp(period, int(ms), market) for ms in end], dtype=np.int64
        )
    prices = (open_, high, low, close, volume)
    return BarSeries(start, end, *(np.asarray(column, dtype=float) for column in prices))
