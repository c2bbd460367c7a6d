"""Trading calendars by asset class: time zone, weekly days and daily sessions.

Holidays are not modelled (neither AllTick nor iTick publishes a holiday API the
plugin could rely on); a closed day simply has no trades.

Forex, metals and CFDs trade from Sunday 22:00 to Friday 22:00 UTC (AllTick's winter
hours).  In UTC+2 that is Monday 00:00 to Saturday 00:00, so their trading day is
the calendar day of ``Etc/GMT-2`` and daily bars end at 22:00 UTC, the usual
"New York close" convention.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cache
from zoneinfo import ZoneInfo

MINUTE_MS = 60_000
DAY_MS = 86_400_000


@dataclass(frozen=True)
class Market:
    """A trading calendar.

    Example::

        US_STOCKS.is_open(1_700_000_000_000)   # 2023-11-14 22:13 UTC -> False
    """

    name: str
    tz: str
    weekdays: frozenset[int]  # 0 = Monday
    sessions: tuple[tuple[int, int], ...]  # local minutes after midnight, [start, end)

    @property
    def zone(self) -> ZoneInfo:
        return _zone(self.tz)

    @property
    def is_24h(self) -> bool:
        return self.sessions == ((0, 1440),)

    def local(self, ts_ms: int) -> datetime:
        return datetime.fromtimestamp(ts_ms / 1000, tz=timezone.utc).astimezone(self.zone)

    def is_open(self, ts_ms: int) -> bool:
        """Return True when ``ts_ms`` falls inside a session."""
        local = self.local(ts_ms)
        if local.weekday() not in self.weekdays:
            return False
        minute = local.hour * 60 + local.minute
        return any(start <= minute < end for start, end in self.sessions)

    def day_start(self, ts_ms: int) -> int:
        """Epoch ms of local midnight of the day that contains ``ts_ms``."""
        local = self.local(ts_ms)
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        return epoch_ms(midnight)

    def session_end(self, day_start_ms: int) -> int:
        """Epoch ms of the last session close of the local day starting at ``day_start_ms``."""
        local = self.local(day_start_ms)
        return epoch_ms(_at_minute(local, self.sessions[-1][1], self.zone))

    def open_spans(self, start_ms: int, end_ms: int) -> list[tuple[int, int]]:
        """Return the open intervals (epoch ms) that intersect ``[start_ms, end_ms)``."""
        spans: list[tuple[int, int]] = []
        day = self.day_start(start_ms)
        while day < end_ms:
            local = self.local(day)
            if local.weekday() in self.weekdays:
                for first, last in self.sessions:
                    lo = epoch_ms(_at_minute(local, first, self.zone))
                    hi = epoch_ms(_at_minute(local, last, self.zone))
                    lo, hi = max(lo, start_ms), min(hi, end_ms)
                    if lo < hi:
                        spans.append((lo, hi))
            day = self.day_start(day + DAY_MS + 3_600_000)  # +1h survives a 23h DST day
        return spans


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

US_STOCKS = Market("US", "America/New_York", WEEKDAYS, ((570, 960),))
HK_STOCKS = Market("HK", "Asia/Hong_Kong", WEEKDAYS, ((570, 720), (780, 960)))
CN_STOCKS = Market("CN", "Asia/Shanghai", WEEKDAYS, ((570, 690), (780, 900)))
FOREX = Market("FOREX", "Etc/GMT-2", WEEKDAYS, ((0, 1440),))
METALS = Market("METALS", "Etc/GMT-2", WEEKDAYS, ((0, 1380),))  # daily break 21:00-22:00 UTC
CFD = Market("CFD", "Etc/GMT-2", WEEKDAYS, ((60, 1440),))  # daily break 22:00-23:00 UTC
CRYPTO = Market("CRYPTO", "UTC", EVERY_DAY, ((0, 1440),))
