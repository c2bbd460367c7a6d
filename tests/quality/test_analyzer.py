"""``DataQuality`` in a real Cerebro: any Backtrader feed, per-feed reports shaped like ``quality --json``."""

from __future__ import annotations

import json
import math

import backtrader as bt
import numpy as np
import pandas as pd
import pytest
from test_cli import run, service

import backtrader_alltick
from backtrader_alltick.errors import ConfigError
from backtrader_alltick.frames import klines_frame
from backtrader_alltick.markets import CRYPTO, US_STOCKS
from backtrader_alltick.quality import check_frame
from backtrader_alltick.sim import Simulator
from backtrader_alltick.sim.market import MarketModel
from feedtools import run_guarded

MINUTE = 60_000
DAY = 86_400_000
FRIDAY = 1_709_251_200_000  # 2024-03-01 00:00 UTC


def close_ms(index: pd.DatetimeIndex) -> np.ndarray:
    """Epoch ms of a UTC index, in any pandas unit (as_unit needs pandas 2)."""
    return ((index - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)).to_numpy()


def flawed_frame() -> pd.DataFrame:
    model = MarketModel(seed=2, symbols=["BTCUSDT"], history_start_ms=FRIDAY - DAY)
    frame = klines_frame(model.klines_between("BTCUSDT", "1m", FRIDAY, FRIDAY + 240 * MINUTE, FRIDAY + DAY))
    frame.iloc[30, frame.columns.get_loc("close")] = math.nan
    frame.iloc[60, frame.columns.get_loc("low")] = -1.0
    frame.iloc[90, frame.columns.get_loc("high")] = frame["low"].iloc[90]
    frame.iloc[120, frame.columns.get_loc("volume")] *= 200
    return frame.drop(index=frame.index[150:153])


def minute_feed(frame: pd.DataFrame) -> bt.feeds.PandasData:
    return bt.feeds.PandasData(dataname=frame.tz_convert(None), timeframe=bt.TimeFrame.Minutes)


def run_backtest(*feeds: tuple[bt.feed.DataBase, str], **analyzer_params):
    cerebro = bt.Cerebro(stdstats=False)
    for data, name in feeds:
        cerebro.adddata(data, name=name)
    cerebro.addstrategy(bt.Strategy)
    cerebro.addanalyzer(backtrader_alltick.DataQuality, **analyzer_params)
    return cerebro.run()[0].analyzers.dataquality


def test_pandasdata_feed_reports_what_check_frame_reports(tmp_path):
    frame = flawed_frame()
    data = minute_feed(frame)

    analysis = run_backtest((data, "BTCUSDT")).get_analysis()

    expected = check_frame(frame, CRYPTO, "1m", "BTCUSDT").to_dict()
    assert json.loads(json.dumps(analysis["BTCUSDT"])) == expected
    ends = close_ms(frame.index)
    assert [(f["kind"], f["time_ms"]) for f in expected["findings"]] == [
        ("impossible_value", ends[30]),
        ("impossible_value", ends[60]),
        ("ohlc_inconsistent", ends[90]),
        ("volume_spike", ends[120]),
        ("missing_bars", ends[149] + MINUTE),
    ]


def test_several_feeds_are_reported_each_under_its_name_with_the_market_given():
    frame = flawed_frame()
    clean = frame.iloc[:25]
    feeds = [(minute_feed(frame), "mine"), (minute_feed(clean), "BTCUSDT")]

    analysis = run_backtest(*feeds, market={"mine": CRYPTO}).get_analysis()

    assert set(analysis) == {"mine", "BTCUSDT"}
    assert len(analysis["mine"]["findings"]) == 5 and analysis["BTCUSDT"]["findings"] == []
    assert analysis["BTCUSDT"]["bars"] == 25


def test_feed_of_unknown_market_is_a_config_error_naming_the_feed():
    data = minute_feed(flawed_frame())

    with pytest.raises(ConfigError, match="DataQuality needs the market of feed 'mystery': pass market="):
        run_backtest((data, "mystery"))


def test_market_given_as_a_symbol_sets_the_calendar():
    data = minute_feed(flawed_frame())

    analysis = run_backtest((data, "x"), market="AAPL.US").get_analysis()

    assert analysis["x"]["market"] == US_STOCKS.name
    assert analysis["x"]["counts"]["outside_session"] > 0  # Friday 00:00-04:00 UTC is a US night


def test_historical_alltickdata_report_equals_the_cli_json(capsys, alltick_sim, make_store):
    bars = alltick_sim.klines("BTCUSDT", "1m", alltick_sim.start_ms - 200 * MINUTE, alltick_sim.start_ms)
    alltick_sim.faults.kline_flaws = {bars[40].start: "spike", bars[90].start: "gap"}
    store = make_store(alltick_sim)
    fromdate = pd.Timestamp(bars[0].start, unit="ms").to_pydatetime()
    todate = pd.Timestamp(bars[-1].end, unit="ms").to_pydatetime()
    data = store.getdata(
        dataname="BTCUSDT", timeframe=bt.TimeFrame.Minutes, historical=True, fromdate=fromdate, todate=todate
    )

    analysis = run_backtest((data, "BTCUSDT")).get_analysis()["BTCUSDT"]
    code, out, _ = run(
        capsys,
        "quality",
        "BTCUSDT",
        "--from",
        fromdate.isoformat(),
        "--to",
        todate.isoformat(),
        "--json",
        *service(alltick_sim),
    )

    printed = json.loads(out)
    assert code == 0 and analysis.keys() == printed.keys() and analysis["counts"] == printed["counts"]
    assert (
        [(f["kind"], f["time_ms"]) for f in analysis["findings"]]
        == [(f["kind"], f["time_ms"]) for f in printed["findings"]]
        == [("outlier_return", bars[40].end), ("missing_bars", bars[90].end)]
    )
    assert "late_trades" not in analysis["counts"]  # a backtest has no live counters


def test_live_alltickdata_report_carries_the_feed_counters(make_store):
    with Simulator(dialect="alltick", plan="unlimited", speed=240, seed=3) as sim:
        store = make_store(sim)
        cerebro = bt.Cerebro(stdstats=False)
        data = store.getdata(
            dataname="BTCUSDT", timeframe=bt.TimeFrame.Minutes, lookback=5, qcheck=0.1, grace=0.25
        )
        cerebro.adddata(data, name="BTCUSDT")
        cerebro.addstrategy(StopAfterLive, bars=3)
        cerebro.addanalyzer(backtrader_alltick.DataQuality)

        strategy = run_guarded(cerebro, 30)

    counts = strategy.analyzers.dataquality.get_analysis()["BTCUSDT"]["counts"]
    stats = strategy.datas[0].stats
    # Every bar the strategy saw is counted once, as from REST or from trades; LIVE is told just
    # before the last one or two bars of history (Backtrader's convention), so those come after it.
    seen = strategy.backfilled_bars + strategy.live_bars
    assert counts["bars_from_rest"] + counts["bars_from_trades"] == seen
    assert strategy.backfilled_bars <= counts["bars_from_rest"] <= strategy.backfilled_bars + 2
    assert counts["bars_from_rest"] >= 5 and counts["bars_from_trades"] >= 1
    assert (counts["late_trades"], counts["duplicate_trades"]) == (stats["late_ticks"], stats["duplicates"])
    assert (counts["reconnects"], counts["seams"]) == (0, 1)  # nothing dropped the connection


class StopAfterLive(bt.Strategy):
    params = (("bars", 3),)

    def __init__(self) -> None:
        self.backfilled_bars = self.live_bars = 0
        self.is_live = False

    def notify_data(self, data, status, *args, **kwargs) -> None:
        self.is_live = status == data.LIVE

    def next(self) -> None:
        if not self.is_live:
            self.backfilled_bars += 1
            return
        self.live_bars += 1
        if self.live_bars >= self.p.bars:
            self.env.runstop()


def test_feed_of_seconds_fails_before_the_run_naming_the_feed():
    data = bt.feeds.PandasData(dataname=flawed_frame().tz_convert(None), timeframe=bt.TimeFrame.Seconds)

    with pytest.raises(
        ConfigError,
        match="DataQuality cannot check feed 'BTCUSDT': quality checks need Minutes x N .*, was 1 Seconds",
    ):
        run_backtest((data, "BTCUSDT"))


def test_feed_with_a_symbol_that_does_not_parse_is_left_out_and_the_others_reported(alltick_sim, make_store):
    store = make_store(alltick_sim)
    good = store.getdata(
        dataname="BTCUSDT",
        timeframe=bt.TimeFrame.Minutes,
        historical=True,
        fromdate=pd.Timestamp(alltick_sim.start_ms - 60 * MINUTE, unit="ms").to_pydatetime(),
    )
    bad = store.getdata(dataname="NOPE", timeframe=bt.TimeFrame.Minutes, qcheck=0.1)  # live: it notifies

    analysis = run_backtest((good, "BTCUSDT"), (bad, "NOPE")).get_analysis()

    assert list(analysis) == ["BTCUSDT"] and analysis["BTCUSDT"]["bars"] >= 59


def test_daily_feeds_stamped_with_trading_dates_are_checked_on_their_own_days(make_store):
    # Daily bars carry their trading date (README "Bar timestamps"): the checks must read the date,
    # or every bar lands on the next day. July 3-7 2023 holds a US early close and a holiday.
    from datetime import date, datetime, timezone

    july = datetime(2023, 7, 8, 15, tzinfo=timezone.utc)
    with Simulator(dialect="itick", plan="unlimited", speed=60, seed=2, start=july) as sim:
        store = make_store(sim)
        feeds = [
            (
                store.getdata(
                    dataname=s,
                    timeframe=bt.TimeFrame.Days,
                    historical=True,
                    fromdate=date(2023, 6, 26),
                    todate=date(2023, 7, 7),
                ),
                s,
            )
            for s in ("AAPL.US", "EURUSD", "BTCUSDT")
        ]
        analysis = run_backtest(*feeds).get_analysis()
        frame = store.fetch_klines(
            "BTCUSDT", "1d", fromdate=datetime(2023, 6, 26), todate=datetime(2023, 7, 8)
        )

    for symbol in ("AAPL.US", "EURUSD", "BTCUSDT"):
        assert analysis[symbol]["findings"] == [], symbol
    missing = frame.index[4]
    report = check_frame(frame.drop(index=missing), CRYPTO, "1d", "BTCUSDT")
    gaps = [f for f in report.findings if f.kind == "missing_bars"]
    assert [(f.bars, CRYPTO.close_date(f.time)) for f in gaps] == [(1, missing.date())]  # not the day after


def clean_five_minute_frame() -> pd.DataFrame:
    model = MarketModel(seed=1, symbols=["BTCUSDT"], history_start_ms=FRIDAY - DAY)
    bars = model.klines_between("BTCUSDT", "5m", FRIDAY, FRIDAY + 1000 * 5 * MINUTE, FRIDAY + 10 * DAY)
    return klines_frame(bars).tz_convert(None)


def test_a_feed_told_the_wrong_bar_length_is_named_in_a_warning():
    frame = clean_five_minute_frame()  # PandasData without timeframe: "daily" bars 5 minutes apart

    with pytest.warns(
        backtrader_alltick.BarLengthWarning,
        match=r"'BTCUSDT' says its bars are 1d .* about 5 "
        r"minute\(s\) apart.*timeframe=bt.TimeFrame.Minutes, compression=5",
    ):
        run_backtest((bt.feeds.PandasData(dataname=frame), "BTCUSDT"))


def test_a_feed_given_its_bar_length_reports_clean_bars_clean(recwarn):
    frame = clean_five_minute_frame()
    data = bt.feeds.PandasData(dataname=frame, timeframe=bt.TimeFrame.Minutes, compression=5)

    report = run_backtest((data, "BTCUSDT")).get_analysis()["BTCUSDT"]

    assert report["bars"] == 1000 and report["counts"].get("repeated_timestamp", 0) == 0
    assert not [w for w in recwarn if issubclass(w.category, backtrader_alltick.BarLengthWarning)]
