"""What every threaded source shares: an inbox its threads post to, and events out through ``poll``.

A source's threads (a socket reader, a backfill worker, a Redis reader) only ever post to the
inbox; everything else runs on the consumer's thread inside :meth:`InboxSource.poll`, so a
source's state needs no lock.  The consumer learns of new input either by waiting in ``poll``
or, when it drives many sources from one thread, by waiting on a shared ``wake`` event that
every post sets.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections import deque

from ..errors import AllTickError
from ..records import Depth, Kline, Tick
from . import COUNTERS, BarReady, Event, Failed, StateChanged


class InboxSource:
    """Base of the threaded sources: the inbox, the queue of bars and notes, the book and the state.

    A subclass handles what its threads posted in :meth:`_handle`, hands bars out with
    :meth:`_emit`, says when it has caught up with the present in :meth:`_caught_up` and may
    run timers in :meth:`_run_timers` (due :meth:`due_in` wall seconds from now).

    Example::

        class Replayed(InboxSource):     # bars a reader thread posts with self.inbox.put(bar)
            def _handle(self, item):
                self._emit(item, quoted=False)

            def _caught_up(self):
                return self.inbox.empty()
    """

    def __init__(self, inbox_size: int, wake: threading.Event | None = None) -> None:
        self.stats = dict.fromkeys(COUNTERS, 0)
        self.inbox: queue.Queue = queue.Queue(maxsize=inbox_size)
        self.state = "delayed"  # or "live", "connbroken", "over"
        self.bid = self.ask = math.nan
        self._wake = wake
        self._bars: deque[tuple[Kline | Tick, bool]] = deque()
        self._notes: deque[StateChanged | Failed] = deque()

    # -- the consumer's thread ----------------------------------------------------------------------

    def poll(self, timeout: float) -> Event | None:
        """The next event, waiting at most ``timeout`` wall seconds; None when there is none yet."""
        deadline = time.monotonic() + timeout
        while True:
            self._drain()
            if self.state != "over":
                self._run_timers()
            event = self._next_event()
            if event is not None:
                return event
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.state == "over":
                return None
            try:
                item = self.inbox.get(timeout=max(min(remaining, self.due_in()), 0.0))
            except queue.Empty:
                continue
            if self.state != "over":
                self._handle(item)

    def has_pending(self) -> bool:
        """True when :meth:`poll` has an event ready or input waiting."""
        if self.state == "over":
            return bool(self._notes)  # the failure not yet handed out; nothing after it counts
        return bool(self._bars or self._notes) or not self.inbox.empty()

    def due_in(self) -> float:
        """Wall seconds until :meth:`poll` has timed work even without new input (inf: none)."""
        return math.inf

    def close(self) -> None:
        """Stop the source's threads and release its connections; idempotent."""

    # -- for subclasses (consumer's thread) ----------------------------------------------------------

    def _emit(self, bar: Kline | Tick, quoted: bool) -> None:
        """Queue ``bar``; ``quoted``: the book held when it is handed out belongs to it."""
        self._bars.append((bar, quoted))

    def _note(self, state: str) -> None:
        """Move to ``state`` and tell the consumer (ahead of bars already queued, as a notification)."""
        self.state = state
        self._notes.append(StateChanged(state))

    def _fail(self, error: AllTickError) -> None:
        if self.state != "over":
            self.state = "over"
            self._bars.clear()
            self._notes.append(Failed(error))

    def _take_book(self, depth: Depth) -> None:
        self.bid = depth.best_bid if depth.best_bid is not None else math.nan
        self.ask = depth.best_ask if depth.best_ask is not None else math.nan

    def _drain(self) -> None:
        for _ in range(self.inbox.qsize()):
            if self.state == "over":
                return  # what is still queued no longer matters
            try:
                self._handle(self.inbox.get_nowait())
            except queue.Empty:
                return

    def _handle(self, item: object) -> None:
        raise NotImplementedError

    def _run_timers(self) -> None:
        pass

    def _caught_up(self) -> bool:
        """True once bars come as they close (the feed is then LIVE)."""
        raise NotImplementedError

    # -- for subclasses (their own threads) ----------------------------------------------------------

    def _wake_consumer(self) -> None:
        if self._wake is not None:
            self._wake.set()

    # -- internals ----------------------------------------------------------------------------------

    def _next_event(self) -> Event | None:
        if self._notes:
            return self._notes.popleft()
        if self.state == "over":
            return None
        # LIVE is told just before the last bar or two of history: Backtrader's convention.
        if self.state != "live" and self._caught_up() and len(self._bars) <= 2:
            self._note("live")
            return self._notes.popleft()
        if self._bars:
            bar, quoted = self._bars.popleft()
            return BarReady(bar, self.bid, self.ask) if quoted else BarReady(bar)
        return None
