"""A worker's stop that also cuts short the REST calls the worker is waiting in.

A feed's backfill worker calls the store's REST client, which every feed of the store shares:
stopping the feed must not close the client, yet the worker may be waiting there for minutes, for
a rate-limit slot or a retry's pause.  Left waiting, the stopped feed's thread outlives it (and
piles up, as Backtrader starts feeds again for each run of an optimisation).  The worker makes its
calls inside :meth:`WorkerStop.guarding`; :meth:`~.rest.RestClient.call` then also gives up
(``TransportError``) once that stop is set.  A request already on the wire ends with its answer or
the client's timeout.

Example::

    stop = WorkerStop()
    with stop.guarding():      # on the worker's thread
        client.klines(...)     # raises TransportError once stop.set() is called
    stop.set()                 # from any thread; wakes the worker wherever it waits
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

_local = threading.local()


class WorkerStop:
    """An event that also calls the hooks registered while it was clear, once, when set.

    Example::

        stop = WorkerStop()
        forget = stop.on_set(lambda: print("stopping"))
        stop.set()                  # prints "stopping"
        stop.wait(1.0)              # True at once
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._hooks: list[Callable[[], None]] = []

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._event.wait(timeout)

    def set(self) -> None:
        with self._lock:
            self._event.set()
            hooks, self._hooks = self._hooks, []
        for hook in hooks:
            hook()

    def on_set(self, hook: Callable[[], None]) -> Callable[[], None]:
        """Call ``hook`` when the stop is set (at once if it is); return a function that forgets it."""
        with self._lock:
            if not self._event.is_set():
                self._hooks.append(hook)
                return lambda: self._forget(hook)
        hook()
        return lambda: None

    def _forget(self, hook: Callable[[], None]) -> None:
        with self._lock, contextlib.suppress(ValueError):
            self._hooks.remove(hook)

    @contextlib.contextmanager
    def guarding(self) -> Iterator[None]:
        """REST calls this thread makes inside the block give up once this stop is set."""
        previous, _local.stop = current_stop(), self
        try:
            yield
        finally:
            _local.stop = previous


@contextlib.contextmanager
def unguarded() -> Iterator[None]:
    """Calls made inside run to their end whatever stop guards the thread: they serve other workers too."""
    previous, _local.stop = current_stop(), None
    try:
        yield
    finally:
        _local.stop = previous


def current_stop() -> WorkerStop | None:
    """The stop guarding this thread's REST calls, if any."""
    return getattr(_local, "stop", None)
