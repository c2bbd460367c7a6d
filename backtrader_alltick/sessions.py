"""A market's calendar in Backtrader's terms: ``sessionstart``/``sessionend``, end of session, daily stamps.

Backtrader reads a feed's session in three places: ``dopostinit`` (a ``date`` ``fromdate``
becomes ``combine(fromdate, sessionstart)``), the resampler (``_getnexteos`` says where a day
ends) and timers (``SESSION_START``/``SESSION_END`` fire at ``combine(date, session time)``
in the feed's ``tz``).  Daily and longer bars are stamped, as Backtrader's own CSV and
Pandas feeds do, with their trading date at the end of the day (:func:`timeframes.date_stamp`).
"""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import backtrader as bt
from backtrader.dataseries import _Bar
from backtrader.resamplerfilter import Resampler

from .markets import DAY_MS, Market
from .symbols import Instrument
from .timeframes import END_OF_DAY, date_stamp

logger: logging.Logger = logging.getLogger(__name__)

EPOCH_NUM = 719163.0  # backtrader's date2num of 1970-01-01 00:00 UTC
# Two regular weekdays, one in each half of the year: a session time that differs between
# them moves with daylight saving time in the feed's zone.
_REFERENCE_DAYS = (date(2024, 1, 10), date(2024, 7, 10))


def ms_to_num(ms: int) -> float:
    """Epoch ms to Backtrader's float days (UTC); boundaries survive ``num2date`` exactly."""
    return EPOCH_NUM + ms / DAY_MS


def num_to_ms(num: float) -> int:
    return int(round((num - EPOCH_NUM) * DAY_MS))


def output_zone(tz: str | tzinfo | None) -> tzinfo:
    """The zone a feed's ``tz`` param shows times in (UTC when None)."""
    if tz is None:
        return timezone.utc
    if isinstance(tz, str):
        return ZoneInfo(tz)
    return tz


class LocalizableZone(ZoneInfo):
    """A ``ZoneInfo`` with pytz's ``localize``, the one method Backtrader calls on a tz.

    Example::

        LocalizableZone("America/New_York").localize(datetime(2024, 3, 1, 9, 30))
    """

    def localize(self, moment: datetime) -> datetime:
        # An aware moment already says which instant it is; only a naive one is read in this zone.
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=self)


def localizable_zone(tz: str | tzinfo | None) -> LocalizableZone | None:
    """A feed's ``tz`` (a zone name or a zoneinfo zone) as Backtrader can use it; None: let
    Backtrader resolve it.

    Backtrader resolves a tz name through pytz, which pandas no longer installs; a zoneinfo
    zone with a pytz-style localize() serves the same purpose.
    """
    if isinstance(tz, str):
        return LocalizableZone(tz)
    if isinstance(tz, ZoneInfo) and not hasattr(tz, "localize"):
        return LocalizableZone(tz.key)
    return None


def session_times(market: Market, tz: str | tzinfo | None) -> tuple[time, time] | None:
    """The market's regular open and close as times of day in ``tz``, or None if they move.

    US sessions in UTC move with daylight saving time: no single ``sessionstart`` is right all
    year, so the caller keeps Backtrader's defaults (and says so) unless the feed has a ``tz``.
    """
    zone = output_zone(tz)
    found: set[tuple[time, time]] = set()
    for day in _REFERENCE_DAYS:
        spans = market.weekly_sessions_on(day)
        found.add((_local(spans[0][0], zone).time(), _local(spans[-1][1], zone).time()))
    return found.pop() if len(found) == 1 else None


def trading_day_start(market: Market, day: date, tz: str | tzinfo | None) -> datetime:
    """Just after the first open of the first trading day on or after ``day``, naive in ``tz``: a
    ``date`` fromdate.  A bar stamped exactly at the open closes the day before, and Backtrader's
    filter keeps ``datetime >= fromdate``, so the day starts a millisecond after its open."""
    moment = market.session_open(day)
    if moment is None:
        midnight = datetime.combine(day, time(), tzinfo=market.zone)
        moment = market.next_open(int(midnight.timestamp() * 1000))
    if moment is None:
        return datetime.combine(day, time())
    return _local(moment + 1, output_zone(tz)).replace(tzinfo=None)


def trading_day_end(market: Market, day: date, tz: str | tzinfo | None) -> datetime:
    """The last close of the last trading day on or before ``day``, naive in ``tz``: a ``date`` todate."""
    last = market.last_trading_day(day - timedelta(days=60), day)
    close = None if last is None else market.session_close(last)
    if close is None:
        return datetime.combine(day, END_OF_DAY)
    return _local(close, output_zone(tz)).replace(tzinfo=None)


def take_market_sessions(params: Any, inst: Instrument) -> None:
    """Give a feed's ``params`` its market's session (in its ``tz``), and read a ``date``
    ``fromdate``/``todate`` as that trading day's open/close.

    Runs before Backtrader's dopostinit, which combines a date fromdate with sessionstart.
    """
    market, tz = inst.market, params.tz
    times = session_times(market, tz)
    if times is not None:
        params.sessionstart, params.sessionend = times
    else:
        logger.info(
            "%s: the %s session moves against %s with daylight saving time, so sessionstart/"
            "sessionend keep Backtrader's defaults (session timers fire at those); pass "
            "tz=%r for the exchange's times. Days still end at the exchange's close.",
            inst.symbol,
            market.name,
            tz or "UTC",
            market.tz,
        )
    if isinstance(params.fromdate, date) and not isinstance(params.fromdate, datetime):
        params.fromdate = trading_day_start(market, params.fromdate, tz)
    if isinstance(params.todate, date) and not isinstance(params.todate, datetime):
        params.todate = trading_day_end(market, params.todate, tz)


def resampler_for(market_sessions: bool, kwargs: dict[str, Any]) -> type[Any]:
    """The resampler filter for ``data.resample(**kwargs)`` on a feed (``market_sessions``: an
    intraday feed on its market's sessions)."""
    # Days, weeks, months from an intraday feed on its market's sessions: cut at the calendar's
    # close and stamped like native bars.  Anything else: Backtrader's own resampler.
    if market_sessions and kwargs.get("timeframe") in (
        bt.TimeFrame.Days,
        bt.TimeFrame.Weeks,
        bt.TimeFrame.Months,
    ):
        return TradingDateResampler
    return Resampler


class TradingDateResampler(Resampler):
    """Backtrader's resampler to days, weeks and months, with each day cut at the market's
    session end, periods grouped by trading date and the delivered bar stamped like a native
    daily bar: trading date, end of day.

    Without the restamp a crypto day, which ends at 00:00 UTC, would carry the next date.
    ``data.resample(timeframe=bt.TimeFrame.Days)`` (or Weeks, Months) on an intraday ``AllTickData``
    uses it.
    """

    def __init__(self, data: Any) -> None:
        super().__init__(data)
        source = data.data if getattr(data, "_clone", False) else data
        self._market: Market = source.inst.market
        self.bar: _TradingDateBar = _TradingDateBar(maxdate=True)
        self.bar._owner = self  # a plain reference, not a closure: optstrategy pickles the filters

    def trading_stamp(self, num: float) -> float:
        """The stamp of a day whose last bar is stamped ``num``: its trading date, end of day."""
        return date_stamp(self.data, num_to_ms(num), self._market)

    def _trading_date(self, num: float) -> date:
        return self._market.close_date(num_to_ms(num))

    # Weeks and months group bars by trading date: a forex Sunday evening opens Monday's day and
    # a crypto day's last minute closes at 00:00 the next day, neither starts a period of its own.
    def _barover_weeks(self, data: Any) -> bool:
        then, now = self._trading_date(self.bar.datetime), self._trading_date(data.datetime[0])
        return now.isocalendar()[:2] > then.isocalendar()[:2]

    def _barover_months(self, data: Any) -> bool:
        then, now = self._trading_date(self.bar.datetime), self._trading_date(data.datetime[0])
        return (now.year, now.month) > (then.year, then.month)

    def _calcadjtime(self, greater: bool = False) -> float:
        if self._nexteos is not None:
            # A bar cut short (the data ended): it ends with its session.  Backtrader's fallback
            # here combines a local date with a UTC time.
            return self._nextdteos
        return super()._calcadjtime(greater)


class _TradingDateBar(_Bar):
    def lvalues(self) -> list[float]:
        values: list[float] = super().lvalues()
        position = list(self.keys()).index("datetime")
        values[position] = self._owner.trading_stamp(values[position])
        return values


def _local(ts_ms: int, zone: tzinfo) -> datetime:
    return datetime.fromtimestamp(ts_ms / 1000, tz=timezone.utc).astimezone(zone)
