"""Clocks: the one source of "now" for a store, its feeds and the simulator.

A clock has ``now_ms()`` (market time, epoch ms) and ``speed`` (market seconds per
wall second), so a waiter can turn a market-time delay into a wall-time timeout.
"""

from __future__ import annotations

import time
from typing import Protocol

from .errors import ConfigError


class Clock(Protocol):
    speed: float

    def now_ms(self) -> int: ...


class SystemClock:
    """Wall-clock UTC, corrected by the offset observed from the service's trade timestamps.

    A trade is stamped by the service before it travels to us, so ``trade time - local time``
    is the clock offset minus the latency; the largest value over a window of trades is the
    best estimate.  The first trade sets the offset at once (a local clock running ahead would
    otherwise close bars before their last trades arrive); each later window replaces it.

    Example::

        clock = SystemClock()
        clock.observe_server_time(tick.time)   # the store does this for every trade
    """

    speed = 1.0
    WINDOW = 500  # trades per estimate
    MAX_SKEW_MS = 600_000  # a stamp further off than ten minutes is stale or wrong, not a clock offset

    def __init__(self) -> None:
        self.offset_ms = 0
        self._best: int | None = None
        self._seen = 0
        self._calibrated = False

    def now_ms(self) -> int:
        return int(time.time() * 1000) + self.offset_ms

    def observe_server_time(self, server_ms: int) -> None:
        lead = server_ms - int(time.time() * 1000)
        if abs(lead) > self.MAX_SKEW_MS:
            return
        if self._best is None or lead > self._best:
            self._best = lead
        self._seen += 1
        if not self._calibrated or self._seen >= self.WINDOW:
            self.offset_ms, self._calibrated = self._best, True
            self._best, self._seen = None, 0


class ScaledClock:
    """Market time that starts at ``start_ms`` and runs ``speed`` times faster than the wall.

    Example::

        clock = ScaledClock(start_ms=1_700_000_000_000, speed=60)   # a minute per second
    """

    def __init__(self, start_ms: int, speed: float = 1.0) -> None:
        if not speed > 0:
            raise ConfigError(f"speed must be above 0, was {speed!r}")
        self.start_ms = int(start_ms)
        self.speed = float(speed)
        self._wall0 = time.monotonic()

    def now_ms(self) -> int:
        return self.start_ms + int((time.monotonic() - self._wall0) * 1000 * self.speed)


def wall_seconds(clock: Clock, market_ms: int) -> float:
    """Wall seconds until ``clock`` reaches ``market_ms``; 0 when it already has."""
    return max(0.0, (market_ms - clock.now_ms()) / 1000 / clock.speed)
