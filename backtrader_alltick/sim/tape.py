"""One UTC day of one instrument's tape: continuous trades, auction matches and late prints.

Which minutes trade, where auctions match and where sessions close come from the market's
hours (:mod:`.hours`) in the simulator's ``hours`` mode; the numbers come from :mod:`.prices`,
so the tape is the same for the same (seed, symbol, time) whichever day or range asks for it.

Example::

    trades = day_tape(key, spec, hours_for("stock", "HK", "700"), MODES["extended"], day, 0, late_print_ms=0)
"""

from __future__ import annotations

from collections.abc import Container

import numpy as np

from . import prices
from .grid import DAY_MS, MINUTE_MS
from .hours import AUCTIONS, MarketHours

# Late prints must fall before the market could open again (HK's lunch is the shortest break a
# closing session has before more trading, 60 minutes; metals pause for 60 minutes).
MAX_LATE_PRINT_MS = 3_600_000


def day_tape(
    key: int,
    spec: prices.AssetSpec,
    hours: MarketHours,
    kinds: Container[str],
    day: int,
    history_start_ms: int,
    late_print_ms: int,
) -> prices.DayTrades:
    """All trades of UTC day ``day`` (days since the epoch) at or after ``history_start_ms``."""
    start, end = day * DAY_MS, (day + 1) * DAY_MS
    sessions = hours.sessions(start, end, kinds)
    ranges = [
        np.arange(max(s.start, start) // MINUTE_MS, -(-min(s.end, end) // MINUTE_MS), dtype=np.int64)
        for s in sessions
        if s.kind not in AUCTIONS and max(s.start, start) < min(s.end, end)
    ]
    minutes = np.concatenate(ranges) if ranges else np.empty(0, dtype=np.int64)
    minutes = minutes[minutes * MINUTE_MS >= history_start_ms]
    trades = prices.generate_day(key, spec, minutes)
    auctions = [match_instant(key, s.prints) for s in sessions if s.prints is not None]
    lates = []
    if late_print_ms > 0:
        lates = [
            close + late_print_ms for close in hours.closes(start - late_print_ms, end - late_print_ms, kinds)
        ]
    auctions = [t for t in auctions if start <= t < end and t >= history_start_ms]
    lates = [t for t in lates if start <= t < end and t >= history_start_ms]
    if not auctions and not lates:
        return trades
    return prices.merge(trades, prices.generate_prints(key, spec, auctions, lates))


def match_instant(key: int, window: tuple[int, int]) -> int:
    """The instant an auction matches: ``window[0]``, or a seeded instant in ``[lo, hi)``."""
    low, high = window
    if high <= low:
        return low
    return low + prices.seeded_int(key, low, 8, high - low)
