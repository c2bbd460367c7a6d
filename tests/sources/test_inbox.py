"""The hand-over between a source's threads and its consumer: Inbox, the shared Wake, Outbox."""

from __future__ import annotations

import math
import threading
import time

from backtrader_alltick.errors import AllTickError
from backtrader_alltick.records import Kline
from backtrader_alltick.sources import BarReady, Failed, StateChanged
from backtrader_alltick.sources.inbox import Inbox, Outbox, Wake

WAIT = 10.0  # wall seconds: only guards against a hang


class Counted:
    """A source whose every input is an event, and whose timer (if any) makes one when it is due."""

    def __init__(self, wake: Wake, due_at: float = math.inf) -> None:
        self.inbox = Inbox(10, wake)
        self.wake, self.due_at = wake, due_at
        self.taken: list[object] = []
        self.asked = 0
        wake.attach(self.inbox, self)
        wake.schedule(self, self.due_in())

    def due_in(self) -> float:
        return self.due_at - time.monotonic()

    def take_input(self) -> bool:
        self.asked += 1
        self.taken.extend(self.inbox.take_all())
        if time.monotonic() >= self.due_at:
            self.taken.append("timer")
            self.due_at = math.inf
        self.wake.schedule(self, self.due_in())
        return self.has_events()

    def has_events(self) -> bool:
        return bool(self.taken)


def test_the_wait_for_many_sources_ends_with_the_input_of_any_and_takes_only_theirs():
    wake = Wake()
    quiet, busy = Counted(wake), Counted(wake)
    threading.Timer(0.05, busy.inbox.put, args=("trade",)).start()

    assert wake.wait_for_events(WAIT)

    assert busy.taken == ["trade"] and quiet.asked == 0 and not wake.has_input()


def test_the_wait_runs_a_timer_that_falls_due_and_ends_with_its_event():
    wake = Wake()
    timed = Counted(wake, due_at=time.monotonic() + 0.05)

    assert wake.wait_for_events(WAIT)

    assert timed.taken == ["timer"]


def test_the_wait_answers_at_once_while_a_source_holds_an_event_and_times_out_when_none_comes():
    wake = Wake()
    holding = Counted(wake)
    holding.taken.append("bar")
    assert wake.wait_for_events(WAIT)

    holding.taken.clear()
    assert not wake.wait_for_events(0.01)


def test_a_full_inbox_refuses_without_blocking_and_a_closed_one_no_longer_wakes():
    wake = Wake()
    inbox = Inbox(1, wake)
    assert inbox.put("first") and not inbox.put("second")
    assert inbox.overflowed and list(inbox.take_all()) == ["first"]

    inbox.close()
    inbox.put("late")
    assert not wake.has_input() and inbox.empty()


def test_the_outbox_tells_live_before_the_last_bars_and_a_failure_last():
    bars = [Kline("BTCUSDT", "1m", end - 60_000, end, 1, 1, 1, 1, 1, 1) for end in (60_000, 120_000, 180_000)]
    out = Outbox()
    for bar in bars:
        out.bar(bar, quoted=False)

    # The bars themselves: an unquoted BarReady's NaN book compares unequal field by field (Python 3.13).
    assert bar_of(out.take(caught_up=False)) is bars[0]
    assert out.take(caught_up=True) == StateChanged("live")
    assert [bar_of(out.take(caught_up=True)) for _ in range(2)] == [bars[1], bars[2]]

    error = AllTickError("gone")
    out.bar(bars[0], quoted=True)
    out.fail(error)
    assert out.take(caught_up=True) == Failed(error) and out.take(caught_up=True) is None


def bar_of(event: object) -> object:
    assert isinstance(event, BarReady)
    return event.bar
