"""K-lines as pandas DataFrames, indexed as the feed stamps them, and the bars of a dated window.

Intraday bars are indexed by close time (UTC); daily and longer bars by their trading date
(naive, midnight), so a frame lines up with the feed's bars and with other markets by date.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pandas as pd

from . import timeframes
from .markets import Market
from .param_checks import is_empty_window
from .records import Kline

KLINE_COLUMNS = ["open", "high", "low", "close", "volume", "turnover"]

# Loads closed bars stamped in [first, last] (either None: open), or the newest ``count``.
BarLoader = Callable[[int | None, int | None, int | None], list[Kline]]


def window_frame(load: BarLoader, market: Market, spec: timeframes.BarSpec, start_ms: int | None,
                 end_ms: int | None, count: int | None) -> pd.DataFrame:
    """The closed ``spec`` bars of ``market`` whose stamp lies in ``[start_ms, end_ms]`` (or the
    newest ``count``) as a frame, daily and longer bars kept by their trading date as the feed's are.

    Example::

        frame = window_frame(lambda first, last, count: bars, market, spec, None, None, 100)
    """
    if is_empty_window(start_ms, end_ms):
        return klines_frame([], market, spec.period)
    if spec.native.is_intraday:
        return klines_frame(load(start_ms, end_ms, count), market, spec.period)
    # Filtered by their stamp below, as the feed's bars are by Backtrader: load a little wider.
    klines = load(*timeframes.date_load_window(start_ms, end_ms, count))
    klines = [k for k in klines if _within(timeframes.date_stamp_ms(k.end, market), start_ms, end_ms)]
    if count is not None:
        klines = klines[-count:]
    return klines_frame(klines, market, spec.period)


def klines_frame(klines: Sequence[Kline], market: Market | None = None,
                 period: str | None = None) -> pd.DataFrame:
    """Turn K-lines into a DataFrame indexed like the feed stamps them: intraday bars by close
    time (UTC), daily and longer bars (given their ``market``) by trading date.  ``period``
    (default: the bars') shapes the index of an empty frame too."""
    period = period or (klines[0].period if klines else None)
    if market is not None and period is not None and not timeframes.is_intraday_label(period):
        index = pd.DatetimeIndex([market.close_date(k.end) for k in klines], name="date")
    else:
        index = pd.to_datetime([k.end for k in klines], unit="ms", utc=True).rename("datetime")
    frame = pd.DataFrame([(k.open, k.high, k.low, k.close, k.volume, k.turnover) for k in klines],
                         columns=KLINE_COLUMNS, index=index)
    return frame


def _within(stamp_ms: int, start_ms: int | None, end_ms: int | None) -> bool:
    return (start_ms is None or stamp_ms >= start_ms) and (end_ms is None or stamp_ms <= end_ms)
