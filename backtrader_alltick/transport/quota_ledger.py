"""The quota ledger: where a token's request history lives, so every user of the token obeys one plan.

AllTick counts requests per token, not per process (protocol/alltick.md 2, 6.1).  The
:class:`~.ratelimit.RateLimiter` decides *whether* a call may go; a ledger holds *what it
decides from* -- a small :class:`QuotaState` -- and runs each decision as one atomic
read-modify-write, so two processes can never both take the same slot.  Three ledgers:

- :class:`MemoryLedger`: this process only (no cache, or a plan without limits);
- :class:`~.quota_sqlite.FileLedger`: every process of a machine, in ``quota.sqlite`` next to
  the K-line cache (``BEGIN IMMEDIATE`` transactions);
- :class:`~.quota_redis.RedisLedger`: every machine that names the same Redis (WATCH/MULTI).

Shared ledgers store wall-clock seconds (Redis: the server's clock, so machines need not agree),
and hold state under a hash of the token (:func:`quota_key`), never the token itself.

The daily count belongs to the service's day.  protocol/alltick.md 6.1 says only that the cap
"resets at midnight", without a time zone (UNCERTAIN); the ledger resets it at 00:00 UTC, the
zone AllTick states its hours in and the simulator resets at (:data:`SERVICE_DAY_OFFSET_S`).

A hand-written ledger rather than pyrate-limiter or limits: those count calls in sliding
windows, while this plan also needs a spacing pushed back to when a call was answered, a hold
every user of the token obeys after a 429, and a count that resets at the service's midnight.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

from ..plans import Plan

T = TypeVar("T")
DAY_S = 86_400
# Seconds added to UTC before cutting days: 0 is midnight UTC (see the module docstring).
SERVICE_DAY_OFFSET_S = 0
LEDGER_FILE = "quota.sqlite"
QUOTA_URL_ENV = "ALLTICK_QUOTA_URL"


def service_day(epoch_s: float) -> int:
    """The number of the service's day at ``epoch_s`` (days since 1970-01-01 at the reset hour)."""
    return int((epoch_s + SERVICE_DAY_OFFSET_S) // DAY_S)


def quota_key(dialect: str, rest_url: str, token: str) -> str:
    """The ledger's name for ``token`` at one service: a hash, so no ledger ever holds the token."""
    return hashlib.sha256(f"{dialect}\n{rest_url.rstrip('/')}\n{token}".encode()).hexdigest()[:32]


@dataclass
class QuotaState:
    """What a limiter decides from: recent calls, the service's hold, and today's count.

    Times are the ledger's seconds (wall clock in shared ledgers).

    Example::

        state = QuotaState()
        state.roll(service_day(1_700_000_000.0))    # a new service day: the count starts at 0
        state.day_count                   # 0
    """

    last_by_endpoint: dict[str, float] = field(default_factory=dict)
    last_any: float | None = None
    minute: list[float] = field(default_factory=list)  # the latest calls, at most the per-minute cap
    blocked_until: float | None = None
    day: int | None = None
    day_count: int = 0

    def roll(self, day: int) -> None:
        """Start a new count when the service's day has turned."""
        # A day that went backwards is a clock set back: keep counting rather than forgive calls.
        if self.day is None or day > self.day:
            self.day, self.day_count = day, 0

    def settle_clock(self, now: float) -> None:
        """Bring stamps of a wall clock that was set back to ``now``, so calls cannot stall for long."""
        # A call can only have been made in the past; a later stamp means the clock moved back.
        self.last_by_endpoint = {name: min(at, now) for name, at in self.last_by_endpoint.items()}
        if self.last_any is not None:
            self.last_any = min(self.last_any, now)
        self.minute = [min(at, now) for at in self.minute]

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes | None) -> QuotaState:
        if not text:
            return cls()
        data = json.loads(text)
        return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})


class QuotaLedger(Protocol):
    """Holds one token's :class:`QuotaState` and changes it atomically."""

    shared: bool  # True when other processes see the same state

    def transact(self, change: Callable[[QuotaState, float], T]) -> T:
        """Run ``change(state, now)`` atomically after rolling the day; keep what it changed."""

    def close(self) -> None:
        """Let go of files and connections."""


class MemoryLedger:
    """The state of one process, for stores without a cache and plans without limits.

    ``now`` times the spacing (monotonic: a wall clock set back cannot stall calls);
    ``wall`` tells the service's day.

    Example::

        ledger = MemoryLedger()
        ledger.transact(lambda state, now: state.day_count)    # 0
    """

    shared = False

    def __init__(
        self, now: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time
    ) -> None:
        self._now = now
        self._wall = wall
        self._lock = threading.Lock()
        self._state = QuotaState()

    def __repr__(self) -> str:
        return "MemoryLedger()"

    def transact(self, change: Callable[[QuotaState, float], T]) -> T:
        with self._lock:
            now = self._now()
            self._state.roll(service_day(self._wall()))
            return change(self._state, now)

    def close(self) -> None:
        pass


def has_limits(plan: Plan) -> bool:
    """Whether ``plan`` limits anything a ledger would count (the simulator's ``unlimited`` does not)."""
    return bool(
        plan.endpoint_interval or plan.batch_interval or plan.min_spacing or plan.per_minute or plan.per_day
    )


def open_ledger(
    plan: Plan, key: str, *, directory: Path | None = None, url: str | None = None
) -> QuotaLedger | None:
    """The ledger a store's limiter shares: Redis when ``url`` (or ``$ALLTICK_QUOTA_URL``) names one,
    else ``quota.sqlite`` in ``directory`` (the K-line cache's); None (this process only) without
    either, or for a plan without limits.
    """
    url = url or os.environ.get(QUOTA_URL_ENV) or None
    if not has_limits(plan):
        return None
    if url:
        from .quota_redis import RedisLedger

        return RedisLedger(url, key)
    if directory is None:
        return None
    from .quota_sqlite import FileLedger

    return FileLedger(Path(directory) / LEDGER_FILE, key)
