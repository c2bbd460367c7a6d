"""InfluxDB 1.x line protocol and InfluxQL text for bars and ticks; pure, no I/O.

Points are stamped in microseconds (``precision=u``)::

    bar,dialect=alltick,period=1m,symbol=AAPL.US open=1.0,high=1.2,low=0.9,close=1.1,volume=300.0,\
turnover=0.0,start=1700000040000i 1700000100000000
    tick,symbol=AAPL.US price=190.1,volume=5.0,turnover=0.0,direction=1i,seq=42i 1700000000123000

A bar sits at its close (``end``) exactly.  Two ticks of one symbol in the same
millisecond would be the same point in InfluxDB (the second overwriting the first),
so :class:`TickStamper` adds a per-millisecond counter in the microseconds; reading
back truncates to milliseconds and gives the original times.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError, ProtocolError
from ..records import Kline, Tick

BAR_MEASUREMENT = "bar"
TICK_MEASUREMENT = "tick"
PRECISION = "u"
# InfluxDB's representable times (int64 nanoseconds, both extremes reserved).
_MIN_TIME_NS, _MAX_TIME_NS = -(2**63) + 2, 2**63 - 2
_TAG_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})


def escape_tag(text: str) -> str:
    """Escape a tag key, tag value or field key: commas, equals signs and spaces get a backslash."""
    if "\n" in text or "\r" in text:
        raise ConfigError(f"InfluxDB tags cannot hold line breaks, was {text!r}")
    if not text:
        raise ConfigError("InfluxDB tag values cannot be empty, was ''")
    return text.translate(_TAG_ESCAPES)


def bar_line(bar: Kline, dialect: str) -> str:
    """One line for a closed bar: tags symbol, period, dialect; time = bar end."""
    tags = f"dialect={escape_tag(dialect)},period={escape_tag(bar.period)},symbol={escape_tag(bar.symbol)}"
    fields = _float_fields(
        ("open", bar.open),
        ("high", bar.high),
        ("low", bar.low),
        ("close", bar.close),
        ("volume", bar.volume),
        ("turnover", bar.turnover),
    )
    return f"{BAR_MEASUREMENT},{tags} {fields},start={int(bar.start)}i {int(bar.end) * 1000}"


def tick_line(tick: Tick, time_us: int) -> str:
    """One line for a trade stamped at ``time_us`` (see :class:`TickStamper`)."""
    fields = _float_fields(("price", tick.price), ("volume", tick.volume), ("turnover", tick.turnover))
    seq = "" if tick.seq is None else f",seq={int(tick.seq)}i"
    return (
        f"{TICK_MEASUREMENT},symbol={escape_tag(tick.symbol)} {fields},direction={int(tick.direction)}i"
        f"{seq} {time_us}"
    )


class TickStamper:
    """Give each tick a distinct microsecond stamp inside its millisecond.

    The n-th tick of a symbol in one millisecond gets ``time * 1000 + n``.  A relay that
    restarts and writes the same ticks again produces the same stamps, so InfluxDB
    overwrites instead of duplicating.  Remembers the last ``capacity`` milliseconds seen.

    Example::

        stamper = TickStamper()
        stamper.stamp(tick)   # 1700000000123000, then 1700000000123001 for the next tick in that ms
    """

    def __init__(self, capacity: int = 65_536) -> None:
        self.capacity = capacity
        self._counts: OrderedDict[tuple[str, int], int] = OrderedDict()

    def stamp(self, tick: Tick) -> int:
        key = (tick.symbol, int(tick.time))
        count = self._counts.pop(key, 0)
        if count >= 1000:
            raise ConfigError(
                f"more than 1000 ticks of {tick.symbol} in millisecond {tick.time} cannot be "
                f"archived distinctly, was tick number {count + 1}"
            )
        self._counts[key] = count + 1
        if len(self._counts) > self.capacity:
            self._counts.popitem(last=False)
        return key[1] * 1000 + count


def quote_literal(text: str) -> str:
    """An InfluxQL string literal: single quotes, with quotes and backslashes escaped."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def quote_identifier(name: str) -> str:
    """An InfluxQL identifier: double quotes, with quotes and backslashes escaped."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def select_bars(symbol: str, period: str, start_ms: int, end_ms: int, dialect: str | None) -> str:
    """Query for bars of ``symbol`` and ``period`` whose end lies in ``[start_ms, end_ms]``."""
    where = f'"symbol" = {quote_literal(symbol)} AND "period" = {quote_literal(period)}'
    if dialect is not None:
        where += f' AND "dialect" = {quote_literal(dialect)}'
    return f"SELECT * FROM {BAR_MEASUREMENT} WHERE {where} AND {_time_range(start_ms, end_ms)} ORDER BY time"


def select_ticks(symbol: str, start_ms: int, end_ms: int) -> str:
    """Query for ticks of ``symbol`` traded in ``[start_ms, end_ms]``."""
    return (
        f'SELECT * FROM {TICK_MEASUREMENT} WHERE "symbol" = {quote_literal(symbol)} '
        f"AND {_time_range(start_ms, end_ms)} ORDER BY time"
    )


def kline_from_row(row: Mapping[str, Any], symbol: str, period: str) -> Kline:
    """Rebuild a Kline from a query row (``time`` in microseconds)."""
    try:
        return Kline(
            symbol,
            period,
            int(row["start"]),
            int(row["time"]) // 1000,
            float(row["open"]),
            float(row["high"]),
            float(row["low"]),
            float(row["close"]),
            float(row["volume"]),
            float(row["turnover"]),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise ProtocolError(
            f"archived bar of {symbol} {period} is malformed ({type(e).__name__}: {e}), "
            f"was {dict(row)!r}; was it written by another program?"
        ) from None


def tick_from_row(row: Mapping[str, Any], symbol: str) -> Tick:
    """Rebuild a Tick from a query row (``time`` in microseconds)."""
    try:
        seq = row.get("seq")
        return Tick(
            symbol,
            int(row["time"]) // 1000,
            float(row["price"]),
            float(row["volume"]),
            float(row["turnover"]),
            None if seq is None else int(seq),
            int(row["direction"]),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise ProtocolError(
            f"archived tick of {symbol} is malformed ({type(e).__name__}: {e}), "
            f"was {dict(row)!r}; was it written by another program?"
        ) from None


def _float_fields(*pairs: tuple[str, float]) -> str:
    parts = []
    for name, value in pairs:
        value = float(value)
        if not math.isfinite(value):
            # Line protocol has no NaN or infinity; a missing field reads back as an error, not a lie.
            raise ConfigError(f"InfluxDB cannot store {name}={value!r}; only finite numbers, was {value!r}")
        parts.append(f"{name}={value!r}")
    return ",".join(parts)


def _time_range(start_ms: int, end_ms: int) -> str:
    # Bare integers are nanoseconds in InfluxQL.  The end is inclusive: ticks of the last
    # millisecond sit up to 999 us after it.
    start_ns = max(_MIN_TIME_NS, int(start_ms) * 1_000_000)
    end_ns = min(_MAX_TIME_NS, (int(end_ms) + 1) * 1_000_000)
    return f"time >= {start_ns} AND time < {end_ns}"
