"""A worker thread that fetches closed K-lines over REST for a live feed, off Cerebro's thread.

A job asks for the bars that close in ``(after_ms, upto_ms]``.  The worker delivers what
the service has closed already at once, then waits (on the market clock) for the rest to
close and fetches again, so a feed never blocks on the network and never sees a forming bar.
Whether a bar has closed is the service's decision: the clock's :meth:`~clock.ServiceClock.closed_until`
and the fetch's own proof (see ``Fetch``) say so, never our clock alone.

Waiting for bars to close, and a job's own ``delay_s``, are the worker's only pauses.  It does
not retry a failed fetch: the REST client has retried it already, by the plan's rules
(``transport/rest.py``), so a failure that reaches the worker goes to the feed, whose source
decides whether to ask again later (a live feed outlives a REST outage as it outlives a dropped
socket).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .clock import CLOSE_LAG_S, Clock, as_service_clock, wall_seconds
from .errors import AllTickError
from .records import Kline
from .transport.worker_stop import WorkerStop

logger: logging.Logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackfillResult:
    """Bars of one job (possibly a partial delivery); ``reached_ms`` is how far they cover."""

    bars: list[Kline]
    reached_ms: int
    done: bool
    job: int


@dataclass(frozen=True)
class BackfillFailed:
    """A job failed: the service refused it (unknown symbol, bad token, plan limit) or the REST
    client's retries ran out."""

    error: AllTickError
    job: int


# fetch(after_ms, upto_ms, count): the bars closing in (after_ms, upto_ms], or those bars and the moment
# up to which they are complete (History.get_range) when the service has closed less than asked.
Fetch = Callable[[int | None, int, int | None], "list[Kline] | tuple[list[Kline], int]"]


class Backfiller:
    """Run backfill jobs one at a time and post results to ``deliver``.

    Example::

        filler = Backfiller(fetch, clock, inbox.put)
        job = filler.request(after_ms=None, upto_ms=seam_ms, count=500)
    """

    def __init__(
        self,
        fetch: Fetch,
        clock: Clock,
        deliver: Callable[[object], None],
        *,
        close_lag_s: float = CLOSE_LAG_S,
        recheck_s: float = 0.5,
        closed_until: Callable[[int], int] | None = None,
        next_final: Callable[[int], int] | None = None,
    ) -> None:
        self._fetch = fetch
        # closed_until(moment): the close stamp of the newest bar final at that moment (a daily bar
        # is final when its trading date ends, after its close stamp); next_final(stamp): when the
        # bar after the one closing at ``stamp`` is final.  None: bars are final at their stamp.
        self._final_until = closed_until or (lambda moment: moment)
        self._next_final = next_final
        self._clock = clock
        self._service = as_service_clock(clock)
        self._deliver = deliver
        self._close_lag_ms = close_lag_s * 1000 * clock.speed
        self._recheck_s = recheck_s
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        # Also cuts short the REST call a job waits in (a rate-limit slot, a retry's pause): a stopped
        # feed's worker must not outlive it, nor go on using the store's client and quota for nobody.
        self._stop = WorkerStop()
        self._job_id = 0
        self._thread = threading.Thread(target=self._run, name="alltick-backfill", daemon=True)
        self._thread.start()

    def request(
        self, after_ms: int | None, upto_ms: int, count: int | None = None, *, delay_s: float = 0.0
    ) -> int:
        """Queue a job for the bars closing in ``(after_ms, upto_ms]`` (``upto_ms`` a bar's close
        stamp), to start ``delay_s`` wall seconds from now at the earliest; return its id."""
        self._job_id += 1
        self._jobs.put((self._job_id, after_ms, upto_ms, count, time.monotonic() + delay_s))
        return self._job_id

    def stop(self, timeout: float = 0.5) -> None:
        self._stop.set()
        self._jobs.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            job = self._jobs.get()
            if job is None:
                return
            *work, not_before = job
            delay = not_before - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                return
            try:
                with self._stop.guarding():
                    self._run_job(*work)
            except AllTickError as e:
                if not self._stop.is_set():  # else stopped while fetching: the failure is of our own making
                    self._deliver(BackfillFailed(e, job[0]))
            except Exception as e:  # a bug: the feed must fail visibly, not wait for bars forever
                logger.exception("backfill job %s crashed", job[0])
                self._deliver(
                    BackfillFailed(
                        AllTickError(
                            f"backfill crashed ({type(e).__name__}: {e}); this is a bug, see the log"
                        ),
                        job[0],
                    )
                )

    def _run_job(self, job: int, after_ms: int | None, upto_ms: int, count: int | None) -> None:
        reached = after_ms
        if reached is not None and reached >= upto_ms:
            self._deliver(BackfillResult([], reached, True, job))
            return
        while not self._stop.is_set():
            closed_until = min(upto_ms, self._final_until(self._service_closed()))
            progressed = False
            if reached is None or closed_until > reached:
                got = self._fetch(reached, closed_until, count)
                bars, proven = got if isinstance(got, tuple) else (got, closed_until)
                closed_until = min(closed_until, self._final_until(proven))
                bars = [
                    bar for bar in bars if (reached is None or bar.end > reached) and bar.end <= closed_until
                ]
                count = None  # only the first fetch is bounded by count; later ones fill up to upto_ms
                if reached is None or closed_until > reached:  # else the service closed nothing new yet
                    progressed = True
                    reached = closed_until
                    done = closed_until >= upto_ms
                    self._deliver(BackfillResult(bars, reached, done, job))
                    if done:
                        return
            # Deliver bar by bar as they close rather than all at upto_ms.
            target = upto_ms if self._next_final is None or reached is None else self._next_final(reached)
            wait = wall_seconds(self._clock, int(target + self._close_lag_ms)) + 0.001
            if not progressed:
                # The service has not closed what its clock says it should have: ask again later,
                # never in a loop.
                wait = max(wait, self._recheck_s)
            self._stop.wait(wait)

    def _service_closed(self) -> int:
        # Before the service has told its time, our clock only aims the first fetch: its answer
        # proves what is closed (the fetch's complete-until moment).
        now = self._clock.now_ms()
        known = self._service.known_ms()
        return int((now if known is None else min(known, now)) - self._close_lag_ms)
