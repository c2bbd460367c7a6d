"""A live bar waits for the trades that are not in yet: neither the socket reader's backlog nor a
service that sends late makes a bar short.

The simulator pushes trades over a real loopback WebSocket.  In the first test a second listener of
the same symbol stalls the store's reader thread (listeners run on it) in the middle of a minute, as
a starved reader would be, until the store's clock is well past that minute's end plus grace.  In
the second the simulator pushes each trade ``push_lag_ms`` of market time after its stamp, as a
server or route running behind would, while its REST answers (and so the store's clock) are on
time: the service's lag, learnt from the stamps, holds each bar until its trades are in.
"""

from __future__ import annotations

import threading

import pytest

from backtrader_alltick.markets import MINUTE_MS
from backtrader_alltick.sources import BarReady, Failed, SourceOptions, StateChanged
from backtrader_alltick.sources.stream import StreamBars
from backtrader_alltick.symbols import parse_symbol

BTC = parse_symbol("BTCUSDT")
WAIT = 30.0  # wall seconds: only guards against a hang
GRACE_S = 0.1  # 6 market seconds at the simulator's 60x
LAG_MS = 40_000  # market ms: far longer than grace


def poll_until(source, done, events):
    """Poll ``source`` into ``events`` until ``done()``; fails on a source failure or after WAIT."""
    guard = threading.Event()
    timer = threading.Timer(WAIT, guard.set)
    timer.start()
    try:
        while not done():
            assert not guard.is_set(), "the source did not get there in time"
            event = source.poll(0.02)
            if event is not None:
                assert not isinstance(event, Failed), event.error
                events.append(event)
    finally:
        timer.cancel()


def test_a_bar_closes_only_after_its_connection_has_read_every_trade_of_it(alltick_sim, make_store):
    store = make_store(alltick_sim, cache=False)
    spec = store.resolve_timeframe(BTC, "1m")
    source = StreamBars(store, BTC, spec, SourceOptions(grace=GRACE_S, lookback=1), None)
    events: list = []
    stall_from: list[int] = []
    stalled, release = threading.Event(), threading.Event()

    def stall(tick) -> None:
        # On the reader thread: the trades behind this one stay unread in the socket meanwhile.
        if stall_from and not stalled.is_set() and tick.time >= stall_from[0]:
            stalled.set()
            release.wait(WAIT)

    store.listen(BTC, stall)
    try:
        poll_until(source, lambda: source.state == "live", events)
        # A minute wholly built from the stream; the reader stalls 10 s into it.
        now = store.clock.now_ms()
        minute = max((now // MINUTE_MS + 1) * MINUTE_MS, source.seam.last_end)
        stall_from.append(minute + 10_000)
        poll_until(source, stalled.is_set, events)
        # Well past the minute's end plus grace by the store's clock, trades of it still unread.
        grace_ms = GRACE_S * 1000 * store.clock.speed
        past = minute + MINUTE_MS + 3 * grace_ms
        poll_until(source, lambda: store.clock.now_ms() >= past, events)
        release.set()
        bars = lambda: [e.bar for e in events if isinstance(e, BarReady)]  # noqa: E731
        poll_until(source, lambda: any(bar.end >= minute + 2 * MINUTE_MS for bar in bars()), events)
    finally:
        release.set()
        store.unlisten(BTC, stall)
        source.close()

    assert not any(isinstance(e, StateChanged) and e.state == "connbroken" for e in events)
    live = [bar for bar in bars() if bar.start >= minute]
    assert [bar.end for bar in live][:2] == [minute + MINUTE_MS, minute + 2 * MINUTE_MS]
    truth = {k.end: k for k in alltick_sim.klines("BTCUSDT", "1m", minute, minute + 2 * MINUTE_MS)}
    for bar in live[:2]:
        k = truth[bar.end]
        assert (bar.open, bar.high, bar.low, bar.close) == (k.open, k.high, k.low, k.close), bar
        assert bar.volume == pytest.approx(k.volume, rel=1e-9), bar
    assert source.stats["late_ticks"] == 0
    assert source.stats["held_bars"] >= 1


@pytest.mark.parametrize("dialect", ["alltick", "itick"])
def test_bars_of_a_service_sending_late_wait_for_its_trades_and_equal_its_klines(
    make_sim, make_store, dialect
):
    sim = make_sim(dialect=dialect)
    sim.faults.push_lag_ms = LAG_MS
    store = make_store(sim, cache=False)
    spec = store.resolve_timeframe(BTC, "1m")
    source = StreamBars(store, BTC, spec, SourceOptions(grace=GRACE_S, lookback=1), None)
    events: list = []
    bars = lambda: [e.bar for e in events if isinstance(e, BarReady)]  # noqa: E731
    try:
        poll_until(source, lambda: source.state == "live", events)
        # Three minutes wholly built from the stream's late trades.
        first = max((store.clock.now_ms() // MINUTE_MS + 1) * MINUTE_MS, source.seam.last_end)
        poll_until(source, lambda: any(bar.end >= first + 3 * MINUTE_MS for bar in bars()), events)
    finally:
        source.close()

    live = [bar for bar in bars() if bar.start >= first][:3]
    assert [bar.end for bar in live] == [first + n * MINUTE_MS for n in (1, 2, 3)]
    truth = {k.end: k for k in sim.klines("BTCUSDT", "1m", first, first + 3 * MINUTE_MS)}
    for bar in live:
        k = truth[bar.end]
        assert (bar.open, bar.high, bar.low, bar.close) == (k.open, k.high, k.low, k.close), bar
        assert bar.volume == pytest.approx(k.volume, rel=1e-9), bar
    assert source.stats["late_ticks"] == 0
    assert source.stats["held_bars"] >= 3  # each of them waited for the service's lag
