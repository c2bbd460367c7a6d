"""resume_when_anchored: a paused simulator's market runs for a live feed from the same moment every run."""

from __future__ import annotations

import queue
import threading

import pytest

from backtrader_alltick.records import Tick
from backtrader_alltick.sim import resume_when_anchored

SYMBOL = "BTCUSDT"


def first_trade(records: queue.Queue) -> Tick:
    while True:
        record = records.get(timeout=10)
        if isinstance(record, Tick):
            return record


@pytest.mark.parametrize("dialect", ["alltick", "itick"])
def test_the_market_stands_just_past_the_first_trade_until_rest_has_answered(dialect, make_sim, make_store):
    held = make_sim(dialect=dialect, symbols=[SYMBOL], paused=True)
    store = make_store(held, cache=False)
    hold = resume_when_anchored(held, SYMBOL)
    records: queue.Queue = queue.Queue()

    store.listen(SYMBOL, records.put)
    trade = first_trade(records)

    assert held.clock.now_ms() == trade.time + 1  # however long the client took to get here
    store.fetch_klines(SYMBOL, "1m", count=3)  # what a feed asks once its seam is placed
    hold.join(timeout=10)
    assert not hold.is_alive()
    assert first_trade(records).time > trade.time  # the market runs on


def test_a_run_that_ends_first_leaves_the_market_running(make_sim):
    held = make_sim(symbols=[SYMBOL], paused=True)
    ended = threading.Event()
    hold = resume_when_anchored(held, SYMBOL, ended=ended)

    ended.set()  # nobody ever subscribed
    hold.join(timeout=10)

    assert not hold.is_alive() and not held.clock.paused


def test_closing_the_simulator_ends_the_hold(make_sim):
    # A run that fails before its feed subscribes (and never sets ``ended``) closes its simulator.
    held = make_sim(symbols=[SYMBOL], paused=True)
    hold = resume_when_anchored(held, SYMBOL)

    held.close()
    hold.join(timeout=10)

    assert not hold.is_alive()
