"""Client-side rate limiting by plan: one limiter per store, one quota per token.

The plan table (:mod:`plans`) says how fast a token may call the service; the limiter
makes sure we never ask faster, so the service never has to refuse us.  Four rules
apply at once and the strictest wins:

- a minimum interval per endpoint (``plan.endpoint_interval``; ``plan.batch_interval``
  for ``batch-kline``), AllTick's "1 request per 10 s per endpoint" on Free;
- a minimum spacing between any two calls (``plan.min_spacing``: AllTick Free wants
  10 s between *any* two, protocol/alltick.md 6.1);
- a sliding per-minute cap over all endpoints (``plan.per_minute``);
- a daily cap (``plan.per_day``) over the service's day, which raises :class:`PlanLimitError`
  instead of sleeping until the service resets it.

``penalize(seconds, endpoint)`` pushes every rule back after the service answered 429 / 605, and
the service's word outranks the plan table: the refused endpoint's interval doubles (up to
``SLOWEST_INTERVAL_S``), and the doubling fades by half each ``SLOWER_FADES_S`` without
another refusal, so a client that believes a higher plan than its token has, or a service that
counts stricter than documented, stops being refused call after call.
What the rules decide from lives in a ledger (:mod:`.quota_ledger`): this process's memory,
or a file or Redis shared by every process on the token, so that together they keep the plan.
The arithmetic is pure (:meth:`RateLimiter.delay_in`, :meth:`RateLimiter.record_in`) and runs
inside one atomic ledger transaction per decision; tests drive it with an injected clock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ..errors import PlanLimitError, RateLimitWarning, TransportError
from ..notices import warn_user
from ..plans import Plan
from .quota_ledger import MemoryLedger, QuotaLedger, QuotaState, has_limits

logger: logging.Logger = logging.getLogger(__name__)

BATCH_ENDPOINT = "batch-kline"
MINUTE = 60.0
# A call held back longer than this is a RateLimitWarning: a run that seems stuck says why.
WARN_AFTER_S = MINUTE
# Added to every non-zero spacing: the service times a call when it arrives, and two
# calls do not travel equally fast.
SAFETY_MARGIN = 0.05
# After a refusal an endpoint's interval doubles, up to the slowest per-endpoint rate any plan
# documents (Free: one call per 10 s, alltick.md 6.1), and the doubling halves for every
# SLOWER_FADES_S seconds the service refuses nothing more of it.
SLOWEST_INTERVAL_S = 10.0
SLOWER_FADES_S = 60.0


class RateLimiter:
    """Make calls wait until the plan allows them; thread-safe, and process-safe on a shared ledger.

    Parameters
    ----------
    plan : plans.Plan
        The limits to follow (``plans.get_plan(dialect, name)``).
    ledger : QuotaLedger, optional
        Where the token's calls are counted: a :class:`~.quota_sqlite.FileLedger` or
        :class:`~.quota_redis.RedisLedger` shared with other processes; default this
        process's memory (:class:`~.quota_ledger.MemoryLedger`, on ``monotonic``).
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

    def __init__(
        self,
        plan: Plan,
        *,
        ledger: QuotaLedger | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
        on_wait: Callable[[float, str], None] | None = None,
        margin: float = SAFETY_MARGIN,
    ) -> None:
        self.plan = plan
        self.margin = margin
        self.ledger: QuotaLedger = ledger if ledger is not None else MemoryLedger(monotonic)
        self._monotonic = monotonic
        self._sleep = sleep
        self._on_wait = on_wait
        self._condition = threading.Condition()
        # Callers of one endpoint queue on its turn and one at a time waits for the next free slot on
        # the condition.  A turn per endpoint, as the plan's intervals are (alltick.md 6.1): a
        # /batch-kline call whose slot is free must not wait behind hundreds of queued /kline calls.
        self._turns: dict[str, threading.Lock] = {}
        self._turns_lock = threading.Lock()
        self._unlimited = not has_limits(plan)
        self._held = False  # a penalty was ever set: even an unlimited plan's callers may wait
        self.calls: int = 0
        self.waited: float = 0.0
        self._long_wait_warned = False
        # endpoint -> (factor on its interval, ledger time of the refusal that set it)
        self._slower: dict[str, tuple[float, float]] = {}

    def __repr__(self) -> str:
        return (
            f"RateLimiter(plan={self.plan.dialect}/{self.plan.name}, calls={self.calls}, "
            f"ledger={self.ledger!r})"
        )

    @property
    def on_wait(self) -> Callable[[float, str], None] | None:
        """The ``on_wait(seconds, endpoint)`` callback; settable, e.g. by a CLI that shows progress."""
        return self._on_wait

    @on_wait.setter
    def on_wait(self, callback: Callable[[float, str], None] | None) -> None:
        self._on_wait = callback

    def interval_for(self, endpoint: str, now: float | None = None) -> float:
        """Minimum seconds between two calls to ``endpoint``: the plan's, stretched at ``now`` (ledger
        time) by what the service's refusals taught (see :meth:`penalize`)."""
        spacing = self._spacing(endpoint, now)
        return spacing + self.margin if spacing > 0 else 0.0

    def _plan_interval(self, endpoint: str) -> float:
        return self.plan.batch_interval if endpoint == BATCH_ENDPOINT else self.plan.endpoint_interval

    def _spacing(self, endpoint: str, now: float | None) -> float:
        """The plan's interval for ``endpoint`` stretched by refusals, without the margin (0: none)."""
        interval = self._plan_interval(endpoint)
        return interval * self._slower_at(endpoint, now) if interval > 0 else 0.0

    def _slower_at(self, endpoint: str, now: float | None) -> float:
        factor, since = self._slower.get(endpoint, (1.0, 0.0))
        if factor <= 1.0 or now is None:
            return factor
        return max(1.0, factor * 0.5 ** (max(0.0, now - since) / SLOWER_FADES_S))

    # -- The rules: pure arithmetic over a QuotaState -------------------------------------

    def delay_in(self, state: QuotaState, endpoint: str, now: float) -> float:
        """Seconds to wait before ``endpoint`` may be called at ``now`` (0 when it may go now).

        Raises
        ------
        PlanLimitError
            When the daily cap is used up; waiting for the service's reset is left to the user.
        """
        cap = self.plan.per_day
        if cap is not None and state.day_count >= cap:
            who = "by every process on this token" if self.ledger.shared else "by this process"
            raise PlanLimitError(
                f"daily request cap of {cap} calls for the {self.plan.dialect} {self.plan.name} plan is "
                f"used up ({state.day_count} calls today {who}; the count starts again at 00:00 UTC); "
                "wait for the service to reset it, use the K-line cache, or choose a higher plan",
                code="per_day",
            )
        delay = (state.blocked_until - now) if state.blocked_until is not None else 0.0
        last = state.last_by_endpoint.get(endpoint)
        if last is not None:
            delay = max(delay, last + self.interval_for(endpoint, now) - now)
        if state.last_any is not None and self.plan.min_spacing > 0:
            delay = max(delay, state.last_any + self.plan.min_spacing + self.margin - now)
        cap = self.plan.per_minute
        if cap is not None:
            recent = [at for at in state.minute if at > now - MINUTE - self.margin]
            if len(recent) >= cap:
                delay = max(delay, recent[-cap] + MINUTE + self.margin - now)
        return max(0.0, delay)

    def record_in(self, state: QuotaState, endpoint: str, now: float) -> None:
        """Count a call to ``endpoint`` made at ``now``."""
        state.last_by_endpoint[endpoint] = now
        state.last_any = now if state.last_any is None else max(state.last_any, now)
        if self.plan.per_minute is not None:
            recent = [at for at in state.minute if at > now - MINUTE - self.margin]
            recent.append(now)
            state.minute = recent[-self.plan.per_minute :]
        state.day_count += 1

    def delay_for(self, endpoint: str, now: float) -> float:
        """:meth:`delay_in` over the ledger's state, at ``now``."""
        return self.ledger.transact(lambda state, _: self.delay_in(state, endpoint, now))

    def record(self, endpoint: str, now: float) -> None:
        """:meth:`record_in` into the ledger: count a call made at ``now``."""
        self.ledger.transact(lambda state, _: self.record_in(state, endpoint, now))

    def used_today(self) -> int:
        """Calls counted in the service's current day, by every process that shares the ledger."""
        return self.ledger.transact(lambda state, _: state.day_count)

    # -- Waiting ----------------------------------------------------------------------------

    def finished(self, endpoint: str) -> None:
        """Note that the call to ``endpoint`` was answered just now.

        The service times calls on arrival, and a call reached it no later than its answer came
        back; where the plan spaces an endpoint's calls a second or more apart ("1 per 3 s"),
        spacing the next call from here keeps a slow send from bunching two arrivals.  A faster rate
        is a count per second ("20 per s", alltick.md 6.1) that two bunched arrivals do not break:
        those calls are spaced from their sends and may be in flight together, or a universe's
        /kline calls went one at a time at a third of the plan's rate.  A refusal stretches them.
        """

        def settle(state: QuotaState, now: float) -> None:
            if self._spacing(endpoint, now) >= 1.0:
                state.last_by_endpoint[endpoint] = max(state.last_by_endpoint.get(endpoint, now), now)
            state.last_any = now if state.last_any is None else max(state.last_any, now)

        with self._condition:
            try:
                self.ledger.transact(settle)
            except TransportError as e:
                # The answer is in hand and must reach the caller; the next acquire() raises instead.
                logger.warning("rate limiter: the answer to a %s call could not be noted (%s)", endpoint, e)

    def acquire(self, endpoint: str, cancel: threading.Event | None = None, subject: str = "") -> float:
        """Block until ``endpoint`` may be called, count the call, and return the seconds waited.

        If ``cancel`` is set while waiting (see :meth:`wake`), return -1.0 without counting a call.
        ``subject`` names the symbols the call asks for, in the warning of a long wait.
        """
        if self._unlimited and not self._held:
            # Nothing to wait for until the service asks to slow down: no turn to queue for.
            return self._wait_and_take(endpoint, cancel, subject, 0.0)
        queued = self._monotonic()
        # Waiting on the condition, every caller woke at each free slot to compute it again: with the
        # backfill of thousands of symbols queued at once, that herd took the lock more than the
        # calls did.  The others wait on their endpoint's turn; a cancelled one still returns as soon
        # as it has it.
        with self._turn(endpoint):
            return self._wait_and_take(endpoint, cancel, subject, max(0.0, self._monotonic() - queued))

    def _turn(self, endpoint: str) -> threading.Lock:
        with self._turns_lock:
            return self._turns.setdefault(endpoint, threading.Lock())

    def _wait_and_take(
        self, endpoint: str, cancel: threading.Event | None, subject: str, waited: float
    ) -> float:
        def take(state: QuotaState, now: float) -> tuple[float, bool]:
            delay = self.delay_in(state, endpoint, now)
            if delay <= 0:
                self.record_in(state, endpoint, now)
            held = state.blocked_until is not None and state.blocked_until - now >= delay
            return delay, held

        with self._condition:
            while True:
                if cancel is not None and cancel.is_set():
                    return -1.0
                started = self._monotonic()
                delay, service_asked = self.ledger.transact(take)
                if delay <= 0:
                    self.calls += 1
                    self.waited += waited
                    return waited
                if self._on_wait is not None:
                    self._notify_wait(self._on_wait, delay, endpoint)
                if waited + delay > WARN_AFTER_S and not self._long_wait_warned:
                    self._long_wait_warned = True
                    self._warn_long_wait(waited + delay, endpoint, service_asked, subject)
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
                waited += max(0.0, self._monotonic() - started)

    def wake(self) -> None:
        """Make every waiting :meth:`acquire` look at its ``cancel`` event again."""
        with self._condition:
            self._condition.notify_all()

    def penalize(self, seconds: float, endpoint: str | None = None) -> None:
        """Hold every call back for ``seconds`` from now (after the service answered 429 / 605), and
        double the interval of the refused ``endpoint`` (the service counts stricter than the plan).

        On a shared ledger the hold is the token's: every process waits it out.  The doubling is
        this limiter's own.
        """

        def hold(state: QuotaState, now: float) -> tuple[bool, float]:
            until = now + max(0.0, seconds)
            if state.blocked_until is None or until > state.blocked_until:
                state.blocked_until = until
                return True, now
            return False, now

        self._held = True
        with self._condition:
            longer, now = self.ledger.transact(hold)
            if longer:
                logger.info("rate limiter: service asked to slow down; holding calls for %.1f s", seconds)
            interval = self._plan_interval(endpoint) if endpoint is not None else 0.0
            if endpoint is not None and 0 < interval < SLOWEST_INTERVAL_S:
                factor = min(SLOWEST_INTERVAL_S / interval, 2.0 * self._slower_at(endpoint, now))
                self._slower[endpoint] = (factor, now)
                logger.info("rate limiter: %s calls now %.3g times the plan interval apart", endpoint, factor)
            # Waiters recompute their delay with the new horizon.
            self._condition.notify_all()

    def close(self) -> None:
        """Let go of the ledger's file or connection."""
        self.ledger.close()

    def _warn_long_wait(self, seconds: float, endpoint: str, service_asked: bool, subject: str) -> None:
        # Once per limiter (per store): a user whose run seems stuck learns why and what helps.
        why = (
            "because the service asked to slow down (rate limited)"
            if service_asked
            else f"under the request limits of the {self.plan.dialect} {self.plan.name} plan"
        )
        asked = f" for {subject}" if subject else ""
        self._condition.release()  # never show a warning (or raise it, when escalated) under the lock
        try:
            warn_user(
                f"a {endpoint} request{asked} waits {seconds:.0f} s {why}; load fewer symbols or bars "
                "at once, keep the K-line cache on, or pass the store your real plan (plan=...) "
                "if it is higher",
                RateLimitWarning,
            )
        finally:
            self._condition.acquire()

    def _notify_wait(self, on_wait: Callable[[float, str], None], delay: float, endpoint: str) -> None:
        # Release the lock so a callback that inspects the limiter cannot deadlock.
        self._condition.release()
        try:
            on_wait(delay, endpoint)
        finally:
            self._condition.acquire()
