"""The one backoff: exponential, capped, jittered only downwards, checked when it is made."""

import random

import pytest

from backtrader_alltick.errors import ConfigError
from backtrader_alltick.transport.retry import backoff, backoff_delay


def _take(generator, count):
    return [next(generator) for _ in range(count)]


def test_backoff_without_jitter_doubles_up_to_the_cap():
    assert _take(backoff(1.0, 10.0, jitter=0.0), 6) == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_backoff_grows_by_the_factor_asked():
    assert _take(backoff(0.5, 60.0, factor=3.0, jitter=0.0), 4) == [0.5, 1.5, 4.5, 13.5]


def test_backoff_with_jitter_stays_within_the_fraction_and_under_the_cap():
    delays = _take(backoff(1.0, 8.0, jitter=0.25, rng=random.Random(7)), 200)

    assert 0.75 <= delays[0] <= 1.0
    assert all(6.0 <= d <= 8.0 for d in delays[10:])
    assert len(set(delays[10:])) > 1  # jittered, not a fixed delay


def test_backoff_with_a_seeded_rng_is_reproducible():
    assert _take(backoff(0.5, 60.0, factor=3.0, jitter=0.2, rng=random.Random(1)), 8) == _take(
        backoff(0.5, 60.0, factor=3.0, jitter=0.2, rng=random.Random(1)), 8
    )


def test_backoff_delay_of_one_attempt_spans_half_to_all_of_the_doubled_delay():
    class Extreme(random.Random):
        def __init__(self, value):
            super().__init__()
            self.value = value

        def random(self):
            return self.value

    longest = [backoff_delay(n, 0.5, 4.0, jitter=0.5, rng=Extreme(0.0)) for n in range(1, 6)]
    assert longest == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert [backoff_delay(n, 0.5, 4.0, jitter=0.5, rng=Extreme(1.0)) for n in range(1, 4)] == [0.25, 0.5, 1.0]


def test_backoff_after_days_of_retries_stays_at_the_cap():
    assert backoff_delay(100_000, 1.0, 60.0, factor=3.0, jitter=0.0) == 60.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"initial": 0.0, "cap": 1.0}, "backoff needs 0 < initial <= cap, was initial=0.0, cap=1.0"),
        ({"initial": 2.0, "cap": 1.0}, "backoff needs 0 < initial <= cap, was initial=2.0, cap=1.0"),
        ({"initial": 1.0, "cap": 2.0, "factor": 0.5}, "backoff factor must be 1 or more, was 0.5"),
        (
            {"initial": 1.0, "cap": 2.0, "jitter": 1.0},
            "backoff jitter must be a fraction from 0 to below 1, was 1.0",
        ),
    ],
)
def test_backoff_rejects_numbers_that_cannot_pace_retries_when_made_not_when_first_used(kwargs, message):
    # The sinks build their backoff in __init__ to check the user's numbers there, not in a thread.
    with pytest.raises(ConfigError) as info:
        backoff(**kwargs)

    assert str(info.value) == message
