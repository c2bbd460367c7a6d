"""Rehearsal parity: a live strategy replayed from a recording sees the same bars and makes the same trades.

The synthetic simulator plays the live service.  A relay records it into a recording
file while a live strategy runs against it; then the same strategy, unchanged, runs
against ``Simulator(replay=that file)`` at 60x.  Bars (OHLCV, close stamps, the
DELAYED -> LIVE notifications) and fills must be the same.
"""

from __future__ import annotations

import math
import threading
import time

import backtrader as bt
import pytest

from backtrader_alltick import AllTickStore
from backtrader_alltick.clock import wall_seconds
from backtrader_alltick.markets import MINUTE_MS
from backtrader_alltick.recording import Recording
from backtrader_alltick.relay import Relay
from backtrader_alltick.sim import DEFAULT_START_MS, Simulator
from backtrader_alltick.symbols import parse_symbol
from feedtools import Recorder, as_ms_rows, run_guarded, utc

SYMBOL = "BTCUSDT"


class Rehearsed(Recorder):
    """Buy on an up-close, sell on a down-close; stop after the bar that closes at ``until_ms``."""

    params = (("until_ms", None),)

    def __init__(self) -> None:
        super().__init__()
        self.fills: list[tuple] = []

    def next(self) -> None:
        super().next()
        data = self.datas[0]
        if len(data) >= 2:
            if data.close[0] > data.close[-1] and not self.position:
                self.buy(size=1)
            elif data.close[0] < data.close[-1] and self.position:
                self.close()
        if as_ms_rows([(data.datetime[0],)])[0][0] >= self.p.until_ms:
            self.env.runstop()

    def notify_order(self, order) -> None:
        if order.status == order.Completed:
            self.fills.append(
                (as_ms_rows([(order.executed.dt,)])[0][0], order.executed.price, order.executed.size)
            )


def run_strategy(sim: Simulator, from_ms: int, begin_ms: int, until_ms: int, cache) -> Rehearsed:
    """Start the strategy once ``sim``'s clock reaches ``begin_ms`` (so it backfills over REST first)."""
    time.sleep(wall_seconds(sim.clock, begin_ms))  # waiting for market time, not for an event
    store = AllTickStore.from_simulator(sim, cache=cache)
    try:
        cerebro = bt.Cerebro(stdstats=False)
        cerebro.broker.setcash(1_000_000)
        cerebro.adddata(
            store.getdata(
                dataname=SYMBOL,
                timeframe=bt.TimeFrame.Minutes,
                compression=1,
                fromdate=utc(from_ms),
                qcheck=0.1,
            ),
            name=SYMBOL,
        )
        cerebro.addstrategy(Rehearsed, until_ms=until_ms)
        return run_guarded(cerebro, timeout=120)
    finally:
        store.stop()


@pytest.mark.parametrize("dialect", ["alltick", "itick"])
def test_a_replay_at_60x_gives_the_live_strategy_the_same_bars_and_trades(dialect, make_sim, tmp_path):
    # Started 20 market seconds before a minute: the first the recorder sees in full begins then.
    service = make_sim(dialect=dialect, speed=60, symbols=[SYMBOL], start=DEFAULT_START_MS - 20_000)
    path = tmp_path / "session.rec"
    first_trade, covered = threading.Event(), threading.Event()
    cover_until = [math.inf]  # market ms the recording must reach; known once the window is chosen

    def on_record(record) -> None:
        first_trade.set()
        if getattr(record, "time", 0) >= cover_until[0]:
            covered.set()

    recorder_store = AllTickStore.from_simulator(service, cache=False)
    recorder_store.listen(parse_symbol(SYMBOL), on_record)
    relay = Relay(recorder_store, [SYMBOL], recording=path, recording_options={"flush_interval": 0.2}).start()
    try:
        assert first_trade.wait(30)
        # From the first whole minute the recorder saw in full; the strategy joins 3 minutes later.
        from_ms = (service.clock.now_ms() // MINUTE_MS + 2) * MINUTE_MS
        begin_ms, until_ms = from_ms + 3 * MINUTE_MS, from_ms + 9 * MINUTE_MS
        live = run_strategy(service, from_ms, begin_ms, until_ms, tmp_path / "live.sqlite")
        cover_until[0] = until_ms + MINUTE_MS
        assert covered.wait(60), "no trade after the run reached the recorder"  # the recording covers it
    finally:
        relay.stop()
        recorder_store.stop()
    recording = Recording(path)
    assert recording.start_ms < from_ms and recording.end_ms > until_ms

    with Simulator(dialect=dialect, speed=60, replay=path, paused=True) as replay:
        assert replay.start_ms == recording.start_ms
    # The rehearsal's clock starts a minute before the strategy joins: everything earlier is history
    # over REST, as it was for the live strategy joining then.
    with Simulator(dialect=dialect, speed=60, replay=path, start=begin_ms - MINUTE_MS) as replay:
        rehearsal = run_strategy(replay, from_ms, begin_ms, until_ms, tmp_path / "replay.sqlite")

    live_rows, replay_rows = as_ms_rows(live.rows[SYMBOL]), as_ms_rows(rehearsal.rows[SYMBOL])
    # From the bar closing at fromdate (kept, as Backtrader's filter keeps it) to until_ms.
    assert [row[0] for row in live_rows] == [from_ms + n * MINUTE_MS for n in range(0, 10)]
    assert [row[:5] for row in replay_rows] == [row[:5] for row in live_rows]
    assert [row[5] for row in replay_rows] == pytest.approx([row[5] for row in live_rows], rel=1e-9)
    assert live.notes[SYMBOL][:2] == ["DELAYED", "LIVE"]
    assert rehearsal.notes[SYMBOL] == live.notes[SYMBOL]
    assert live.fills, "the strategy should have traded"
    assert rehearsal.fills == live.fills
