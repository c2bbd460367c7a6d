"""Checks of what users pass to the store and the feed: dates, timeframes and whole numbers.

Each check accepts what Backtrader accepts for the same parameter and raises
``ConfigError`` naming the parameter for anything else, instead of a raw ``TypeError``
deep inside a conversion.  Dates follow Backtrader's feed rule (``feed.py``,
``dopostinit``): a date without a time means the start of that day for ``fromdate`` and
the end of it (23:59:59.999990) for ``todate``; a naive time is read as UTC here.
ISO strings are read by :func:`parse_iso`, the same on every Python the package supports.
"""

from __future__ import annotations

import numbers
import re
from datetime import date, datetime, time, timedelta, timezone
from typing import Literal, TypeGuard, overload

from . import timeframes
from .errors import ConfigError
from .markets import Market
from .records import format_utc
from .timeframes import END_OF_DAY

_DATE_KINDS = "a datetime, a date, a pandas Timestamp or an ISO string such as '2024-03-01 15:30'"
# ISO 8601 in its extended form, as Python 3.11's fromisoformat reads it: a date, then optionally
# 'T' or a space, hours, minutes, seconds with a fraction of any length (',' or '.'), and an offset
# ('Z', +HH, +HHMM, +HH:MM).  Python 3.10's fromisoformat refuses 'Z' and fractions that are not
# 3 or 6 digits long, so the package parses the text itself.
_ISO_MOMENT = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2})(?::(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?"
    r"(Z|[+-]\d{2}(?::?\d{2})?)?)?"
)


def parse_iso(text: str) -> datetime | date:
    """The date (no time given) or datetime (aware when an offset is given) an ISO string names.

    Raises ValueError for anything else.  Fractions of a second past microseconds are cut off.

    Example::

        parse_iso("2024-03-04T15:30:00.5Z")   # datetime(2024, 3, 4, 15, 30, 0, 500000, tzinfo=UTC)
    """
    match = _ISO_MOMENT.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not an ISO date or time: {text!r}")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    if hour is None:
        return date(int(year), int(month), int(day))
    micros = int((fraction or "").ljust(6, "0")[:6])
    return datetime(
        int(year),
        int(month),
        int(day),
        int(hour),
        int(minute or 0),
        int(second or 0),
        micros,
        tzinfo=_zone(offset),
    )


def _zone(offset: str | None) -> timezone | None:
    if offset is None:
        return None
    if offset == "Z":
        return timezone.utc
    digits = offset[1:].replace(":", "")
    delta = timedelta(hours=int(digits[:2]), minutes=int(digits[2:] or 0))
    return timezone(-delta if offset[0] == "-" else delta)


def as_moment(name: str, value: object) -> datetime | date | None:
    """``value`` as a datetime or a date (ISO strings parsed); ``None`` stays ``None``."""
    if value is None or isinstance(value, (datetime, date)):
        return value  # a pandas Timestamp is a datetime
    if isinstance(value, str):
        try:
            return parse_iso(value)
        except ValueError:
            pass
    raise ConfigError(f"{name} must be {_DATE_KINDS}, was {value!r}")


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


@overload
def whole_number(name: str, value: object, *, minimum: int = 1, optional: Literal[False] = False) -> int: ...


@overload
def whole_number(name: str, value: object, *, minimum: int = 1, optional: bool) -> int | None: ...


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
    check_window(moment_ms("fromdate", fromdate), moment_ms("todate", todate, end_of_day=True))


def check_window(
    start_ms: int | None, end_ms: int | None, names: tuple[str, str] = ("fromdate", "todate")
) -> None:
    """Refuse a window that ends before it starts (``None``: open), naming its bounds ``names``."""
    if start_ms is not None and end_ms is not None and start_ms > end_ms:
        raise ConfigError(
            f"{names[0]} must not be after {names[1]}, was {format_utc(start_ms)} > {format_utc(end_ms)}"
        )


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
        raise ConfigError(
            f"timeframe must be a bt.TimeFrame value (e.g. bt.TimeFrame.Minutes) or a period "
            f"name ({timeframes.PERIOD_SYNTAX}), was {timeframe!r}"
        )
    return int(timeframe), compression


def bar_window(
    market: Market, intraday: bool, fromdate: object, todate: object
) -> tuple[int | None, int | None]:
    """``fromdate``/``todate`` as epoch ms, read as an ``AllTickData`` feed of that market reads them.

    A plain date on intraday bars is the market's trading day (EURUSD's starts at 22:00 UTC the
    evening before); on daily and longer bars it is Backtrader's default day, 00:00 to
    23:59:59.999990, compared with the bars' stamps (:func:`timeframes.date_stamp_ms`).  Dates in order
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


def _is_plain_date(moment: object) -> TypeGuard[date]:
    return isinstance(moment, date) and not isinstance(moment, datetime)
