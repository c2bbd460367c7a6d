"""Historical AllTickData through a real Cerebro against the simulator, both dialects."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import backtrader as bt
import pandas as pd
import pytest

from backtrader_alltick import AllTickStore
from backtrader_alltick.errors import (
    AuthError,
    CacheError,
    ConfigError,
    NoBarsWarning,
    SymbolNotFound,
    UnsupportedTimeframe,
)
from feedtools import Outcome, Recorder, SmaCross, as_ms_rows, kline_rows, utc

MINUTE = 60_000


def backtest(store, **data_kwargs):
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(store.getdata(historical=True, **data_kwargs), name="data")
    cerebro.addstrategy(Recorder)
    strategy = cerebro.run()[0]
    return as_ms_rows(strategy.rows["data"]), strategy.notes["data"]


def assert_bars_equal(got, expected):
    assert [row[:5] for row in got] == [row[:5] for row in expected]
    assert [row[5] for row in got] == pytest.approx([row[5] for row in expected], rel=1e-9)


@pytest.mark.parametrize(
    ("symbol", "timeframe", "compression", "period"),
    [
        ("AAPL.US", bt.TimeFrame.Minutes, 1, "1m"),
        ("EURUSD", bt.TimeFrame.Minutes, 5, "5m"),
        ("BTCUSDT", bt.TimeFrame.Minutes, 30, "30m"),
        ("BTCUSDT", bt.TimeFrame.Days, 1, "1d"),
    ],
)
def test_backtest_bars_equal_simulator_ground_truth(sim, make_store, symbol, timeframe, compression, period):
    now = sim.clock.now_ms()
    span = 200 * compression * MINUTE if timeframe == bt.TimeFrame.Minutes else 30 * 86_400_000
    start, end = now - span, now - 5 * compression * MINUTE
    store = make_store(sim)

    rows, _ = backtest(
        store,
        dataname=symbol,
        timeframe=timeframe,
        compression=compression,
        fromdate=utc(start),
        todate=utc(end),
    )

    # Backtrader's rule: a bar stamped at or after fromdate is kept, the one in progress included.
    truth = [k for k in sim.klines(symbol, period, start - 2 * 86_400_000, end) if start <= k.end <= end]
    assert len(rows) > 10
    assert_bars_equal(rows, kline_rows(truth))


@pytest.mark.parametrize(("compression", "rule"), [(3, "3min"), (10, "10min"), (90, "90min")])
def test_synthetic_compression_equals_pandas_resample_of_one_minute_truth(
    alltick_sim, make_store, compression, rule
):
    now = alltick_sim.clock.now_ms()
    start = (now - 400 * MINUTE) // (compression * MINUTE) * (compression * MINUTE)
    end = (now - 30 * MINUTE) // (compression * MINUTE) * (compression * MINUTE)
    store = make_store(alltick_sim)

    rows, _ = backtest(
        store,
        dataname="BTCUSDT",
        timeframe=bt.TimeFrame.Minutes,
        compression=compression,
        fromdate=utc(start),
        todate=utc(end),
    )

    # fromdate sits on the grid: the bar stamped exactly at it is kept, as Backtrader's filter keeps it.
    minutes = alltick_sim.klines("BTCUSDT", "1m", start - compression * MINUTE, end)
    frame = pd.DataFrame(
        [(k.start, k.open, k.high, k.low, k.close, k.volume) for k in minutes],
        columns=["start", "open", "high", "low", "close", "volume"],
    )
    frame.index = pd.to_datetime(frame.pop("start"), unit="ms")
    resampled = (
        frame.resample(rule, label="right", closed="left", origin="epoch")
        .agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
        .dropna()
    )
    expected = [(int(ts.value // 1_000_000), *row) for ts, row in zip(resampled.index, resampled.to_numpy())]
    assert_bars_equal(rows, [r for r in expected if r[0] <= end])


def test_backtest_without_todate_never_delivers_a_forming_bar(sim, make_store):
    store = make_store(sim)

    rows, _ = backtest(store, dataname="BTCUSDT", timeframe=bt.TimeFrame.Minutes, lookback=50)

    assert len(rows) == 50
    assert rows[-1][0] <= sim.clock.now_ms()
    assert len({row[0] for row in rows}) == len(rows)


def test_second_identical_backtest_makes_no_http_request(sim, make_store):
    now = sim.clock.now_ms()
    window = dict(
        dataname="EURUSD",
        timeframe=bt.TimeFrame.Minutes,
        fromdate=utc(now - 300 * MINUTE),
        todate=utc(now - 10 * MINUTE),
    )
    first, _ = backtest(make_store(sim), **window)
    served = sim.counters["rest_requests"]

    second, _ = backtest(make_store(sim), **window)

    assert sim.counters["rest_requests"] == served
    assert second == first


def test_bars_are_stamped_at_close(alltick_sim, make_store):
    now = alltick_sim.clock.now_ms()
    store = make_store(alltick_sim)

    rows, _ = backtest(
        store,
        dataname="BTCUSDT",
        timeframe=bt.TimeFrame.Minutes,
        compression=5,
        fromdate=utc(now - 100 * MINUTE),
        todate=utc(now - 10 * MINUTE),
    )

    first_truth = next(
        k for k in alltick_sim.klines("BTCUSDT", "5m", now - 110 * MINUTE, now) if k.end > now - 100 * MINUTE
    )
    assert rows[0][0] == first_truth.start + 5 * MINUTE == first_truth.end


def test_unsupported_timeframe_is_rejected_at_getdata_with_the_choices(alltick_sim, make_store):
    store = make_store(alltick_sim)

    with pytest.raises(UnsupportedTimeframe) as info:
        store.getdata(dataname="AAPL.US", timeframe=bt.TimeFrame.Seconds, compression=5, historical=True)

    assert "5 Seconds" in str(info.value) and "Minutes" in str(info.value)


def test_two_hour_bars_for_a_stock_are_built_from_one_hour_bars(alltick_sim, make_store):
    store = make_store(alltick_sim)

    data = store.getdata(dataname="AAPL.US", timeframe=bt.TimeFrame.Minutes, compression=120, historical=True)

    assert (data.spec.native.name, data.spec.multiple) == ("1h", 2)


def test_fromdate_after_todate_is_a_clear_error(alltick_sim, make_store):
    now = alltick_sim.clock.now_ms()
    with pytest.raises(ConfigError, match="fromdate must not be after todate"):
        backtest(
            make_store(alltick_sim),
            dataname="BTCUSDT",
            timeframe=bt.TimeFrame.Minutes,
            fromdate=utc(now - MINUTE),
            todate=utc(now - 60 * MINUTE),
        )


def test_unknown_symbol_raises_symbol_not_found(sim, make_store):
    with pytest.raises(SymbolNotFound):
        backtest(make_store(sim), dataname="NOPE.US", timeframe=bt.TimeFrame.Minutes)


def test_wrong_token_raises_auth_error_without_leaking_it(sim, tmp_path):
    store = AllTickStore(
        token="sentinel-wrong-token-123456",
        dialect=sim.dialect,
        rest_url=sim.rest_url,
        ws_url=sim.ws_url,
        clock=sim.clock,
        plan="unlimited",
        cache=tmp_path / "c.sqlite",
    )
    try:
        with pytest.raises(AuthError) as info:
            backtest(store, dataname="BTCUSDT", timeframe=bt.TimeFrame.Minutes)
    finally:
        store.stop()

    assert "sentinel-wrong-token-123456" not in str(info.value) + repr(info.value) + repr(store)


@pytest.mark.parametrize("tz", ["America/New_York", ZoneInfo("America/New_York")])
def test_tz_localises_output_and_reads_naive_dates_in_it(alltick_sim, make_store, tz):
    now = alltick_sim.clock.now_ms()
    start = now - 120 * MINUTE - now % MINUTE
    local_start = datetime.fromtimestamp(start / 1000, ZoneInfo("America/New_York")).replace(tzinfo=None)
    store = make_store(alltick_sim)
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(
        store.getdata(
            dataname="BTCUSDT",
            timeframe=bt.TimeFrame.Minutes,
            historical=True,
            tz=tz,
            fromdate=local_start,
            todate=local_start + timedelta(minutes=30),
        ),
        name="d",
    )
    cerebro.addstrategy(LocalTimes)

    strategy = cerebro.run()[0]

    assert strategy.times[0] == local_start  # the bar closing at fromdate, in New York: kept
    assert len(strategy.times) == 31  # fromdate and todate both inclusive, as in Backtrader


class LocalTimes(bt.Strategy):
    def __init__(self) -> None:
        self.times = []

    def next(self) -> None:
        self.times.append(self.data.datetime.datetime(0))


@pytest.mark.parametrize("symbol", ["EURUSD", "700.HK"])
def test_fromdate_keeps_the_daily_bar_of_that_day_where_the_day_starts_the_evening_before(
    alltick_sim, make_store, symbol
):
    now = alltick_sim.clock.now_ms()
    day = datetime.fromtimestamp(now / 1000, timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    fromdate = (day - timedelta(days=4)).replace(tzinfo=None)  # a Friday; both days start before 00:00 UTC

    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(
        make_store(alltick_sim).getdata(
            dataname=symbol,
            timeframe=bt.TimeFrame.Days,
            historical=True,
            fromdate=fromdate,
            todate=(day - timedelta(days=2)).replace(tzinfo=None),
        ),
        name="d",
    )
    cerebro.addstrategy(LocalTimes)

    strategy = cerebro.run()[0]

    assert strategy.times[0].date() == fromdate.date()  # daily bars carry their trading date


def test_an_aware_fromdate_means_the_same_instant_whatever_tz_is(alltick_sim, make_store):
    now = alltick_sim.clock.now_ms()
    start = datetime.fromtimestamp((now - 60 * MINUTE - now % MINUTE) / 1000, timezone.utc)
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(
        make_store(alltick_sim).getdata(
            dataname="BTCUSDT",
            timeframe=bt.TimeFrame.Minutes,
            historical=True,
            tz="America/New_York",
            fromdate=start,
            todate=start + timedelta(minutes=10),
        ),
        name="d",
    )
    cerebro.addstrategy(LocalTimes)

    strategy = cerebro.run()[0]

    new_york = start.astimezone(ZoneInfo("America/New_York")).replace(tzinfo=None)
    assert strategy.times[0] == new_york and len(strategy.times) == 11


# -- optimisation on several cores ---------------------------------------------------------------------


def optimise(store, maxcpus, **cerebro_kwargs):
    cerebro = bt.Cerebro(maxcpus=maxcpus, stdstats=False, **cerebro_kwargs)
    cerebro.broker.setcash(1_000_000)
    cerebro.adddata(
        store.getdata(
            dataname="BTCUSDT",
            timeframe=bt.TimeFrame.Minutes,
            historical=True,
            fromdate=datetime(2024, 3, 4, 10),
            todate=datetime(2024, 3, 4, 16),
        )
    )
    cerebro.addanalyzer(Outcome, _name="outcome")
    cerebro.optstrategy(SmaCross, fast=[3, 5], slow=[20, 30])
    runs = cerebro.run()
    return sorted(((run[0].p.fast, run[0].p.slow), run[0].analyzers.outcome.get_analysis()) for run in runs)


@pytest.mark.parametrize(
    ("start_method", "optdatas", "preload"),
    [
        ("fork", True, True),
        ("fork", True, False),
        ("fork", False, True),
        ("fork", False, False),
        ("spawn", True, True),
        ("spawn", False, False),
        ("forkserver", False, False),
    ],
)
def test_optstrategy_on_two_cores_equals_one_core(
    alltick_sim, make_store, worker_pools, start_method, optdatas, preload
):
    store = make_store(alltick_sim)
    one_core = optimise(store, 1)

    # Workers get the store pickled: with optdatas and preload the bars travel with the feed, otherwise
    # each worker reopens the store and reads the simulator (in this process) and the cache file.
    worker_pools(start_method)
    two_cores = optimise(store, 2, optdatas=optdatas, preload=preload)

    assert [params for params, _ in one_core] == [(3, 20), (3, 30), (5, 20), (5, 30)]
    assert all(outcome["trades"] for _, outcome in one_core)
    assert two_cores == one_core


def test_an_error_in_an_optimisation_worker_is_raised_by_cerebro_run(
    alltick_sim, make_store, tmp_path, worker_pools
):
    # Only the workers open the cache (the feed travels unloaded), and this one is a directory.
    store = make_store(alltick_sim, cache=tmp_path)
    worker_pools("forkserver")

    with pytest.raises(CacheError, match=f"the K-line cache {tmp_path} is a directory"):
        optimise(store, 2, optdatas=False, preload=False)


def test_optstrategy_on_two_cores_refuses_a_live_feed(alltick_sim, make_store, worker_pools):
    worker_pools("fork")  # Backtrader leaves its pool open when a task cannot be sent: the fixture ends it
    cerebro = bt.Cerebro(maxcpus=2, stdstats=False)
    cerebro.adddata(make_store(alltick_sim).getdata(dataname="BTCUSDT", timeframe=bt.TimeFrame.Minutes))
    cerebro.optstrategy(SmaCross, fast=[3, 5])

    with pytest.raises(ConfigError, match="BTCUSDT: a live feed cannot be sent to other processes"):
        cerebro.run()


# -- empty ranges and parameters ---------------------------------------------------------------------


class EmptyProbe(bt.Strategy):
    def __init__(self) -> None:
        self.nexts = 0
        self.stopped_with = None

    def next(self) -> None:
        self.nexts += 1

    def stop(self) -> None:
        self.stopped_with = len(self.data)


def test_a_range_without_bars_warns_and_ends_like_an_empty_pandas_feed(alltick_sim, make_store):
    empty = pd.DataFrame(
        columns=["open", "high", "low", "close", "volume"],
        dtype=float,
        index=pd.DatetimeIndex([], name="datetime"),
    )
    # The simulated history starts in December 2021.
    before_history = dict(fromdate=datetime(2020, 1, 1), todate=datetime(2020, 1, 2))
    results = {}
    with pytest.warns(NoBarsWarning) as caught:
        for name, data in (
            (
                "alltick",
                make_store(alltick_sim).getdata(
                    dataname="BTCUSDT", timeframe=bt.TimeFrame.Minutes, historical=True, **before_history
                ),
            ),
            ("pandas", bt.feeds.PandasData(dataname=empty, **before_history)),
        ):
            cerebro = bt.Cerebro(stdstats=False, runonce=False)
            cerebro.adddata(data)
            cerebro.addstrategy(EmptyProbe)
            strategy = cerebro.run()[0]
            results[name] = (strategy.nexts, strategy.stopped_with, cerebro.broker.getvalue())

    assert results["alltick"] == results["pandas"] == (0, 0, 10_000.0)
    assert [str(w.message).split(" (")[0] for w in caught if w.category is NoBarsWarning] == [
        "BTCUSDT: no 1m bars from 2020-01-01T00:00:00Z to 2020-01-02T00:00:00Z"
    ]


@pytest.mark.parametrize(
    ("symbol", "fromdate", "todate"),
    [
        ("EURUSD", date(2024, 3, 2), date(2024, 3, 3)),  # a weekend: no forex trading day
        ("AAPL.US", date(2023, 7, 4), date(2023, 7, 4)),  # Independence Day
    ],
)
def test_dates_without_a_trading_day_warn_and_end_without_bars(
    alltick_sim, make_store, symbol, fromdate, todate
):
    # Each date means its trading day: nothing lies between, which is an empty range, not crossed dates.
    with pytest.warns(NoBarsWarning, match=f"^{symbol}: no 1m bars from") as caught:
        rows, _ = backtest(
            make_store(alltick_sim),
            dataname=symbol,
            timeframe=bt.TimeFrame.Minutes,
            fromdate=fromdate,
            todate=todate,
        )

    assert rows == []
    if symbol == "EURUSD":  # from Friday's close to Sunday's open, the market closed between
        assert "from 2024-03-01T22:00:00Z to 2024-03-03T22:00:00Z" in str(caught[0].message)


def test_getdata_takes_iso_strings_and_refuses_what_backtrader_cannot_read(alltick_sim, make_store):
    store = make_store(alltick_sim)

    rows, _ = backtest(
        store,
        dataname="BTCUSDT",
        timeframe=bt.TimeFrame.Minutes,
        fromdate="2024-03-04 10:00",
        todate="2024-03-04T10:05:00",
    )

    assert len(rows) == 6
    for kwargs, parameter in (
        ({"fromdate": 20240304}, "fromdate"),
        ({"todate": "soon"}, "todate"),
        ({"lookback": 0}, "lookback"),
        ({"compression": 1.5}, "compression"),
        ({"timeframe": None}, "timeframe"),
    ):
        with pytest.raises(ConfigError, match=rf"^{parameter} must .*, was "):
            store.getdata(dataname="BTCUSDT", historical=True, **kwargs)


def test_fromdate_and_todate_select_what_pandasdata_selects_over_the_same_bars(alltick_sim, make_store):
    store = make_store(alltick_sim)
    window = dict(fromdate=datetime(2024, 3, 4, 10, 0), todate=datetime(2024, 3, 4, 10, 5))
    frame = store.fetch_klines("BTCUSDT", "1m", fromdate="2024-03-04 09:00", todate="2024-03-04 11:00")
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(bt.feeds.PandasData(dataname=frame.tz_localize(None), **window), name="data")
    cerebro.addstrategy(Recorder)
    pandas_rows = as_ms_rows(cerebro.run()[0].rows["data"])

    rows, _ = backtest(store, dataname="BTCUSDT", timeframe=bt.TimeFrame.Minutes, **window)

    assert len(rows) == 6  # 10:00 to 10:05, both ends kept
    assert rows == pandas_rows
