"""Live bars while the calendar says closed, against a simulator with hours of its own.

The simulator's hours (sim/hours.py) are written from the exchanges' rules, not from the
client's calendar: US pre-market, after hours and overnight trading, the Hong Kong closing
auction to 16:10, the A-share closing call printed at 15:00:00.000, prints stamped seconds after a
close.  Whatever the calendar says, every live bar must equal the service's own K-line of its
slot, the first one after a start or a reconnect included, and no slot the service has trades
in may be missing.
"""

from __future__ import annotations

import warnings
from datetime import datetime, timezone

import backtrader as bt
import pytest

from backtrader_alltick.errors import SessionPolicyWarning
from backtrader_alltick.sim import Simulator
from feedtools import Recorder, as_ms_rows, run_guarded

MINUTE = 60_000
SPEED = 240  # four 1-minute bars per wall second
DIALECTS = ["alltick", "itick"]


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


class RecordUntil(Recorder):
    """Record until a bar closing at or after ``until`` (a UTC ISO time) has come, or until the feed
    has built ``live_bars`` bars from the stream."""

    params = (("until", None), ("live_bars", None))

    def next(self) -> None:
        super().next()
        if self.p.live_bars is not None:
            if self.data.stats["bars_live"] >= self.p.live_bars:
                self.env.runstop()
        elif as_ms_rows(self.rows["d"][-1:])[0][0] >= utc(self.p.until).timestamp() * 1000:
            self.env.runstop()


def run_live(
    store, symbol: str, *, until: str | None = None, live_bars=None, timeout: float = 40.0, **params
):
    params = {"timeframe": bt.TimeFrame.Minutes, "qcheck": 0.1, "grace": 0.25, "lookback": 3, **params}
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(store.getdata(dataname=symbol, **params), name="d")
    cerebro.addstrategy(RecordUntil, until=until, live_bars=live_bars)
    return run_guarded(cerebro, timeout)


def assert_equals_the_services_klines(sim, symbol: str, rows) -> list[int]:
    """Every delivered bar is the service's K-line of its slot, and none of the service's is missing."""
    rows = as_ms_rows(rows)
    ends = [row[0] for row in rows]
    assert ends == sorted(set(ends)), "bars repeated or out of order"
    truth = {k.end: k for k in sim.klines(symbol, "1m", ends[0] - MINUTE, ends[-1])}
    assert sorted(truth) == ends, "the service has a bar the feed did not deliver, or the other way round"
    for end, *ohlcv in rows:
        k = truth[end]
        assert tuple(ohlcv[:4]) == (k.open, k.high, k.low, k.close), f"bar at {end} differs"
        assert ohlcv[4] == pytest.approx(k.volume, rel=1e-9), f"bar at {end} misses trades"
    return ends


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_feed_started_overnight_builds_complete_bars_from_the_first_one(make_store, dialect):
    # Monday 05:25:20 UTC is 01:25 New York: the calendar says closed, overnight venues trade.
    with Simulator(
        dialect=dialect,
        plan="unlimited",
        speed=SPEED,
        seed=4,
        hours="overnight",
        start=utc("2024-03-11 05:25:20"),
    ) as sim:
        store = make_store(sim)
        # However long the start takes on a busy machine, it falls in the overnight session: the bar of
        # the slot it started in comes between the lookback bars and the first built from the stream.
        strategy = run_live(store, "AAPL.US", live_bars=3)
        ends = assert_equals_the_services_klines(sim, "AAPL.US", strategy.rows["d"])

    feed = strategy.datas[0]
    assert len(ends) > feed.stats["bars_live"] >= 3  # bars from before the start, then from the stream
    assert ends[-1] < utc("2024-03-11 13:30").timestamp() * 1000  # all while the calendar said closed
    assert strategy.notes["d"][:2] == ["DELAYED", "LIVE"]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_reconnects_while_the_calendar_says_closed_lose_no_trade(make_store, dialect):
    with Simulator(
        dialect=dialect,
        plan="unlimited",
        speed=SPEED,
        seed=4,
        hours="overnight",
        start=utc("2024-03-11 06:10:40"),
    ) as sim:
        sim.faults.update(drop_every=1.3)
        store = make_store(sim)
        strategy = run_live(store, "AAPL.US", until="2024-03-11 06:22", timeout=60)
        sim.faults.update(drop_every=None)
        assert_equals_the_services_klines(sim, "AAPL.US", strategy.rows["d"])

    assert strategy.datas[0].stats["reconnects"] >= 1
    assert "CONNBROKEN" in strategy.notes["d"]


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    ("symbol", "start", "after_close"),
    [
        ("700.HK", "2024-03-05 08:05:10", "2024-03-05 08:09"),  # the closing auction prints 16:08-16:10
        ("600519.SH", "2024-03-05 06:58:30", "2024-03-05 07:01"),  # the closing call prints at 15:00:00.000
    ],
)
def test_auction_prints_after_the_calendars_close_make_their_bars(
    make_store, dialect, symbol, start, after_close
):
    with Simulator(
        dialect=dialect, plan="unlimited", speed=SPEED, seed=4, hours="extended", start=utc(start)
    ) as sim:
        store = make_store(sim)
        strategy = run_live(store, symbol, until=after_close)
        ends = assert_equals_the_services_klines(sim, symbol, strategy.rows["d"])

    assert ends[-1] >= utc(after_close).timestamp() * 1000


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_print_seconds_after_the_close_makes_its_bar(make_store, dialect):
    # 2024-03-05 is US winter time: the regular session closes 21:00 UTC; a print follows 3 s later.
    with Simulator(
        dialect=dialect,
        plan="unlimited",
        speed=SPEED,
        seed=4,
        late_print_ms=3000,
        start=utc("2024-03-05 20:57:30"),
    ) as sim:
        store = make_store(sim)
        strategy = run_live(store, "AAPL.US", until="2024-03-05 21:01")
        ends = assert_equals_the_services_klines(sim, "AAPL.US", strategy.rows["d"])

    assert ends[-1] == utc("2024-03-05 21:01").timestamp() * 1000  # the late print's own bar


@pytest.mark.parametrize("dialect", DIALECTS)
def test_with_extended_hours_off_pre_market_bars_are_left_out_and_counted(make_store, dialect):
    # 09:27 New York: pre-market trades, then the regular open at 09:30 (13:30 UTC on 2024-03-11).
    with Simulator(
        dialect=dialect,
        plan="unlimited",
        speed=SPEED,
        seed=4,
        hours="extended",
        start=utc("2024-03-11 13:27:10"),
    ) as sim:
        store = make_store(sim, extended_hours=False)
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")  # a repeated warning must show as repeated
            strategy = run_live(store, "AAPL.US", until="2024-03-11 13:33")
        ends = assert_equals_the_services_klines(
            sim,
            "AAPL.US",
            [
                row
                for row in strategy.rows["d"]
                if as_ms_rows([row])[0][0] > utc("2024-03-11 13:30").timestamp() * 1000
            ],
        )

    rows = as_ms_rows(strategy.rows["d"])
    assert all(row[0] > utc("2024-03-11 13:30").timestamp() * 1000 for row in rows)  # no pre-market bar
    assert len(ends) >= 3
    stats = strategy.datas[0].stats
    assert stats["offhours_trades"] + stats["offhours_bars"] > 0
    notes = [str(w.message) for w in said if issubclass(w.category, SessionPolicyWarning)]
    assert notes and all("outside the regular session" in note for note in notes)
    # Said once: for the trades the stream left out, and for the REST bars, at most.
    assert len(notes) == len(set(notes)) <= 2, notes


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_tick_feed_with_extended_hours_off_hands_out_only_regular_session_trades(make_store, dialect):
    open_ms = int(utc("2024-03-11 13:30").timestamp() * 1000)  # the New York open, 09:30 summer time
    with Simulator(
        dialect=dialect, plan="unlimited", speed=60, seed=4, hours="extended", start=utc("2024-03-11 13:26")
    ) as sim:
        store = make_store(sim, extended_hours=False)
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            strategy = run_live(store, "AAPL.US", until="2024-03-11 13:30:30", timeframe=bt.TimeFrame.Ticks)
        rows = as_ms_rows(strategy.rows["d"])
        # The run stops at the first trade past the mark: a second one of that millisecond is not asked.
        last_ms = rows[-1][0]
        trades = sim.trades("AAPL.US", open_ms, last_ms)  # connected since 13:26: none may be missing

    assert rows[0][0] >= open_ms  # not one pre-market trade
    assert [(row[0], row[4]) for row in rows if row[0] < last_ms] == [(t.time, t.price) for t in trades]
    assert strategy.datas[0].stats["offhours_trades"] > 0
    notes = [str(w.message) for w in said if issubclass(w.category, SessionPolicyWarning)]
    assert len(notes) == 1 and "trades outside the regular session" in notes[0]
