"""RateLimiter: plan rules enforced with an injected clock, plus one real-thread check."""

from __future__ import annotations

import queue
import threading
from dataclasses import replace
from datetime import datetime, timezone

import pytest

from backtrader_alltick.errors import PlanLimitError
from backtrader_alltick.plans import get_plan
from backtrader_alltick.transport.quota_ledger import MemoryLedger
from backtrader_alltick.transport.ratelimit import RateLimiter


class FakeClock:
    """Monotonic seconds that move only when the limiter sleeps."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def make_limiter(plan, clock: FakeClock, **kwargs) -> tuple[RateLimiter, list[tuple[float, str]]]:
    calls: list[tuple[float, str]] = []
    kwargs.setdefault("margin", 0.0)
    limiter = RateLimiter(plan, monotonic=clock, sleep=clock.sleep, **kwargs)
    original = limiter.record_in

    def record_in(state, endpoint: str, now: float) -> None:
        calls.append((now, endpoint))
        original(state, endpoint, now)

    limiter.record_in = record_in
    return limiter, calls


def max_calls_in_window(times: list[float], window: float) -> int:
    best = 0
    for i, first in enumerate(times):
        best = max(best, sum(1 for t in times[i:] if t < first + window))
    return best


def test_free_plan_spacing_never_violated_across_endpoints():
    clock = FakeClock()
    limiter, calls = make_limiter(get_plan("alltick", "free"), clock)

    for endpoint in ["kline", "trade-tick", "kline", "depth-tick", "batch-kline", "kline"] * 5:
        limiter.acquire(endpoint)

    times = [t for t, _ in calls]
    assert len(times) == 30
    assert min(b - a for a, b in zip(times, times[1:])) >= 10.0
    assert max_calls_in_window(times, 60.0) <= 10
    # Nothing waits longer than the rules require: the calls are exactly 10 s apart.
    assert times[-1] - times[0] == pytest.approx(290.0)


def test_default_margin_keeps_calls_strictly_beyond_the_plan_spacing():
    clock = FakeClock()
    limiter = RateLimiter(get_plan("alltick", "free"), monotonic=clock, sleep=clock.sleep)
    stamps = []
    for endpoint in ("kline", "kline", "trade-tick"):
        limiter.acquire(endpoint)
        stamps.append(clock.now)

    assert [b - a for a, b in zip(stamps, stamps[1:])] == pytest.approx([10.05, 10.05])


def test_itick_free_plan_spaces_calls_twelve_seconds():
    clock = FakeClock()
    limiter, calls = make_limiter(get_plan("itick", "free"), clock)

    for _ in range(7):
        limiter.acquire("kline")

    times = [t for t, _ in calls]
    assert min(b - a for a, b in zip(times, times[1:])) >= 12.0
    assert max_calls_in_window(times, 60.0) <= 5


def test_basic_plan_endpoints_have_separate_buckets():
    clock = FakeClock()
    limiter, calls = make_limiter(get_plan("alltick", "basic"), clock)

    limiter.acquire("kline")
    limiter.acquire("trade-tick")  # another endpoint may go in the same second
    limiter.acquire("kline")  # the same endpoint waits its 1 s
    limiter.acquire("batch-kline")
    limiter.acquire("batch-kline")  # batch-kline has its own 3 s interval

    assert [t - calls[0][0] for t, _ in calls] == pytest.approx([0.0, 0.0, 1.0, 1.0, 4.0])


def test_per_minute_cap_combines_all_endpoints():
    clock = FakeClock()
    plan = replace(get_plan("alltick", "premium"), endpoint_interval=0.0, per_minute=5)
    limiter, calls = make_limiter(plan, clock)

    for endpoint in ["kline", "trade-tick", "depth-tick", "kline", "trade-tick", "depth-tick", "kline"]:
        limiter.acquire(endpoint)

    offsets = [t - calls[0][0] for t, _ in calls]
    assert offsets == pytest.approx([0, 0, 0, 0, 0, 60, 60])
    assert max_calls_in_window([t for t, _ in calls], 60.0) <= 5


def test_penalize_pushes_every_endpoint_back():
    clock = FakeClock()
    limiter, calls = make_limiter(get_plan("alltick", "unlimited"), clock)
    limiter.acquire("kline")

    limiter.penalize(30.0)
    limiter.acquire("trade-tick")
    limiter.acquire("depth-tick")

    assert [t - calls[0][0] for t, _ in calls] == pytest.approx([0.0, 30.0, 30.0])
    assert limiter.waited == pytest.approx(30.0)


def test_penalize_never_shortens_an_earlier_penalty():
    clock = FakeClock()
    limiter = RateLimiter(get_plan("alltick", "unlimited"), monotonic=clock, sleep=clock.sleep, margin=0.0)

    limiter.penalize(20.0)
    limiter.penalize(5.0)

    assert limiter.delay_for("kline", clock.now) == pytest.approx(20.0)


def test_daily_cap_raises_plan_limit_error_naming_the_cap():
    clock = FakeClock()
    plan = replace(get_plan("alltick", "free"), per_day=3)
    limiter, _ = make_limiter(plan, clock)
    for _ in range(3):
        limiter.acquire("kline")

    with pytest.raises(PlanLimitError) as info:
        limiter.acquire("kline")

    assert "daily request cap of 3 calls" in str(info.value)
    assert "free plan" in str(info.value)


def test_daily_cap_frees_up_when_the_service_day_turns_at_midnight_utc():
    clock = FakeClock(datetime(2024, 3, 5, 23, 59, tzinfo=timezone.utc).timestamp())
    plan = replace(get_plan("alltick", "free"), per_day=2)
    limiter, _ = make_limiter(plan, clock, ledger=MemoryLedger(now=clock, wall=clock))
    limiter.acquire("kline")
    limiter.acquire("kline")
    clock.now = datetime(2024, 3, 5, 23, 59, 59, tzinfo=timezone.utc).timestamp()
    with pytest.raises(PlanLimitError):
        limiter.acquire("kline")

    clock.now = datetime(2024, 3, 6, tzinfo=timezone.utc).timestamp()

    assert limiter.acquire("kline") == 0.0
    assert limiter.used_today() == 1


def test_on_wait_reports_seconds_and_endpoint_before_waiting():
    clock = FakeClock()
    reports: list[tuple[float, str]] = []
    limiter, _ = make_limiter(
        get_plan("alltick", "free"),
        clock,
        on_wait=lambda seconds, endpoint: reports.append((seconds, endpoint)),
    )

    limiter.acquire("kline")
    clock.now += 4.0
    waited = limiter.acquire("trade-tick")

    assert reports == [(pytest.approx(6.0), "trade-tick")]
    assert waited == pytest.approx(6.0)


def test_delay_for_is_pure_arithmetic_over_recorded_calls():
    limiter = RateLimiter(get_plan("alltick", "basic"), monotonic=lambda: 0.0, margin=0.0)

    limiter.record("kline", 100.0)

    assert limiter.delay_for("kline", 100.25) == pytest.approx(0.75)
    assert limiter.delay_for("trade-tick", 100.25) == 0.0
    assert limiter.delay_for("kline", 101.0) == 0.0


def test_threads_sharing_a_limiter_keep_the_spacing():
    plan = replace(get_plan("alltick", "unlimited"), min_spacing=0.02)
    stamps: list[float] = []
    lock = threading.Lock()
    limiter = RateLimiter(plan)
    original = limiter.record_in

    def record_in(state, endpoint: str, now: float) -> None:
        with lock:
            stamps.append(now)
        original(state, endpoint, now)

    limiter.record_in = record_in

    def worker() -> None:
        for _ in range(5):
            limiter.acquire("kline")

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert not any(thread.is_alive() for thread in threads)
    stamps.sort()
    assert len(stamps) == 20
    # Judged by the limiter's own clock reading, so this is a rule check, not a timing assert.
    assert min(b - a for a, b in zip(stamps, stamps[1:])) >= 0.02 - 1e-9


def test_many_queued_callers_wait_their_turn_instead_of_all_waking_at_every_free_slot():
    # A universe's backfill queues thousands of calls at once: each free slot must not wake them all.
    plan = replace(get_plan("alltick", "unlimited"), min_spacing=0.005)
    waits: list[float] = []
    limiter = RateLimiter(plan, margin=0.0, on_wait=lambda seconds, endpoint: waits.append(seconds))
    limiter.acquire("kline")  # the others now find the spacing taken
    threads = [threading.Thread(target=limiter.acquire, args=("kline",)) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert not any(thread.is_alive() for thread in threads)
    assert limiter.calls == 41
    assert len(waits) <= 3 * len(threads)  # about one wait per call, not one per caller per call


def test_a_plan_without_limits_lets_callers_through_without_queueing():
    limiter = RateLimiter(get_plan("alltick", "unlimited"))
    answers: list[float] = []
    with limiter._turn("kline"):  # a queue that a limited plan's callers would wait in
        caller = threading.Thread(target=lambda: answers.append(limiter.acquire("kline")), daemon=True)
        caller.start()
        caller.join(30)
        queued = caller.is_alive()

    assert not queued and answers == [0.0]


def test_penalize_wakes_a_waiting_thread_to_recompute():
    clock = FakeClock()
    waits: queue.Queue = queue.Queue()  # each delay a waiter is about to wait, by the limiter's clock
    limiter = RateLimiter(
        get_plan("alltick", "unlimited"),
        monotonic=clock,
        margin=0.0,
        on_wait=lambda seconds, endpoint: waits.put(round(seconds, 6)),
    )
    limiter.penalize(0.2)
    waited: list[float] = []

    thread = threading.Thread(target=lambda: waited.append(limiter.acquire("kline")))
    thread.start()
    assert waits.get(timeout=10) == 0.2
    limiter.penalize(0.5)  # extends the hold; the waiter must not slip out at 0.2 s
    assert next_wait_other_than(waits, 0.2) == 0.5
    clock.now += 0.3  # past the first hold, inside the second
    limiter.wake()
    assert next_wait_other_than(waits, 0.5) == 0.2
    clock.now += 0.2
    limiter.wake()
    thread.join(timeout=10)

    assert waited == [pytest.approx(0.5)]


def next_wait_other_than(waits: queue.Queue, stale: float) -> float:
    """The next delay the waiter reports, skipping repeats of ``stale`` (a real-time wait that ran
    out re-reports the delay it was already waiting for: the injected clock had not moved)."""
    while (delay := waits.get(timeout=10)) == stale:
        pass
    return delay


def test_each_refusal_doubles_the_endpoints_interval_and_the_doubling_fades_by_half_a_minute():
    clock = FakeClock()
    limiter = RateLimiter(get_plan("alltick", "professional"), monotonic=clock, sleep=clock.sleep, margin=0.0)
    plan_interval = limiter.interval_for("kline", clock.now)

    limiter.penalize(0.0, "kline")
    limiter.penalize(0.0, "kline")
    twice = limiter.interval_for("kline", clock.now)
    batch = limiter.interval_for("batch-kline", clock.now)
    clock.now += 60.0
    a_minute_later = limiter.interval_for("kline", clock.now)
    clock.now += 600.0
    long_after = limiter.interval_for("kline", clock.now)

    assert plan_interval == pytest.approx(0.05)
    assert twice == pytest.approx(0.2) and batch == pytest.approx(1.0)
    assert a_minute_later == pytest.approx(0.1) and long_after == pytest.approx(0.05)


def test_a_rate_per_second_is_kept_from_the_sends_and_a_spacing_from_the_answers():
    # alltick.md 6.1, Professional: /kline 20 per s (a count, which calls in flight together keep),
    # /batch-kline 1 per s (a spacing: the next call goes a second after the answer).
    clock = FakeClock()
    limiter = RateLimiter(get_plan("alltick", "professional"), monotonic=clock, sleep=clock.sleep, margin=0.0)

    limiter.acquire("kline")
    limiter.acquire("batch-kline")
    clock.now += 0.5  # both answers are slow
    limiter.finished("kline")
    limiter.finished("batch-kline")

    assert limiter.delay_for("kline", clock.now) == 0.0
    assert limiter.delay_for("batch-kline", clock.now) == pytest.approx(1.0)
