"""The backfill worker: results, failures and crashes all reach the feed's inbox."""

from __future__ import annotations

import queue

from backtrader_alltick.backfill import Backfiller, BackfillFailed, BackfillResult
from backtrader_alltick.clock import ScaledClock
from backtrader_alltick.errors import AllTickError, SymbolNotFound

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
