"""Backtrader's sample strategies give the same trades on AllTickData as on PandasData over the same bars.

Each scenario is a minimal version of one of Backtrader's samples (multidata, resample, replay,
cheat-on-open, bracket orders, analyzers, writer, timers).  It runs twice: on ``AllTickData`` over
the simulator, and on ``bt.feeds.PandasData`` built from ``store.fetch_klines`` over the same
window.  Trades, final value and what the scenario records must be identical.  Intraday bars on
markets open all day (Monday 2024-03-04, 10:00 to 16:00 UTC), so the result does not depend on
how daily bars are stamped or where sessions end.
"""

from __future__ import annotations

import io
from datetime import time

import backtrader as bt
import pandas as pd
import pytest

from feedtools import Outcome, SmaCross

WINDOW = {"fromdate": "2024-03-04 10:00", "todate": "2024-03-04 16:00"}
SYMBOLS = ("BTCUSDT", "EURUSD")


class MultiData(bt.Strategy):
    """multidata sample: one position per data, in while the close is above its SMA."""

    def __init__(self) -> None:
        self.smas = {data: bt.ind.SMA(data, period=10) for data in self.datas}

    def next(self) -> None:
        for data, sma in self.smas.items():
            size = 1 if data._name == "BTCUSDT" else 100_000
            if not self.getposition(data) and data.close[0] > sma[0]:
                self.buy(data=data, size=size)
            elif self.getposition(data) and data.close[0] < sma[0]:
                self.close(data=data)


class CheatOnOpen(bt.Strategy):
    """cheat-on-open sample: decide in next_open and fill at this bar's open."""

    def __init__(self) -> None:
        self.sma = bt.ind.SMA(period=15)

    def next_open(self) -> None:
        if not self.position and self.data.open[0] > self.sma[-1]:
            self.buy(size=1)
        elif self.position and self.data.open[0] < self.sma[-1]:
            self.close()


class Bracket(bt.Strategy):
    """order-types sample: a limit entry with a take-profit and a stop-loss around it."""

    def __init__(self) -> None:
        self.open_orders: list = []

    def notify_order(self, order) -> None:
        if not order.alive() and order in self.open_orders:
            self.open_orders.remove(order)

    def next(self) -> None:
        if not self.position and not self.open_orders:
            close = self.data.close[0]
            self.open_orders = list(
                self.buy_bracket(
                    size=1, price=close * 0.9995, stopprice=close * 0.997, limitprice=close * 1.003
                )
            )


class Timed(bt.Strategy):
    """timers sample: buy at 11:00 and 13:00, close at 12:00 and 15:00 (UTC)."""

    def __init__(self) -> None:
        self.fired: list = []
        for when in (time(11, 0), time(12, 0), time(13, 0), time(15, 0)):
            self.add_timer(when=when)

    def notify_timer(self, timer, when, *args, **kwargs) -> None:
        self.fired.append((when, self.data.datetime.datetime(0)))
        if self.position:
            self.close()
        else:
            self.buy(size=1)


def data_factory(kind: str, store, frames):
    def make(symbol: str):
        if kind == "alltick":
            return store.getdata(dataname=symbol, timeframe=bt.TimeFrame.Minutes, historical=True, **WINDOW)
        return bt.feeds.PandasData(dataname=frames[symbol], timeframe=bt.TimeFrame.Minutes, compression=1)

    return make


def multidata(cerebro, make):
    for symbol in SYMBOLS:
        cerebro.adddata(make(symbol), name=symbol)
    cerebro.addstrategy(MultiData)


def resample(cerebro, make):
    cerebro.resampledata(make("BTCUSDT"), name="BTCUSDT", timeframe=bt.TimeFrame.Minutes, compression=15)
    cerebro.addstrategy(SmaCross, fast=2, slow=4)


def replay(cerebro, make):
    cerebro.replaydata(make("BTCUSDT"), name="BTCUSDT", timeframe=bt.TimeFrame.Minutes, compression=15)
    cerebro.addstrategy(SmaCross, fast=2, slow=4)


def mixed_timeframes(cerebro, make):
    data = make("BTCUSDT")
    cerebro.adddata(data, name="BTCUSDT")
    cerebro.resampledata(data, name="BTCUSDT-30m", timeframe=bt.TimeFrame.Minutes, compression=30)
    cerebro.addstrategy(SmaCross, fast=10, slow=30)


def cheat_on_open(cerebro, make):
    cerebro.adddata(make("BTCUSDT"), name="BTCUSDT")
    cerebro.broker.set_coo(True)
    cerebro.addstrategy(CheatOnOpen)
    return {"cheat_on_open": True}


def bracket(cerebro, make):
    cerebro.adddata(make("BTCUSDT"), name="BTCUSDT")
    cerebro.addstrategy(Bracket)


def analyzers(cerebro, make):
    cerebro.adddata(make("EURUSD"), name="EURUSD")
    cerebro.addstrategy(SmaCross)
    cerebro.addsizer(bt.sizers.FixedSize, stake=100_000)
    cerebro.addanalyzer(bt.analyzers.TradeAnalyzer, _name="trades")
    cerebro.addanalyzer(bt.analyzers.DrawDown, _name="drawdown")
    cerebro.addanalyzer(bt.analyzers.SQN, _name="sqn")
    cerebro.addanalyzer(
        bt.analyzers.TimeReturn, _name="timereturn", timeframe=bt.TimeFrame.Minutes, compression=60
    )


def writer(cerebro, make):
    cerebro.adddata(make("BTCUSDT"), name="BTCUSDT")
    cerebro.addstrategy(SmaCross)
    cerebro.addwriter(bt.WriterFile, out=io.StringIO(), csv=True, rounding=8)


def timer(cerebro, make):
    cerebro.adddata(make("BTCUSDT"), name="BTCUSDT")
    cerebro.addstrategy(Timed)


SCENARIOS = [multidata, resample, replay, mixed_timeframes, cheat_on_open, bracket, analyzers, writer, timer]


def run(scenario, make) -> dict:
    cerebro = bt.Cerebro(stdstats=True)
    cerebro.broker.setcash(1_000_000)
    cerebro.addanalyzer(Outcome, _name="outcome")
    run_kwargs = scenario(cerebro, make) or {}
    strategy = cerebro.run(**run_kwargs)[0]
    seen = {
        "outcome": strategy.analyzers.outcome.get_analysis(),
        "bars": len(strategy),
        "fired": getattr(strategy, "fired", None),
    }
    for analyzer in strategy.analyzers:
        if not isinstance(analyzer, Outcome):
            seen[type(analyzer).__name__] = analyzer.get_analysis()
    if cerebro.runwriters:
        seen["csv"] = writer_rows(cerebro.runwriters[0].out.getvalue())
    return seen


def writer_rows(text: str) -> list[list[str]]:
    """The writer's CSV lines, without the columns only AllTickData has (and no open interest:
    AllTick has none; PandasData leaves it empty, AllTickData writes 0)."""
    lines = text.splitlines()
    rulers = [i for i, line in enumerate(lines) if line.startswith("=====")]
    lines = lines[rulers[0] + 1 : rulers[1]]  # the CSV part; the summary after it describes each feed
    header = lines[0].split(",")
    keep = [i for i, name in enumerate(header) if name not in ("turnover", "bid", "ask", "openinterest")]
    return [[cells[i] for i in keep] for cells in (line.split(",") for line in lines)]


@pytest.fixture
def store(alltick_sim, make_store):
    return make_store(alltick_sim)


@pytest.fixture
def frames(store):
    return {symbol: store.fetch_klines(symbol, "1m", **WINDOW).tz_localize(None) for symbol in SYMBOLS}


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.__name__ for s in SCENARIOS])
def test_sample_strategy_gives_the_same_result_on_alltickdata_and_pandasdata(store, frames, scenario):
    pandas = run(scenario, data_factory("pandas", store, frames))
    alltick = run(scenario, data_factory("alltick", store, frames))

    assert pandas["outcome"]["trades"], "the scenario must trade to prove anything"
    assert alltick == pandas


def test_daily_sma_cross_gives_the_same_result_on_alltickdata_and_pandasdata(store):
    # Whatever the daily stamp convention, fetch_klines and the feed must deliver the same bars.
    window = {"fromdate": "2023-06-01", "todate": "2024-02-29"}
    frame = store.fetch_klines("BTCUSDT", "1d", **window)
    # Stamped as Backtrader's CSV feeds stamp daily bars: the trading date at the session end.
    frame.index = frame.index + pd.Timedelta(hours=23, minutes=59, seconds=59, microseconds=999990)
    results = []
    for data in (
        bt.feeds.PandasData(dataname=frame, timeframe=bt.TimeFrame.Days),
        store.getdata(dataname="BTCUSDT", timeframe=bt.TimeFrame.Days, historical=True, **window),
    ):
        cerebro = bt.Cerebro()
        cerebro.broker.setcash(1_000_000)
        cerebro.adddata(data, name="BTCUSDT")
        cerebro.addanalyzer(Outcome, _name="outcome")
        cerebro.addstrategy(SmaCross, fast=5, slow=20)
        results.append(cerebro.run()[0].analyzers.outcome.get_analysis())

    assert results[0]["trades"]
    assert results[1] == results[0]


# -- optimisation: every run sees the same bars -----------------------------------------------------

# Each window ends a day or two before a bar the feed loads (daily and weekly feeds load a little
# wider and leave Backtrader's filter to stop at todate), so a run can leave bars unread behind it.
OPT_WINDOWS = {
    "daily": ("1d", bt.TimeFrame.Days, {"fromdate": "2023-03-01", "todate": "2023-03-30"}),
    "weekly": ("1w", bt.TimeFrame.Weeks, {"fromdate": "2023-01-02", "todate": "2023-03-25"}),
    "minute": ("1m", bt.TimeFrame.Minutes, {"fromdate": "2024-03-04 10:00", "todate": "2024-03-04 10:40"}),
}


class BarLog(bt.Analyzer):
    """Every bar the run saw: (datetime, open, high, low, close, volume)."""

    def start(self) -> None:
        self.rows: list[tuple] = []

    def next(self) -> None:
        data = self.strategy.data
        self.rows.append(
            (
                data.datetime.datetime(0),
                data.open[0],
                data.high[0],
                data.low[0],
                data.close[0],
                data.volume[0],
            )
        )

    def get_analysis(self) -> list[tuple]:
        return self.rows


class Sma(bt.Strategy):
    """An indicator, as an optimised strategy has: a run that gets no bars fails in it."""

    params = (("period", 2),)

    def __init__(self) -> None:
        self.sma = bt.ind.SMA(period=self.p.period)


# Cerebro's three ways to drive a feed: preloaded and run at once, preloaded and run bar by bar,
# loaded bar by bar.
MODES = {
    "runonce": {"runonce": True},
    "runnext": {"runonce": False},
    "unpreloaded": {"runonce": False, "preload": False},
}


def optimise_bars(data, maxcpus: int, mode: str) -> list[list[tuple]]:
    cerebro = bt.Cerebro(maxcpus=maxcpus, stdstats=False, **MODES[mode])
    cerebro.adddata(data, name="ETHUSDT")
    cerebro.addanalyzer(BarLog, _name="bars")
    cerebro.optstrategy(Sma, period=[2, 3, 4])
    runs = sorted(cerebro.run(), key=lambda run: run[0].p.period)
    return [run[0].analyzers.bars.get_analysis() for run in runs]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("maxcpus", [1, 2])
@pytest.mark.parametrize("kind", OPT_WINDOWS)
def test_every_optstrategy_run_sees_the_bars_pandasdata_sees(store, kind, maxcpus, mode):
    period, timeframe, window = OPT_WINDOWS[kind]
    frame = store.fetch_klines("ETHUSDT", period, **window).tz_localize(None)
    if timeframe != bt.TimeFrame.Minutes:  # stamped as Backtrader's CSV feeds stamp them
        frame.index = frame.index + pd.Timedelta(hours=23, minutes=59, seconds=59, microseconds=999990)
    expected = optimise_bars(bt.feeds.PandasData(dataname=frame, timeframe=timeframe), 1, mode)[0]

    runs = optimise_bars(
        store.getdata(dataname="ETHUSDT", timeframe=timeframe, historical=True, **window), maxcpus, mode
    )

    assert len(expected) == len(frame) > 4
    assert [len(rows) for rows in runs] == [len(expected)] * 3
    assert runs == [expected] * 3
