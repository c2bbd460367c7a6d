"""Threads of the package that outlive the test that made them: a stop or close that did not end them.

Every thread of the package and of the simulator is named ``alltick-...`` or ``sim-...``.  A test
records the threads alive before it (after the fixtures of wider scope are up); once its own
fixtures are torn down (every simulator closed, every store stopped), each new thread of those
names must end: :func:`left_behind` joins them, within :data:`JOIN_S` in all, and returns those
still alive.  Joining waits on the threads' own end, so a test that leaves nothing behind pays
nothing, and one whose threads are winding down (a simulator's handler of a closed socket) pays
only until they are gone.

Example::

    before = threads_now()
    run_the_test()
    assert not left_behind(before), describe(left_behind(before))
"""

from __future__ import annotations

import sys
import threading
import time
import traceback

WATCHED = ("alltick-", "sim-")

# Wall seconds, in all, a test's threads get to end after its teardown before they count as left behind.
JOIN_S = 5.0


class Cost:
    """What the checks cost the run: wall seconds spent joining, and in how many tests."""

    seconds = 0.0
    tests = 0
    checks = 0


def threads_now() -> set[threading.Thread]:
    return set(threading.enumerate())


def left_behind(before: set[threading.Thread], join_s: float = JOIN_S) -> list[threading.Thread]:
    """The watched threads started since ``before`` still alive after joining them for ``join_s`` in all."""
    new = [
        thread for thread in threading.enumerate() if thread not in before and thread.name.startswith(WATCHED)
    ]
    Cost.checks += 1
    started = time.monotonic()
    deadline = started + join_s
    for thread in new:
        thread.join(max(0.0, deadline - time.monotonic()))
    if new:
        Cost.seconds += time.monotonic() - started
        Cost.tests += 1
    return [thread for thread in new if thread.is_alive()]


def describe(threads: list[threading.Thread]) -> str:
    """Each thread's name and where it is now (the last frames of its stack)."""
    frames = sys._current_frames()
    parts = []
    for thread in threads:
        frame = frames.get(thread.ident) if thread.ident is not None else None
        stack = "".join(traceback.format_stack(frame)[-6:]) if frame is not None else "  (no stack)\n"
        parts.append(f"{thread.name} (daemon={thread.daemon}):\n{stack}")
    return f"{len(threads)} thread(s) outlived the test that made them:\n" + "\n".join(parts)


def summary() -> str:
    return (
        f"thread check: {Cost.checks} tests checked; {Cost.tests} waited {Cost.seconds:.1f} s in all "
        "for their threads to end"
    )
