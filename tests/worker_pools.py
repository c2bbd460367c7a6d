"""Process pools for Backtrader's optimisation in tests: a pool that can no longer deliver fails at once.

``cerebro.run()`` with ``maxcpus`` > 1 reads ``multiprocessing.Pool(...).imap(...)`` to its end.
Python's pool then waits for ever when its result thread has died (a worker's result that cannot
be unpickled) or a worker died in the middle of a task (the task is lost): the test would hang to
pytest-timeout, and the pool's leftovers break at interpreter exit with errors that hide the cause.
:class:`WatchedPool` looks at both while it waits and raises :class:`PoolBroken` instead.

Example::

    monkeypatch.setattr(multiprocessing, "Pool", watched_pool_factory("forkserver", made))
    cerebro.run()          # PoolBroken, not a hang, when the pool cannot finish
    for pool in made:
        pool.terminate()
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.pool
from collections.abc import Callable, Iterator
from typing import Any

# How often a waiting imap looks at the pool's threads and workers.
LOOK_EVERY_S = 0.5


class PoolBroken(AssertionError):
    """The pool can no longer deliver every result; the message says why."""


class WatchedPool(multiprocessing.pool.Pool):
    """A pool whose ``imap`` raises :class:`PoolBroken` when its results can no longer come."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.workers: list[multiprocessing.process.BaseProcess] = []  # every worker started, the dead too
        self.Process = self._record_worker  # Pool starts its workers through self.Process
        super().__init__(*args, **kwargs)

    def _record_worker(self, ctx: Any, *args: Any, **kwargs: Any) -> multiprocessing.process.BaseProcess:
        worker = ctx.Process(*args, **kwargs)
        self.workers.append(worker)
        return worker

    def imap(self, func: Callable[..., Any], iterable: Any, chunksize: int = 1) -> Iterator[Any]:
        results = super().imap(func, iterable, chunksize)
        while True:
            try:
                yield results.next(timeout=LOOK_EVERY_S)
            except StopIteration:
                return
            except multiprocessing.TimeoutError:
                self._check_alive()

    def terminate(self) -> None:
        if not self._result_handler.is_alive():
            # Those results are lost; Pool refuses to end while it still expects them.
            self._cache.clear()
        super().terminate()

    def _check_alive(self) -> None:
        if not self._result_handler.is_alive():
            raise PoolBroken(
                "the pool's result thread died (its exception is in the warnings: a worker's result "
                "or error that cannot be unpickled here); the results will never come"
            ) from None
        died = [f"{worker.name} (exit code {worker.exitcode})" for worker in self.workers if worker.exitcode]
        if died:
            lost = ", ".join(died)
            raise PoolBroken(f"a worker died in the middle of a task, which is lost: {lost}") from None


def watched_pool_factory(start_method: str, made: list[WatchedPool]) -> Callable[..., WatchedPool]:
    """A stand-in for ``multiprocessing.Pool`` starting ``start_method`` workers; pools go in ``made``."""
    context = multiprocessing.get_context(start_method)

    def make(*args: Any, **kwargs: Any) -> WatchedPool:
        pool = WatchedPool(*args, context=context, **kwargs)
        made.append(pool)
        return pool

    return make
