"""Exchange holidays and shortened days, written out by hand from the exchanges' published lists.

The simulator plays the service and must not borrow the client's calendar (the client reads
``exchange-calendars``): a wrong day made twice would agree with itself.  Outside the years
listed here a market follows its weekly hours alone (every weekday trades); :data:`COVERED`
says which years each table holds.

Example::

    date(2023, 7, 4) in NYSE_HOLIDAYS      # True: Independence Day
    NYSE_EARLY_CLOSES[date(2023, 7, 3)]    # time(13, 0)
"""

from __future__ import annotations

from datetime import date, time


def _days(year: int, *month_days: tuple[int, int]) -> set[date]:
    return {date(year, month, day) for month, day in month_days}


# NYSE "Holidays and Trading Hours" (nyse.com/markets/hours-calendars), the lists for 2022-2026.
# 2022-01-01 fell on a Saturday: NYSE did not close on Friday 2021-12-31 (its Rule 7.2 year-end
# exception).  2025-01-09: closed for the National Day of Mourning for President Carter.
NYSE_HOLIDAYS = frozenset(
    _days(2022, (1, 17), (2, 21), (4, 15), (5, 30), (6, 20), (7, 4), (9, 5), (11, 24), (12, 26))
    | _days(2023, (1, 2), (1, 16), (2, 20), (4, 7), (5, 29), (6, 19), (7, 4), (9, 4), (11, 23), (12, 25))
    | _days(2024, (1, 1), (1, 15), (2, 19), (3, 29), (5, 27), (6, 19), (7, 4), (9, 2), (11, 28), (12, 25))
    | _days(
        2025, (1, 1), (1, 9), (1, 20), (2, 17), (4, 18), (5, 26), (6, 19), (7, 4), (9, 1), (11, 27), (12, 25)
    )
    | _days(2026, (1, 1), (1, 19), (2, 16), (4, 3), (5, 25), (6, 19), (7, 3), (9, 7), (11, 26), (12, 25))
)
# NYSE early closes (same pages): the regular session ends 13:00 New York; the late trading session
# (after-hours) on those days ends 17:00 (NYSE Arca "Holidays and Hours").
NYSE_EARLY_CLOSE = time(13, 0)
NYSE_EARLY_CLOSES = {
    day: NYSE_EARLY_CLOSE
    for day in (
        _days(2022, (11, 25))
        | _days(2023, (7, 3), (11, 24))
        | _days(2024, (7, 3), (11, 29), (12, 24))
        | _days(2025, (7, 3), (11, 28), (12, 24))
        | _days(2026, (11, 27), (12, 24))
    )
}

# HKEX "Trading Calendar and Holiday Schedule" (hkex.com.hk), the lists for 2022-2025: the Hong Kong
# general holidays that fall on weekdays.  Days lost to a typhoon or black-rainstorm signal (e.g.
# 2023-07-17, 2024-09-06) are left out: they are decided on the day, never published in advance.
HKEX_HOLIDAYS = frozenset(
    _days(
        2022,
        (2, 1),
        (2, 2),
        (2, 3),
        (4, 5),
        (4, 15),
        (4, 18),
        (5, 2),
        (5, 9),
        (6, 3),
        (7, 1),
        (9, 12),
        (10, 4),
        (12, 26),
        (12, 27),
    )
    | _days(
        2023,
        (1, 2),
        (1, 23),
        (1, 24),
        (1, 25),
        (4, 5),
        (4, 7),
        (4, 10),
        (5, 1),
        (5, 26),
        (6, 22),
        (10, 2),
        (10, 23),
        (12, 25),
        (12, 26),
    )
    | _days(
        2024,
        (1, 1),
        (2, 12),
        (2, 13),
        (3, 29),
        (4, 1),
        (4, 4),
        (5, 1),
        (5, 15),
        (6, 10),
        (7, 1),
        (9, 18),
        (10, 1),
        (10, 11),
        (12, 25),
        (12, 26),
    )
    | _days(
        2025,
        (1, 1),
        (1, 29),
        (1, 30),
        (1, 31),
        (4, 4),
        (4, 18),
        (4, 21),
        (5, 1),
        (5, 5),
        (7, 1),
        (10, 1),
        (10, 7),
        (10, 29),
        (12, 25),
        (12, 26),
    )
)
# HKEX half-trading days (same pages): the eves of Lunar New Year, Christmas and New Year when they
# fall on a weekday; the morning session only, then the closing auction 12:00-12:10 (HKEX "Closing
# Auction Session" rules: on a half-trading day the CAS follows the morning session).
HKEX_HALF_DAYS = frozenset(
    _days(2022, (1, 31)) | _days(2024, (2, 9), (12, 24), (12, 31)) | _days(2025, (1, 28), (12, 24), (12, 31))
)

# SSE "Notice on the holiday arrangements" (sse.com.cn, one each December for the next year),
# 2022-2025: the weekdays the market is closed.  Shenzhen (SZSE) publishes the same days.
SSE_HOLIDAYS = frozenset(
    _days(
        2022,
        (1, 3),
        (1, 31),
        (2, 1),
        (2, 2),
        (2, 3),
        (2, 4),
        (4, 4),
        (4, 5),
        (5, 2),
        (5, 3),
        (5, 4),
        (6, 3),
        (9, 12),
        (10, 3),
        (10, 4),
        (10, 5),
        (10, 6),
        (10, 7),
    )
    | _days(
        2023,
        (1, 2),
        (1, 23),
        (1, 24),
        (1, 25),
        (1, 26),
        (1, 27),
        (4, 5),
        (5, 1),
        (5, 2),
        (5, 3),
        (6, 22),
        (6, 23),
        (9, 29),
        (10, 2),
        (10, 3),
        (10, 4),
        (10, 5),
        (10, 6),
    )
    | _days(
        2024,
        (1, 1),
        (2, 9),
        (2, 12),
        (2, 13),
        (2, 14),
        (2, 15),
        (2, 16),
        (4, 4),
        (4, 5),
        (5, 1),
        (5, 2),
        (5, 3),
        (6, 10),
        (9, 16),
        (9, 17),
        (10, 1),
        (10, 2),
        (10, 3),
        (10, 4),
        (10, 7),
    )
    | _days(
        2025,
        (1, 1),
        (1, 28),
        (1, 29),
        (1, 30),
        (1, 31),
        (2, 3),
        (2, 4),
        (4, 4),
        (5, 1),
        (5, 2),
        (5, 5),
        (6, 2),
        (10, 1),
        (10, 2),
        (10, 3),
        (10, 6),
        (10, 7),
        (10, 8),
    )
)

# Years each table holds; outside them every weekday trades its regular hours.
COVERED = {"NYSE": range(2022, 2027), "HKEX": range(2022, 2026), "SSE": range(2022, 2026)}
