"""Client-side rate limiting by plan: one limiter per store, shared by every feed.

The plan table (:mod:`plans`) says how fast a token may call the service; the limiter
makes sure we never ask faster, so the service never has to refuse us.  Four rules
apply at once and the strictest wins:

- a minimum interval per endpoint (``plan.endpoint_interval``; ``plan.batch_interval``
  for ``batch-kline``), AllTick's "1 request per 10 s per endpoint" on Free;
- a minimum spacing between any two calls (``plan.min_spacing``: AllTick Free wants
  10 s between *any* two, protocol/alltick.md 6.1);
- a sliding per-minute cap over all endpoints (``plan.per_minute``);
- a daily cap (``plan.per_day``), which raises :class:`PlanLimitError` instead of
  sleeping until the service resets it.

``penalize(seconds)`` pushes every rule back after the service answered 429 / 605.
The arithmetic lives in two pure methods, :meth:`RateLimiter.delay_for` and
:meth:`RateLimiter.record`, so tests drive it with an injected clock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from ..errors import PlanLimitError, RateLimitWarning
from ..notices import warn_user
from ..plans import Plan

logger = logging.getLogger(__name__)

BATCH_ENDPOINT = "batch-kline"
MINUTE = 60.0
# A call held back longer than this is a RateLimitWarning: a run that seems stuck says why.
WARN_AFTER_S = MINUTE
DAY = 86_400.0
# Added to every non-zero spacing: the service times a call when it arrives, and two
# calls do not travel equally fast.
SAFETY_MARGIN = 0.05
# The daily cap is counted in one-minute buckets over a rolling 24 hours: at most
# 1440 entries whatever the plan, and never more lenient than the service's own
# midnight-to-midnight count.
_DAY_BUCKET = 60.0


class RateLimiter:
    """Make calls wait until the plan allows them; thread-safe.

    Parameters
    ----------
    plan : plans.Plan
        The limits to follow (``plans.get_plan(dialect, name)``).
    monotonic : callable, optional
        Seconds from a monotonic clock; injected by tests.
    sleep : callable, optional
        ``sleep(seconds)`` used instead of waiting on the internal condition; tests pass
        one that advances their fake clock.
    on_wait : callable, optional
        ``on_wait(seconds, endpoint)`` is called before each wait, e.g. to show progress.
    margin : float
        Seconds added to every non-zero interval and to the minute window, so that
        network jitter cannot make two calls arrive closer than the plan allows.

    Example::

        limiter = RateLimiter(get_plan("alltick", "free"))
        limiter.acquire("kline")      # returns at once
        limiter.acquire("trade-tick") # waits 10 s: Free spaces any two calls
    """

    def __init__(self, plan: Plan, *, monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] | None = None,
                 on_wait: Callable[[float, str], None] | None = None,
                 margin: float = SAFETY_MARGIN) -> None:
        self.plan = plan
        self.margin = margin
        self._monotonic = monotonic
        self._sleep = sleep
        self._on_wait = on_wait
        self._condition = threading.Condition()
        self._last_by_endpoint: dict[str, float] = {}
        self._last_any: float | None = None
        self._minute_window: deque[float] = deque()
        self._day_buckets: deque[list[float]] = deque()  # [bucket start, count]
        self._day_count = 0
        self._blocked_until = float("-inf")
        self.calls = 0
        self.waited = 0.0
        self._long_wait_warned = False

    def __repr__(self) -> str:
        return f"RateLimiter(plan={self.plan.dialect}/{self.plan.name}, calls={self.calls})"

    @property
    def on_wait(self) -> Callable[[float, str], None] | None:
        """The ``on_wait(seconds, endpoint)`` callback; settable, e.g. by a CLI that shows progress."""
        return self._on_wait

    @on_wait.setter
    def on_wait(self, callback: Callable[[float, str], None] | None) -> None:
        self._on_wait = callback

    def interval_for(self, endpoint: str) -> float:
        """Minimum seconds between two calls to ``endpoint`` under this plan."""
        interval = self.plan.batch_interval if endpoint == BATCH_ENDPOINT else self.plan.endpoint_interval
        return interval + self.margin if interval > 0 else 0.0

    def delay_for(self, endpoint: str, now: float) -> float:
        """Seconds to wait before ``endpoint`` may be called at ``now`` (0 when it may go now).

        Raises
        ------
        PlanLimitError
            When the daily cap is used up; waiting for the service's reset is left to the user.
        """
        self._expire(now)
        if self.plan.per_day is not None and self._day_count >= self.plan.per_day:
            raise PlanLimitError(
                f"daily request cap of {self.plan.per_day} calls for the {self.plan.dialect} "
                f"{self.plan.name} plan is used up ({self._day_count} calls in the last 24 hours); "
                "wait for the service to reset it, use the K-line cache, or choose a higher plan",
                code="per_day")
        delay = self._blocked_until - now
        last = self._last_by_endpoint.get(endpoint)
        if last is not None:
            delay = max(delay, last + self.interval_for(endpoint) - now)
        if self._last_any is not None and self.plan.min_spacing > 0:
            delay = max(delay, self._last_any + self.plan.min_spacing + self.margin - now)
        cap = self.plan.per_minute
        if cap is not None and len(self._minute_window) >= cap:
            delay = max(delay, self._minute_window[-cap] + MINUTE + self.margin - now)
        return max(0.0, delay)

    def record(self, endpoint: str, now: float) -> None:
        """Count a call to ``endpoint`` made at ``now``."""
        self._last_by_endpoint[endpoint] = now
        self._last_any = now if self._last_any is None else max(self._last_any, now)
        if self.plan.per_minute is not None:
            self._minute_window.append(now)
            while len(self._minute_window) > self.plan.per_minute:
                self._minute_window.popleft()
        if self.plan.per_day is not None:
            bucket = now - now % _DAY_BUCKET
            if self._day_buckets and self._day_buckets[-1][0] == bucket:
                self._day_buckets[-1][1] += 1
            else:
                self._day_buckets.append([bucket, 1])
            self._day_count += 1
        self.calls += 1

    def finished(self, endpoint: str) -> None:
        """Note that the call to ``endpoint`` was answered just now.

        The service times calls on arrival, and a call reached it no later than its answer came
        back; spacing the next call from here keeps a slow send from bunching two arrivals.
        """
        with self._condition:
            now = self._monotonic()
            self._last_by_endpoint[endpoint] = max(self._last_by_endpoint.get(endpoint, now), now)
            self._last_any = now if self._last_any is None else max(self._last_any, now)

    def acquire(self, endpoint: str, cancel: threading.Event | None = None) -> float:
        """Block until ``endpoint`` may be called, count the call, and return the seconds waited.

        If ``cancel`` is set while waiting (see :meth:`wake`), return -1.0 without counting a call.
        """
        waited = 0.0
        with self._condition:
            while True:
                if cancel is not None and cancel.is_set():
                    return -1.0
                now = self._monotonic()
                delay = self.delay_for(endpoint, now)
                if delay <= 0:
                    self.record(endpoint, now)
                    self.waited += waited
                    return waited
                if self._on_wait is not None:
                    self._notify_wait(delay, endpoint)
                if waited + delay > WARN_AFTER_S and not self._long_wait_warned:
                    self._long_wait_warned = True
                    self._warn_long_wait(waited + delay, endpoint, self._blocked_until - now >= delay)
                logger.debug("rate limiter: %s waits %.3f s (%s plan)", endpoint, delay, self.plan.name)
                if self._sleep is not None:
                    # The injected sleep runs outside the lock so other threads can record meanwhile.
                    self._condition.release()
                    try:
                        self._sleep(delay)
                    finally:
                        self._condition.acquire()
                else:
                    self._condition.wait(timeout=delay)
                waited += max(0.0, self._monotonic() - now)

    def wake(self) -> None:
        """Make every waiting :meth:`acquire` look at its ``cancel`` event again."""
        with self._condition:
            self._condition.notify_all()

    def penalize(self, seconds: float) -> None:
        """Hold every call back for ``seconds`` from now (after the service answered 429 / 605)."""
        with self._condition:
            until = self._monotonic() + max(0.0, seconds)
            if until > self._blocked_until:
                self._blocked_until = until
                logger.info("rate limiter: service asked to slow down; holding calls for %.1f s", seconds)
            # Waiters recompute their delay with the new horizon.
            self._condition.notify_all()

    def _warn_long_wait(self, seconds: float, endpoint: str, service_asked: bool) -> None:
        # Once per limiter (per store): a user whose run seems stuck learns why and what helps.
        why = ("because the service asked to slow down (rate limited)" if service_asked else
               f"under the request limits of the {self.plan.dialect} {self.plan.name} plan")
        self._condition.release()  # never show a warning (or raise it, when escalated) under the lock
        try:
            warn_user(f"a {endpoint} request waits {seconds:.0f} s {why}; load fewer symbols or bars "
                      "at once, keep the K-line cache on, or pass the store your real plan (plan=...) "
                      "if it is higher", RateLimitWarning)
        finally:
            self._condition.acquire()

    def _notify_wait(self, delay: float, endpoint: str) -> None:
        # Release the lock so a callback that inspects the limiter cannot deadlock.
        self._condition.release()
        try:
            self._on_wait(delay, endpoint)
        finally:
            self._condition.acquire()

    def _expire(self, now: float) -> None:
        while self._minute_window and self._minute_window[0] <= now - MINUTE - self.margin:
            self._minute_window.popleft()
        while self._day_buckets and self._day_buckets[0][0] + _DAY_BUCKET <= now - DAY:
            self._day_count -= int(self._day_buckets.popleft()[1])
