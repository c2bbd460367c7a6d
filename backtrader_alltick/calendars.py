"""Exchange holidays, early closes and lunch breaks from ``exchange-calendars`` (the ``calendars`` extra).

Only stock markets have an exchange calendar (XNYS, XHKG, XSHG for Shanghai and Shenzhen); forex, metals, CFDs
and crypto keep their weekly sessions in :mod:`markets`.  Without the extra, or outside the
years a calendar covers, a market falls back to its weekly sessions (no holidays, no half days).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from datetime import date
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

logger: logging.Logger = logging.getLogger(__name__)

# The first year loaded: far enough back for any history AllTick or iTick serves.
FIRST_YEAR = 2000

Spans = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class ExchangeSessions:
    """The trading sessions of one exchange, by trading date, as epoch-ms ``[open, close)`` spans.

    A day with a lunch break has two spans; a holiday has none; an early close ends early.

    Example::

        nyse = exchange_sessions("XNYS")
        nyse.on(date(2023, 7, 3))      # ((1688391000000, 1688403600000),): closes 13:00 New York
        nyse.on(date(2023, 7, 4))      # (): Independence Day
    """

    code: str
    first: date
    last: date
    spans: dict[date, Spans]

    def covers(self, day: date) -> bool:
        return self.first <= day <= self.last

    def on(self, day: date) -> Spans:
        return self.spans.get(day, ())


@cache
def exchange_sessions(code: str) -> ExchangeSessions | None:
    """The sessions of exchange ``code``, or None when the ``calendars`` extra is not installed."""
    try:
        import exchange_calendars
    except ImportError:
        logger.info(
            "exchange-calendars is not installed (pip install 'backtrader-alltick[calendars]'): "
            "%s uses its weekly sessions, without holidays or early closes",
            code,
        )
        return None
    with warnings.catch_warnings():  # its own pandas deprecations are not the user's business
        warnings.simplefilter("ignore")
        try:
            schedule = exchange_calendars.get_calendar(code, start=f"{FIRST_YEAR}-01-01").schedule
        except Exception as e:  # an exchange the installed version does not know: weekly sessions
            logger.warning("exchange-calendars has no calendar %s (%s): weekly sessions apply", code, e)
            return None
        columns = [_epoch_ms(schedule[name]) for name in ("open", "break_start", "break_end", "close")]
    spans: dict[date, Spans] = {}
    for day, opens, break_start, break_end, close in zip(schedule.index.date, *columns):
        if break_start is not None and break_end is not None and opens < break_start < break_end < close:
            spans[day] = ((opens, break_start), (break_end, close))
        else:
            spans[day] = ((opens, close),)
    return ExchangeSessions(code, schedule.index[0].date(), schedule.index[-1].date(), spans)


def _epoch_ms(column: pd.Series) -> list[int | None]:
    return [
        None if moment is None or moment != moment else int(moment.value // 1_000_000)
        for moment in column.tolist()
    ]
