"""Redis relay storage: ``RedisSink`` writes records into capped streams.

The relay holds the one upstream connection and writes every record here; any number
of consumers read the streams with :class:`~backtrader_alltick.transport.redis_reader.RedisReader`
and resume from the last stream ID they saw.  Key layout and field encoding:
:mod:`backtrader_alltick.wire.redis_streams`.  The ``redis`` package is optional
(``pip install backtrader-alltick[redis]``) and is imported only when a sink is created.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable

from ..errors import ConfigError, TransportError
from ..records import Record
from ..transport import redis_client
from ..transport.redis_client import DEFAULT_URL
from ..transport.urls import safe_url
from ..wire import redis_streams
from . import redis_batch
from .buffer import BufferedWriter

logger: logging.Logger = logging.getLogger(__name__)


MARKER_TTL_S = 86_400  # a sink's batch marker outlives any outage it could be asked about


class RedisSink(BufferedWriter):
    """Write ticks, quotes, depth and closed bars into capped Redis streams, batched, one call per batch.

    Each record goes into the stream of its symbol and kind (``XADD ... MAXLEN ~ maxlen``)
    and updates the symbol's latest-values hash.  Bars get the stream ID ``<end_ms>-0``,
    so a restarted relay that writes a bar again is refused by Redis (counted in
    ``duplicates``) instead of repeating it.  ``write()`` only queues: a background
    thread sends, and while Redis is down keeps up to ``max_buffer`` records, dropping
    the oldest past that with a WARNING.  Only closed bars may be written.  Each batch is one
    atomic call of a small Lua script (:mod:`~backtrader_alltick.sinks.redis_batch`), so the
    server must allow scripting (EVAL/EVALSHA), as any Redis with streams does unless an ACL
    forbids it.

    Parameters
    ----------
    url : str
        ``redis://[:password@]host:port/db``.
    prefix : str
        First part of every key (``alltick:tick:AAPL.US``).
    maxlen : int
        Approximate length each stream is capped at.
    batch : int
        Most records sent in one call.
    max_buffer : int
        Most records kept while Redis is unreachable.
    flush_interval : float
        Seconds a partial batch may wait for more records (0: send at once).

    Example::

        with RedisSink("redis://127.0.0.1:6379/0") as sink:
            sink.write([Tick("AAPL.US", time=1_700_000_000_000, price=190.1, volume=5)])
    """

    # BufferedWriter's counters, added to here too: a batch found landed, commands Redis refused.
    written: int
    rejected: int

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        prefix: str = "alltick",
        maxlen: int = 100_000,
        batch: int = 500,
        max_buffer: int = 1_000_000,
        flush_interval: float = 0.0,
        socket_timeout: float = 5.0,
        backoff_initial: float = 0.05,
        backoff_max: float = 5.0,
    ) -> None:
        if not isinstance(maxlen, int) or maxlen < 1:
            raise ConfigError(f"maxlen must be a positive integer, was {maxlen!r}")
        super().__init__(
            target=safe_url(url),
            batch=batch,
            max_buffer=max_buffer,
            flush_interval=flush_interval,
            retries=None,
            backoff_initial=backoff_initial,
            backoff_max=backoff_max,
        )
        self._redis = redis_client.import_redis()
        self._client = redis_client.connect(self._redis, url, socket_timeout)
        # The flusher's own connection for the batch calls: it connects on first use, so a sink can be
        # made while Redis is down.
        self._connection = self._client.connection_pool.make_connection()
        self.prefix = prefix
        self.maxlen = maxlen
        self.duplicates: int = 0
        self._marker = f"{prefix}:sink:{uuid.uuid4().hex}"
        self._batch_number = 0
        self._packer = redis_batch.BatchPacker(prefix, maxlen, self._marker, MARKER_TTL_S)
        self._unconfirmed: tuple[Record, int, int] | None = None
        self._start()

    def __repr__(self) -> str:
        return f"RedisSink({self.target!r}, prefix={self.prefix!r}, pending={self.pending})"

    def _prepare(self, records: Iterable[Record]) -> list[Record]:
        items = list(records)
        for record in items:
            if type(record) not in redis_streams.ENCODERS:
                raise ConfigError(
                    f"RedisSink writes Tick, Quote, Depth and Kline records, was {type(record).__name__}"
                )
        return items

    def _send(self, items: list[Record]) -> None:
        # A batch whose reply was lost (a timeout, a cut connection) may have been applied all the
        # same.  Each batch is one atomic script call that also stamps its number on a marker key, so
        # the retry asks whether it landed instead of writing its ticks a second time (auto IDs).
        if self._unconfirmed is not None and self._drop_landed(items, self._unconfirmed) and not items:
            return
        self._batch_number += 1
        number = self._batch_number
        count, body = self._packer.pack(items, number)
        try:
            with redis_client.map_errors(self._redis, self.target):
                duplicates, refused, first = self._run_batch(count, body)
        except TransportError:
            self._unconfirmed = (items[0], len(items), number)
            raise
        self._count_refusals(duplicates, refused, first)

    def _run_batch(self, count: int, body: bytes) -> list:
        connection = self._connection
        try:
            connection.send_packed_command([redis_batch.batch_command(count, body, with_script=False)])
            return connection.read_response()
        except self._redis.exceptions.NoScriptError:
            # A restarted (or flushed) server has forgotten the script: send it along this once.
            connection.send_packed_command([redis_batch.batch_command(count, body, with_script=True)])
            return connection.read_response()

    def _drop_landed(self, items: list[Record], unconfirmed: tuple[Record, int, int]) -> bool:
        """Remove from ``items`` the ``unconfirmed`` batch if Redis applied it; True if it did."""
        first, count, number = unconfirmed
        if not items or items[0] is not first or len(items) < count:
            self._unconfirmed = None  # the buffer dropped part of it: it cannot be told apart
            return False
        with redis_client.map_errors(self._redis, self.target):
            landed = self._client.get(self._marker) == str(number).encode()
        self._unconfirmed = None
        if landed:
            self.written += count
            del items[:count]  # the buffer re-queues this same list if the rest fails
        return landed

    def _count_refusals(self, duplicates: int, refused: int, first: bytes) -> None:
        self.duplicates += duplicates
        if duplicates:
            logger.debug("RedisSink: %d bars were already in their streams and were not repeated", duplicates)
        if refused:
            self.rejected += refused
            logger.error(
                "RedisSink: %s refused %d commands, e.g. %s",
                self.target,
                refused,
                first.decode("utf-8", "replace"),
            )

    def _close_connection(self) -> None:
        self._connection.disconnect()
        self._client.close()
