"""Bars as arrays: daily bars stamped by date or by session end find their trading day."""

from __future__ import annotations

import pytest

from backtrader_alltick.markets import CRYPTO, FOREX, US_STOCKS
from backtrader_alltick.quality.bar_series import series_from_ends
from backtrader_alltick.timeframes import as_period

DAY = 86_400_000
TUESDAY = 1_709_596_800_000  # 2024-03-05 00:00 UTC


@pytest.mark.parametrize(
    "market, stamp, start",
    [
        (US_STOCKS, TUESDAY, TUESDAY + 5 * 3_600_000),  # a plain date: that day in New York
        (US_STOCKS, TUESDAY + 21 * 3_600_000, TUESDAY + 5 * 3_600_000),  # the session end of that day
        (FOREX, TUESDAY - 2 * 3_600_000, TUESDAY - 26 * 3_600_000),  # 22:00 UTC closes Monday's FX day
        (CRYPTO, TUESDAY, TUESDAY),  # a plain date names the trading day (README "Bar timestamps")
        (FOREX, TUESDAY, TUESDAY - 2 * 3_600_000),  # Tuesday's FX day starts 22:00 UTC on Monday
        (CRYPTO, TUESDAY + DAY - 1, TUESDAY),  # a close instant just before the next midnight
    ],
)
def test_series_from_ends_finds_the_trading_day_of_a_daily_stamp(market, stamp, start):
    series = series_from_ends([stamp], [1.0], [1.0], [1.0], [1.0], [0.0], as_period("1d"), market)

    assert int(series.start[0]) == start
