"""The date a daily or longer bar carries: its trading date at the feed's ``sessionend``
(DESIGN.md "Bar timestamps"), and the wider window a range of dates loads and filters by.
"""

from __future__ import annotations

import math
from datetime import datetime, time, timezone
from typing import Protocol

from ..markets import DAY_MS, Market
from .grid import bar_start
from .periods import Period

# Backtrader's default sessionend (feed.py dopostinit: "remove 9 to avoid precision rounding errors"):
# where a daily bar's date stamp sits, and what a date-only todate is combined with.
END_OF_DAY = time(23, 59, 59, 999990)
# A daily bar's close lies within a day of its date stamp (a crypto day closes at 00:00 after its
# date, a forex day at 17:00 New York before the end of it): two days of slack hold it either way.
_STAMP_SLACK_DAYS = 2


def date_stamp_ms(end_ms: int, market: Market) -> int:
    """Where Backtrader's filter sees a daily or longer bar closing at ``end_ms``: its trading date
    (``Market.close_date``) at the default session end, UTC, as ``AllTickData`` stamps it."""
    stamp = datetime.combine(market.close_date(end_ms), END_OF_DAY, tzinfo=timezone.utc)
    return int(stamp.timestamp() * 1000)


class _DateConverter(Protocol):
    # What date_stamp asks of a Backtrader feed: its line-value conversions, in its tz.
    def date2num(self, dt: datetime) -> float: ...

    def num2date(self, num: float) -> datetime: ...


def date_stamp(data: _DateConverter, end_ms: int, market: Market, at: time = END_OF_DAY) -> float:
    """Line value of a daily or longer bar closing at ``end_ms``: its trading date at time ``at`` in
    ``data``'s tz (``data`` a Backtrader feed: its ``date2num``/``num2date``), one that reads back as
    that date.

    Seen from UTC, 23:59:59.99999 in a zone behind or ahead of it is a float whose rounding
    error Backtrader's ``num2date`` (microseconds above 999990 round up) can turn into the
    next midnight, a day late.  Step the float down until it reads back on the date.

    Example::

        data.lines.datetime[0] = date_stamp(data, bar.end, US_STOCKS, data.p.sessionend)
    """
    day = market.close_date(end_ms)
    num = data.date2num(datetime.combine(day, at))
    for _ in range(8):
        if data.num2date(num).date() == day:
            return num
        num = math.nextafter(num, 0.0)
    return num


def bar_start_of_stamp(period: Period | str, stamp_ms: int, market: Market) -> int:
    """Start of the daily or longer bar stamped ``stamp_ms``: a plain date (00:00 UTC, as daily
    frames and CSV files index their bars) names the trading day itself, a close instant lies just
    after the last day's session."""
    inside = stamp_ms + DAY_MS // 2 if stamp_ms % DAY_MS == 0 else stamp_ms - 1
    return bar_start(period, inside, market)


def date_load_window(
    start_ms: int | None, end_ms: int | None, count: int | None = None
) -> tuple[int | None, int | None, int | None]:
    """Bounds (and a count) to load daily or longer bars by, so that every bar whose date stamp
    lies in ``[start_ms, end_ms]`` (or the newest ``count``) is among them; filter them by
    :func:`date_stamp_ms` afterwards, as Backtrader's filter does a feed's bars."""
    slack = _STAMP_SLACK_DAYS * DAY_MS
    return (
        None if start_ms is None else start_ms - slack,
        None if end_ms is None else end_ms + slack,
        None if count is None else count + _STAMP_SLACK_DAYS,
    )
