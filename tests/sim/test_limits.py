"""The simulator's socket pacing, on a hand-turned clock: what alltick.md 5.5 and 6.3 space."""

from dataclasses import replace

from backtrader_alltick.sim.limits import RestLimiter, SocketPacing, endpoint_rate
from backtrader_alltick.sim.plan_table import service_plan


class Hands:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_connection_attempts_of_a_family_are_the_plans_reconnect_interval_apart():
    clock = Hands()
    pacing = SocketPacing(lambda: service_plan("alltick", "free"), clock)

    first = pacing.admit_connection("tok", "stock")
    clock.now += 9.9
    too_soon = pacing.admit_connection("tok", "stock")
    other_family = pacing.admit_connection("tok", "other")
    other_token = pacing.admit_connection("tok2", "stock")
    clock.now += 0.1  # 10 s after the first: the refused attempt did not restart the wait
    later = pacing.admit_connection("tok", "stock")

    assert (first, too_soon, other_family, other_token, later) == (True, False, True, True, True)


def test_requests_on_different_sockets_of_a_family_are_3_s_apart_and_one_sockets_own_are_not():
    clock = Hands()
    pacing = SocketPacing(lambda: service_plan("alltick", "premium"), clock)

    first = pacing.admit_request("tok", "stock", 1)
    clock.now += 1.0
    same_socket = pacing.admit_request("tok", "stock", 1)  # its own 1 s is the session's to check
    other_socket = pacing.admit_request("tok", "stock", 2)
    other_family = pacing.admit_request("tok", "other", 2)
    clock.now += 3.0
    later = pacing.admit_request("tok", "stock", 2)

    assert (first, same_socket, other_socket, other_family, later) == (True, True, False, True, True)


def test_the_unlimited_plan_and_a_plan_without_spacing_pace_nothing():
    pacing = SocketPacing(lambda: replace(service_plan("alltick", "unlimited")), Hands())

    assert all(pacing.admit_connection("tok", "stock") for _ in range(5))
    assert all(pacing.admit_request("tok", "stock", socket_id) for socket_id in range(5))


def test_an_endpoint_rate_per_second_admits_that_many_calls_in_any_second_however_close():
    # alltick.md 6.1: Professional's /kline takes "20 per s"; calls bunched on the way (20 ms apart
    # here) are within it.
    clock = Hands()
    limiter = RestLimiter(lambda: service_plan("alltick", "professional"), clock)

    admitted = []
    for _ in range(20):
        admitted.append(limiter.admit("tok", "kline"))
        clock.now += 0.02
    twenty_first = limiter.admit("tok", "kline")  # 0.4 s after the first
    batch = limiter.admit("tok", "batch-kline")  # another endpoint, another rate
    clock.now = 101.0  # the first call's second is over
    later = limiter.admit("tok", "kline")

    assert admitted == [None] * 20
    assert twenty_first is not None and abs(twenty_first - 0.6) < 1e-9
    assert (batch, later) == (None, None)


def test_an_endpoint_rate_of_one_per_interval_is_a_spacing():
    clock = Hands()
    limiter = RestLimiter(lambda: service_plan("alltick", "basic"), clock)  # /kline 1 per s, batch 1 per 3 s

    first = limiter.admit("tok", "kline")
    clock.now += 0.5
    second = limiter.admit("tok", "kline")
    batch = limiter.admit("tok", "batch-kline")
    clock.now += 0.5
    third = limiter.admit("tok", "kline")
    clock.now += 2.0
    batch_early = limiter.admit("tok", "batch-kline")

    assert (first, third, batch) == (None, None, None)
    assert second is not None and abs(second - 0.5) < 1e-9
    assert batch_early is not None and abs(batch_early - 0.5) < 1e-9
    assert [endpoint_rate(s) for s in (0.05, 0.1, 1.0, 10.0)] == [(20, 1.0), (10, 1.0), (1, 1.0), (1, 10.0)]
