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
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Protocol

from .errors import ConfigError, UnsupportedTimeframe
from .markets import DAY_MS, MINUTE_MS, Market, epoch_ms

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
# Backtrader's default sessionend (feed.py dopostinit: "remove 9 to avoid precision rounding errors"):
# where a daily bar's date stamp sits, and what a date-only todate is combined with.
END_OF_DAY = time(23, 59, 59, 999990)
# A daily bar's close lies within a day of its date stamp (a crypto day closes at 00:00 after its
# date, a forex day at 17:00 New York before the end of it): two days of slack hold it either way.
_STAMP_SLACK_DAYS = 2
_EPOCH_DATE = date(1970, 1, 1)


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


def bar_start(period: Period | str, ts_ms: int, market: Market) -> int:
    """Epoch ms at which the bar of ``period`` that contains ``ts_ms`` starts."""
    period = _p(period)
    if period.is_intraday:
        step = period.count * MINUTE_MS
        return ts_ms - ts_ms % step
    day = market.day_start(ts_ms)
    local = market.local(day)
    if period.unit == "week":
        day = market.day_start(day - local.weekday() * DAY_MS + 3_600_000)
    elif period.unit == "month":
        day = market.day_start(day - (local.day - 1) * DAY_MS + 3_600_000)
    return day


def next_start(period: Period | str, start_ms: int, market: Market) -> int:
    """Epoch ms at which the bar after the one starting at ``start_ms`` starts."""
    period = _p(period)
    if period.is_intraday:
        return start_ms + period.count * MINUTE_MS
    local = market.local(start_ms)
    if period.unit == "day":
        step = timedelta(days=1)
    elif period.unit == "week":
        step = timedelta(days=7)
    else:
        month = local.month % 12 + 1
        year = local.year + (local.month == 12)
        target = local.replace(year=year, month=month, day=1, tzinfo=None)
        return epoch_ms(target.replace(tzinfo=market.zone))
    target = (local.replace(tzinfo=None) + step).replace(tzinfo=market.zone)
    return epoch_ms(target)


def bar_end(period: Period | str, start_ms: int, market: Market) -> int:
    """Close instant of the bar that starts at ``start_ms``.

    Intraday: the next bar's start.  Daily and longer: the close of the last trading day of
    the period by the market's calendar (an early close included), so a week ends on its
    last trading day, not on a Sunday or a holiday.
    """
    period = _p(period)
    following = next_start(period, start_ms, market)
    if period.is_intraday:
        return following
    return period_close(start_ms, following, market)


def final_at(period: Period | str, start_ms: int, market: Market) -> int:
    """When the bar starting at ``start_ms`` is final: when its slot ends.

    Intraday that is its close stamp.  A daily bar holds every trade of its trading date, so it
    is final when the date ends (its next day starts), after the session close that stamps it:
    after-hours trades and late prints of the date may still come.
    """
    return next_start(period, start_ms, market)


def period_close(start_ms: int, following_ms: int, market: Market) -> int:
    """Close of the last trading day in the local days of ``[start_ms, following_ms)``.

    A period without a trading day (a holiday, a week of closures) closes when its last
    weekday's regular session would have, so its bar still has a date of its own.
    """
    first = market.local(start_ms).date()
    last = market.local(following_ms - 1).date()
    day = market.last_trading_day(first, last)
    close = None if day is None else market.session_close(day)
    if close is not None:
        return close
    while last > first and last.weekday() not in market.weekdays:
        last -= timedelta(days=1)
    return market.session_end(epoch_ms(datetime.combine(last, time(), tzinfo=market.zone)))


def bucket_index(period: Period | str, start_ms: int, market: Market) -> int:
    """A number that counts periods since the epoch; groups native bars into multiples."""
    period = _p(period)
    if period.is_intraday:
        return start_ms // (period.count * MINUTE_MS)
    local = market.local(start_ms)
    days = (local.date() - local.date().replace(year=1970, month=1, day=1)).days
    if period.unit == "day":
        return days
    if period.unit == "week":
        return (days + 3) // 7  # 1970-01-01 was a Thursday; weeks start on Monday
    return (local.year - 1970) * 12 + local.month - 1


def index_start(period: Period | str, index: int, market: Market) -> int:
    """Start of the bar of ``period`` numbered ``index`` by :func:`bucket_index` (its inverse)."""
    period = _p(period)
    if period.is_intraday:
        return index * period.count * MINUTE_MS
    if period.unit == "day":
        day = _EPOCH_DATE + timedelta(days=index)
    elif period.unit == "week":
        day = _EPOCH_DATE + timedelta(days=7 * index - 3)  # the Monday of week `index`
    else:
        day = date(1970 + index // 12, index % 12 + 1, 1)
    # Noon always exists locally (midnight may not on a DST day); day_start finds midnight.
    noon = datetime.combine(day, time(12), tzinfo=market.zone)
    return market.day_start(int(noon.timestamp() * 1000))


# -- slots: the bars of a spec, native or a multiple ----------------------------------------------


@dataclass(frozen=True)
class Slot:
    """One place on a spec's grid: ``[start, next_start)`` holds its trades, ``end`` is its close stamp."""

    start: int
    next_start: int
    end: int


def slot_of(spec: BarSpec, ts_ms: int, market: Market) -> Slot:
    """The slot of ``spec`` that holds ``ts_ms``: ``spec.multiple`` native bars counted from the epoch.

    Example::

        slot_of(resolve(MINUTES, 3, ("1m",), "BTCUSDT"), ts_ms, CRYPTO).end   # the 3-minute close
    """
    native = spec.native
    if native.is_intraday:
        step = native.count * spec.multiple * MINUTE_MS
        start = ts_ms - ts_ms % step
        return Slot(start, start + step, start + step)
    return group_slot(
        spec, bucket_index(native, bar_start(native, ts_ms, market), market) // spec.multiple, market
    )


def group_slot(spec: BarSpec, group: int, market: Market) -> Slot:
    """The slot of ``spec`` numbered ``group``: native bars ``group * multiple`` onwards, stamped at
    the close of its last native bar."""
    first = group * spec.multiple
    start = index_start(spec.native, first, market)
    last_native = index_start(spec.native, first + spec.multiple - 1, market)
    following = index_start(spec.native, first + spec.multiple, market)
    return Slot(start, following, bar_end(spec.native, last_native, market))


def first_slot_start(spec: BarSpec, fromdate_ms: int, market: Market) -> int:
    """Where to start loading so that every bar stamped at or after ``fromdate_ms`` is there.

    Backtrader keeps a bar stamped exactly at ``fromdate``: intraday that is the bar of the
    slot holding the instant before it.  A daily or longer bar may be stamped after the next
    slot has begun (a forex day closes 22:00 UTC), so loading starts one slot earlier.
    """
    slot = slot_of(spec, fromdate_ms - 1, market)
    if spec.native.is_intraday:
        return slot.start
    return slot_of(spec, slot.start - 1, market).start


# -- the date a daily bar carries ---------------------------------------------------------------


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


# -- what a feed asks for -----------------------------------------------------------------------


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


# -- How many bars fit, and which are final: the history loader's questions of the grid -----------

_HOUR_MS = 3_600_000
# Shortest possible length of a bar (a DST day lasts 23 hours, February 28 days): bounds how many
# bars fit into a range.
_SHORTEST_MS = {"day": DAY_MS - _HOUR_MS, "week": 7 * DAY_MS - _HOUR_MS, "month": 28 * DAY_MS - _HOUR_MS}


def first_open_start(period: Period | str, moment_ms: int, market: Market) -> int:
    """Start of the oldest bar not final at ``moment_ms``: every bar before it is (see :func:`final_at`;
    the bar in progress at ``moment_ms`` is not, a daily one included)."""
    return bar_start(period, moment_ms, market)


def first_stamped_after(period: Period | str, moment_ms: int, market: Market) -> int:
    """Start of the oldest bar stamped after ``moment_ms``: every bar before it closes by then."""
    start = bar_start(period, moment_ms, market)
    if bar_end(period, start, market) <= moment_ms:
        return next_start(period, start, market)
    return start


def most_bars(period: Period | str, low_ms: int, high_ms: int) -> int:
    """How many bars of ``period`` can start in ``[low_ms, high_ms)``: exact intraday, an upper bound
    otherwise."""
    length = _p(period)
    if length.is_intraday:
        step = length.count * MINUTE_MS
        first = -(-low_ms // step) * step  # the first grid point at or after low_ms
        return max(0, -(-(high_ms - first) // step))
    if high_ms <= low_ms:
        return 0
    return (high_ms - low_ms) // (_SHORTEST_MS[length.unit] * length.count) + 1


def bars_since_earliest(period: Period | str, now_ms: int) -> int:
    """Most bars of ``period`` that can start between 1970 (the oldest time the wire accepts) and now."""
    return most_bars(period, 0, now_ms)
