import pickle

import pytest

from backtrader_alltick import clock as clock_module
from backtrader_alltick.clock import CLOSE_LAG_S, ScaledClock, ServiceClock, SystemClock
from backtrader_alltick.errors import ConfigError

YEAR_MS = 365 * 86_400_000
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

    assert clock.now_ms() - wall_ms(wall) == -2_500


def test_the_least_delayed_stamp_is_the_service_time(wall):
    clock = SystemClock()
    clock.observe_server_time(wall_ms(wall) - 900)  # a first trade that travelled slowly
    for delay in [400, 30, 250]:
        clock.observe_server_time(wall_ms(wall) - delay)

    assert clock.now_ms() - wall_ms(wall) == -30


def test_before_the_service_tells_its_time_nothing_counts_as_closed(wall):
    clock = ServiceClock()

    assert clock.known_ms() is None and clock.closed_until() is None and not clock.learnt
    assert clock.now_ms() == wall_ms(wall)  # our clock still aims requests


def test_a_stale_stamp_proves_little_and_does_not_move_now(wall):
    clock = SystemClock()

    clock.observe_server_time(wall_ms(wall) - 3_600_000)  # the last trade of a market closed an hour ago

    assert clock.now_ms() == wall_ms(wall)
    assert clock.closed_until() == wall_ms(wall) - 3_600_000 - CLOSE_LAG_S * 1000


def test_the_service_clock_decides_however_far_ours_is_off(wall):
    clock = ServiceClock()
    served = wall_ms(wall) - 2 * YEAR_MS  # a simulator in 2024 while we are in 2026

    clock.observe_server_clock(served)  # an HTTP Date

    assert clock.now_ms() == served
    assert clock.offset_ms == -2 * YEAR_MS


def test_a_trade_stamped_far_in_the_future_is_not_a_clock(wall):
    clock = ServiceClock()
    clock.observe_server_clock(wall_ms(wall))

    clock.observe_server_time(wall_ms(wall) + 3_600_000)

    assert clock.now_ms() == wall_ms(wall)


def test_the_time_known_at_a_request_is_what_the_answer_proves_for_that_moment(wall):
    base = ScaledClock(start_ms=1_700_000_000_000, speed=60)
    clock = ServiceClock(base)
    sent = clock.mark()
    wall.advance(0.05)  # the request travels: three market seconds

    clock.observe_server_clock(base.now_ms() - 500)  # the answer's Date

    # The service's time at sending is at most the answer's, less the time the answer took.
    assert clock.known_ms(sent) <= base.now_ms() - 500 - (base.now_ms() - sent) + 60
    assert clock.speed == 60


def test_a_copy_in_another_process_learns_anew(wall):
    clock = ServiceClock(ScaledClock(start_ms=1_700_000_000_000, speed=60))
    clock.observe_server_clock(1_700_000_000_000)

    copy = pickle.loads(pickle.dumps(clock))

    assert not copy.learnt and copy.speed == 60


def test_the_default_store_clock_survives_a_copy_to_another_process(wall):
    clock = SystemClock()
    clock.observe_server_clock(1_700_000_000_000)

    copy = pickle.loads(pickle.dumps(clock))

    assert isinstance(copy, SystemClock) and not copy.learnt and copy.now_ms() > 0


def test_scaled_clock_runs_faster_than_the_wall_and_refuses_a_stopped_clock(wall):
    clock = ScaledClock(start_ms=1_700_000_000_000, speed=60)
    wall.advance(1.5)

    assert clock.now_ms() == 1_700_000_090_000  # a wall second is a market minute
    with pytest.raises(ConfigError, match="speed must be above 0, was 0"):
        ScaledClock(start_ms=0, speed=0)


def test_a_paused_scaled_clock_stands_at_its_start_until_resumed(wall):
    clock = ScaledClock(start_ms=1_700_000_000_000, speed=60, paused=True)
    wall.advance(10)

    assert clock.paused and clock.now_ms() == 1_700_000_000_000
    clock.resume()
    wall.advance(1)
    assert not clock.paused and clock.now_ms() == 1_700_000_060_000
    clock.resume()  # a running clock goes on as it was
    assert clock.now_ms() == 1_700_000_060_000


def test_a_scaled_clock_resumed_until_a_moment_stands_there_until_resumed_again(wall):
    clock = ScaledClock(start_ms=1_700_000_000_000, speed=60, paused=True)
    clock.resume(until_ms=1_700_000_059_999)
    wall.advance(0.5)

    assert clock.now_ms() == 1_700_000_030_000  # runs on until the moment
    wall.advance(10)
    assert clock.now_ms() == 1_700_000_059_999  # then stands there
    clock.resume()
    wall.advance(1)
    assert clock.now_ms() == 1_700_000_119_999  # and runs on from where it stood, not from the wall


def test_reading_the_service_clock_never_waits_for_its_lock():
    # Every trade and every backfill answer asks the time: with thousands of symbols, readers queued
    # on the lock behind one another and the stream's reader waited with them.
    import threading

    clock = ServiceClock(ScaledClock(1_700_000_000_000, 1.0))
    clock.observe_server_clock(1_700_000_000_000)
    answers = []

    def read() -> None:
        clock.observe_server_time(1_699_999_000_000)  # older than known: nothing to learn
        answers.append((clock.now_ms(), clock.known_ms(), clock.closed_until()))

    with clock._lock:  # a writer in the middle of an update
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(30)
        blocked = reader.is_alive()

    assert not blocked and len(answers) == 1
    assert answers[0][0] >= 1_700_000_000_000
