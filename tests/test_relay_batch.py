"""The relay's start backfill through /batch-kline: one call per plan group size, bars golden."""

from __future__ import annotations

import dataclasses
import math
import threading

import pytest
from test_relay import FAST_SINK, rest_calls, wait_for_bars

from backtrader_alltick import AllTickStore, plans
from backtrader_alltick.clock import wall_seconds
from backtrader_alltick.relay import Relay
from backtrader_alltick.sim import Simulator
from backtrader_alltick.sim.plan_table import service_plan
from backtrader_alltick.transport.redis_reader import RedisReader

MINUTE = 60_000
GROUPS = 5  # the Free plan's groups per batch call, on intervals a test can wait for
# Thirty market seconds into a minute: the start's fetches come well before the minute ends (3 wall
# s at 10x, the clock held there until the relay starts).  One that came after would find the answer
# holding only newer bars, and rightly ask /kline.
START_MS = 1_709_650_830_000  # 2024-03-05 15:00:30 UTC


def small_batches():
    service = dataclasses.replace(
        service_plan("alltick", "premium"), batch_groups=GROUPS, endpoint_interval=0.0, batch_interval=0.0
    )
    client = dataclasses.replace(
        plans.get_plan("alltick", "premium"), batch_groups=GROUPS, endpoint_interval=0.0, batch_interval=0.0
    )
    return service, client


def run_relay(redis_url, symbols, lookback, bars_each=2):
    """Start a relay on ``symbols``; return the simulator's counts of /kline and /batch-kline calls
    until every symbol has ``bars_each`` bars in Redis, the bars, and the simulator."""
    service, client = small_batches()
    with Simulator(
        dialect="alltick", plan=service, speed=10, seed=11, symbols=symbols, start=START_MS, paused=True
    ) as sim:
        store = AllTickStore.from_simulator(sim, plan=client, cache=False)
        relay = Relay(
            store, symbols, redis_url=redis_url, lookback=lookback, grace=1.0, redis_options=FAST_SINK
        )
        try:
            sim.clock.resume()
            relay.start()
            for symbol in symbols:
                wait_for_bars(redis_url, symbol, "1m", bars_each, timeout=60)
            counts = rest_calls(sim, "/kline"), rest_calls(sim, "/batch-kline")
        finally:
            relay.stop()
            store.stop()
        with RedisReader(redis_url) as source:
            recorded = {
                symbol: [entry.record for entry in source.newest_bars(symbol, "1m", 100)]
                for symbol in symbols
            }
        assert relay.stats["errors"] == 0
        return counts, recorded, sim


def assert_golden(sim, recorded):
    for symbol, bars in recorded.items():
        truth = {bar.end: bar for bar in sim.klines(symbol, "1m", bars[0].start, bars[-1].end)}
        assert [(bar.end, bar.open, bar.high, bar.low, bar.close) for bar in bars] == [
            (bar.end, *(getattr(truth[bar.end], name) for name in ("open", "high", "low", "close")))
            for bar in bars
        ], symbol
        assert [bar.volume for bar in bars] == pytest.approx(
            [truth[bar.end].volume for bar in bars], rel=1e-9
        )


def test_a_relay_starting_with_a_one_bar_lookback_asks_batches_not_a_kline_per_symbol(redis_server):
    symbols = [f"S{index:02d}USDT" for index in range(12)]

    (klines, batches), recorded, sim = run_relay(redis_server.url, symbols, lookback=1)

    assert klines == 0
    # The start's last closed bar and the seam's bar: one round of ceil(12 / 5) calls each, or a
    # round split in two where the symbols' first trades came apart.
    rounds = math.ceil(len(symbols) / GROUPS)
    assert rounds <= batches <= 3 * rounds, batches
    assert_golden(sim, recorded)


def test_a_relay_whose_lookback_one_answer_cannot_hold_asks_kline_per_symbol(redis_server):
    symbols = [f"S{index:02d}USDT" for index in range(3)]

    (klines, batches), recorded, sim = run_relay(redis_server.url, symbols, lookback=3, bars_each=3)

    assert batches == 0 or klines >= len(symbols)
    assert klines >= len(symbols)
    assert all(len(bars) >= 3 for bars in recorded.values())
    assert_golden(sim, recorded)


def test_a_relay_restarted_a_bar_later_resumes_on_batch_calls_without_a_gap(redis_server):
    symbols = [f"S{index:02d}USDT" for index in range(6)]
    service, client = small_batches()
    with Simulator(
        dialect="alltick", plan=service, speed=10, seed=11, symbols=symbols, start=START_MS, paused=True
    ) as sim:
        store = AllTickStore.from_simulator(sim, plan=client, cache=False)

        def run_until(bars_each) -> None:
            relay = Relay(
                store, symbols, redis_url=redis_server.url, lookback=2, grace=1.0, redis_options=FAST_SINK
            )
            relay.start()
            try:
                for symbol in symbols:
                    wait_for_bars(redis_server.url, symbol, "1m", bars_each[symbol], timeout=60)
            finally:
                relay.stop()
            assert relay.stats["errors"] == 0

        try:
            sim.clock.resume()
            run_until(dict.fromkeys(symbols, 2))  # the start's two bars: /kline (an answer holds one closed)
            klines, batches = rest_calls(sim, "/kline"), rest_calls(sim, "/batch-kline")
            with RedisReader(redis_server.url) as source:
                newest = {symbol: source.newest_bars(symbol, "1m", 100) for symbol in symbols}
            # Down until 20 market seconds into the minute after the next: at the restart the newest bar
            # in Redis is a bar behind the newest closed, within the lookback, so the relay resumes after it.
            until = max(bars[-1].record.end for bars in newest.values()) + MINUTE + 20_000
            while sim.clock.now_ms() < until:  # a loop: one wait may end early on a busy machine
                threading.Event().wait(wall_seconds(sim.clock, until))
            had = {symbol: len(bars) for symbol, bars in newest.items()}
            run_until({symbol: count + 2 for symbol, count in had.items()})  # the cut bars, and one more
            klines, batches = rest_calls(sim, "/kline") - klines, rest_calls(sim, "/batch-kline") - batches
        finally:
            store.stop()
        with RedisReader(redis_server.url) as source:
            recorded = {
                symbol: [entry.record for entry in source.newest_bars(symbol, "1m", 100)]
                for symbol in symbols
            }

    assert klines == 0 and batches >= 1, (klines, batches)
    for symbol, bars in recorded.items():
        assert [bar.end for bar in bars] == list(range(bars[0].end, bars[-1].end + 1, MINUTE)), symbol
    assert_golden(sim, recorded)
