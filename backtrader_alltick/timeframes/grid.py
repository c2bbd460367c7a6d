"""The grid bars sit on: where a bar of a period starts, ends and is final, the slots of a
:class:`~.periods.BarSpec` (several native bars in one), and how many bars fit into a range.

Intraday periods sit on a UTC grid anchored at the epoch (so ``5m`` bars start at :00, :05, ...);
days, weeks and months follow the market's trading day (see :mod:`markets`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from ..markets import DAY_MS, MINUTE_MS, Market, epoch_ms
from .periods import BarSpec, Period, _p

_EPOCH_DATE = date(1970, 1, 1)


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
