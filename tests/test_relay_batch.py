"""The relay's start backfill through /batch-kline: one call per plan group size, bars golden."""

from __future__ import annotations

import dataclasses
import math

import pytest
from test_relay import FAST_SINK, rest_calls, wait_for_bars

from backtrader_alltick import AllTickStore, plans
from backtrader_alltick.relay import Relay
from backtrader_alltick.sim import Simulator
from backtrader_alltick.sim.plan_table import service_plan
from backtrader_alltick.transport.redis_reader import RedisReader

GROUPS = 5  # the Free plan's groups per batch call, on intervals a test can wait for
# Five market seconds into a minute: the start's fetches come well before the minute ends.  One that
# came after would find the answer holding only newer bars, and rightly ask /kline.
START_MS = 1_709_650_805_000  # 2024-03-05 15:00:05 UTC


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
        dialect="alltick", plan=service, speed=10, seed=11, symbols=symbols, start=START_MS
    ) as sim:
        store = AllTickStore.from_simulator(sim, plan=client, cache=False)
        relay = Relay(
            store, symbols, redis_url=redis_url, lookback=lookback, grace=1.0, redis_options=FAST_SINK
        )
        try:
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
