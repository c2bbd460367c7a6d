"""A bounded buffer drained by one background thread: the shared engine of the sinks.

``write()`` never touches the network: it appends to the buffer and returns, so the
thread that holds the upstream connection is never blocked by a slow or dead sink.
The flusher thread sends batches; when the server is unreachable it puts the batch
back and retries with backoff.  Past ``max_buffer`` the oldest records are dropped,
counted and reported in a WARNING.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable
from typing import Any, TypeVar

from ..errors import AllTickError, APIError, ConfigError, TransportError
from ..transport.retry import backoff

logger: logging.Logger = logging.getLogger(__name__)

_Writer = TypeVar("_Writer", bound="BufferedWriter")


class BufferedWriter:
    """Base class of the sinks: subclasses implement ``_send(items)`` and may override ``_prepare``.

    ``_send`` raises :class:`TransportError` when the server cannot be reached (the batch
    is kept and retried without limit: the buffer bound is the limit), an
    :class:`APIError` with a 5xx ``status`` when the server failed on the batch (retried
    ``retries`` times, then dropped), and any other :class:`AllTickError` when the
    server rejected the batch (dropped at once, logged as an ERROR).

    Example::

        with RedisSink("redis://127.0.0.1:6379/0") as sink:   # a subclass
            sink.write(ticks)
            sink.flush(timeout=5)
    """

    # Counters a subclass adds to as its server confirms or refuses records.
    written: int
    dropped: int
    rejected: int

    def __init__(
        self,
        *,
        target: str,
        batch: int,
        max_buffer: int,
        flush_interval: float,
        retries: int | None,
        backoff_initial: float,
        backoff_max: float,
    ) -> None:
        for name, value in (("batch", batch), ("max_buffer", max_buffer)):
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, was {value!r}")
        if flush_interval < 0:
            raise ConfigError(f"flush_interval must be 0 or more seconds, was {flush_interval!r}")
        backoff(backoff_initial, backoff_max)  # validates the pair now, not in the thread
        self.target = target
        self.batch = batch
        self.max_buffer = max_buffer
        self.flush_interval = flush_interval
        self.retries = retries
        self._backoff = (backoff_initial, backoff_max)
        self._buffer: deque[Any] = deque()
        self._cond = threading.Condition()
        self._abort = threading.Event()
        self._stopping = False
        self._flush_waiters = 0
        self._flusher_waits = False  # the flusher sleeps on _cond: only then does a write wake it
        self._in_flight = 0
        self._oldest_at = 0.0
        self._outage_failures = 0
        self._drops_reported = 0
        self._drops_warned = False
        self.written: int = 0
        self.dropped: int = 0
        self.rejected: int = 0
        self._thread = threading.Thread(
            target=self._run, name=f"alltick-{type(self).__name__}-flusher", daemon=True
        )

    # -- public -------------------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Records accepted but not yet confirmed by the server."""
        with self._cond:
            return len(self._buffer) + self._in_flight

    def write(self, records: Iterable[Any]) -> None:
        """Queue ``records`` for the server; returns at once, never blocks on the network."""
        items = self._prepare(records)
        if not items:
            return
        with self._cond:
            if self._stopping:
                raise ConfigError(
                    f"{type(self).__name__} for {self.target} is closed; create a new one "
                    "to write, was asked to write after close()"
                )
            was_empty = not self._buffer
            if was_empty:
                self._oldest_at = time.monotonic()
            self._buffer.extend(items)
            # A relay writes record by record: the trim is called only when there is one to do.
            overflow = self._trim() if len(self._buffer) > self.max_buffer else 0
            if self._flusher_waits and (was_empty or len(self._buffer) >= self.batch):
                self._cond.notify_all()
        if overflow and not self._drops_warned:
            self._report_drops()

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Wait until every queued record is confirmed; return False if ``timeout`` passes first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._flush_waiters += 1
            self._cond.notify_all()
            try:
                while self._buffer or self._in_flight:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    self._cond.wait(remaining)
                return True
            finally:
                self._flush_waiters -= 1

    def close(self, timeout: float = 10.0) -> None:
        """Send what is queued (retrying for up to ``timeout`` seconds), then stop the thread."""
        with self._cond:
            if self._stopping and not self._thread.is_alive():
                return
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)
            self._abort.set()
            self._thread.join()
        self._close_connection()

    def __enter__(self: _Writer) -> _Writer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- for subclasses -----------------------------------------------------------------------------

    def _start(self) -> None:
        self._thread.start()

    def _prepare(self, records: Iterable[Any]) -> list[Any]:
        return list(records)

    def _send(self, items: list[Any]) -> None:
        raise NotImplementedError

    def _close_connection(self) -> None:
        """Release the client; called once the flusher has stopped."""

    # -- the flusher thread -------------------------------------------------------------------------

    def _run(self) -> None:
        delays = backoff(*self._backoff)
        server_failures = 0
        while True:
            items = self._next_batch()
            if items is None:
                return
            try:
                self._send(items)
            except TransportError as e:
                self._requeue(items)
                self._report_outage(e)
                if self._abort.wait(next(delays)):
                    self._give_up()
                    return
                continue
            except APIError as e:
                server_failures += 1
                if (
                    e.status is not None
                    and e.status >= 500
                    and (self.retries is None or server_failures <= self.retries)
                ):
                    self._requeue(items)
                    logger.warning(
                        "%s: %s failed on a batch of %d (attempt %d): %s",
                        type(self).__name__,
                        self.target,
                        len(items),
                        server_failures,
                        e,
                    )
                    if self._abort.wait(next(delays)):
                        self._give_up()
                        return
                    continue
                self._reject(items, e)
            except AllTickError as e:
                self._reject(items, e)
            except Exception:  # a bug in a subclass must not kill the flusher silently
                logger.exception(
                    "%s: dropped a batch of %d records after an unexpected error",
                    type(self).__name__,
                    len(items),
                )
                self._reject(items, None)
            else:
                self.written += len(items)
                if self._outage_failures or server_failures:
                    delays = backoff(*self._backoff)
                if self._outage_failures:
                    self._report_recovery()
            server_failures = 0
            with self._cond:
                self._in_flight = 0
                self._cond.notify_all()

    def _next_batch(self) -> list[Any] | None:
        with self._cond:
            while True:
                if self._buffer:
                    lingering = (
                        self.flush_interval > 0
                        and len(self._buffer) < self.batch
                        and not self._stopping
                        and not self._flush_waiters
                    )
                    remaining = self._oldest_at + self.flush_interval - time.monotonic()
                    if lingering and remaining > 0:
                        self._wait(remaining)
                        continue
                    take = min(self.batch, len(self._buffer))
                    if take == len(self._buffer):  # the usual case, copied at C speed while writers wait
                        items = list(self._buffer)
                        self._buffer.clear()
                    else:
                        items = [self._buffer.popleft() for _ in range(take)]
                    self._in_flight = take
                    self._oldest_at = time.monotonic()
                    return items
                if self._stopping:
                    return None
                self._wait(None)

    def _wait(self, timeout: float | None) -> None:
        # The caller holds _cond.
        self._flusher_waits = True
        try:
            self._cond.wait(timeout)
        finally:
            self._flusher_waits = False

    def _requeue(self, items: list[Any]) -> None:
        with self._cond:
            self._buffer.extendleft(reversed(items))
            self._in_flight = 0
            self._trim()
            self._cond.notify_all()

    def _trim(self) -> int:
        overflow = len(self._buffer) - self.max_buffer
        for _ in range(overflow):
            self._buffer.popleft()
        if overflow > 0:
            self.dropped += overflow
            return overflow
        return 0

    def _reject(self, items: list[Any], error: BaseException | None) -> None:
        self.rejected += len(items)
        if error is not None:
            logger.error(
                "%s: %s rejected a batch of %d records; they are dropped: %s",
                type(self).__name__,
                self.target,
                len(items),
                error,
            )

    def _report_outage(self, error: BaseException) -> None:
        self._outage_failures += 1
        if self._outage_failures == 1:
            logger.warning(
                "%s: %s; buffering up to %d records and retrying", type(self).__name__, error, self.max_buffer
            )
        if self.dropped > self._drops_reported:
            self._report_drops()

    def _report_drops(self) -> None:
        # The first drop of an outage is reported at once; later ones once per retry, not per write.
        self._drops_warned = True
        self._drops_reported = self.dropped
        logger.warning(
            "%s: buffer full (max_buffer=%d) while %s is unreachable: dropped %d oldest records "
            "so far, %d pending; raise max_buffer to keep more",
            type(self).__name__,
            self.max_buffer,
            self.target,
            self.dropped,
            self.pending,
        )

    def _report_recovery(self) -> None:
        logger.warning(
            "%s: %s is reachable again after %d failed attempts; %d records dropped in total",
            type(self).__name__,
            self.target,
            self._outage_failures,
            self.dropped,
        )
        self._outage_failures = 0
        self._drops_warned = False

    def _give_up(self) -> None:
        with self._cond:
            lost = len(self._buffer)
            self._buffer.clear()
            self._in_flight = 0
            self.dropped += lost
            self._cond.notify_all()
        logger.warning(
            "%s: closed while %s is unreachable: %d unsent records are lost",
            type(self).__name__,
            self.target,
            lost,
        )
