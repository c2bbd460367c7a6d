"""Ctrl-C and SIGTERM for the commands that run until stopped: ``stream``, ``record``, ``sim``, ``demo``.

The first signal asks the command to stop: it finishes what it holds (``record`` flushes its
sinks) and exits 0.  A second signal while it does so ends the process at once with
128 + the signal number (130 for Ctrl-C), flushing nothing more.

Why not Python's own ``KeyboardInterrupt`` everywhere: it is raised at whatever line the
main thread is on, and inside a library's ``with lock:`` it can leave the lock held, so the
socket thread that needs it next blocks and stopping hangs.  Why not ``Event.set()`` in the
handler: the handler runs on the main thread, and if it lands while that thread holds the
event's own lock (inside ``Event.wait``) it waits for itself forever.  So the handler only
flips a flag that the command's wait loop polls; it raises ``KeyboardInterrupt`` only while
the command is still starting, where a blocking request must be left at once.  The handlers
are installed explicitly, so Ctrl-C works even when the process inherited SIGINT ignored (a
shell without job control starts background commands that way).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any, TypeAlias

POLL_S = 0.1  # how long the main thread waits at most between looks at the flag
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# What signal.signal takes and returns: a function, SIG_DFL/SIG_IGN, or None (set outside Python).
_Handler: TypeAlias = "Callable[[int, FrameType | None], Any] | int | signal.Handlers | None"


class StopSignals:
    """SIGINT and SIGTERM as a flag the command polls; the second signal exits at once.

    Use as a context manager on the main thread (elsewhere Python allows no handlers and it
    does nothing).  Until :meth:`polling` is called a first signal also raises
    ``KeyboardInterrupt``, which the command turns into a clean stop.

    Example::

        with StopSignals() as signals:
            try:
                start_things()                # Ctrl-C here raises KeyboardInterrupt
            except KeyboardInterrupt:
                return 0
            signals.polling()
            while not signals.wait(1.0):      # Ctrl-C here ends the loop
                report_progress()
            flush_things()                    # a second Ctrl-C here exits at once (130)
    """

    def __init__(self) -> None:
        self.requested: bool = False  # set by the first signal; only ever read elsewhere
        self._starting = True
        self._previous: dict[int, _Handler] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._on_signal) for sig in STOP_SIGNALS}
        return self

    def __exit__(self, *exc_info: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def polling(self) -> None:
        """From now on the main thread polls :attr:`requested`: a first signal no longer raises."""
        self._starting = False

    def wait(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for a stop request, in short naps; True if one came."""
        deadline = time.monotonic() + seconds
        while not self.requested:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(POLL_S, left))
        return True

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            # No buffered stream and no lock: the main thread may be inside either right now.
            os.write(2, b"interrupted again: exiting without finishing\n")
            os._exit(128 + signum)
        self.requested = True
        if self._starting:
            raise KeyboardInterrupt
