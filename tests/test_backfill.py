"""The backfill worker: results, failures and crashes all reach the feed's inbox."""

from __future__ import annotations

import queue
import threading
import time

import backtrader as bt

from backtrader_alltick.backfill import Backfiller, BackfillFailed, BackfillResult
from backtrader_alltick.clock import ScaledClock
from backtrader_alltick.errors import AllTickError, SymbolNotFound, Timeout
from backtrader_alltick.sources import SourceOptions
from backtrader_alltick.sources.stream import StreamBars
from backtrader_alltick.symbols import parse_symbol

NOW = 1_700_000_040_000


def _filler(fetch, **kwargs):
    inbox: queue.Queue = queue.Queue()
    filler = Backfiller(fetch, ScaledClock(NOW, speed=60), inbox.put, close_lag_s=0, **kwargs)
    return filler, inbox


def test_a_job_delivers_what_has_closed():
    filler, inbox = _filler(lambda after, upto, count: [])
    try:
        job = filler.request(None, NOW - 60_000, 5)
        result = inbox.get(timeout=5)
        assert result == BackfillResult([], NOW - 60_000, True, job)
    finally:
        filler.stop()


def test_a_refused_fetch_fails_the_job():
    def fetch(after, upto, count):
        raise SymbolNotFound("NOPE.US")

    filler, inbox = _filler(fetch)
    try:
        job = filler.request(None, NOW - 60_000, 5)
        failed = inbox.get(timeout=5)
        assert isinstance(failed, BackfillFailed) and failed.job == job
        assert isinstance(failed.error, SymbolNotFound)
    finally:
        filler.stop()


def test_a_fetch_whose_retries_ran_out_fails_the_job_without_a_second_round_of_retries():
    # The REST client retries a timeout itself (transport/rest.py); what reaches the worker is final.
    fetches = []

    def fetch(after, upto, count):
        fetches.append(upto)
        raise Timeout("the service did not answer in time (gave up after 6 attempts)")

    filler, inbox = _filler(fetch)
    try:
        job = filler.request(None, NOW - 60_000, 5)
        failed = inbox.get(timeout=5)
        assert isinstance(failed, BackfillFailed) and failed.job == job
        assert isinstance(failed.error, Timeout)
        # The worker survives: the next job is served.
        filler.request(None, NOW - 60_000, 1)
        assert isinstance(inbox.get(timeout=5), BackfillFailed)
    finally:
        filler.stop()
    assert len(fetches) == 2  # one fetch per job


def test_a_crashing_job_fails_the_feed_instead_of_leaving_it_waiting():
    def next_close(moment_ms):
        raise ZeroDivisionError("a bug in the grid")

    filler, inbox = _filler(lambda after, upto, count: [], next_final=next_close)
    try:
        job = filler.request(None, NOW + 600_000)  # not closed yet: the worker waits for the next close
        first = inbox.get(timeout=5)
        assert isinstance(first, BackfillResult) and not first.done
        failed = inbox.get(timeout=5)
        assert isinstance(failed, BackfillFailed) and failed.job == job
        assert isinstance(failed.error, AllTickError) and "ZeroDivisionError" in str(failed.error)
        # The worker survives: the next job is served.
        filler.request(None, NOW - 60_000, 1)
        assert isinstance(inbox.get(timeout=5), BackfillResult)
    finally:
        filler.stop()


def test_a_service_that_has_not_closed_what_its_clock_says_is_asked_again_later_not_in_a_loop():
    # Every answer proves the bars complete only up to a minute ago, although the service's clock
    # has passed the job's end: the worker must wait between its questions, never spin.
    fetches: list[int] = []
    asked_twice = queue.Queue()

    def fetch(after, upto, count):
        fetches.append(upto)
        if len(fetches) == 3:
            asked_twice.put(True)
        return [], NOW - 120_000

    filler, _ = _filler(fetch, recheck_s=0.2)
    waits: list[float] = []
    real_wait = filler._stop.wait

    def recording_wait(timeout=None):
        waits.append(timeout)
        return real_wait(timeout)

    filler._stop.wait = recording_wait
    try:
        filler.request(NOW - 120_000, NOW - 60_000)
        asked_twice.get(timeout=10)
    finally:
        filler.stop()

    assert len(fetches) >= 3
    assert all(wait >= 0.2 for wait in waits[: len(fetches) - 1])  # no fetch followed another at once


# -- on a store: the worker of a closed source ------------------------------------------------------


def _new_workers(before: set[threading.Thread]) -> list[threading.Thread]:
    return [
        thread
        for thread in threading.enumerate()
        if thread not in before and thread.name == "alltick-backfill"
    ]


def test_a_worker_waiting_out_a_rate_limit_ends_when_its_source_closes(alltick_sim, make_store):
    # Every /kline is rate limited: the store's client waits and asks again for up to its
    # ratelimit_timeout (two minutes).  Closing the feed's source must end its worker now, although
    # the store, and so the client, stays open for the other feeds (Backtrader stops the feeds of a
    # run, not the store; optstrategy on one core starts them again for the next run).
    alltick_sim.faults.update(rate_limit_burst=1_000_000)
    store = make_store(alltick_sim)
    before = set(threading.enumerate())
    btc = parse_symbol("BTCUSDT")
    spec = store.resolve_timeframe(btc, bt.TimeFrame.Minutes, 1)
    source = StreamBars(store, btc, spec, SourceOptions(lookback=3), None)
    workers = _new_workers(before)
    try:
        # The consumer's thread drives the source, as a feed's does: its seam asks REST once anchored.
        deadline = time.monotonic() + 30
        while not [entry for entry in alltick_sim.journal.entries if entry.kind == "rest"]:
            assert time.monotonic() < deadline, "the source never asked REST"
            source.poll(0.1)
    finally:
        source.close()
    for worker in workers:
        worker.join(10.0)

    assert workers and not [worker.name for worker in workers if worker.is_alive()]
    assert store.rest.stats.requests >= 1  # the client still serves the store's other feeds
