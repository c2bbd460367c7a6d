"""Checks of what users pass to the store and the feed: dates, timeframes and whole numbers.

Each check accepts what Backtrader accepts for the same parameter and raises
``ConfigError`` naming the parameter for anything else, instead of a raw ``TypeError``
deep inside a conversion.  Dates follow Backtrader's feed rule (``feed.py``,
``dopostinit``): a date without a time means the start of that day for ``fromdate`` and
the end of it (23:59:59.999990) for ``todate``; a naive time is read as UTC here.
"""

from __future__ import annotations

import numbers
import re
from datetime import date, datetime, time, timezone

from . import timeframes
from .errors import ConfigError
from .markets import Market
from .records import format_utc

# Backtrader's default session end, which a date-only todate is combined with.
END_OF_DAY = time(23, 59, 59, 999990)
_DATE_KINDS = "a datetime, a date, a pandas Timestamp or an ISO string such as '2024-03-01 15:30'"
# The ISO 8601 shapes Python 3.11's fromisoformat reads and 3.10's refuses: a 'Z', a zone without its
# colon, fractions of other than 3 or 6 digits.
_ISO_PARTS = re.compile(r"(?P<day>\d{4}-\d{2}-\d{2})[T ](?P<time>\d{2}:\d{2}(?::\d{2})?)"
                        r"(?:[.,](?P<fraction>\d+))?(?P<zone>Z|[+-]\d{2}(?::?\d{2})?)?", re.ASCII)


def as_moment(name: str, value: object) -> datetime | date | None:
    """``value`` as a datetime or a date (ISO strings parsed); ``None`` stays ``None``."""
    if value is None or isinstance(value, (datetime, date)):
        return value  # a pandas Timestamp is a datetime
    if isinstance(value, str):
        text = value.strip()
        try:
            return date.fromisoformat(text) if len(text) == 10 else _datetime_from_iso(text)
        except ValueError:
            pass
    raise ConfigError(f"{name} must be {_DATE_KINDS}, was {value!r}")


def _datetime_from_iso(text: str) -> datetime:
    """``datetime.fromisoformat`` as Python 3.11 reads ISO 8601 datetimes, on 3.10 too."""
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        parts = _ISO_PARTS.fullmatch(text)
        if parts is None:
            raise
    fraction = "." + parts["fraction"][:6].ljust(6, "0") if parts["fraction"] else ""
    zone = parts["zone"] or ""
    if zone == "Z":
        zone = "+00:00"
    elif zone:
        zone = f"{zone[:3]}:{zone[-2:]}" if len(zone) > 3 else f"{zone}:00"
    return datetime.fromisoformat(f"{parts['day']}T{parts['time']}{fraction}{zone}")


def moment_ms(name: str, value: object, *, end_of_day: bool = False) -> int | None:
    """Epoch ms of a ``fromdate``/``todate`` value; a date alone is its day's start, or its end."""
    moment = as_moment(name, value)
    if moment is None:
        return None
    if not isinstance(moment, datetime):
        moment = datetime.combine(moment, END_OF_DAY if end_of_day else time())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


def whole_number(name: str, value: object, *, minimum: int = 1, optional: bool = False) -> int | None:
    """``value`` as an int of at least ``minimum``; ``None`` only when ``optional``."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"{name} must be a whole number of at least {minimum}, was {value!r}")
    if value < minimum:
        raise ConfigError(f"{name} must be {minimum} or more, was {value!r}")
    return int(value)


def check_order(fromdate: object, todate: object) -> None:
    """Refuse a ``fromdate`` after ``todate`` as the user gave them (a date alone: its whole day)."""
    first, last = moment_ms("fromdate", fromdate), moment_ms("todate", todate, end_of_day=True)
    if first is not None and last is not None and first > last:
        raise ConfigError(f"fromdate must not be after todate, was {format_utc(first)} > {format_utc(last)}")


def is_empty_window(start_ms: int | None, end_ms: int | None) -> bool:
    """True when the bounds cross: dates in order that hold no trading day (a weekend, a holiday)."""
    return start_ms is not None and end_ms is not None and start_ms > end_ms


def timeframe_and_compression(timeframe: object, compression: object) -> tuple[int, int]:
    """A ``bt.TimeFrame`` value, or a period name such as ``"5m"`` (times ``compression``), as numbers."""
    compression = whole_number("compression", compression)
    if isinstance(timeframe, str):
        unit, count = timeframes.parse_period(timeframe)
        return unit, count * compression
    if isinstance(timeframe, bool) or not isinstance(timeframe, numbers.Integral):
        raise ConfigError(f"timeframe must be a bt.TimeFrame value (e.g. bt.TimeFrame.Minutes) or a period "
                          f"name ({timeframes.PERIOD_SYNTAX}), was {timeframe!r}")
    return int(timeframe), compression


def bar_window(market: Market, intraday: bool, fromdate: object,
               todate: object) -> tuple[int | None, int | None]:
    """``fromdate``/``todate`` as epoch ms, read as an ``AllTickData`` feed of that market reads them.

    A plain date on intraday bars is the market's trading day (EURUSD's starts at 22:00 UTC the
    evening before); on daily and longer bars it is Backtrader's default day, 00:00 to
    23:59:59.999990, compared with the bars' stamps (:func:`trading_stamp_ms`).  Dates in order
    around no trading day give crossed bounds (:func:`is_empty_window`); crossed dates are refused.
    """
    check_order(fromdate, todate)
    first, last = as_moment("fromdate", fromdate), as_moment("todate", todate)
    if intraday:
        from .sessions import trading_day_end, trading_day_start

        if _is_plain_date(first):
            first = trading_day_start(market, first, None)
        if _is_plain_date(last):
            last = trading_day_end(market, last, None)
    return moment_ms("fromdate", first), moment_ms("todate", last, end_of_day=True)


def trading_stamp_ms(market: Market, end_ms: int) -> int:
    """Where Backtrader's filter sees a daily or longer bar closing at ``end_ms``: its trading date
    at the default session end (UTC), as ``AllTickData`` stamps it."""
    stamp = datetime.combine(market.close_date(end_ms), END_OF_DAY, tzinfo=timezone.utc)
    return int(stamp.timestamp() * 1000)


def _is_plain_date(moment: object) -> bool:
    return isinstance(moment, date) and not isinstance(moment, datetime)
