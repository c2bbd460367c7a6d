"""The simulated service's trading hours: every market's sessions, in the market's own time zone.

Written from the exchanges' rules and the vendor's product list (alltick.md section 8
"Trading-hours notes"), never from the client's model: the simulator plays the service, and a
wrong assumption made twice would agree with itself.  Each table names its source beside it.

A session has a *kind*; the simulator's ``hours`` mode picks the kinds that trade (:data:`MODES`):
``regular`` (the continuous sessions), ``extended`` (plus US pre-market and after-hours and the
auction prints of Hong Kong and the A-share markets) and ``overnight`` (plus the US overnight
session).  An auction trades only at its match: a few prints at one instant inside ``prints``.

Example::

    us = hours_for("stock", "US", "AAPL")
    [s.kind for s in us.sessions(start_ms, end_ms, MODES["extended"])]   # ['pre', 'regular', 'post']
"""

from __future__ import annotations

from collections.abc import Callable, Container
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache

from .grid import DAY_MS, NEW_YORK_CLOSE, UTC_DAY, DayRule, day_rule
from .holidays import HKEX_HALF_DAYS, HKEX_HOLIDAYS, NYSE_EARLY_CLOSES, NYSE_HOLIDAYS, SSE_HOLIDAYS

REGULAR, PRE, POST, OVERNIGHT = "regular", "pre", "post", "overnight"
OPEN_AUCTION, CLOSE_AUCTION = "open_auction", "close_auction"
AUCTIONS = frozenset({OPEN_AUCTION, CLOSE_AUCTION})
MODES = {
    "regular": frozenset({REGULAR}),
    "extended": frozenset({REGULAR, PRE, POST, OPEN_AUCTION, CLOSE_AUCTION}),
    "overnight": frozenset({REGULAR, PRE, POST, OPEN_AUCTION, CLOSE_AUCTION, OVERNIGHT}),
}
ALL_KINDS = MODES["overnight"]


@dataclass(frozen=True)
class Session:
    """One session, epoch ms ``[start, end)``; an auction's match prints at one instant in ``prints``
    (``(lo, hi)``, ``lo <= instant < hi``; ``lo == hi``: exactly at ``lo``)."""

    start: int
    end: int
    kind: str
    prints: tuple[int, int] | None = None


Table = Callable[[date], tuple[Session, ...]]


@dataclass(frozen=True)
class MarketHours:
    """The sessions of one market, by the date its table is written for, and its trading-date rule.

    Example::

        FOREX.is_open(1_688_940_000_000, MODES["regular"])   # 2023-07-09 22:00 UTC, Sunday 18:00 NY: True
    """

    name: str
    table: Table
    rule: DayRule  # how trading dates fall (K-lines, see grid)
    table_zone: str  # the zone the table's dates are written in

    def sessions(self, start_ms: int, end_ms: int, kinds: Container[str] = ALL_KINDS) -> list[Session]:
        """Sessions of ``kinds`` that intersect ``[start_ms, end_ms)`` (unclipped), by start."""
        first, last = (_local_date(moment, self.table_zone) for moment in (start_ms, end_ms))
        found: list[Session] = []
        day = first - timedelta(days=1)  # a table's date may reach back into the day before (overnight)
        while day <= last + timedelta(days=1):
            for session in _sessions_on(self.table, day):
                # An A-share auction prints at its session's end instant: that instant counts too.
                reaches = session.end if session.prints is None else max(session.end, session.prints[1] + 1)
                if session.kind in kinds and session.start < end_ms and reaches > start_ms:
                    found.append(session)
            day += timedelta(days=1)
        return sorted(found, key=lambda s: s.start)

    def closes(self, start_ms: int, end_ms: int, kinds: Container[str]) -> list[int]:
        """Instants in ``[start_ms, end_ms)`` at which trading of ``kinds`` stops (not a lunch-to-open
        join of touching sessions; not the end of an opening auction, which leads into the open)."""
        sessions = self.sessions(start_ms - DAY_MS, end_ms + DAY_MS, kinds)
        out: list[int] = []
        for index, session in enumerate(sessions):
            following = sessions[index + 1] if index + 1 < len(sessions) else None
            if following is not None and following.start <= session.end:
                continue
            if session.kind != OPEN_AUCTION and start_ms <= session.end < end_ms:
                out.append(session.end)
        return out

    def is_open(self, ts_ms: int, kinds: Container[str]) -> bool:
        """True when a session of ``kinds`` is running at ``ts_ms``."""
        return any(s.start <= ts_ms < s.end for s in self.sessions(ts_ms, ts_ms + 1, kinds))

    def kind_at(self, ts_ms: int) -> str | None:
        """The kind of the session at ``ts_ms``; after a close, the kind of the session that closed
        (a print stamped after the close is late for it); None before any session of the day."""
        return self.kinds_at([ts_ms])[0]

    def kinds_at(self, times: list[int]) -> list[str | None]:
        """:meth:`kind_at` for many instants (one table lookup for all of them)."""
        if not times:
            return []
        sessions = self.sessions(min(times) - DAY_MS, max(times) + 1)
        out = []
        for moment in times:
            kind, ended_at = None, None
            for session in sessions:
                if session.start <= moment < session.end:
                    kind, ended_at = session.kind, moment
                    break
                if session.end <= moment and (ended_at is None or session.end >= ended_at):
                    kind, ended_at = session.kind, session.end
            out.append(kind)
        return out


@lru_cache(maxsize=16_384)
def _sessions_on(table: Table, day: date) -> tuple[Session, ...]:
    return table(day)


def _local_date(ts_ms: int, zone: str) -> date:
    return datetime.fromtimestamp(ts_ms / 1000, tz=timezone.utc).astimezone(DayRule(zone).tz).date()


def _at(day: date, clock: time, zone: str) -> int:
    return int(datetime.combine(day, clock, tzinfo=DayRule(zone).tz).timestamp() * 1000)


def _span(
    day: date,
    zone: str,
    first: time,
    last: time,
    kind: str = REGULAR,
    prints: tuple[time, time] | None = None,
    start_day: date | None = None,
) -> Session:
    window = None if prints is None else (_at(day, prints[0], zone), _at(day, prints[1], zone))
    return Session(_at(start_day or day, first, zone), _at(day, last, zone), kind, window)


# -- stock exchanges --------------------------------------------------------------------------

NEW_YORK, HONG_KONG, SHANGHAI = "America/New_York", "Asia/Hong_Kong", "Asia/Shanghai"


def _us(day: date) -> tuple[Session, ...]:
    # NYSE/Nasdaq (nyse.com "Holidays and Trading Hours"; Nasdaq "Trading Hours"): pre-market
    # 04:00-09:30, regular 09:30-16:00, after-hours 16:00-20:00 (17:00 after a 13:00 early close).
    # Overnight 20:00-04:00 as the overnight venues trade (Blue Ocean ATS: Sunday 20:00 -> Friday
    # 20:00): the night before a trading date belongs to that date's schedule, so a holiday has none.
    if day.weekday() >= 5 or day in NYSE_HOLIDAYS:
        return ()
    close = NYSE_EARLY_CLOSES.get(day, time(16))
    late_end = time(17) if day in NYSE_EARLY_CLOSES else time(20)
    return (
        _span(day, NEW_YORK, time(20), time(4), OVERNIGHT, start_day=day - timedelta(days=1)),
        _span(day, NEW_YORK, time(4), time(9, 30), PRE),
        _span(day, NEW_YORK, time(9, 30), close),
        _span(day, NEW_YORK, close, late_end, POST),
    )


def _hk(day: date) -> tuple[Session, ...]:
    # HKEX "Trading Hours": morning 09:30-12:00, afternoon 13:00-16:00; the closing auction session
    # 16:00-16:10 matches at a random moment between 16:08 and 16:10.  Half-trading days: the morning
    # only, its closing auction 12:00-12:10 matching between 12:08 and 12:10.
    if day.weekday() >= 5 or day in HKEX_HOLIDAYS:
        return ()
    morning = _span(day, HONG_KONG, time(9, 30), time(12))
    if day in HKEX_HALF_DAYS:
        return (
            morning,
            _span(day, HONG_KONG, time(12), time(12, 10), CLOSE_AUCTION, (time(12, 8), time(12, 10))),
        )
    return (
        morning,
        _span(day, HONG_KONG, time(13), time(16)),
        _span(day, HONG_KONG, time(16), time(16, 10), CLOSE_AUCTION, (time(16, 8), time(16, 10))),
    )


def _cn(day: date) -> tuple[Session, ...]:
    # SSE and SZSE trading rules (3.1.4 / 3.1.5): opening call auction 09:15-09:25, its match printed
    # at 09:25:00; continuous auction 09:30-11:30 and 13:00-14:57; closing call auction 14:57-15:00,
    # its match printed at 15:00:00.000, the session's end instant.
    if day.weekday() >= 5 or day in SSE_HOLIDAYS:
        return ()
    return (
        _span(day, SHANGHAI, time(9, 15), time(9, 25), OPEN_AUCTION, (time(9, 25), time(9, 25))),
        _span(day, SHANGHAI, time(9, 30), time(11, 30)),
        _span(day, SHANGHAI, time(13), time(14, 57)),
        _span(day, SHANGHAI, time(14, 57), time(15), CLOSE_AUCTION, (time(15), time(15))),
    )


# -- round-the-clock markets ------------------------------------------------------------------


def _from_evening(zone: str, opens: time, closes: time, first_open: time | None = None) -> Table:
    """Monday..Friday dates that open the evening before (Sunday evening for Monday) and close at
    ``closes``; ``first_open`` is Sunday's opening when it differs."""

    def table(day: date) -> tuple[Session, ...]:
        if day.weekday() >= 5:
            return ()
        start = first_open if day.weekday() == 0 and first_open else opens
        return (_span(day, zone, start, closes, start_day=day - timedelta(days=1)),)

    return table


def _same_day(zone: str, opens: time, closes: time) -> Table:
    def table(day: date) -> tuple[Session, ...]:
        return () if day.weekday() >= 5 else (_span(day, zone, opens, closes),)

    return table


def _every_day(day: date) -> tuple[Session, ...]:
    return (Session(_at(day, time(), "UTC"), _at(day + timedelta(days=1), time(), "UTC"), REGULAR),)


US_STOCKS = MarketHours("US", _us, day_rule("stock", "US"), NEW_YORK)
HK_STOCKS = MarketHours("HK", _hk, day_rule("stock", "HK"), HONG_KONG)
CN_STOCKS = MarketHours("CN", _cn, day_rule("stock", "SH"), SHANGHAI)
# Forex: Sunday 21:00 -> Friday 21:00 GMT in US summer time, 22:00 -> 22:00 in winter (alltick.md
# section 8, from the vendor's code list): Sunday 17:00 -> Friday 17:00 New York all year round.
FOREX = MarketHours("FOREX", _from_evening(NEW_YORK, time(17), time(17)), NEW_YORK_CLOSE, NEW_YORK)
# GOLD, Silver, USOIL, NGAS, Palladium, Platinum: Sunday 22:00 -> Friday 21:00 with a daily break
# 21:00-22:00, winter one hour later (same list): 18:00 -> 17:00 New York, break 17:00-18:00.
METALS = MarketHours("METALS", _from_evening(NEW_YORK, time(18), time(17)), NEW_YORK_CLOSE, NEW_YORK)
# UKOIL: Monday 00:00 -> Friday 21:00, daily break 21:00-24:00 (same list).  The list gives UKOIL no
# winter shift, so its hours are taken literally in UTC all year.
UKOIL = MarketHours("UKOIL", _same_day("UTC", time(0), time(21)), NEW_YORK_CLOSE, "UTC")
# COPPER, Aluminum, Nickel, Lead, Zinc: Monday 00:00 -> Friday 18:00, daily break 18:00-24:00, winter
# one hour later (same list): that is 01:00-19:00 London all year (the LME's day), so London time it is.
BASE_METALS = MarketHours(
    "BASE_METALS", _same_day("Europe/London", time(1), time(19)), NEW_YORK_CLOSE, "Europe/London"
)
# CFD indices: 18:00 Sunday -> 17:00 Friday US Eastern, daily break 17:00-18:00 (the vendor's CFD
# code list); AUS200 opens 17:50 on Sunday.
CFD = MarketHours("CFD", _from_evening(NEW_YORK, time(18), time(17)), NEW_YORK_CLOSE, NEW_YORK)
AUS200 = MarketHours(
    "AUS200", _from_evening(NEW_YORK, time(18), time(17), time(17, 50)), NEW_YORK_CLOSE, NEW_YORK
)
# Crypto: 24/7 (the vendor's FAQ on update frequency), on UTC days.
CRYPTO = MarketHours("CRYPTO", _every_day, UTC_DAY, "UTC")

_STOCKS = {"US": US_STOCKS, "HK": HK_STOCKS, "SH": CN_STOCKS, "SZ": CN_STOCKS}
_BASE_METAL_CODES = {"COPPER", "ALUMINUM", "NICKEL", "LEAD", "ZINC"}


def hours_for(asset: str, region: str, code: str) -> MarketHours:
    """The hours of an instrument by asset class, exchange region and code.

    Codes the hours notes do not list follow the rule of their kind: metal crosses (``XAUEUR``)
    trade as GOLD and Silver do (the same spot market), any other energy code as USOIL does.
    """
    upper = code.upper()
    if asset == "stock":
        return _STOCKS[region]
    if asset == "forex":
        return FOREX
    if asset == "crypto":
        return CRYPTO
    if asset == "cfd":
        return AUS200 if upper == "AUS200" else CFD
    if upper == "UKOIL":
        return UKOIL
    if upper in _BASE_METAL_CODES:
        return BASE_METALS
    return METALS
