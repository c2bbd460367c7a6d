"""The hand-over between a source's threads and its consumer: an inbox, a shared wake-up and an outbox.

A source's threads (the stream hub's reader, a backfill worker, a Redis reader) only ever put
into an :class:`Inbox`; everything else runs on the consumer's thread, so a source's state needs
no lock.  Every inbox of a consumer tells one :class:`Wake`, so a thread driving many sources
(Cerebro with many feeds, the relay) waits once for all of them, and the wake takes the input and
runs the timers of each while it waits.  What a source hands out waits in its :class:`Outbox`
until the consumer takes it.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Literal

from ..errors import AllTickError
from ..records import Depth, Kline, Tick
from . import BarReady, BarSource, Event, Failed, SourceState, StateChanged


class Wake:
    """One wake-up shared by the sources one thread drives, and the waiting that drives them.

    Each source attaches its inbox and itself.  :meth:`wait_for_events` takes the input of every
    source that has some, and runs the timers of every source that has one due, until one of them
    has an event ready: the thread waits once for all its sources, and quiet ones cost nothing.
    :meth:`wait` only waits (for input, or the earliest timer).

    Example::

        wake = Wake()
        sources = [StreamBars(store, inst, spec, options, None, wake=wake) for inst in instruments]
        wake.wait_for_events(0.5)           # then poll(0) each source
    """

    def __init__(self) -> None:
        self._ready: set[Inbox] = set()
        self._changed = threading.Condition(threading.Lock())
        self._owners: dict[Inbox, BarSource] = {}
        self._due: dict[BarSource, float] = {}  # source -> monotonic moment its timer is due
        # When the last wait_for_events returned (monotonic): a consumer that passes over its sources
        # in turn waits once a pass, not again in each quiet source after the event that woke it.
        self.waited_until: float = -math.inf
        # True while drive() runs: between the consumer's passes, when a source may ask afresh.
        self.driving: bool = False

    def attach(self, inbox: Inbox, source: BarSource) -> None:
        """Drive ``source`` (its ``take_input()`` and ``due_in()``), whose threads put into ``inbox``."""
        self._owners[inbox] = source
        self._due[source] = math.inf

    def detach(self, inbox: Inbox, source: BarSource) -> None:
        self._owners.pop(inbox, None)
        self._due.pop(source, None)
        self._ready.discard(inbox)

    def notify(self, inbox: Inbox) -> None:
        """``inbox`` has input (any thread)."""
        if inbox in self._ready:
            return  # the waiter has been told already; the input was put before this check
        with self._changed:
            self._ready.add(inbox)
            self._changed.notify_all()

    def taken(self, inbox: Inbox) -> None:
        """The consumer is about to take everything ``inbox`` holds."""
        self._ready.discard(inbox)

    def schedule(self, source: BarSource, due_in: float) -> None:
        """``source`` has timed work in ``due_in`` wall seconds (``math.inf``: none)."""
        if source in self._due:
            self._due[source] = time.monotonic() + max(due_in, _MIN_TIMER_S)

    def due_in(self) -> float:
        """Wall seconds until the earliest timer of an attached source is due (``math.inf``: none)."""
        return min(self._due.values(), default=math.inf) - time.monotonic()

    def has_input(self) -> bool:
        """True when some inbox holds input its consumer has not taken."""
        return bool(self._ready)

    def wait(self, timeout: float) -> bool:
        """Wait at most ``timeout`` wall seconds for input; return True when some inbox has any."""
        with self._changed:
            if not self._ready and timeout > 0:
                self._changed.wait(timeout)
            return bool(self._ready)

    def wait_for_events(self, timeout: float) -> bool:
        """Drive the attached sources for at most ``timeout`` wall seconds, until one has an event.

        Returns True as soon as a source has an event ready (then poll each with 0).
        """
        try:
            if any(source.has_events() for source in tuple(self._owners.values())):
                return True
            return bool(self.drive(timeout))
        finally:
            self.waited_until = time.monotonic()

    def drive(self, timeout: float) -> list[BarSource]:
        """Take the input and run the due timers of the attached sources for at most ``timeout`` wall
        seconds, until some have an event ready; return those (empty: none came)."""
        deadline = time.monotonic() + timeout
        self.driving = True
        try:
            while True:
                now = time.monotonic()
                busy = [self._owners[inbox] for inbox in tuple(self._ready) if inbox in self._owners]
                busy += [s for s, due in tuple(self._due.items()) if due <= now and s not in busy]
                ready = [source for source in busy if source.take_input()]
                if ready:
                    return ready
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                with self._changed:
                    if not self._ready:
                        self._changed.wait(min(remaining, self.due_in()))
        finally:
            self.driving = False


# A timer found due again at once is looked at after this long, never in a spin.
_MIN_TIMER_S = 0.001


class Inbox:
    """Input a source's threads put for its consumer; never blocks the putter unless asked to.

    Example::

        inbox = Inbox(1000, wake)
        inbox.put(tick)                    # a socket thread
        for item in inbox.take_all():      # the consumer's thread
            handle(item)
    """

    def __init__(self, size: int, wake: Wake) -> None:
        self.overflowed: bool = False  # set by a putter, cleared by the consumer
        # A deque, not a queue.Queue: its append and popleft are atomic on their own, where a Queue
        # takes a lock and signals a condition per item on both sides, on the relay's busiest path.
        # With several putting threads the bound may be passed by one item per extra thread.
        self._items: deque[object] = deque()
        self._size = size
        self._room = threading.Condition(threading.Lock())  # for put_waiting only
        self._wake = wake
        self._closed = False

    def put(self, item: object) -> bool:
        """Queue ``item`` without waiting; False when the inbox was full and ``item`` was lost."""
        if self._closed:
            return True
        items = self._items
        if len(items) >= self._size:
            self.overflowed = True
            self._wake.notify(self)
            return False
        items.append(item)
        self._wake.notify(self)
        return True

    def put_waiting(self, item: object, timeout: float) -> bool:
        """Queue ``item``, waiting up to ``timeout`` for room (a reader that may fall behind)."""
        if self._closed:
            return True
        deadline = time.monotonic() + timeout
        with self._room:
            while len(self._items) >= self._size:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._room.wait(remaining)
            self._items.append(item)
        self._wake.notify(self)
        return True

    def take_all(self) -> Iterator[object]:
        """Everything queued now, oldest first (the consumer's thread)."""
        self._wake.taken(self)
        items = self._items
        try:
            for _ in range(len(items)):
                try:
                    item = items.popleft()
                except IndexError:
                    return
                yield item
        finally:
            with self._room:  # a put_waiting may wait for the room just made
                self._room.notify_all()

    def empty(self) -> bool:
        return not self._items

    def close(self) -> None:
        """Take no more input and stop waking the consumer for what is left."""
        self._closed = True
        self._wake.taken(self)


class Outbox:
    """What a source hands its consumer: bars in order, state notes ahead of them, one failure last.

    LIVE is told just before the last bar or two of history (Backtrader's convention), so the
    source says whether it has caught up with the present when an event is taken.

    Example::

        out = Outbox()
        out.bar(kline, quoted=False)
        out.take(caught_up=False)          # BarReady(kline)
    """

    def __init__(self) -> None:
        self.state: SourceState | Literal["over"] = "delayed"
        self.bid: float = math.nan
        self.ask: float = math.nan
        self._bars: deque[tuple[Kline | Tick, bool]] = deque()
        self._notes: deque[StateChanged | Failed] = deque()

    def bar(self, bar: Kline | Tick, quoted: bool) -> None:
        """Queue ``bar``; ``quoted``: the book held when it is handed out belongs to it."""
        if self.state != "over":
            self._bars.append((bar, quoted))

    def note(self, state: SourceState) -> None:
        """Move to ``state`` and tell the consumer (ahead of bars already queued, as a notification)."""
        self.state = state
        self._notes.append(StateChanged(state))

    def fail(self, error: AllTickError) -> None:
        if self.state != "over":
            self.state = "over"
            self._bars.clear()
            self._notes.append(Failed(error))

    def book(self, depth: Depth) -> None:
        self.bid = depth.best_bid if depth.best_bid is not None else math.nan
        self.ask = depth.best_ask if depth.best_ask is not None else math.nan

    def has_pending(self, caught_up: bool = False) -> bool:
        """True when :meth:`take` has an event; ``caught_up`` as for it (then LIVE is one, if not told)."""
        if self.state == "over":
            return bool(self._notes)  # the failure not yet handed out; nothing after it counts
        return bool(self._bars or self._notes) or (caught_up and self.state != "live")

    def take(self, caught_up: bool) -> Event | None:
        """The next event, or None; ``caught_up``: the source's bars now come as they close."""
        if self._notes:
            return self._notes.popleft()
        if self.state == "over":
            return None
        if self.state != "live" and caught_up and len(self._bars) <= 2:
            self.note("live")
            return self._notes.popleft()
        if self._bars:
            bar, quoted = self._bars.popleft()
            return BarReady(bar, self.bid, self.ask) if quoted else BarReady(bar)
        return None
