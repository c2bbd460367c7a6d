"""Bar periods: their short names ("5m", "1h", "1d"), the grid bars sit on, their close stamps, the
trading date a daily bar carries, and the (TimeFrame, compression) mapping.

Pure: no I/O, no clock.  Intraday periods sit on a UTC grid anchored at the epoch
(so ``5m`` bars start at :00, :05, ...); days, weeks and months follow the market's
trading day (see :mod:`markets`).  A bar covers ``[start, next_start)`` and closes at
``bar_end``: intraday at ``next_start``, daily and longer at the session close of the
last trading day of the period.  A bar of several native periods (3m, 2h, 3d) is a
:class:`Slot` of :func:`slot_of`.  Intraday bars are stamped at their close instant; daily
and longer bars with the trading date of their close (``Market.close_date``) at the feed's
``sessionend`` (:func:`date_stamp`, :func:`date_stamp_ms`; DESIGN.md "Bar timestamps"), so
a window of dates loads a little wider (:func:`date_load_window`) and filters by that stamp.

Names and specs live in :mod:`.periods`, the grid and its slots in :mod:`.grid`, the date stamps in
:mod:`.stamps`; everything is imported from here.
"""

from .grid import (
    Slot,
    bar_end,
    bar_start,
    bars_since_earliest,
    bucket_index,
    final_at,
    first_open_start,
    first_slot_start,
    first_stamped_after,
    group_slot,
    index_start,
    most_bars,
    next_start,
    period_close,
    slot_of,
)
from .periods import (
    DAYS,
    MICROSECONDS,
    MINUTES,
    MONTHS,
    PERIOD_SYNTAX,
    PERIODS,
    SECONDS,
    TICKS,
    TIMEFRAME_NAMES,
    UNIT_OF_TIMEFRAME,
    WEEKS,
    YEARS,
    BarSpec,
    Period,
    as_period,
    describe_supported,
    get_period,
    grid_period,
    is_intraday_label,
    parse_period,
    period_name,
    resolve,
)
from .stamps import END_OF_DAY, bar_start_of_stamp, date_load_window, date_stamp, date_stamp_ms

__all__ = [
    "DAYS",
    "END_OF_DAY",
    "MICROSECONDS",
    "MINUTES",
    "MONTHS",
    "PERIODS",
    "PERIOD_SYNTAX",
    "SECONDS",
    "TICKS",
    "TIMEFRAME_NAMES",
    "UNIT_OF_TIMEFRAME",
    "WEEKS",
    "YEARS",
    "BarSpec",
    "Period",
    "Slot",
    "as_period",
    "bar_end",
    "bar_start",
    "bar_start_of_stamp",
    "bars_since_earliest",
    "bucket_index",
    "date_load_window",
    "date_stamp",
    "date_stamp_ms",
    "describe_supported",
    "final_at",
    "first_open_start",
    "first_slot_start",
    "first_stamped_after",
    "get_period",
    "grid_period",
    "group_slot",
    "index_start",
    "is_intraday_label",
    "most_bars",
    "next_start",
    "parse_period",
    "period_close",
    "period_name",
    "resolve",
    "slot_of",
]
