import pytest

from backtrader_alltick import clock as clock_module
from backtrader_alltick.clock import ScaledClock, SystemClock
from backtrader_alltick.errors import ConfigError

WALL_S = 1_700_000_000.0


class FrozenWall:
    """The clock module's ``time``: wall and monotonic seconds that move only when told."""

    def __init__(self) -> None:
        self.wall = WALL_S
        self.mono = 5_000.0

    def time(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds


@pytest.fixture
def wall(monkeypatch) -> FrozenWall:
    frozen = FrozenWall()
    monkeypatch.setattr(clock_module, "time", frozen)
    return frozen


def wall_ms(wall: FrozenWall) -> int:
    return int(wall.time() * 1000)


def test_system_clock_follows_a_service_whose_clock_is_behind_ours(wall):
    clock = SystemClock()

    clock.observe_server_time(wall_ms(wall) - 2_500)  # our clock runs 2.5 s ahead of the service

    assert clock.now_ms() == wall_ms(wall) - 2_500


def test_system_clock_takes_the_least_delayed_trade_of_a_window(wall):
    clock = SystemClock()
    clock.observe_server_time(wall_ms(wall) - 900)  # a first trade that travelled slowly
    for delay in [400, 30, 250] * (SystemClock.WINDOW // 3 + 1):
        clock.observe_server_time(wall_ms(wall) - delay)

    assert clock.now_ms() == wall_ms(wall) - 30


def test_system_clock_ignores_stamps_that_cannot_be_a_clock_offset(wall):
    clock = SystemClock()

    clock.observe_server_time(wall_ms(wall) - 3_600_000)  # a stale snapshot from an hour ago

    assert clock.now_ms() == wall_ms(wall)


def test_scaled_clock_runs_speed_times_faster_than_the_wall(wall):
    clock = ScaledClock(start_ms=1_700_000_000_000, speed=60)
    wall.advance(1.5)

    assert clock.now_ms() == 1_700_000_000_000 + 90_000


def test_scaled_clock_refuses_a_stopped_clock():
    with pytest.raises(ConfigError, match="speed must be above 0, was 0"):
        ScaledClock(start_ms=0, speed=0)
