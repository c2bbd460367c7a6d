from datetime import datetime, timezone

import pytest

from backtrader_alltick import timeframes as tf
from backtrader_alltick.errors import ConfigError, UnsupportedTimeframe
from backtrader_alltick.markets import CRYPTO, FOREX, US_STOCKS


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp() * 1000)


@pytest.mark.parametrize(
    ("period", "market", "inside", "start", "end"),
    [
        ("1m", US_STOCKS, "2023-11-14 15:13:30", "2023-11-14 15:13:00", "2023-11-14 15:14:00"),
        ("5m", CRYPTO, "2023-11-14 15:13:30", "2023-11-14 15:10:00", "2023-11-14 15:15:00"),
        ("1d", US_STOCKS, "2023-11-14 15:13:30", "2023-11-14 05:00:00", "2023-11-14 21:00:00"),
        ("1d", FOREX, "2023-11-14 23:00:00", "2023-11-14 22:00:00", "2023-11-15 22:00:00"),
        ("1d", CRYPTO, "2023-11-14 23:00:00", "2023-11-14 00:00:00", "2023-11-15 00:00:00"),
        ("1w", US_STOCKS, "2023-11-14 15:00:00", "2023-11-13 05:00:00", "2023-11-17 21:00:00"),
        ("1M", CRYPTO, "2023-11-14 15:00:00", "2023-11-01 00:00:00", "2023-12-01 00:00:00"),
    ],
)
def test_bar_start_and_close_stamp(period, market, inside, start, end):
    begin = tf.bar_start(period, ms(inside), market)

    assert begin == ms(start)
    assert tf.bar_end(period, begin, market) == ms(end)


def test_daily_close_stamp_follows_new_york_dst():
    summer = tf.bar_start("1d", ms("2023-07-14 15:00:00"), US_STOCKS)

    assert tf.bar_end("1d", summer, US_STOCKS) == ms("2023-07-14 20:00:00")


@pytest.mark.parametrize(
    ("timeframe", "compression", "native", "multiple"),
    [
        (tf.MINUTES, 1, "1m", 1),
        (tf.MINUTES, 3, "1m", 3),
        (tf.MINUTES, 10, "5m", 2),
        (tf.MINUTES, 120, "1h", 2),
        (tf.DAYS, 3, "1d", 3),
        (tf.MONTHS, 1, "1M", 1),
        (tf.YEARS, 1, "1M", 12),
    ],
)
def test_resolve_picks_largest_dividing_native(timeframe, compression, native, multiple):
    spec = tf.resolve(timeframe, compression, ("1m", "5m", "15m", "30m", "1h", "1d", "1w", "1M"), "AAPL.US")

    assert (spec.native.name, spec.multiple) == (native, multiple)


@pytest.mark.parametrize(("live", "ticks"), [(True, "Ticks, "), (False, "")])
def test_resolve_rejects_seconds_and_lists_what_works(live, ticks):
    with pytest.raises(UnsupportedTimeframe) as info:
        tf.resolve(tf.SECONDS, 5, ("1m", "5m", "1d"), "AAPL.US", live=live)

    # Ticks only for live feeds: there is no tick history for backtests or K-line downloads.
    assert str(info.value) == (
        "timeframe 5 Seconds is not supported for AAPL.US; use one of: "
        f"{ticks}Minutes x N (N a multiple of 1/5), Days x N"
    )


@pytest.mark.parametrize(
    ("period", "market", "inside", "end"),
    [
        ("1w", FOREX, "2023-11-14 15:00:00", "2023-11-17 22:00:00"),  # Friday's close, not Sunday 22:00
        # March 2024 ends on a Sunday; New York is on summer time: 17:00 there is 21:00 UTC.
        ("1M", FOREX, "2024-03-14 15:00:00", "2024-03-29 21:00:00"),
        ("1w", US_STOCKS, "2024-03-26 15:00:00", "2024-03-28 20:00:00"),  # Good Friday: Thursday
        ("1M", US_STOCKS, "2024-03-14 15:00:00", "2024-03-28 20:00:00"),
        ("1d", US_STOCKS, "2023-07-03 15:00:00", "2023-07-03 17:00:00"),  # early close, 13:00 New York
        ("1w", US_STOCKS, "2023-11-21 15:00:00", "2023-11-24 18:00:00"),  # the Friday after Thanksgiving
    ],
)
def test_longer_bars_close_on_the_calendars_last_trading_day(period, market, inside, end):
    start = tf.bar_start(period, ms(inside), market)

    assert tf.bar_end(period, start, market) == ms(end)


def test_a_day_the_market_does_not_trade_keeps_its_regular_close():
    # A K-line a vendor might still send for a holiday gets that date, not the day before.
    holiday = tf.bar_start("1d", ms("2023-07-04 15:00:00"), US_STOCKS)

    assert tf.bar_end("1d", holiday, US_STOCKS) == ms("2023-07-04 20:00:00")
    assert US_STOCKS.close_date(tf.bar_end("1d", holiday, US_STOCKS)).day == 4


# -- the period-name grammar: one for the CLI, the relay, the store and the quality checks ----------


@pytest.mark.parametrize(
    ("text", "timeframe", "compression"),
    [
        ("1m", tf.MINUTES, 1),
        ("m", tf.MINUTES, 1),
        ("5min", tf.MINUTES, 5),
        ("15m", tf.MINUTES, 15),
        ("90m", tf.MINUTES, 90),
        ("h", tf.MINUTES, 60),
        ("2h", tf.MINUTES, 120),
        ("1d", tf.DAYS, 1),
        ("3d", tf.DAYS, 3),
        ("1w", tf.WEEKS, 1),
        ("M", tf.MONTHS, 1),
        ("12M", tf.MONTHS, 12),
        (" 5m ", tf.MINUTES, 5),
    ],
)
def test_parse_period_reads_every_spelling_as_backtraders_numbers(text, timeframe, compression):
    assert tf.parse_period(text) == (timeframe, compression)


@pytest.mark.parametrize("text", ["7x", "0m", "m1", "1 hour", "5", "", "1H", "1y", "-1m", "5 m"])
def test_parse_period_refuses_anything_else_naming_the_parameter(text):
    with pytest.raises(ConfigError) as info:
        tf.parse_period(text, "--timeframes")

    assert str(info.value) == f"--timeframes must look like 1m, 5m, 1h, 1d, 1w or 1M, was {text!r}"


@pytest.mark.parametrize(
    ("text", "period"),
    [
        ("1m", "1m"),
        ("3m", "3m"),
        ("5min", "5m"),
        ("60m", "1h"),
        ("90m", "90m"),
        ("2h", "2h"),
        ("4h", "4h"),
        ("1d", "1d"),
        ("3d", "3d"),
        ("1w", "1w"),
        ("1M", "1M"),
        ("12M", "12M"),
    ],
)
def test_a_parsed_name_resolves_to_a_spec_whose_period_is_its_canonical_name(text, period):
    spec = tf.resolve(*tf.parse_period(text), tuple(tf.PERIODS), "BTCUSDT")

    assert spec.period == period
    assert tf.parse_period(spec.period) == tf.parse_period(text)  # the two directions agree


def test_period_name_of_units_and_counts():
    assert [tf.period_name("minute", n) for n in (1, 45, 60, 180)] == ["1m", "45m", "1h", "3h"]
    assert [tf.period_name(unit, 2) for unit in ("day", "week", "month")] == ["2d", "2w", "2M"]


def test_grid_period_of_backtrader_timeframes_and_refusals():
    assert tf.grid_period(tf.MINUTES, 3).millis == 3 * 60_000
    assert tf.grid_period(tf.DAYS, 1).name == "1d"
    with pytest.raises(
        ConfigError, match="quality checks need Minutes x N or Days, Weeks or Months x 1 bars, was 2 Days"
    ):
        tf.grid_period(tf.DAYS, 2, "quality checks")
    with pytest.raises(ConfigError, match="was 1 Seconds"):
        tf.grid_period(tf.SECONDS, 1)


def test_as_period_accepts_minute_multiples_and_names_the_rest():
    assert tf.as_period("7m").minutes == 7
    with pytest.raises(ConfigError, match="period must look like 1m, .* was '2x'"):
        tf.as_period("2x")


@pytest.mark.parametrize(
    ("market", "close", "stamp"),
    [
        (CRYPTO, "2024-03-05 00:00:00", "2024-03-04 23:59:59.999990"),  # closes at midnight after its date
        (FOREX, "2024-03-04 22:00:00", "2024-03-04 23:59:59.999990"),  # closes 17:00 New York on its date
        (US_STOCKS, "2024-03-04 21:00:00", "2024-03-04 23:59:59.999990"),
    ],
)
def test_a_daily_bar_is_stamped_with_the_trading_date_of_its_close(market, close, stamp):
    assert tf.date_stamp_ms(ms(close), market) == ms(stamp)


def test_a_window_of_date_stamps_loads_two_days_wider_on_each_side():
    day = 86_400_000
    assert tf.date_load_window(10 * day, 20 * day, 5) == (8 * day, 22 * day, 7)
    assert tf.date_load_window(None, None) == (None, None, None)


def test_most_bars_is_exact_intraday_and_an_upper_bound_for_days():
    day = 86_400_000
    assert tf.most_bars("1m", 0, 3 * 60_000) == 3
    assert tf.most_bars("5m", 1, 5 * 60_000) == 0  # no 5-minute boundary in (0, 5 min)
    assert tf.most_bars("1d", 0, 10 * day) >= 10
    assert tf.bars_since_earliest("1m", 10 * 60_000) == 10


def test_first_stamped_after_is_the_bar_that_closes_after_the_moment():
    close = int(datetime(2024, 3, 4, 10, 5, tzinfo=timezone.utc).timestamp() * 1000)
    assert tf.first_stamped_after("1m", close, CRYPTO) == close  # the 10:04 bar closes at 10:05
    assert tf.first_stamped_after("1m", close - 1, CRYPTO) == close - 60_000  # the 10:04 bar closes after
    assert tf.first_open_start("1m", close + 1, CRYPTO) == close
