import time

import pytest

from backtrader_alltick.clock import ScaledClock, SystemClock
from backtrader_alltick.errors import ConfigError


def wall_ms() -> int:
    return int(time.time() * 1000)


def test_system_clock_follows_a_service_whose_clock_is_behind_ours():
    clock = SystemClock()

    clock.observe_server_time(wall_ms() - 2_500)  # our clock runs 2.5 s ahead of the service

    assert clock.now_ms() - wall_ms() == pytest.approx(-2_500, abs=50)


def test_system_clock_takes_the_least_delayed_trade_of_a_window():
    clock = SystemClock()
    clock.observe_server_time(wall_ms() - 900)  # a first trade that travelled slowly
    for delay in [400, 30, 250] * (SystemClock.WINDOW // 3 + 1):
        clock.observe_server_time(wall_ms() - delay)

    assert clock.now_ms() - wall_ms() == pytest.approx(-30, abs=50)


def test_system_clock_ignores_stamps_that_cannot_be_a_clock_offset():
    clock = SystemClock()

    clock.observe_server_time(wall_ms() - 3_600_000)  # a stale snapshot from an hour ago

    assert clock.offset_ms == 0


def test_scaled_clock_runs_faster_than_the_wall_and_refuses_a_stopped_clock():
    clock = ScaledClock(start_ms=1_700_000_000_000, speed=60)

    assert clock.now_ms() >= 1_700_000_000_000
    with pytest.raises(ConfigError, match="speed must be above 0, was 0"):
        ScaledClock(start_ms=0, speed=0)
