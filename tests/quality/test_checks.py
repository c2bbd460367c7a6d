"""The pure data-quality checks: clean simulated markets give nothing; each flaw is found once."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from backtrader_alltick.errors import ConfigError
from backtrader_alltick.frames import klines_frame
from backtrader_alltick.markets import CRYPTO, FOREX, US_STOCKS
from backtrader_alltick.quality import (
    KINDS,
    LIVE_COUNTS,
    Thresholds,
    check_frame,
    check_klines,
    live_counts,
)
from backtrader_alltick.sim.market import MarketModel

MINUTE = 60_000
DAY = 86_400_000
FRIDAY = 1_709_251_200_000  # 2024-03-01 00:00 UTC, a Friday
TUESDAY = FRIDAY + 4 * DAY  # 2024-03-05


def close_ms(index: pd.DatetimeIndex) -> np.ndarray:
    """Epoch ms of a UTC index, in any pandas unit (as_unit needs pandas 2)."""
    return ((index - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)).to_numpy()


@pytest.fixture(scope="module")
def model() -> MarketModel:
    return MarketModel(
        seed=1, symbols=["BTCUSDT", "EURUSD", "AAPL.US", "GOLD", "700.HK"], history_start_ms=FRIDAY - 30 * DAY
    )


def bars(model, symbol, period="1m", start=FRIDAY, end=TUESDAY):
    return model.klines_between(symbol, period, start, end, now_ms=end)


def found(report) -> list[tuple[str, int]]:
    return [(finding.kind, finding.time) for finding in report.findings]


@pytest.mark.parametrize("symbol, market", [("BTCUSDT", CRYPTO), ("EURUSD", FOREX), ("AAPL.US", US_STOCKS)])
@pytest.mark.parametrize("period", ["1m", "5m", "1h", "1d"])
def test_check_klines_clean_market_across_nights_and_a_weekend_finds_nothing(model, symbol, market, period):
    klines = bars(model, symbol, period, FRIDAY - 10 * DAY if period == "1d" else FRIDAY)

    report = check_klines(klines, market)

    assert report.bars == len(klines) > 0
    assert report.findings == []
    assert report.counts == dict.fromkeys(KINDS, 0)


@pytest.mark.parametrize("symbol, market", [("BTCUSDT", CRYPTO), ("EURUSD", FOREX), ("AAPL.US", US_STOCKS)])
def test_check_klines_a_few_clean_bars_have_no_statistical_findings(model, symbol, market):
    # A median and MAD of a handful of returns or volumes say nothing: a week of daily bars (-n 5)
    # must not turn ordinary moves into outliers or spikes.
    for days_back in range(12):
        end = FRIDAY - days_back * DAY
        klines = bars(model, symbol, "1d", end - 7 * DAY, end)

        assert check_klines(klines, market).findings == [], days_back


def test_check_klines_lunch_break_and_metals_daily_break_are_not_gaps(model):
    from backtrader_alltick.markets import HK_STOCKS, METALS

    assert check_klines(bars(model, "700.HK"), HK_STOCKS).findings == []
    assert check_klines(bars(model, "GOLD"), METALS).findings == []


def test_check_klines_missing_minutes_in_a_24_7_market_are_one_gap_each(model):
    klines = bars(model, "BTCUSDT", start=FRIDAY, end=FRIDAY + 300 * MINUTE)
    kept = klines[:100] + klines[103:200] + klines[201:]

    report = check_klines(kept, CRYPTO)

    assert found(report) == [("missing_bars", klines[100].end), ("missing_bars", klines[200].end)]
    assert [(f.end, f.bars) for f in report.findings] == [(klines[102].end, 3), (klines[200].end, 1)]
    assert report.counts["missing_bars"] == 4


def test_check_klines_stock_gap_inside_a_session_is_found_but_not_the_night(model):
    klines = bars(model, "AAPL.US")  # Friday's session, the weekend, Monday's session
    monday = [k for k in klines if k.start >= FRIDAY + 3 * DAY]
    drop = monday[10]

    report = check_klines([k for k in klines if k is not drop], US_STOCKS)

    assert found(report) == [("missing_bars", drop.end)]


def test_check_klines_a_bar_on_saturday_is_outside_the_session(model):
    klines = bars(model, "EURUSD")
    saturday_noon = FRIDAY + DAY + 12 * 60 * MINUTE
    stray = replace(klines[-1], start=saturday_noon, end=saturday_noon + MINUTE)

    report = check_klines(sorted(klines + [stray], key=lambda k: k.end), FOREX)

    assert found(report) == [("outside_session", stray.end)]


def test_check_frame_impossible_values_are_found_and_left_out_of_statistics(model):
    frame = klines_frame(bars(model, "BTCUSDT", start=FRIDAY, end=FRIDAY + 200 * MINUTE))
    frame.iloc[20, frame.columns.get_loc("close")] = math.nan
    frame.iloc[40, frame.columns.get_loc("low")] = 0.0
    frame.iloc[60, frame.columns.get_loc("open")] = -5.0
    frame.iloc[80, frame.columns.get_loc("high")] = math.inf
    frame.iloc[90, frame.columns.get_loc("volume")] = -1.0

    report = check_frame(frame, CRYPTO, "1m", "BTCUSDT")

    ends = close_ms(frame.index)
    assert found(report) == [("impossible_value", int(ends[i])) for i in (20, 40, 60, 80, 90)]
    assert "close=nan" in report.findings[0].detail and "volume=-1.0" in report.findings[-1].detail


def test_check_frame_repeated_timestamp_and_ohlc_inconsistency(model):
    frame = klines_frame(bars(model, "BTCUSDT", start=FRIDAY, end=FRIDAY + 100 * MINUTE))
    frame = pd.concat([frame, frame.iloc[[30]]]).sort_index(kind="stable")
    frame.iloc[50, frame.columns.get_loc("high")] = frame["low"].iloc[50]  # high below the open or close
    frame.iloc[70, frame.columns.get_loc("low")] = frame["high"].iloc[70] + 1  # low above everything

    report = check_frame(frame, CRYPTO, "1m")

    ends = close_ms(frame.index)
    assert found(report) == [
        ("repeated_timestamp", int(ends[30])),
        ("ohlc_inconsistent", int(ends[50])),
        ("ohlc_inconsistent", int(ends[70])),
    ]


def test_check_klines_spike_is_one_outlier_with_its_way_back(model):
    klines = bars(model, "BTCUSDT", start=FRIDAY, end=FRIDAY + 300 * MINUTE)
    spiked = klines[150].close * 1.03
    klines[150] = replace(klines[150], close=spiked, high=max(klines[150].high, spiked))

    report = check_klines(klines, CRYPTO)

    assert found(report) == [("outlier_return", klines[150].end)]
    assert "one-bar spike" in report.findings[0].detail and "robust z +" in report.findings[0].detail


@pytest.mark.parametrize("symbol, market", [("AAPL.US", US_STOCKS), ("700.HK", None)])
def test_check_klines_spike_on_a_sessions_first_bar_is_reported_at_that_bar(model, symbol, market):
    # The first bar after the night (or the lunch break) has no bar before it to return from; its
    # spike must still be named at its own time, not at the next bar that falls back.
    from backtrader_alltick.markets import HK_STOCKS

    market = market or HK_STOCKS
    klines = bars(model, symbol)
    firsts = [i for i in range(1, len(klines)) if klines[i].start != klines[i - 1].end]
    first = firsts[-1]
    spiked = klines[first].close * 1.05
    klines[first] = replace(klines[first], close=spiked, high=max(klines[first].high, spiked))

    report = check_klines(klines, market)

    assert found(report) == [("outlier_return", klines[first].end)]
    assert "robust z +" in report.findings[0].detail and "one-bar spike" in report.findings[0].detail


def test_check_klines_a_jump_that_stays_is_one_outlier(model):
    klines = bars(model, "BTCUSDT", start=FRIDAY, end=FRIDAY + 300 * MINUTE)
    moved = [
        k
        if i < 150
        else replace(k, open=k.open * 0.9, high=k.high * 0.9, low=k.low * 0.9, close=k.close * 0.9)
        for i, k in enumerate(klines)
    ]

    report = check_klines(moved, CRYPTO)

    assert found(report) == [("outlier_return", klines[150].end)]
    assert "one-bar spike" not in report.findings[0].detail


def test_check_klines_stale_run_at_the_threshold_and_not_below(model):
    klines = bars(model, "BTCUSDT", start=FRIDAY, end=FRIDAY + 300 * MINUTE)

    def flat(i: int, price: float):
        return replace(klines[i], open=price, high=price, low=price, close=price, volume=0.0)

    frozen = list(klines)
    frozen[101:115] = [flat(i, klines[100].close) for i in range(101, 115)]  # 15 bars: 100..114
    frozen[201:214] = [flat(i, klines[200].close) for i in range(201, 214)]  # 14 bars: below

    report = check_klines(frozen, CRYPTO)

    assert found(report) == [("stale_run", klines[100].end)]
    assert (report.findings[0].end, report.findings[0].bars) == (klines[114].end, 15)


def test_check_klines_repeated_bar_and_volume_spike(model):
    klines = bars(model, "BTCUSDT", start=FRIDAY, end=FRIDAY + 300 * MINUTE)
    before = klines[99]
    klines[100] = replace(before, start=klines[100].start, end=klines[100].end)
    klines[200] = replace(klines[200], volume=klines[200].volume * 100)

    report = check_klines(klines, CRYPTO)

    assert found(report) == [("repeated_bar", klines[100].end), ("volume_spike", klines[200].end)]


def test_report_to_dict_is_json_with_counts_thresholds_and_bar_times(model):
    klines = bars(model, "BTCUSDT", start=FRIDAY, end=FRIDAY + 100 * MINUTE)
    del klines[50]

    report = json.loads(json.dumps(check_klines(klines, CRYPTO, thresholds=Thresholds(8, 20, 5)).to_dict()))

    assert report["thresholds"] == {"outlier_z": 8, "stale_bars": 20, "volume_z": 5}
    assert report["counts"]["missing_bars"] == 1 and set(KINDS) <= set(report["counts"])
    assert report["findings"] == [
        {
            "kind": "missing_bars",
            "time": "2024-03-01T00:51:00Z",
            "end": "2024-03-01T00:51:00Z",
            "time_ms": FRIDAY + 51 * MINUTE,
            "end_ms": FRIDAY + 51 * MINUTE,
            "bars": 1,
            "detail": "1 bar missing in session",
        }
    ]
    assert (report["symbol"], report["period"], report["market"], report["bars"]) == (
        "BTCUSDT",
        "1m",
        "CRYPTO",
        99,
    )


def test_check_frame_daily_dates_find_a_missing_weekday_not_weekends(model):
    daily = bars(model, "AAPL.US", "1d", FRIDAY - 20 * DAY)
    frame = klines_frame(daily)
    # Plain trading dates at 00:00, as most daily CSV files have them.
    frame.index = pd.DatetimeIndex([pd.Timestamp(US_STOCKS.close_date(bar.end)) for bar in daily])
    missing_day = frame.index[5]

    report = check_frame(frame.drop(index=missing_day), US_STOCKS, "1d")

    assert [(f.kind, f.bars) for f in report.findings] == [("missing_bars", 1)]
    found_at = pd.Timestamp(report.findings[0].time, unit="ms", tz="UTC")
    assert found_at.normalize() == missing_day.tz_localize("UTC")


def test_live_counts_cover_every_feed_counter():
    from backtrader_alltick.sources import COUNTERS

    assert set(LIVE_COUNTS) == set(COUNTERS)


def test_live_counts_name_the_feed_counters_and_count_seams():
    stats = {
        "ticks": 900,
        "bars_rest": 30,
        "bars_live": 12,
        "late_ticks": 2,
        "duplicates": 3,
        "overflows": 0,
        "reconnects": 2,
    }

    assert live_counts(stats) == {
        "trades": 900,
        "late_trades": 2,
        "duplicate_trades": 3,
        "reconnects": 2,
        "bars_from_rest": 30,
        "bars_from_trades": 12,
        "inbox_overflows": 0,
        "trades_left_out_offhours": 0,
        "bars_left_out_offhours": 0,
        "bars_held_for_the_stream": 0,
        "seams": 3,
    }


@pytest.mark.parametrize(
    "settings, name",
    [
        ({"outlier_z": 0}, "outlier_z"),
        ({"volume_z": math.nan}, "volume_z"),
        ({"stale_bars": 1}, "stale_bars"),
    ],
)
def test_thresholds_out_of_range_name_the_parameter(settings, name):
    with pytest.raises(ConfigError, match=f"{name} must be .*, was"):
        Thresholds(**settings)


def test_check_frame_without_price_columns_names_them():
    frame = pd.DataFrame({"close": [1.0]}, index=pd.to_datetime([FRIDAY], unit="ms", utc=True))

    with pytest.raises(ConfigError, match="was missing open, high, low"):
        check_frame(frame, CRYPTO, "1m")


def test_check_frame_without_a_time_index_says_how_to_set_it():
    frame = pd.DataFrame({"open": [1.0], "high": [1.0], "low": [1.0], "close": [1.0]})

    with pytest.raises(ConfigError, match=r"indexed by bar close time .*was RangeIndex; use frame.set_index"):
        check_frame(frame, CRYPTO, "1m")


def test_check_klines_empty_is_an_empty_report():
    report = check_klines([], CRYPTO, "1m", "BTCUSDT")

    assert (report.bars, report.findings, report.to_dict()["first"]) == (0, [], None)
    assert np.all(np.array(list(report.counts.values())) == 0)


def test_check_klines_bars_only_while_closed_are_all_outside_and_nothing_is_missing(model):
    night = bars(model, "BTCUSDT", start=FRIDAY, end=FRIDAY + 60 * MINUTE)  # 19:00 in New York

    report = check_klines(night, US_STOCKS, symbol="X")

    assert found(report) == [("outside_session", k.end) for k in night]


class WithHoliday(type(US_STOCKS)):
    """A calendar that closes one day, through the public ``open_spans`` as exchange calendars do."""

    def open_spans(self, start_ms, end_ms):
        spans = super().open_spans(start_ms, end_ms)
        return [(lo, hi) for lo, hi in spans if not HOLIDAY <= lo < HOLIDAY + DAY]


HOLIDAY = FRIDAY  # pretend Friday 2024-03-01 was a holiday


def test_check_klines_a_holiday_of_the_calendar_is_not_a_gap_and_its_bars_are_outside(model):
    holiday = WithHoliday(US_STOCKS.name, US_STOCKS.tz, US_STOCKS.weekdays, US_STOCKS.sessions)
    klines = bars(model, "AAPL.US", start=FRIDAY - DAY, end=TUESDAY)
    thursday_and_monday = [k for k in klines if not HOLIDAY <= k.start < HOLIDAY + DAY]

    assert check_klines(thursday_and_monday, holiday).findings == []
    assert check_klines(thursday_and_monday, US_STOCKS).counts["missing_bars"] == 390
    assert check_klines(klines, holiday).counts["outside_session"] == 390


def test_check_klines_bars_missing_at_both_edges_of_the_asked_span_are_found(model):
    klines = bars(model, "BTCUSDT", start=FRIDAY, end=FRIDAY + 300 * MINUTE)
    kept = klines[5:-3]

    report = check_klines(kept, CRYPTO, span=(FRIDAY, FRIDAY + 300 * MINUTE))

    assert [(f.kind, f.time, f.end, f.bars) for f in report.findings] == [
        ("missing_bars", klines[0].end, klines[4].end, 5),
        ("missing_bars", klines[-3].end, klines[-1].end, 3),
    ]
    assert check_klines(kept, CRYPTO).findings == []  # without the span, the edges are unknown


def test_check_klines_a_span_over_the_night_expects_no_stock_bars_there(model):
    klines = [k for k in bars(model, "AAPL.US") if k.start >= FRIDAY + 3 * DAY]  # Monday's session

    report = check_klines(klines, US_STOCKS, span=(FRIDAY + 3 * DAY, TUESDAY))

    assert report.findings == []


@pytest.mark.parametrize("friday", [1_689_292_800_000, 1_705_622_400_000])  # 2023-07-14 and 2024-01-19
@pytest.mark.parametrize("symbol", ["EURUSD", "GOLD", "COPPER", "AUS200"])
def test_a_clean_friday_evening_is_not_a_gap_in_summer_or_in_winter(symbol, friday):
    """AllTick's product list (protocol/alltick.md, "Trading-hours notes"): forex closes Friday 21:00 GMT
    in summer time and 22:00 in winter, metals an hour apart too, base metals at 18:00 (winter 19:00); the
    week reopens Sunday evening (AUS200 ten minutes before the other CFD indices)."""
    from backtrader_alltick.symbols import parse_symbol

    market = parse_symbol(symbol).market
    week = MarketModel(seed=1, symbols=[symbol], history_start_ms=friday - 3 * DAY)
    start, end = friday + 12 * 3_600_000, friday + 3 * DAY  # Friday noon to Monday 00:00 UTC
    klines = week.klines_between(symbol, "1m", start, end, now_ms=end)

    assert check_klines(klines, market).findings == []
    friday_close = max(bar.end for bar in klines if bar.end < friday + DAY)
    assert friday_close == market.session_close(market.close_date(friday_close))


@pytest.mark.parametrize("wednesday", [1_689_120_000_000, 1_705_449_600_000])  # 2023-07-12 and 2024-01-17
@pytest.mark.parametrize("symbol", ["UKOIL", "COPPER"])
def test_the_daily_break_of_oil_and_base_metals_is_not_a_gap(symbol, wednesday):
    """AllTick's product list: UKOIL breaks 21:00-24:00 every day, the base metals 18:00-24:00 (winter
    19:00-01:00); a clean day of either has no missing bars."""
    from backtrader_alltick.symbols import parse_symbol

    day = MarketModel(seed=1, symbols=[symbol], history_start_ms=wednesday - 3 * DAY)
    klines = day.klines_between(symbol, "1m", wednesday, wednesday + 2 * DAY, now_ms=wednesday + 2 * DAY)

    found = check_klines(klines, parse_symbol(symbol).market).findings
    assert [f for f in found if f.kind in ("missing_bars", "outside_session")] == []
