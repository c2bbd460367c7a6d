"""Bar periods by name: Backtrader's timeframes, the short names ("5m", "1h", "1d", "1M"), the native
:class:`Period` a service serves, and the :class:`BarSpec` a feed asks for (a native period and a
multiple of it).

Pure: no I/O, no clock, no market.  Where those bars sit in time is :mod:`.grid`'s question.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import ConfigError, UnsupportedTimeframe
from ..markets import DAY_MS, MINUTE_MS

# backtrader.TimeFrame values, mirrored so this module stays free of backtrader.
TICKS, MICROSECONDS, SECONDS, MINUTES, DAYS, WEEKS, MONTHS, YEARS = 1, 2, 3, 4, 5, 6, 7, 8
TIMEFRAME_NAMES = {
    TICKS: "Ticks",
    MICROSECONDS: "MicroSeconds",
    SECONDS: "Seconds",
    MINUTES: "Minutes",
    DAYS: "Days",
    WEEKS: "Weeks",
    MONTHS: "Months",
    YEARS: "Years",
}

# The one grammar of short period names: a count (1 when left out) and a unit; "min" is the
# minute's long spelling, "M" (upper case) is a month.
PERIOD_SYNTAX = "1m, 5m, 1h, 1d, 1w or 1M"
_PERIOD_NAME = re.compile(r"([1-9]\d*)?(m|min|h|d|w|M)")
_NAME_UNITS = {
    "m": (MINUTES, 1),
    "min": (MINUTES, 1),
    "h": (MINUTES, 60),
    "d": (DAYS, 1),
    "w": (WEEKS, 1),
    "M": (MONTHS, 1),
}
_UNIT_SUFFIX = {"day": "d", "week": "w", "month": "M"}
# The unit of a native period that each Backtrader timeframe counts in (Years: months x 12).
UNIT_OF_TIMEFRAME = {MINUTES: "minute", DAYS: "day", WEEKS: "week", MONTHS: "month"}


@dataclass(frozen=True)
class Period:
    """A native bar length: ``unit`` is minute, day, week or month; ``count`` how many."""

    name: str
    unit: str
    count: int

    @property
    def is_intraday(self) -> bool:
        return self.unit == "minute"

    @property
    def minutes(self) -> int:
        """Length in minutes for intraday periods (0 otherwise)."""
        return self.count if self.is_intraday else 0

    @property
    def millis(self) -> int:
        """Nominal length in ms (months count as 30 days; use only for estimates)."""
        if self.is_intraday:
            return self.count * MINUTE_MS
        return {"day": 1, "week": 7, "month": 30}[self.unit] * self.count * DAY_MS


PERIODS: dict[str, Period] = {
    p.name: p
    for p in (
        Period("1m", "minute", 1),
        Period("5m", "minute", 5),
        Period("15m", "minute", 15),
        Period("30m", "minute", 30),
        Period("1h", "minute", 60),
        Period("2h", "minute", 120),
        Period("4h", "minute", 240),
        Period("1d", "day", 1),
        Period("1w", "week", 1),
        Period("1M", "month", 1),
    )
}


def is_intraday_label(label: str) -> bool:
    """True for a bar label of minutes or hours (``"1m"``, ``"3m"``, ``"2h"``); False for days and longer."""
    return label[-1] in "mh"


def get_period(name: str) -> Period:
    return PERIODS[name]


def parse_period(text: str, name: str = "timeframe") -> tuple[int, int]:
    """Backtrader's ``(timeframe, compression)`` for a short period name; ConfigError naming ``name`` else.

    The reverse of :attr:`BarSpec.period`: ``"5m"`` is ``(MINUTES, 5)``, ``"2h"`` ``(MINUTES, 120)``,
    ``"3d"`` ``(DAYS, 3)``, ``"1w"`` ``(WEEKS, 1)``, ``"1M"`` ``(MONTHS, 1)``; ``"m"`` and ``"5min"``
    are accepted too.  Whether a service can serve it is :func:`resolve`'s question.

    Example::

        timeframe, compression = parse_period("15m")   # (MINUTES, 15)
    """
    match = _PERIOD_NAME.fullmatch(str(text).strip())
    if not match:
        raise ConfigError(f"{name} must look like {PERIOD_SYNTAX}, was {text!r}")
    timeframe, factor = _NAME_UNITS[match.group(2)]
    return timeframe, int(match.group(1) or 1) * factor


def period_name(unit: str, count: int) -> str:
    """Short name of ``count`` periods of ``unit`` (minute, day, week, month): ``"90m"``, ``"2h"``."""
    if unit == "minute":
        return f"{count // 60}h" if count % 60 == 0 else f"{count}m"
    return f"{count}{_UNIT_SUFFIX[unit]}"


def grid_period(timeframe: int, compression: int, purpose: str = "grid checks") -> Period:
    """The bar grid of Backtrader's ``(timeframe, compression)``: minutes x N, or one day, week or month.

    Unlike :func:`resolve` it asks nothing of a service: any minute multiple has a grid.
    ``purpose`` names who needs the grid in the ConfigError for anything else.

    Example::

        grid_period(MINUTES, 7).millis   # 420_000
    """
    unit = UNIT_OF_TIMEFRAME.get(timeframe)
    if unit is not None and (compression == 1 or unit == "minute" and compression > 1):
        return Period(period_name(unit, compression), unit, compression)
    name = TIMEFRAME_NAMES.get(timeframe, timeframe)
    raise ConfigError(
        f"{purpose} need Minutes x N or Days, Weeks or Months x 1 bars, was {compression} {name}"
    )


def as_period(period: Period | str, purpose: str = "grid checks") -> Period:
    """A Period from a name such as ``1m``, ``7m``, ``1h``, ``1d`` (any minute multiple works)."""
    if isinstance(period, Period):
        return period
    return grid_period(*parse_period(period, "period"), purpose)


@dataclass(frozen=True)
class BarSpec:
    """What a feed asks for: a native period, and how many of them make one bar.

    ``label`` is what the user asked for, in Backtrader's words ("5 Minutes"); ``period`` is the
    bars' short name in keys, records and the CLI ("5m").

    Example::

        spec = resolve(MINUTES, 5, ("1m", "5m"), "BTCUSDT")   # spec.period == "5m"
    """

    native: Period
    multiple: int
    label: str

    @property
    def is_native(self) -> bool:
        return self.multiple == 1

    @property
    def period(self) -> str:
        """Short name of the bars this spec builds: ``"3m"``, ``"2h"``, ``"3d"``, ``"1w"``."""
        return period_name(self.native.unit, self.native.count * self.multiple)


def resolve(
    timeframe: int, compression: int, natives: tuple[str, ...], symbol: str, *, live: bool = False
) -> BarSpec:
    """Map Backtrader's (timeframe, compression) to a native period and a multiple.

    Any combination a native period serves, or an exact multiple of one, is accepted:
    3 minutes from 1 minute, 2 hours from 1 hour, 3 days from 1 day.  Anything else
    raises UnsupportedTimeframe listing what works (Ticks only for a ``live`` feed).
    """
    label = f"{compression} {TIMEFRAME_NAMES.get(timeframe, timeframe)}"
    supported = describe_supported(natives, live=live)
    if compression < 1:
        raise UnsupportedTimeframe(label, symbol, supported, "compression must be 1 or more")
    if timeframe == YEARS:
        unit, amount = "month", compression * 12
    elif timeframe in UNIT_OF_TIMEFRAME:
        unit, amount = UNIT_OF_TIMEFRAME[timeframe], compression
    else:
        raise UnsupportedTimeframe(label, symbol, supported)
    candidates = [PERIODS[n] for n in natives if PERIODS[n].unit == unit and amount % PERIODS[n].count == 0]
    if not candidates:
        raise UnsupportedTimeframe(label, symbol, supported)
    native = max(candidates, key=lambda p: p.count)
    return BarSpec(native, amount // native.count, label)


def describe_supported(natives: tuple[str, ...], *, live: bool = False) -> list[str]:
    """Human list of what a feed with these native periods can serve; Ticks only live (no tick history)."""
    minute_bases = sorted({PERIODS[n].count for n in natives if PERIODS[n].is_intraday})
    out = ["Ticks"] if live else []
    if minute_bases:
        out.append("Minutes x N (N a multiple of " + "/".join(str(m) for m in minute_bases) + ")")
    for unit, name in (("day", "Days"), ("week", "Weeks"), ("month", "Months")):
        if any(PERIODS[n].unit == unit for n in natives):
            out.append(f"{name} x N")
    return out


def _p(period: Period | str) -> Period:
    return PERIODS[period] if isinstance(period, str) else period
