"""Lenient decoding shared by both dialects: JSON text, vendor numbers and times, bar order.

Both references leave value types UNCERTAIN (strings or numbers, seconds or
milliseconds, bars in any order and repeated), so both parsers read values the same way.

Lenient about form, strict about meaning: a value that cannot be true (a NaN or
negative price, a negative volume, a time before 1970 or after 2200) raises ValueError
naming the field, which each parser turns into a ProtocolError for the whole record,
so nothing from such a page reaches a bar or the cache.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypedDict, TypeVar

from .. import timeframes
from ..errors import AllTickError, ProtocolError
from ..markets import Market
from ..records import Kline, normalize_epoch_ms

loads: Callable[[str | bytes], Any]
try:  # orjson roughly halves the cost of the live hot path; json is the fallback.
    import orjson

    loads = orjson.loads
except ImportError:  # pragma: no cover - depends on the environment
    loads = json.loads

__all__ = [
    "loads",
    "dumps",
    "epoch_ms",
    "int_or_none",
    "float_or_none",
    "unique_bars",
    "clip",
    "EARLIEST_MS",
    "LATEST_MS",
    "stamp",
    "price",
    "amount",
    "checked_kline",
    "MALFORMED",
    "shape_guard",
    "ErrorFields",
]

# The range a market time can lie in: no exchange data predates the epoch, and a time past
# 2200 is a unit error or garbage.  Shared with the history loader, which never asks beyond it.
EARLIEST_MS = 0
LATEST_MS = 7_258_118_400_000  # 2200-01-01T00:00:00Z
_INF = float("inf")
# What reading a vendor value may raise; parsers turn these into ProtocolError.
MALFORMED = (KeyError, IndexError, TypeError, ValueError, AttributeError, OverflowError)
F = TypeVar("F", bound=Callable[..., Any])


class ErrorFields(TypedDict):
    """The keyword arguments every :class:`~backtrader_alltick.errors.APIError` of a parser carries."""

    status: int | None
    code: int | str | None
    symbol: str | None


def shape_guard(vendor: str, what: str) -> Callable[[F], F]:
    """Make a parser raise ProtocolError for input of a shape it does not expect, never a raw TypeError.

    The parsers check every documented shape; this is the net under them for the rest
    (a list where an object belongs, a number where a code belongs).
    """

    def decorate(parse: F) -> F:
        @functools.wraps(parse)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                return parse(*args, **kwargs)
            except AllTickError:
                raise
            except MALFORMED as e:
                raise ProtocolError(
                    f"{vendor} sent {what} of an unexpected shape ({type(e).__name__}: "
                    f"{clip(str(e), 120)}); it is skipped"
                ) from None

        return guarded  # type: ignore[return-value]

    return decorate


def dumps(obj: Any) -> str:
    """Return compact JSON, the form both vendors' examples use on the wire."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def epoch_ms(value: Any) -> int:
    """Return epoch ms from seconds or milliseconds, numbers or strings (fast for 13-digit ints)."""
    if type(value) is int and value >= 1_000_000_000_000:
        return value
    return normalize_epoch_ms(value)


def stamp(value: Any, name: str) -> int:
    """Return epoch ms of a time in seconds or ms; raise ValueError naming ``name`` outside 1970..2200."""
    try:
        ms = None if isinstance(value, bool) else epoch_ms(value)
    except (TypeError, ValueError, OverflowError):  # not a number, NaN, infinite
        ms = None
    if ms is None or not EARLIEST_MS <= ms < LATEST_MS:
        raise ValueError(f"{name} must be a time from 1970 to 2200 in seconds or milliseconds, was {value!r}")
    return ms


def price(value: Any, name: str) -> float:
    """Return a finite price above 0; raise ValueError naming ``name`` otherwise."""
    number = _number(value, name)
    if not 0 < number < _INF:
        raise ValueError(f"{name} must be a finite price above 0, was {value!r}")
    return number


def amount(value: Any, name: str) -> float:
    """Return a finite volume or turnover of 0 or more (missing is 0); raise ValueError naming ``name``."""
    number = _number(value or 0, name)
    if not 0 <= number < _INF:
        raise ValueError(f"{name} must be a finite amount of 0 or more, was {value!r}")
    return number


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool):  # float(True) is 1.0: a flag is not a price
        raise ValueError(f"{name} must be a number, was {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an integer beyond the float range
        raise ValueError(f"{name} must be a number, was {clip(value, 40)}") from None


def checked_kline(
    row: dict[str, Any], names: Sequence[str], symbol: str, period: str, market: Market
) -> Kline:
    """Return the bar of ``row`` whose fields are named ``names`` (time, open, high, low, close, volume,
    turnover), every value checked; raise ValueError, KeyError or TypeError naming what is wrong."""
    time, *prices, volume, turnover = names
    start = stamp(row[time], time)
    open_, high, low, close = (price(row[name], name) for name in prices)
    end = timeframes.bar_end(period, start, market)
    if end <= start:  # a daily bar stamped after its date's close: no grid slot holds it
        raise ValueError(f"{time} {start} is past the close of its {period} bar ({end})")
    return Kline(
        symbol,
        period,
        start,
        end,
        open_,
        high,
        low,
        close,
        amount(row.get(volume), volume),
        amount(row.get(turnover), turnover),
    )


def int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return None


def float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


def unique_bars(bars: Iterable[Kline]) -> list[Kline]:
    """Return bars sorted by start with one bar per start; a later repeat wins (it is the newer state)."""
    by_start = {bar.start: bar for bar in bars}
    return [by_start[start] for start in sorted(by_start)]


def clip(value: Any, limit: int = 200) -> str:
    """Return a short printable form of a payload for an error message."""
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
