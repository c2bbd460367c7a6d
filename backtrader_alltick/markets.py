"""Trading calendars by asset class: time zone, weekly days, daily sessions and holidays.

Stock markets name an exchange calendar (XNYS, XHKG, XSHG for Shanghai and Shenzhen); with the ``calendars``
extra installed (:mod:`calendars`) they know holidays, early closes and lunch breaks,
otherwise their weekly sessions are the fallback.  A market's *trading date* is the local
date of its sessions; every session of a trading date lies inside that local day.

Forex, metals and CFDs trade from Sunday 22:00 to Friday 22:00 UTC (AllTick's winter
hours).  In UTC+2 that is Monday 00:00 to Saturday 00:00, so their trading day is
the calendar day of ``Etc/GMT-2`` and daily bars end at 22:00 UTC, the usual
"New York close" convention.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
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

    @property
    def zone(self) -> ZoneInfo:
        return _zone(self.tz)

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
        midnight = datetime.combine(day, time(), tzinfo=self.zone)
        return tuple((epoch_ms(_at_minute(midnight, first, self.zone)),
                      epoch_ms(_at_minute(midnight, last, self.zone))) for first, last in self.sessions)

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
            why = f"{day}'s session closed at {self.local(close):%H:%M} {self.tz}"
            why += " (early close)" if early else ""
        else:
            why = "between sessions"
        opens = self.next_open(ts_ms)
        nxt = "" if opens is None else \
            f"; next open {datetime.fromtimestamp(opens / 1000, tz=timezone.utc):%Y-%m-%d %H:%M} UTC"
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
        local = self.local(day_start_ms)
        close = self.session_close(local.date())
        if close is not None:
            return close
        return epoch_ms(_at_minute(local, self.sessions[-1][1], self.zone))

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


def _at_minute(local_midnight: datetime, minute: int, zone: ZoneInfo) -> datetime:
    naive = local_midnight.replace(tzinfo=None) + timedelta(minutes=minute)
    return naive.replace(tzinfo=zone)


def epoch_ms(moment: datetime) -> int:
    """Epoch milliseconds of an aware datetime."""
    return int(round(moment.timestamp() * 1000))


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


WEEKDAYS = frozenset(range(5))
EVERY_DAY = frozenset(range(7))

US_STOCKS = Market("US", "America/New_York", WEEKDAYS, ((570, 960),), "XNYS")
HK_STOCKS = Market("HK", "Asia/Hong_Kong", WEEKDAYS, ((570, 720), (780, 960)), "XHKG")
SH_STOCKS = Market("CN", "Asia/Shanghai", WEEKDAYS, ((570, 690), (780, 900)), "XSHG")
# Shenzhen (XSHE) keeps Shanghai's holidays; exchange-calendars publishes them once, as XSHG.
SZ_STOCKS = Market("CN", "Asia/Shanghai", WEEKDAYS, ((570, 690), (780, 900)), "XSHG")
FOREX = Market("FOREX", "Etc/GMT-2", WEEKDAYS, ((0, 1440),))
METALS = Market("METALS", "Etc/GMT-2", WEEKDAYS, ((0, 1380),))  # daily break 21:00-22:00 UTC
CFD = Market("CFD", "Etc/GMT-2", WEEKDAYS, ((60, 1440),))  # daily break 22:00-23:00 UTC
CRYPTO = Market("CRYPTO", "UTC", EVERY_DAY, ((0, 1440),))
