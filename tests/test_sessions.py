"""Trading dates, sessions and exchange calendars as a Backtrader user sees them, against the simulator."""

from __future__ import annotations

import logging
import threading
from datetime import date, datetime, time, timedelta, timezone

import backtrader as bt
import pytest

from backtrader_alltick.errors import MarketClosedWarning
from backtrader_alltick.sim import Simulator
from feedtools import run_guarded

# Friday 2023-07-07 15:00 UTC: the week before holds an early close (Monday July 3, 13:00
# New York) and a holiday (Tuesday July 4) on the NYSE; forex and crypto trade through both.
JULY_2023 = datetime(2023, 7, 7, 15, tzinfo=timezone.utc)
# Friday 2024-05-10: March 2024 ends on Good Friday (NYSE closed, forex open) and a Sunday.
MAY_2024 = datetime(2024, 5, 10, 15, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def july_sim():
    with Simulator(dialect="alltick", plan="unlimited", speed=60, seed=2, start=JULY_2023) as sim:
        yield sim


@pytest.fixture(scope="module")
def july_itick_sim():
    # AllTick serves only the newest 500 stock minutes; iTick pages back through the whole week.
    with Simulator(dialect="itick", plan="unlimited", speed=60, seed=2, start=JULY_2023) as sim:
        yield sim


@pytest.fixture(scope="module")
def may_sim():
    with Simulator(dialect="alltick", plan="unlimited", speed=60, seed=2, start=MAY_2024) as sim:
        yield sim


class DateRecorder(bt.Strategy):
    """Per ``next()``: the datetime of every data and which of them advanced."""

    def __init__(self) -> None:
        self.steps: list[tuple[list[datetime], list[bool]]] = []
        self.bars: dict[str, list[tuple]] = {d._name: [] for d in self.datas}
        self._lengths = [0] * len(self.datas)

    def prenext(self) -> None:
        self.next()

    def next(self) -> None:
        advanced = [len(d) != n for d, n in zip(self.datas, self._lengths)]
        self._lengths = [len(d) for d in self.datas]
        self.steps.append(([d.datetime.datetime(0) if len(d) else None for d in self.datas], advanced))
        for data, moved in zip(self.datas, advanced):
            if moved:
                self.bars[data._name].append(
                    (
                        data.datetime.date(0),
                        data.open[0],
                        data.high[0],
                        data.low[0],
                        data.close[0],
                        data.volume[0],
                    )
                )


def run(feeds: list[tuple[str, bt.feed.DataBase, dict | None]], strategy=DateRecorder, **kwargs):
    cerebro = bt.Cerebro(stdstats=False)
    for name, data, resample in feeds:
        if resample:
            cerebro.resampledata(data, name=name, **resample)
        else:
            cerebro.adddata(data, name=name)
    cerebro.addstrategy(strategy, **kwargs)
    return cerebro.run()[0]


def daily(store, symbol, fromdate, todate, timeframe=bt.TimeFrame.Days, **kwargs):
    return store.getdata(
        dataname=symbol, timeframe=timeframe, historical=True, fromdate=fromdate, todate=todate, **kwargs
    )


def test_daily_bars_of_three_markets_line_up_by_trading_date(july_sim, make_store):
    store = make_store(july_sim)
    symbols = ("AAPL.US", "EURUSD", "BTCUSDT")

    strategy = run([(s, daily(store, s, date(2023, 6, 26), date(2023, 7, 6)), None) for s in symbols])

    for stamps, advanced in strategy.steps:
        shared = [stamp for stamp, moved in zip(stamps, advanced) if moved]
        assert len(set(shared)) == 1, "feeds advanced on different stamps in one next()"
    by_date = {}
    for stamps, advanced in strategy.steps:
        for symbol, stamp, moved in zip(symbols, stamps, advanced):
            if moved:
                by_date.setdefault(stamp.date(), set()).add(symbol)
    weekdays = [d for d in by_date if d.weekday() < 5 and d != date(2023, 7, 4)]
    assert all(by_date[d] == set(symbols) for d in weekdays)  # all three advanced together
    assert by_date[date(2023, 7, 4)] == {"EURUSD", "BTCUSDT"}  # Independence Day: no AAPL bar
    assert by_date[date(2023, 7, 1)] == {"BTCUSDT"}  # crypto's Saturday; forex has no weekend bar
    assert len(strategy.steps) == len(by_date)


@pytest.mark.parametrize("symbol", ["AAPL.US", "700.HK", "EURUSD", "BTCUSDT"])
def test_date_is_the_trading_date_at_the_end_of_the_day(july_sim, make_store, symbol):
    store = make_store(july_sim)

    strategy = run([("d", daily(store, symbol, date(2023, 7, 3), date(2023, 7, 6)), None)])

    stamps = [stamps[0] for stamps, _ in strategy.steps]
    truth = july_sim.klines(symbol, "1d", ms(datetime(2023, 7, 2)), ms(datetime(2023, 7, 8)))
    trading_dates = [k_date(symbol, k) for k in truth]
    wanted = [d for d in trading_dates if date(2023, 7, 3) <= d <= date(2023, 7, 6)]
    assert [s.date() for s in stamps] == wanted
    assert {s.time() for s in stamps} == {time(23, 59, 59, 999989)}  # Backtrader's end of day


def test_daily_stamps_keep_their_date_in_the_feeds_tz(july_sim, make_store):
    store = make_store(july_sim)
    feeds = [
        (tz or "utc", daily(store, "700.HK", date(2023, 7, 3), date(2023, 7, 5), tz=tz), None)
        for tz in (None, "Asia/Hong_Kong", "America/New_York")
    ]

    strategy = run(feeds)

    for name in ("utc", "Asia/Hong_Kong", "America/New_York"):
        assert [bar[0] for bar in strategy.bars[name]] == [date(2023, 7, d) for d in (3, 4, 5)]


@pytest.mark.parametrize("tz", ["America/New_York", "America/Los_Angeles", "Asia/Tokyo"])
def test_daily_stamps_keep_their_date_in_any_tz_on_every_day(may_sim, make_store, tz):
    # Each stamp is the date at 23:59:59.99999 in the feed's tz; seen from UTC its float must not
    # round up to the next midnight (Backtrader's num2date rounds microseconds above 999990 up).
    store = make_store(may_sim)
    first, last = date(2024, 2, 1), date(2024, 3, 31)
    wanted = list(store.fetch_klines("BTCUSDT", bt.TimeFrame.Days, fromdate=first, todate=last).index.date)
    feeds = [
        ("native", daily(store, "BTCUSDT", first, last, tz=tz), None),
        (
            "resampled",
            daily(store, "BTCUSDT", date(2024, 2, 26), date(2024, 2, 29), bt.TimeFrame.Minutes, tz=tz),
            dict(timeframe=bt.TimeFrame.Days),
        ),
    ]

    strategy = run(feeds)

    assert [bar[0] for bar in strategy.bars["native"]] == wanted
    assert [bar[0] for bar in strategy.bars["resampled"]] == [date(2024, 2, d) for d in (26, 27, 28, 29)]


def test_weekly_and_monthly_bars_end_on_the_last_trading_day(may_sim, make_store):
    store = make_store(may_sim)
    weeks = [
        (s, daily(store, s, date(2024, 3, 18), date(2024, 4, 12), bt.TimeFrame.Weeks), None)
        for s in ("AAPL.US", "EURUSD")
    ]
    months = [
        (s, daily(store, s, date(2024, 2, 1), date(2024, 4, 30), bt.TimeFrame.Months), None)
        for s in ("AAPL.US", "EURUSD", "BTCUSDT")
    ]

    weekly = run(weeks)
    monthly = run(months)

    assert [b[0] for b in weekly.bars["AAPL.US"]] == [
        date(2024, 3, 22),
        date(2024, 3, 28),  # Good Friday
        date(2024, 4, 5),
        date(2024, 4, 12),
    ]
    assert [b[0] for b in weekly.bars["EURUSD"]] == [
        date(2024, 3, 22),
        date(2024, 3, 29),  # a Friday
        date(2024, 4, 5),
        date(2024, 4, 12),
    ]
    assert [b[0] for b in monthly.bars["AAPL.US"]] == [
        date(2024, 2, 29),
        date(2024, 3, 28),
        date(2024, 4, 30),
    ]
    assert [b[0] for b in monthly.bars["EURUSD"]] == [date(2024, 2, 29), date(2024, 3, 29), date(2024, 4, 30)]
    assert [b[0] for b in monthly.bars["BTCUSDT"]] == [
        date(2024, 2, 29),
        date(2024, 3, 31),
        date(2024, 4, 30),
    ]


@pytest.mark.parametrize("symbol", ["AAPL.US", "700.HK", "EURUSD", "BTCUSDT"])
def test_resampling_minutes_to_days_gives_the_native_daily_bars(july_itick_sim, make_store, symbol):
    # July 3-6 2023: an early close and a holiday for AAPL; the forex day starts at 22:00 UTC
    # the evening before; the last crypto minute of a day closes at 00:00 UTC the next day.
    store = make_store(july_itick_sim)
    first, last = date(2023, 7, 3), date(2023, 7, 6)

    native = run([("d", daily(store, symbol, first, last), None)])
    resampled = run(
        [("d", daily(store, symbol, first, last, bt.TimeFrame.Minutes), dict(timeframe=bt.TimeFrame.Days))]
    )

    assert len(native.bars["d"]) >= 3
    assert [bar[:5] for bar in resampled.bars["d"]] == [bar[:5] for bar in native.bars["d"]]
    assert [bar[5] for bar in resampled.bars["d"]] == pytest.approx(
        [bar[5] for bar in native.bars["d"]], rel=1e-9
    )


@pytest.mark.parametrize("symbol", ["EURUSD", "BTCUSDT"])
@pytest.mark.parametrize(
    ("compression", "timeframe", "first", "last"),
    [
        (1, bt.TimeFrame.Weeks, date(2023, 6, 26), date(2023, 7, 2)),
        (60, bt.TimeFrame.Months, date(2023, 6, 1), date(2023, 6, 30)),
    ],
)
def test_resampling_intraday_bars_to_weeks_and_months_gives_the_native_bars(
    july_itick_sim, make_store, symbol, compression, timeframe, first, last
):
    # The forex week opens on Sunday 22:00 UTC and the last crypto minute of a month closes at
    # 00:00 UTC on the 1st: neither may start a stub period of its own.
    store = make_store(july_itick_sim)

    native = run([("d", daily(store, symbol, first, last, timeframe), None)])
    resampled = run(
        [
            (
                "d",
                daily(store, symbol, first, last, bt.TimeFrame.Minutes, compression=compression),
                dict(timeframe=timeframe),
            )
        ]
    )

    assert len(native.bars["d"]) == 1
    assert [bar[:5] for bar in resampled.bars["d"]] == [bar[:5] for bar in native.bars["d"]]
    assert [bar[5] for bar in resampled.bars["d"]] == pytest.approx(
        [bar[5] for bar in native.bars["d"]], rel=1e-9
    )


def test_resampling_a_feed_also_added_as_minutes_gives_the_native_daily_bars(july_sim, make_store):
    store = make_store(july_sim)
    minutes = daily(store, "BTCUSDT", date(2023, 7, 5), date(2023, 7, 6), bt.TimeFrame.Minutes)
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(minutes, name="m")
    cerebro.resampledata(minutes, name="d", timeframe=bt.TimeFrame.Days)  # a clone of the feed
    cerebro.addstrategy(DateRecorder)

    resampled = cerebro.run()[0]
    native = run([("d", daily(store, "BTCUSDT", date(2023, 7, 5), date(2023, 7, 6)), None)])

    assert [bar[:5] for bar in resampled.bars["d"]] == [bar[:5] for bar in native.bars["d"]]


def test_resampled_days_line_up_with_native_daily_bars_of_other_markets(july_sim, make_store):
    store = make_store(july_sim)

    strategy = run(
        [
            ("eur", daily(store, "EURUSD", date(2023, 7, 5), date(2023, 7, 6)), None),
            (
                "btc",
                daily(store, "BTCUSDT", date(2023, 7, 5), date(2023, 7, 6), bt.TimeFrame.Minutes),
                dict(timeframe=bt.TimeFrame.Days),
            ),
        ]
    )

    assert [advanced for _, advanced in strategy.steps] == [[True, True], [True, True]]


class SessionTimers(bt.Strategy):
    def __init__(self) -> None:
        self.fired: list[tuple[str, datetime]] = []
        self.add_timer(bt.timer.SESSION_START, offset=timedelta(minutes=15), kind="start")
        self.add_timer(bt.timer.SESSION_END, kind="end")

    def notify_timer(self, timer, when, kind) -> None:
        self.fired.append((kind, self.data.datetime.datetime(0)))


@pytest.mark.parametrize(
    ("symbol", "tz", "start", "end"),
    [
        ("AAPL.US", "America/New_York", time(9, 45), time(16, 0)),
        ("700.HK", None, time(1, 45), time(8, 0)),  # 09:45 and 16:00 Hong Kong, in UTC
        ("700.HK", "Asia/Hong_Kong", time(9, 45), time(16, 0)),
        ("EURUSD", "America/New_York", time(17, 15), time(17, 0)),  # the forex day rolls at 17:00 New York
        ("BTCUSDT", None, time(0, 15), time(0, 0)),
    ],
)
def test_session_timers_fire_at_the_exchanges_times(july_itick_sim, make_store, symbol, tz, start, end):
    store = make_store(july_itick_sim)
    # From the last half minute of July 4: the first bar is the first of July 5 in every zone here.
    data = daily(
        store, symbol, datetime(2023, 7, 4, 23, 59, 30), datetime(2023, 7, 7), bt.TimeFrame.Minutes, tz=tz
    )

    strategy = run([("m", data, None)], strategy=SessionTimers)

    starts = [moment for kind, moment in strategy.fired if kind == "start"]
    ends = [moment for kind, moment in strategy.fired if kind == "end"]
    assert len(starts) >= 1 and len(ends) >= 1
    assert {moment.time() for moment in starts} == {start}
    assert {moment.time() for moment in ends} == {end}


def test_a_date_fromdate_and_todate_mean_that_trading_days_open_and_close(july_sim, make_store):
    store = make_store(july_sim)

    strategy = run(
        [("eur", daily(store, "EURUSD", date(2023, 7, 5), date(2023, 7, 5), bt.TimeFrame.Minutes), None)]
    )

    stamps = [stamps[0] for stamps, _ in strategy.steps]
    # AllTick's product list: the forex day of July 5 opens 17:00 New York on July 4, 21:00 UTC in summer.
    assert stamps[0] == datetime(2023, 7, 4, 21, 1)
    assert stamps[-1] == datetime(2023, 7, 5, 21, 0)


def test_us_history_has_the_holiday_gap_and_the_early_close(july_itick_sim, make_store):
    store = make_store(july_itick_sim)

    days = store.fetch_klines("AAPL.US", "1d", fromdate=datetime(2023, 6, 30), todate=datetime(2023, 7, 7))
    minutes = store.fetch_klines(
        "AAPL.US", "1m", fromdate=datetime(2023, 7, 3, 13), todate=datetime(2023, 7, 6)
    )

    assert list(days.index.date) == [date(2023, 6, 30), date(2023, 7, 3), date(2023, 7, 5), date(2023, 7, 6)]
    on_july_3 = minutes[minutes.index.date == date(2023, 7, 3)]
    assert on_july_3.index[-1] == datetime(2023, 7, 3, 17, 0, tzinfo=timezone.utc)  # 13:00 New York
    assert not (minutes.index.date == date(2023, 7, 4)).any()
    assert days.loc["2023-07-03", "close"] == on_july_3["close"].iloc[-1]


def test_a_live_daily_feed_on_a_holiday_says_the_market_is_closed_and_goes_live_when_the_date_ends(
    make_store, caplog
):
    # 23:55 New York, July 4: five wall seconds at 60x before the date ends, time enough to backfill.
    late_on_the_holiday = datetime(2023, 7, 5, 3, 55, tzinfo=timezone.utc)
    with Simulator(dialect="alltick", plan="unlimited", speed=60, seed=2, start=late_on_the_holiday) as sim:
        store = make_store(sim)
        cerebro = bt.Cerebro(stdstats=False)
        cerebro.adddata(
            store.getdata(dataname="AAPL.US", timeframe=bt.TimeFrame.Days, lookback=3, qcheck=0.1),
            name="aapl",
        )
        cerebro.addstrategy(StopWhenLive)
        with (
            caplog.at_level(logging.INFO, logger="backtrader_alltick"),
            pytest.warns(MarketClosedWarning) as warned,
        ):
            strategy = run_guarded(cerebro, 60)

    # The calendar expects nothing on the holiday, but only the end of the date proves no trade came.
    assert strategy.notes[:2] == ["DELAYED", "LIVE"]
    assert strategy.clock_at_live >= ms(datetime(2023, 7, 5, 4, 0))
    assert strategy.dates[-1] == date(2023, 7, 3)  # the service had no bar for the holiday
    # Only ours: on Python 3.12+ Backtrader's live loop adds datetime.utcnow() deprecations.
    closed = [str(w.message) for w in warned if issubclass(w.category, MarketClosedWarning)]
    closed += [r.getMessage() for r in caplog.records if "market closed" in r.getMessage()]
    assert "2023-07-04 is not a trading day (a holiday)" in closed[0]
    assert all("2023-07-04" not in note for note in closed[1:])  # once per closure
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_live_daily_bar_of_an_early_close_carries_its_date_and_is_final_when_the_date_ends(make_store):
    # 23:55 New York, July 3: five wall seconds at 60x before the date ends, time enough to backfill.
    before_midnight = datetime(2023, 7, 4, 3, 55, tzinfo=timezone.utc)
    with Simulator(dialect="alltick", plan="unlimited", speed=60, seed=2, start=before_midnight) as sim:
        store = make_store(sim)
        cerebro = bt.Cerebro(stdstats=False)
        cerebro.adddata(
            store.getdata(dataname="AAPL.US", timeframe=bt.TimeFrame.Days, lookback=2, qcheck=0.1),
            name="aapl",
        )
        cerebro.addstrategy(StopWhenLive, until=date(2023, 7, 3))
        with pytest.warns(MarketClosedWarning, match="early close"):
            strategy = run_guarded(cerebro, 60)
        truth = sim.klines("AAPL.US", "1d", ms(datetime(2023, 7, 3)), ms(datetime(2023, 7, 4)))

    assert strategy.dates[-1] == date(2023, 7, 3)
    assert strategy.closes[-1] == truth[-1].close
    # Trades of the date may come after its close (after hours, a late print): final at its end.
    assert strategy.clock_at_last_bar >= ms(datetime(2023, 7, 4, 4, 0))


class StopWhenLive(bt.Strategy):
    params = (("until", None),)

    def __init__(self) -> None:
        self.notes: list[str] = []
        self.dates: list[date] = []
        self.closes: list[float] = []
        self.clock_at_last_bar = None
        self.clock_at_live = None

    def notify_data(self, data, status, *args, **kwargs) -> None:
        self.notes.append(data._getstatusname(status))
        if status == data.LIVE:
            self.clock_at_live = data._store.clock.now_ms()
        if self.p.until is None and status == data.LIVE:
            self.env.runstop()

    def next(self) -> None:
        self.dates.append(self.data.datetime.date(0))
        self.closes.append(self.data.close[0])
        self.clock_at_last_bar = self.data._store.clock.now_ms()
        if self.p.until is not None and self.dates[-1] >= self.p.until and "LIVE" in self.notes:
            self.env.runstop()


def ms(moment: datetime) -> int:
    return int(moment.replace(tzinfo=moment.tzinfo or timezone.utc).timestamp() * 1000)


def k_date(symbol, kline) -> date:
    from backtrader_alltick.symbols import parse_symbol

    return parse_symbol(symbol).market.close_date(kline.end)


def test_a_live_feed_says_once_that_the_market_closed_when_the_session_ends(make_store, caplog):
    before_close = datetime(2023, 7, 5, 19, 58, tzinfo=timezone.utc)  # 15:58 New York
    with Simulator(dialect="alltick", plan="unlimited", speed=60, seed=2, start=before_close) as sim:
        store = make_store(sim)
        cerebro = bt.Cerebro(stdstats=False)
        cerebro.adddata(
            store.getdata(dataname="AAPL.US", timeframe=bt.TimeFrame.Minutes, lookback=3, qcheck=0.1),
            name="aapl",
        )
        cerebro.addstrategy(StopWhenLive, until=date(2099, 1, 1))

        class StopOnClosedNote(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                if "market closed" in record.getMessage():
                    threading.Timer(1.0, cerebro.runstop).start()  # a second more: no second note

        stopper = StopOnClosedNote()
        logging.getLogger("backtrader_alltick").addHandler(stopper)
        try:
            with caplog.at_level(logging.INFO, logger="backtrader_alltick"):
                strategy = run_guarded(cerebro, 30)
        finally:
            logging.getLogger("backtrader_alltick").removeHandler(stopper)

    closed = [r.getMessage() for r in caplog.records if "market closed" in r.getMessage()]
    assert closed == [
        "AAPL.US: US market closed: 2023-07-05's session closed at 16:00 America/New_York; "
        "next open 2023-07-06 13:30 UTC; bars only from trades the service still sends"
    ]
    assert strategy.dates and strategy.dates[-1] == date(2023, 7, 5)


# The weeks New York changed its clocks in 2024 (Sunday March 10 and Sunday November 3), London a few weeks
# apart: the forex and metals day rolls at 17:00 New York in both seasons (AllTick's product list,
# protocol/alltick.md "Trading-hours notes"); COPPER trades on London's clock inside that day.
@pytest.mark.parametrize(
    ("saturday", "first", "last"),
    [
        (datetime(2024, 3, 16, 12, tzinfo=timezone.utc), date(2024, 3, 7), date(2024, 3, 15)),
        (datetime(2024, 11, 9, 12, tzinfo=timezone.utc), date(2024, 10, 31), date(2024, 11, 8)),
    ],
)
@pytest.mark.parametrize(
    ("symbol", "dialect"), [("EURUSD", "itick"), ("GOLD", "itick"), ("COPPER", "alltick")]
)
def test_daily_bars_across_a_new_york_clock_change_equal_their_resampled_minutes(
    make_store, saturday, first, last, symbol, dialect
):
    with Simulator(
        dialect=dialect, plan="unlimited", speed=60, seed=2, start=saturday, symbols=[symbol]
    ) as sim:
        store = make_store(sim)
        native = run([("d", daily(store, symbol, first, last), None)])
        resampled = run(
            [
                (
                    "d",
                    daily(store, symbol, first, last, bt.TimeFrame.Minutes),
                    dict(timeframe=bt.TimeFrame.Days),
                )
            ]
        )

    assert [bar[0] for bar in native.bars["d"]] == [
        first + timedelta(days=n) for n in range(9) if (first + timedelta(days=n)).weekday() < 5
    ]
    assert [bar[:5] for bar in resampled.bars["d"]] == [bar[:5] for bar in native.bars["d"]]
    assert [bar[5] for bar in resampled.bars["d"]] == pytest.approx(
        [bar[5] for bar in native.bars["d"]], rel=1e-9
    )


@pytest.mark.parametrize(
    ("now", "day", "opened"),
    [
        (datetime(2023, 7, 7, 15, tzinfo=timezone.utc), date(2023, 7, 5), datetime(2023, 7, 4, 21)),  # summer
        (
            datetime(2024, 1, 19, 15, tzinfo=timezone.utc),
            date(2024, 1, 17),
            datetime(2024, 1, 16, 22),
        ),  # winter
    ],
)
def test_a_daily_eurusd_bar_carries_the_date_of_the_new_york_roll(make_store, now, day, opened):
    """AllTick's product list: forex trades Sunday 21:00 -> Friday 21:00 GMT in summer time, 22:00 -> 22:00
    in winter; the day that opens at 17:00 New York is the next day's."""
    with Simulator(dialect="alltick", plan="unlimited", speed=60, seed=2, start=now) as sim:
        store = make_store(sim)
        strategy = run([("d", daily(store, "EURUSD", day, day), None)])
        truth = sim.klines("EURUSD", "1d", ms(opened) - 1, ms(opened) + 1)

    assert [bar[0] for bar in strategy.bars["d"]] == [day]
    assert [bar[1:5] for bar in strategy.bars["d"]] == [
        (truth[0].open, truth[0].high, truth[0].low, truth[0].close)
    ]
