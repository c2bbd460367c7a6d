"""Trading calendars by asset class: time zone, weekly days, daily sessions and holidays.

Stock markets name an exchange calendar (XNYS, XHKG, XSHG for Shanghai and Shenzhen); with the ``calendars``
extra installed (:mod:`calendars`) they know holidays, early closes and lunch breaks,
otherwise their weekly sessions are the fallback.  A market's *trading date* is the local
date of its sessions; every session of a trading date lies inside that local day.

Forex, metals and CFDs follow AllTick's product list (protocol/alltick.md, "Trading-hours
notes"): their day rolls at 17:00 New York, with New York's daylight saving time, so forex
trades Sunday 17:00 to Friday 17:00 New York (21:00 UTC in summer, 22:00 in winter) and
metals and CFD indices Sunday 18:00 to Friday 17:00 with a daily break 17:00-18:00 (AUS200
opens at 17:50 on Sunday).  UKOIL (00:00-21:00 UTC) and the base metals (01:00-19:00 London)
keep their own hours, written in their own clock (``session_tz``).  Their trading date is the
date of a clock that reads midnight at the roll (:class:`RolledZone`), so every session of a
trading date still lies inside that "local" day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from functools import cache
from zoneinfo import ZoneInfo

from .calendars import ExchangeSessions, Spans, exchange_sessions

MINUTE_MS = 60_000
DAY_MS = 86_400_000


@dataclass(frozen=True)
class Market:
    """A trading calendar.

    Example::

        US_STOCKS.is_open(1_700_000_000_000)   # 2023-11-14 22:13 UTC -> False
        US_STOCKS.is_trading_day(date(2023, 7, 4))   # False with the calendars extra (a holiday)
        US_STOCKS.close_date(1_700_000_000_000)      # the trading date of a bar closing then
    """

    name: str
    tz: str
    weekdays: frozenset[int]  # 0 = Monday
    sessions: tuple[tuple[int, int], ...]  # local minutes after midnight, [start, end)
    exchange: str | None = None  # exchange-calendars code; None: weekly sessions only
    roll: int = 0  # minutes from local midnight to where the trading day begins (-420: 17:00 the day before)
    # The zone whose wall clock ``sessions`` are written in, when not the trading-day clock: UKOIL's hours
    # are fixed in UTC, the base metals' in London, while their trading dates roll at 17:00 New York.
    session_tz: str | None = None
    week_opens: int | None = None  # Monday's first session opens here instead (AUS200: 17:50 Sunday)

    @property
    def zone(self) -> tzinfo:
        """The trading-day clock: ``tz``, shifted so that it reads midnight at the day's roll."""
        return _zone(self.tz) if not self.roll else _rolled_zone(self.tz, self.roll)

    def local(self, ts_ms: int) -> datetime:
        return datetime.fromtimestamp(ts_ms / 1000, tz=timezone.utc).astimezone(self.zone)

    # -- trading dates (calendar-aware) ---------------------------------------------

    def sessions_on(self, day: date) -> Spans:
        """Open spans (epoch ms, ``[open, close)``) of trading date ``day``; empty when closed."""
        table = self._exchange()
        if table is not None and table.covers(day):
            return table.on(day)
        return self.weekly_sessions_on(day)

    def weekly_sessions_on(self, day: date) -> Spans:
        """The regular sessions of ``day`` by weekday alone (no holidays, no early closes)."""
        if day.weekday() not in self.weekdays:
            return ()
        return self._regular_spans(day)

    def _regular_spans(self, day: date) -> Spans:
        """The weekly sessions as they fall on ``day``, whatever its weekday."""
        zone = self.zone if self.session_tz is None else _zone(self.session_tz)
        midnight = datetime.combine(day, time(), tzinfo=zone)
        spans = [[first, last] for first, last in self.sessions]
        if self.week_opens is not None and day.weekday() == 0:
            spans[0][0] = self.week_opens
        return tuple(
            (epoch_ms(_at_minute(midnight, first, zone)), epoch_ms(_at_minute(midnight, last, zone)))
            for first, last in spans
        )

    def is_trading_day(self, day: date) -> bool:
        return bool(self.sessions_on(day))

    def session_close(self, day: date) -> int | None:
        """Epoch ms of the last close of trading date ``day`` (early closes included); None if closed."""
        spans = self.sessions_on(day)
        return spans[-1][1] if spans else None

    def session_open(self, day: date) -> int | None:
        """Epoch ms of the first open of trading date ``day``; None if closed."""
        spans = self.sessions_on(day)
        return spans[0][0] if spans else None

    def close_date(self, end_ms: int) -> date:
        """Trading date of a bar closing at ``end_ms`` (one closing at midnight belongs to the day before)."""
        return self.local(end_ms - 1).date()

    def last_trading_day(self, first: date, last: date) -> date | None:
        """The last trading date in ``[first, last]``, or None."""
        day = last
        while day >= first:
            if self.is_trading_day(day):
                return day
            day -= timedelta(days=1)
        return None

    def next_close(self, ts_ms: int) -> int:
        """The first session end at or after ``ts_ms``: where the trading day of a bar closing then ends."""
        day = self.close_date(ts_ms)
        for _ in range(60):  # longer than any closure (Golden Week, Lunar New Year)
            close = self.session_close(day)
            if close is not None and close >= ts_ms:
                return close
            day += timedelta(days=1)
        return self.session_end(self.day_start(ts_ms))

    def next_open(self, ts_ms: int) -> int | None:
        """The first session open at or after ``ts_ms`` (None if none within 60 days)."""
        day = self.local(ts_ms).date()
        for _ in range(60):
            for low, _high in self.sessions_on(day):
                if low >= ts_ms:
                    return low
            day += timedelta(days=1)
        return None

    def closed_note(self, ts_ms: int) -> str | None:
        """Why the market is closed at ``ts_ms`` and when it opens next (for a log line); None if open."""
        if self.is_open(ts_ms):
            return None
        day = self.local(ts_ms).date()
        close = self.session_close(day)
        if close is None:
            why = f"{day} is not a trading day" + (" (a holiday)" if self.weekly_sessions_on(day) else "")
        elif ts_ms >= close:
            regular = self.weekly_sessions_on(day)
            early = bool(regular) and close < regular[-1][1]
            # On the wall clock of the zone the hours are written in, not the rolled trading-day clock.
            clock = self.session_tz or self.tz
            closed_at = datetime.fromtimestamp(close / 1000, tz=timezone.utc).astimezone(_zone(clock))
            why = f"{day}'s session closed at {closed_at:%H:%M} {clock}"
            why += " (early close)" if early else ""
        else:
            why = "between sessions"
        opens = self.next_open(ts_ms)
        nxt = (
            ""
            if opens is None
            else f"; next open {datetime.fromtimestamp(opens / 1000, tz=timezone.utc):%Y-%m-%d %H:%M} UTC"
        )
        return f"{self.name} market closed: {why}{nxt}"

    # -- instants ---------------------------------------------------------------------

    def is_open(self, ts_ms: int) -> bool:
        """Return True when ``ts_ms`` falls inside a session."""
        return any(low <= ts_ms < high for low, high in self.sessions_on(self.local(ts_ms).date()))

    def day_start(self, ts_ms: int) -> int:
        """Epoch ms of local midnight of the day that contains ``ts_ms``."""
        local = self.local(ts_ms)
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        return epoch_ms(midnight)

    def session_end(self, day_start_ms: int) -> int:
        """Epoch ms of the last session close of the local day starting at ``day_start_ms``.

        On a trading day this is the calendar's close (an early close included); on a day
        the market does not trade, the close its weekday's regular sessions would have.
        """
        day = self.local(day_start_ms).date()
        close = self.session_close(day)
        if close is not None:
            return close
        return self._regular_spans(day)[-1][1]

    def open_spans(self, start_ms: int, end_ms: int) -> list[tuple[int, int]]:
        """Return the open intervals (epoch ms) that intersect ``[start_ms, end_ms)``."""
        spans: list[tuple[int, int]] = []
        if end_ms <= start_ms:
            return spans
        day, last = self.local(start_ms).date(), self.local(end_ms - 1).date()
        while day <= last:
            for low, high in self.sessions_on(day):
                low, high = max(low, start_ms), min(high, end_ms)
                if low < high:
                    spans.append((low, high))
            day += timedelta(days=1)
        return spans

    def _exchange(self) -> ExchangeSessions | None:
        return exchange_sessions(self.exchange) if self.exchange else None


def _at_minute(local_midnight: datetime, minute: int, zone: tzinfo) -> datetime:
    naive = local_midnight.replace(tzinfo=None) + timedelta(minutes=minute)
    return naive.replace(tzinfo=zone)


def epoch_ms(moment: datetime) -> int:
    """Epoch milliseconds of an aware datetime."""
    return int(round(moment.timestamp() * 1000))


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


class RolledZone(tzinfo):
    """A zone whose clock reads midnight when ``base``'s reads the roll (e.g. 17:00 New York).

    Its dates are trading dates: 17:30 New York on Monday is 00:30 on Tuesday here, in either
    season, because the shift is applied to New York's own (daylight-saving) wall time.

    Example::

        zone = RolledZone(ZoneInfo("America/New_York"), -420)   # the day rolls at 17:00
        datetime(2024, 7, 8, 21, 30, tzinfo=timezone.utc).astimezone(zone)   # 2024-07-09 00:30
    """

    def __init__(self, base: ZoneInfo, roll: int) -> None:
        self.base = base
        self.shift: timedelta = timedelta(minutes=-roll)  # added to base wall time

    def __repr__(self) -> str:
        return f"RolledZone({self.base.key!r}, roll={-int(self.shift.total_seconds() // 60)})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RolledZone) and (self.base, self.shift) == (other.base, other.shift)

    def __hash__(self) -> int:
        return hash((self.base, self.shift))

    def _base_moment(self, moment: datetime) -> datetime:
        return (moment.replace(tzinfo=None) - self.shift).replace(tzinfo=self.base, fold=moment.fold)

    def utcoffset(self, moment: datetime | None) -> timedelta | None:
        if moment is None:
            return None
        offset = self.base.utcoffset(self._base_moment(moment))
        return None if offset is None else offset + self.shift

    def dst(self, moment: datetime | None) -> timedelta | None:
        return None if moment is None else self.base.dst(self._base_moment(moment))

    def tzname(self, moment: datetime | None) -> str:
        return f"{self.base.key} rolled {self.shift}"

    def fromutc(self, moment: datetime) -> datetime:
        local = moment.replace(tzinfo=timezone.utc).astimezone(self.base)
        return (local.replace(tzinfo=None) + self.shift).replace(tzinfo=self, fold=local.fold)


@cache
def _rolled_zone(name: str, roll: int) -> RolledZone:
    return RolledZone(ZoneInfo(name), roll)


WEEKDAYS = frozenset(range(5))
EVERY_DAY = frozenset(range(7))

US_STOCKS = Market("US", "America/New_York", WEEKDAYS, ((570, 960),), "XNYS")
HK_STOCKS = Market("HK", "Asia/Hong_Kong", WEEKDAYS, ((570, 720), (780, 960)), "XHKG")
SH_STOCKS = Market("CN", "Asia/Shanghai", WEEKDAYS, ((570, 690), (780, 900)), "XSHG")
# Shenzhen (XSHE) keeps Shanghai's holidays; exchange-calendars publishes them once, as XSHG.
SZ_STOCKS = Market("CN", "Asia/Shanghai", WEEKDAYS, ((570, 690), (780, 900)), "XSHG")
# AllTick's product list: the day rolls at 17:00 New York (roll -420: 7 hours before midnight).
# Forex: Sunday 17:00 -> Friday 17:00 New York, no daily break.
FOREX = Market("FOREX", "America/New_York", WEEKDAYS, ((0, 1440),), roll=-420)
# GOLD, Silver, USOIL, NGAS, Palladium, Platinum: Sunday 18:00 -> Friday 17:00 New York (22:00 -> 21:00
# UTC in summer, an hour later in winter), daily break 17:00-18:00.  Metal crosses (XAUEUR) and energy
# codes the list does not name trade as these do (the same spot markets).
METALS = Market("METALS", "America/New_York", WEEKDAYS, ((60, 1440),), roll=-420)
# UKOIL: Monday 00:00 -> Friday 21:00, daily break 21:00-24:00, with no winter shift in the list: UTC
# hours all year, on the 17:00 New York trading date (the vendor's daily K-lines roll there).
UKOIL = Market("UKOIL", "America/New_York", WEEKDAYS, ((0, 1260),), roll=-420, session_tz="UTC")
# COPPER, Aluminum, Nickel, Lead, Zinc: Monday 00:00 -> Friday 18:00, daily break 18:00-24:00, winter
# one hour later: 01:00-19:00 London all year (the London Metal Exchange's day, whose clock is the one
# that moves), on the 17:00 New York trading date.
BASE_METALS = Market(
    "BASE_METALS", "America/New_York", WEEKDAYS, ((60, 1140),), roll=-420, session_tz="Europe/London"
)
# CFD indices: 18:00 Sunday -> 17:00 Friday US Eastern, daily break 17:00-18:00 (the list gives every
# CFD index this line, whatever its home exchange); AUS200 opens 17:50 on Sunday.
CFD = Market("CFD", "America/New_York", WEEKDAYS, ((60, 1440),), roll=-420)
AUS200 = Market("AUS200", "America/New_York", WEEKDAYS, ((60, 1440),), roll=-420, week_opens=50)
CRYPTO = Market("CRYPTO", "UTC", EVERY_DAY, ((0, 1440),))
