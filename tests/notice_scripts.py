"""Plain user scripts, one per condition a user must be warned of, for tests/test_notices.py.

Each function is what a user writes: a simulator, a store, a Cerebro or a ``fetch_klines``
call, and no logging set up.  ``test_notices`` runs them in a fresh interpreter (what a user
sees on stderr) and in-process under ``warnings.simplefilter("error", ...)``.  Arguments are
strings, so a subprocess can pass them on its command line.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import backtrader as bt

from backtrader_alltick import AllTickStore
from backtrader_alltick.markets import MINUTE_MS
from backtrader_alltick.plans import get_plan
from backtrader_alltick.records import Tick
from backtrader_alltick.sim import Simulator
from backtrader_alltick.sinks.recording import RecordingSink
from backtrader_alltick.transport.ratelimit import RateLimiter

PREMARKET = 1_709_643_600_000  # 2024-03-05T13:00:00Z, 08:00 in New York: AAPL's pre-market
OPEN = 1_709_649_000_000  # 2024-03-05T14:30:00Z, the regular open
GUARD_S = 60.0  # wall seconds after which a live run is stopped: a hang guard, never a wait


@contextmanager
def service(**settings) -> Iterator[tuple[Simulator, AllTickStore]]:
    store_params = settings.pop("store", {})
    with Simulator(speed=settings.pop("speed", 60), **settings) as sim:
        store = AllTickStore.from_simulator(sim, cache=False, **store_params)
        try:
            yield sim, store
        finally:
            store.stop()


class LiveBars(bt.Strategy):
    """Stop after ``bars`` live bars; call ``on_live_bar(count)`` on each."""

    params = (("bars", 3), ("on_live_bar", None))

    def __init__(self) -> None:
        self.is_live = False
        self.live = 0

    def notify_data(self, data, status, *args, **kwargs) -> None:
        self.is_live = status == data.LIVE

    def next(self) -> None:
        if not self.is_live:
            return
        self.live += 1
        if self.p.on_live_bar is not None:
            self.p.on_live_bar(self.live)
        if self.live >= self.p.bars:
            self.env.runstop()


class FirstBar(bt.Strategy):
    def next(self) -> None:
        self.env.runstop()


def resume_when_subscribed(sim: Simulator, symbol: str) -> None:
    """Start ``sim``'s paused clock once a client has subscribed to ``symbol`` (or after GUARD_S)."""

    def resume() -> None:
        # The simulator has no event for a subscription: look every few wall ms until it is wanted.
        deadline = time.monotonic() + GUARD_S
        while time.monotonic() < deadline and not any(symbol in s.wanted() for s in sim.sessions()):
            time.sleep(0.005)
        sim.clock.resume()

    threading.Thread(target=resume, daemon=True).start()


def run_live(cerebro: bt.Cerebro) -> None:
    guard = threading.Timer(GUARD_S, cerebro.runstop)
    guard.start()
    try:
        cerebro.run()
    finally:
        guard.cancel()


def no_bars_feed() -> None:
    with service() as (_, store):
        cerebro = bt.Cerebro()
        cerebro.adddata(
            store.getdata(
                dataname="AAPL.US",
                timeframe=bt.TimeFrame.Minutes,
                historical=True,
                fromdate="2024-03-02",
                todate="2024-03-03",
            )
        )  # a weekend
        cerebro.addstrategy(bt.Strategy)
        cerebro.run()


def no_bars_fetch() -> None:
    with service() as (_, store):
        store.fetch_klines("AAPL.US", "1m", fromdate="2024-03-02", todate="2024-03-03")


def history_limit() -> None:
    with service() as (_, store):  # AllTick serves the newest 500 bars of a stock: about a day of minutes
        store.fetch_klines("AAPL.US", "1m", fromdate="2024-02-26", todate="2024-03-05T15:00")


def feed_ended() -> None:
    with service() as (sim, store):
        sim.revoke_token(sim.token)  # the plan expired
        cerebro = bt.Cerebro()
        cerebro.adddata(store.getdata(dataname="BTCUSDT", timeframe=bt.TimeFrame.Minutes, lookback=3))
        cerebro.addstrategy(bt.Strategy)
        run_live(cerebro)


def market_closed() -> None:
    with service() as (_, store):  # 15:00 UTC: Hong Kong has closed for the day
        cerebro = bt.Cerebro()
        cerebro.adddata(store.getdata(dataname="700.HK", timeframe=bt.TimeFrame.Minutes, lookback=3))
        cerebro.addstrategy(FirstBar)
        run_live(cerebro)


def write_premarket_recording(path: str) -> None:
    """AAPL trades every 10 s from 13:00 to 14:40 UTC: pre-market until 14:30, then the regular session."""
    ticks = [
        Tick("AAPL.US", moment, 175.0 + (moment // 10_000) % 7 / 10, 5.0, 5 * 175.0, seq)
        for seq, moment in enumerate(range(PREMARKET, OPEN + 10 * MINUTE_MS, 10_000))
    ]
    with RecordingSink(path, dialect="alltick") as sink:
        sink.write(ticks)


def offhours_history(recording: str) -> None:
    with service(replay=Path(recording), start=OPEN + 8 * MINUTE_MS) as (_, store):
        cerebro = bt.Cerebro()
        cerebro.adddata(
            store.getdata(
                dataname="AAPL.US",
                timeframe=bt.TimeFrame.Minutes,
                historical=True,
                fromdate="2024-03-05T14:00",
                todate="2024-03-05T14:35",
                extended_hours=False,
            )
        )
        cerebro.addstrategy(bt.Strategy)
        cerebro.run()


def offhours_stream(recording: str) -> None:
    # The clock stands five minutes before the open until the feed has subscribed: the backfill and then
    # the stream see pre-market trades first, however long a busy machine takes to start the script.
    with service(replay=Path(recording), start=OPEN - 5 * MINUTE_MS, paused=True) as (sim, store):
        resume_when_subscribed(sim, "AAPL.US")
        cerebro = bt.Cerebro()
        cerebro.adddata(
            store.getdata(
                dataname="AAPL.US",
                timeframe=bt.TimeFrame.Minutes,
                lookback=2,
                extended_hours=False,
                qcheck=0.1,
            )
        )
        cerebro.addstrategy(LiveBars, bars=1)
        run_live(cerebro)


def live_only(backfill: str, backfill_start: str) -> None:
    with service() as (sim, store):

        def drop_once(count: int) -> None:
            if count == 2:
                sim.drop_connections()

        cerebro = bt.Cerebro()
        cerebro.adddata(
            store.getdata(
                dataname="BTCUSDT",
                timeframe=bt.TimeFrame.Minutes,
                lookback=2,
                backfill=backfill == "True",
                backfill_start=backfill_start == "True",
                qcheck=0.1,
            )
        )
        cerebro.addstrategy(LiveBars, bars=5, on_live_bar=drop_once)
        run_live(cerebro)


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def rate_limit() -> None:
    time = FakeTime()  # the wait is real to the limiter, instant to the test
    with service() as (_, store):
        store.rest.limiter = RateLimiter(
            get_plan("alltick", "free"), monotonic=time.monotonic, sleep=time.sleep
        )
        store.rest.limiter.penalize(90.0)  # as after a 429 with Retry-After: 90
        store.fetch_klines("EURUSD", "1m", count=5)


def rate_limit_live() -> None:
    # The wait falls on the live feed's backfill worker; the warning must still reach the script.
    time = FakeTime()
    with service() as (_, store):
        store.rest.limiter = RateLimiter(store.plan, monotonic=time.monotonic, sleep=time.sleep)
        store.rest.limiter.penalize(90.0)
        cerebro = bt.Cerebro()
        cerebro.adddata(store.getdata(dataname="BTCUSDT", timeframe=bt.TimeFrame.Minutes, lookback=2))
        cerebro.addstrategy(FirstBar)
        run_live(cerebro)


def cache_refused(cache_home: str) -> None:
    # The machine's cache directory (``cache_home`` stands for it) holds a file at the cache's place that
    # is not a cache: another program's, or a damaged one.  The store is left to its default cache.
    before = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = cache_home
    try:
        with Simulator(speed=60) as sim:
            store = AllTickStore.from_simulator(sim)
            try:
                store.fetch_klines("BTCUSDT", "1m", count=5)
                store.fetch_klines("EURUSD", "1m", count=5)  # the same store: said once
            finally:
                store.stop()
    finally:
        if before is None:
            os.environ.pop("XDG_CACHE_HOME", None)
        else:
            os.environ["XDG_CACHE_HOME"] = before


def write_foreign_cache(cache_home: str) -> None:
    """A text file where the default K-line cache would be."""
    path = Path(cache_home) / "backtrader_alltick" / "klines.sqlite"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("notes, not a cache\n")
