"""K-lines as pandas DataFrames, indexed as the feed stamps them, and the bars of a dated window.

Intraday bars are indexed by close time (UTC); daily and longer bars by their trading date
(naive, midnight), so a frame lines up with the feed's bars and with other markets by date.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from . import timeframes
from .markets import Market
from .param_checks import is_empty_window
from .records import Kline

KLINE_COLUMNS = ["open", "high", "low", "close", "volume", "turnover"]


def window_to_load(
    spec: timeframes.BarSpec, start_ms: int | None, end_ms: int | None, count: int | None
) -> tuple[int | None, int | None, int | None] | None:
    """What to ask history for so that :func:`window_frame` can keep the window: ``(first, last,
    count)``, wider for daily and longer bars (kept by their trading date); None when the window
    holds no bar, so nothing need be asked.

    Example::

        window_to_load(spec, start_ms, end_ms, None)     # (start_ms, end_ms, None) for minutes
    """
    if is_empty_window(start_ms, end_ms):
        return None
    if spec.native.is_intraday:
        return start_ms, end_ms, count
    return timeframes.date_load_window(start_ms, end_ms, count)


def window_frame(
    klines: Sequence[Kline],
    market: Market,
    spec: timeframes.BarSpec,
    start_ms: int | None,
    end_ms: int | None,
    count: int | None,
) -> pd.DataFrame:
    """The closed ``spec`` bars of ``market`` whose stamp lies in ``[start_ms, end_ms]`` (or the
    newest ``count``) as a frame, daily and longer bars kept by their trading date as the feed's are;
    ``klines`` are the bars loaded for :func:`window_to_load`'s window.

    Example::

        frame = window_frame(bars, market, spec, None, None, 100)
    """
    if is_empty_window(start_ms, end_ms):
        return klines_frame([], market, spec.period)
    if spec.native.is_intraday:
        return klines_frame(klines, market, spec.period)
    kept = [k for k in klines if _within(timeframes.date_stamp_ms(k.end, market), start_ms, end_ms)]
    if count is not None:
        kept = kept[-count:]
    return klines_frame(kept, market, spec.period)


def klines_frame(
    klines: Sequence[Kline], market: Market | None = None, period: str | None = None
) -> pd.DataFrame:
    """Turn K-lines into a DataFrame indexed like the feed stamps them: intraday bars by close
    time (UTC), daily and longer bars (given their ``market``) by trading date.  ``period``
    (default: the bars') shapes the index of an empty frame too."""
    period = period or (klines[0].period if klines else None)
    if market is not None and period is not None and not timeframes.is_intraday_label(period):
        index = pd.DatetimeIndex([market.close_date(k.end) for k in klines], name="date")
    else:
        index = pd.to_datetime([k.end for k in klines], unit="ms", utc=True).rename("datetime")
    frame = pd.DataFrame(
        [(k.open, k.high, k.low, k.close, k.volume, k.turnover) for k in klines],
        columns=KLINE_COLUMNS,
        index=index,
    )
    return frame


def _within(stamp_ms: int, start_ms: int | None, end_ms: int | None) -> bool:
    return (start_ms is None or stamp_ms >= start_ms) and (end_ms is None or stamp_ms <= end_ms)
