"""What tests steer and observe on a running simulator: faults, counters and the journal."""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from ..errors import ConfigError, Timeout
from .kline_flaws import check_kline_flaws

RATE_LIMIT_REPLIES = ("ret605", "http429")


@dataclass
class Faults:
    """Misbehaviour switched on per run (``Simulator(faults=...)``) or at run time (attributes).

    Burst fields count down: each affected request or frame uses one.  Every fault that
    fires is counted in ``sim.counters["faults"]`` under its field name.

    Example::

        sim.faults.rate_limit_burst = 3        # the next three REST requests are rate limited
        sim.faults.drop_after_frames = 100     # every connection drops after 100 pushes
    """

    drop_after_frames: int | None = None  # close each socket abruptly after it pushed N frames
    drop_every: float | None = None  # wall seconds between abrupt drops of every socket
    ignore_heartbeats: bool = False  # stop answering 22000 / ping
    malformed_frames: int = 0  # the next N pushes are broken JSON
    truncated_frames: int = 0  # the next N pushes are cut mid-frame, then the socket drops
    duplicate_every: int | None = None  # every Nth tick push is sent twice
    reorder_every: int | None = None  # every Nth tick push swaps with the one before (across steps too)
    # After a reconnect or a malformed frame, first re-send the last trade pushed before the current
    # minute began (same seq, already delivered), as a server replaying its last push does.
    resend_stale_trade: bool = False
    rate_limit_burst: int = 0  # the next N REST requests get the plan's rate-limit reply
    server_error_burst: int = 0  # the next N REST requests get HTTP ``server_error_status``
    server_error_status: int = 503
    slow_ms: int = 0  # delay every REST response (and WebSocket upgrade) by this much
    push_lag_ms: int = 0  # push each trade this many market ms after its stamp: a feed running behind
    reject_token: bool = False  # every token is refused, even valid ones
    rate_limit_reply: str = "ret605"  # AllTick: "ret605" (HTTP 200, ret 605) or "http429"
    kline_flaws: dict[int, str] = field(default_factory=dict)  # bar start ms -> flaw (sim/kline_flaws.py)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.rate_limit_reply not in RATE_LIMIT_REPLIES:
            raise ConfigError(
                f"rate_limit_reply must be one of {', '.join(RATE_LIMIT_REPLIES)}, "
                f"was {self.rate_limit_reply!r}"
            )
        check_kline_flaws(self.kline_flaws)

    def take(self, name: str) -> bool:
        """Use one unit of a burst counter; True if the fault fires now."""
        with self._lock:
            left = getattr(self, name)
            if left > 0:
                setattr(self, name, left - 1)
                return True
            return False

    def update(self, **settings: Any) -> None:
        names = {f.name for f in fields(self) if not f.name.startswith("_")}
        for name, value in settings.items():
            if name not in names:
                raise ConfigError(f"fault must be one of {', '.join(sorted(names))}, was {name!r}")
            setattr(self, name, value)


class Counters:
    """Thread-safe counters; ``snapshot()`` is what ``sim.counters`` returns."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._plain: Counter[str] = Counter()
        self._by_path: Counter[str] = Counter()
        self._errors: Counter[str] = Counter()
        self._faults: Counter[str] = Counter()

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._plain[name] += amount

    def request(self, path: str) -> None:
        with self._lock:
            self._plain["rest_requests"] += 1
            self._by_path[path] += 1

    def error(self, code: int | str) -> None:
        with self._lock:
            self._errors[str(code)] += 1

    def fault(self, name: str) -> None:
        with self._lock:
            self._faults[name] += 1

    def snapshot(self, **extra: int) -> dict[str, Any]:
        with self._lock:
            out: dict[str, Any] = {
                name: 0
                for name in (
                    "rest_requests",
                    "rest_replies",
                    "ws_connections_opened",
                    "ws_connections_rejected",
                    "ws_messages_received",
                    "frames_sent",
                    "ticks_pushed",
                    "bytes_sent",
                )
            }
            out.update(self._plain)
            out["rest_requests_by_path"] = dict(self._by_path)
            out["errors_sent"] = dict(self._errors)
            out["faults"] = dict(self._faults)
        out.update(extra)
        return out


@dataclass(frozen=True)
class JournalEntry:
    """One thing a client did: ``kind`` is rest, ws_open, ws_message or ws_close."""

    kind: str
    path: str
    wall_time: float
    connection: int | None = None
    params: dict[str, Any] = field(default_factory=dict)  # REST query parameters
    message: Any = None  # parsed JSON of a WebSocket message or REST body (raw text if not JSON)
    token: str | None = None


class Journal:
    """Every client request and WebSocket message, in arrival order (bounded).

    Example::

        entry = sim.journal.wait_for(lambda e: e.kind == "ws_message"
                                     and e.message.get("cmd_id") == 22004, timeout=5)
    """

    def __init__(self, capacity: int = 100_000) -> None:
        self._entries: deque[JournalEntry] = deque(maxlen=capacity)
        self._changed = threading.Condition()

    def record(self, entry: JournalEntry) -> None:
        with self._changed:
            self._entries.append(entry)
            self._changed.notify_all()

    @property
    def entries(self) -> list[JournalEntry]:
        with self._changed:
            return list(self._entries)

    def clear(self) -> None:
        with self._changed:
            self._entries.clear()

    def wait_for(self, predicate: Callable[[JournalEntry], bool], timeout: float = 5.0) -> JournalEntry:
        """Return the first entry (past or future) matching ``predicate``; raise Timeout after ``timeout``."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._changed:
            while True:
                entries = list(self._entries)
                for entry in entries[seen:]:
                    if predicate(entry):
                        return entry
                seen = len(entries)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Timeout(
                        f"journal: no entry matched within {timeout} s ({seen} recorded); "
                        "pass a longer timeout or check the predicate"
                    )
                self._changed.wait(left)
