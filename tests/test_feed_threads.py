"""Runs of a live feed in one process leave no thread of the package behind.

Backtrader starts the feeds (and the store) again for each run of an optimisation on one core,
or each ``cerebro.run()`` of a loop: whatever a run leaves running piles up until the process ends.
"""

from __future__ import annotations

import threading

import backtrader as bt

from feedtools import Recorder, run_guarded


def ours(before: set[threading.Thread]) -> list[threading.Thread]:
    """The package's threads started since ``before``, once given 10 s in all to end."""
    new = [
        thread
        for thread in threading.enumerate()
        if thread not in before and thread.name.startswith("alltick-")
    ]
    for thread in new:
        thread.join(10.0 / len(new))
    return [thread for thread in new if thread.is_alive()]


def live_feed(store):
    return store.getdata(dataname="BTCUSDT", timeframe=bt.TimeFrame.Minutes, lookback=3)


def test_runs_of_a_live_feed_in_one_process_leave_no_thread(alltick_sim, make_store):
    store = make_store(alltick_sim, cache=False)
    before = set(threading.enumerate())
    for _ in range(3):
        cerebro = bt.Cerebro(stdstats=False)
        cerebro.adddata(live_feed(store))
        cerebro.addstrategy(Recorder, stop_after=2)
        strategy = run_guarded(cerebro, 60)
        assert len(strategy.rows["BTCUSDT"]) >= 2

        assert [thread.name for thread in ours(before)] == []


def test_optstrategy_on_one_core_with_a_live_feed_leaves_no_thread(alltick_sim, make_store):
    store = make_store(alltick_sim, cache=False)
    before = set(threading.enumerate())
    cerebro = bt.Cerebro(stdstats=False, maxcpus=1)
    cerebro.adddata(live_feed(store))
    cerebro.optstrategy(Recorder, stop_after=[2, 3, 2])

    runs = cerebro.run()

    assert len(runs) == 3
    assert [thread.name for thread in ours(before)] == []
