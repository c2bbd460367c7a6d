"""Plan enforcement on the server side, in wall time (never market time).

The numbers come from the simulator's own plan table (:mod:`.plan_table`).  Requests
that are refused do not count against the budget, so a client that waits for
``Retry-After`` gets through.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from .plan_table import ServicePlan

BATCH_ENDPOINT = "batch-kline"
# An upgrade verdict: accept the socket, then cut it at once (AllTick: 606, then the close).
TOO_FREQUENT = "too frequent"


def endpoint_rate(interval: float) -> tuple[int, float]:
    """The calls an endpoint takes in any window of wall seconds, as the plan table words it.

    alltick.md 6.1 gives a rate per endpoint: "1 per 10 s", "1 per s", "10 per s", "20 per s".
    Below one second the plan's interval is a rate per second, not a spacing: "20 per s" admits
    twenty calls in any second, however they bunch on the way (not one every 50 ms).

    Example::

        endpoint_rate(0.05)    # (20, 1.0)
        endpoint_rate(3.0)     # (1, 3.0)
    """
    if interval >= 1.0:
        return 1, interval
    return max(1, round(1.0 / interval)), 1.0


class RestLimiter:
    """Per-token request budget: a rate per endpoint (:func:`endpoint_rate`), per-minute and per-day caps.

    Example::

        limiter = RestLimiter(lambda: service_plan("alltick", "free"))
        limiter.admit("tok", "kline")     # None: allowed; a float: seconds to wait
    """

    def __init__(self, plan: Callable[[], ServicePlan], now: Callable[[], float] = time.monotonic) -> None:
        self._plan = plan
        self._now = now
        self._lock = threading.Lock()
        self._calls: dict[tuple[str, str], deque[float]] = {}
        self._minute: dict[str, deque[float]] = {}
        self._day: dict[str, tuple[int, int]] = {}

    def admit(self, token: str, endpoint: str) -> float | None:
        """Count the call and return None, or return the seconds to wait when it is over budget."""
        plan = self._plan()
        now = self._now()
        with self._lock:
            waits = []
            interval = plan.batch_interval if endpoint == BATCH_ENDPOINT else plan.endpoint_interval
            calls = self._calls.setdefault((token, endpoint), deque())
            if interval:
                allowed, window = endpoint_rate(interval)
                while calls and now - calls[0] >= window:
                    calls.popleft()
                if len(calls) >= allowed:
                    waits.append(window - (now - calls[-allowed]))
            recent = self._minute.setdefault(token, deque())
            while recent and now - recent[0] >= 60.0:
                recent.popleft()
            if plan.per_minute is not None and len(recent) >= plan.per_minute:
                waits.append(60.0 - (now - recent[0]))
            day = int(time.time() // 86_400)  # the daily cap resets at midnight UTC
            day_seen, day_count = self._day.get(token, (day, 0))
            if day_seen != day:
                day_count = 0
            if plan.per_day is not None and day_count >= plan.per_day:
                waits.append(86_400 - time.time() % 86_400)
            if waits:
                return max(waits)
            if interval:
                calls.append(now)
            recent.append(now)
            self._day[token] = (day, day_count + 1)
            return None


class ConnectionBudget:
    """Concurrent WebSocket connections per (token, group); ``group`` is the endpoint family.

    Example::

        budget = ConnectionBudget(lambda: service_plan("alltick", "basic").ws_connections)
        budget.acquire("tok", "stock")    # True, then False for a second stock socket
    """

    def __init__(self, limit: Callable[[], int]) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._open: dict[tuple[str | None, str], int] = {}

    def acquire(self, token: str | None, group: str) -> bool:
        with self._lock:
            held = self._open.get((token, group), 0)
            if held >= self._limit():
                return False
            self._open[(token, group)] = held + 1
            return True

    def has_room(self, token: str | None, group: str) -> bool:
        with self._lock:
            return self._open.get((token, group), 0) < self._limit()

    def release(self, token: str | None, group: str) -> None:
        with self._lock:
            held = self._open.get((token, group), 0)
            self._open[(token, group)] = max(0, held - 1)


class SocketPacing:
    """Spacing between a token's sockets of one group: connection attempts, and requests across sockets.

    ``admit_connection``: an attempt less than the plan's ``reconnect_interval`` after the token's
    previous admitted attempt in the group is refused (alltick.md 5.5, 6.3).  ``admit_request``: a
    request less than ``ws_connection_spacing`` after the group's previous admitted request *on
    another socket* is refused (6.3); a socket's own spacing is its session's.  Refused attempts and
    requests do not count, so a client that waits gets through.  Wall time, never market time.

    Example::

        pacing = SocketPacing(lambda: service_plan("alltick", "premium"))
        pacing.admit_connection("tok", "stock")        # True
        pacing.admit_connection("tok", "stock")        # False: 3 s have not passed
        pacing.admit_request("tok", "stock", 1)        # True, then False for socket 2 within 3 s
    """

    def __init__(self, plan: Callable[[], ServicePlan], now: Callable[[], float] = time.monotonic) -> None:
        self._plan = plan
        self._now = now
        self._lock = threading.Lock()
        self._attempts: dict[tuple[str | None, str], float] = {}
        self._requests: dict[tuple[str | None, str], tuple[int, float]] = {}

    def admit_connection(self, token: str | None, group: str) -> bool:
        now, interval = self._now(), self._plan().reconnect_interval
        with self._lock:
            last = self._attempts.get((token, group))
            if interval and last is not None and now - last < interval:
                return False
            self._attempts[(token, group)] = now
            return True

    def admit_request(self, token: str | None, group: str, socket_id: int) -> bool:
        now, spacing = self._now(), self._plan().ws_connection_spacing
        with self._lock:
            last = self._requests.get((token, group))
            if spacing and last is not None and last[0] != socket_id and now - last[1] < spacing:
                return False
            self._requests[(token, group)] = (socket_id, now)
            return True
