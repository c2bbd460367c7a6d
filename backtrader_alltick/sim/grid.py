"""The simulated service's K-line grid: which trades each K-line holds and what time it carries.

The simulator plays the vendor, so this grid is written from the vendors' documents, not shared
with the client's model.  Intraday K-lines (1m, 5m, 15m, 30m, 1h, 2h, 4h: alltick.md 4.1 and
itick.md 5.1 serve exactly these) sit on the UTC epoch grid and are stamped at their start (the
docs' examples: consecutive 1-minute bars differ by 60 s, alltick.md 4.1).

Daily K-lines hold every trade of one *trading date*:

- stocks: the exchange's local calendar day, whatever the session (pre-market, overnight and
  auction prints included), stamped at local midnight;
- forex, metals, energy and CFD indices: the day that rolls at 17:00 New York, the close the
  product list's hours end on (alltick.md section 8 "Trading-hours notes"); a trade at 17:30
  New York on Monday belongs to Tuesday, whose K-line is stamped Monday 17:00 New York;
- crypto: the UTC day, stamped 00:00 UTC.

Weekly K-lines group the trading dates Monday..Sunday and carry the start of their Monday;
monthly K-lines group a calendar month of trading dates and carry the start of its 1st.  A
K-line of a day or longer ends (is final) when its last trading date is over, not at a session
close: trades stamped after the close still belong to it.

Example::

    rule = day_rule("forex")
    start = bar_start("1d", 1_689_024_600_000, rule)   # 2023-07-10 21:30 UTC = 17:30 New York
    trading_date(start, rule)                           # date(2023, 7, 11)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from functools import cache
from zoneinfo import ZoneInfo

MINUTE_MS = 60_000
DAY_MS = 86_400_000

# The periods both dialects document (alltick.md 4.1 kline_type 1..10, itick.md 5.1 kType 1..10).
INTRADAY_MINUTES = {"1m": 1, "5m": 5, "15m": 15, "30m": 30, "1h": 60, "2h": 120, "4h": 240}
CALENDAR_PERIODS = ("1d", "1w", "1M")
PERIODS = (*INTRADAY_MINUTES, *CALENDAR_PERIODS)


@dataclass(frozen=True)
class DayRule:
    """How trading dates fall: a trading date starts at ``roll_hour`` on the day before in ``zone``
    (``roll_hour`` 0: at local midnight of the date itself).

    Example::

        DayRule("America/New_York", 17)    # forex, metals, energy, CFDs
    """

    zone: str
    roll_hour: int = 0

    @property
    def tz(self) -> ZoneInfo:
        return _zone(self.zone)


# 17:00 New York: forex closes on Friday at 17:00 New York (Sunday 21:00 -> Friday 21:00 GMT in US
# summer time, 22:00 -> 22:00 in winter, alltick.md section 8); metals, energy and CFD indices pause
# daily at 17:00 New York.  Their day rolls there, as the trade counts it ("New York close").
NEW_YORK_CLOSE = DayRule("America/New_York", 17)
UTC_DAY = DayRule("UTC", 0)
EXCHANGE_ZONES = {
    "US": "America/New_York",
    "HK": "Asia/Hong_Kong",
    "SH": "Asia/Shanghai",
    "SZ": "Asia/Shanghai",
}


def day_rule(asset: str, region: str = "") -> DayRule:
    """The trading-date rule of an asset class (``region`` names the exchange for stocks)."""
    if asset == "stock":
        return DayRule(EXCHANGE_ZONES[region], 0)
    if asset == "crypto":
        return UTC_DAY
    return NEW_YORK_CLOSE


def is_intraday(period: str) -> bool:
    return period in INTRADAY_MINUTES


def check_period(period: str) -> str:
    """Return ``period`` if a dialect serves it; raise ValueError otherwise."""
    if period not in PERIODS:
        raise ValueError(f"period must be one of {', '.join(PERIODS)}, was {period!r}")
    return period


def trading_date(ts_ms: int, rule: DayRule) -> date:
    """The trading date a trade stamped ``ts_ms`` belongs to."""
    local = datetime.fromtimestamp(ts_ms / 1000, tz=timezone.utc).astimezone(rule.tz).replace(tzinfo=None)
    if rule.roll_hour:
        local += timedelta(hours=24 - rule.roll_hour)
    return local.date()


def date_start(day: date, rule: DayRule) -> int:
    """Epoch ms at which trading date ``day`` starts (its daily K-line's wire time)."""
    if rule.roll_hour:
        wall = datetime.combine(day - timedelta(days=1), time(rule.roll_hour))
    else:
        wall = datetime.combine(day, time())
    return _epoch_ms(wall.replace(tzinfo=rule.tz))


def bar_start(period: str, ts_ms: int, rule: DayRule) -> int:
    """Epoch ms at which the K-line of ``period`` holding a trade at ``ts_ms`` starts."""
    if period in INTRADAY_MINUTES:
        step = INTRADAY_MINUTES[period] * MINUTE_MS
        return ts_ms - ts_ms % step
    return date_start(first_date(period, trading_date(ts_ms, rule)), rule)


def first_date(period: str, day: date) -> date:
    """The first trading date of the day, week (from Monday) or month holding ``day``."""
    if period == "1d":
        return day
    if period == "1w":
        return day - timedelta(days=day.weekday())
    if period == "1M":
        return day.replace(day=1)
    raise ValueError(f"{period!r} is not a period of days")


def next_start(period: str, start_ms: int, rule: DayRule) -> int:
    """Epoch ms at which the K-line after the one starting at ``start_ms`` starts (its coverage end)."""
    if period in INTRADAY_MINUTES:
        return start_ms + INTRADAY_MINUTES[period] * MINUTE_MS
    first = trading_date(start_ms, rule)
    if period == "1d":
        following = first + timedelta(days=1)
    elif period == "1w":
        following = first + timedelta(days=7)
    else:
        following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return date_start(following, rule)


def _epoch_ms(moment: datetime) -> int:
    return int(round(moment.timestamp() * 1000))


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)
