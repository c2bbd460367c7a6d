"""Bars as arrays: the grid of Backtrader timeframes and daily bars stamped by date or session end."""

from __future__ import annotations

import pytest

from backtrader_alltick.errors import ConfigError
from backtrader_alltick.markets import CRYPTO, FOREX, US_STOCKS
from backtrader_alltick.quality.bar_series import as_period, period_for, series_from_ends
from backtrader_alltick.timeframes import DAYS, MINUTES, SECONDS

MINUTE = 60_000
DAY = 86_400_000
TUESDAY = 1_709_596_800_000  # 2024-03-05 00:00 UTC


def test_period_for_backtrader_timeframes_and_refusals():
    assert period_for(MINUTES, 3).millis == 3 * MINUTE
    assert period_for(DAYS, 1).name == "1d"
    with pytest.raises(ConfigError, match="Minutes x N or Days, Weeks or Months x 1 bars, was 2 Days"):
        period_for(DAYS, 2)
    with pytest.raises(ConfigError, match="was 1 Seconds"):
        period_for(SECONDS, 1)


def test_as_period_accepts_minute_multiples_and_names_the_rest():
    assert as_period("7m").minutes == 7
    with pytest.raises(ConfigError, match="period must look like 1m, .* was '2x'"):
        as_period("2x")


@pytest.mark.parametrize("market, stamp, start", [
    (US_STOCKS, TUESDAY, TUESDAY + 5 * 3_600_000),  # a plain date: that day in New York
    (US_STOCKS, TUESDAY + 21 * 3_600_000, TUESDAY + 5 * 3_600_000),  # the session end of that day
    (FOREX, TUESDAY - 2 * 3_600_000, TUESDAY - 26 * 3_600_000),  # 22:00 UTC closes Monday's FX day
    (CRYPTO, TUESDAY, TUESDAY),  # a plain date names the trading day (README "Bar timestamps")
    (FOREX, TUESDAY, TUESDAY - 2 * 3_600_000),  # Tuesday's FX day starts 22:00 UTC on Monday
    (CRYPTO, TUESDAY + DAY - 1, TUESDAY),  # a close instant just before the next midnight
])
def test_series_from_ends_finds_the_trading_day_of_a_daily_stamp(market, stamp, start):
    series = series_from_ends([stamp], [1.0], [1.0], [1.0], [1.0], [0.0], as_period("1d"), market)

    assert int(series.start[0]) == start
