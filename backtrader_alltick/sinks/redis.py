"""Redis relay storage: ``RedisSink`` writes records into capped streams, ``RedisSource`` reads them back.

The relay holds the one upstream connection and writes every record here; any number
of consumers read the streams and resume from the last stream ID they saw.  Key
layout and field encoding: :mod:`backtrader_alltick.sinks.stream_fields`.  The
``redis`` package is optional (``pip install backtrader-alltick[redis]``) and is
imported only when a sink or source is created.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import NamedTuple, TypeVar

from ..errors import APIError, ConfigError, ConnectError, Timeout, TransportError
from ..records import Depth, Kline, Quote, Record, Tick
from ..symbols import Instrument
from ..transport.retry import backoff
from . import redis_batch, stream_fields
from .buffer import BufferedWriter
from .urls import safe_url

logger = logging.getLogger(__name__)

DEFAULT_URL = "redis://127.0.0.1:6379/0"
_T = TypeVar("_T")


class Entry(NamedTuple):
    """One stream entry: its ID (pass it back as ``after_id`` to resume) and the record.

    Example::

        entry = source.read_ticks("AAPL.US")[-1]
        entry.id, entry.record.price          # ('1700000000123-0', 190.1)
    """

    id: str
    record: Record


@dataclass(frozen=True)
class Latest:
    """The latest record of each kind for one symbol; ``bars`` maps a period to its last bar.

    Example::

        latest = source.last("AAPL.US")
        latest.tick.price, latest.bars["1m"].close    # None where nothing was written yet
    """

    tick: Tick | None = None
    quote: Quote | None = None
    depth: Depth | None = None
    bars: dict[str, Kline] = field(default_factory=dict)


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

    def __init__(self, url: str = DEFAULT_URL, *, prefix: str = "alltick", maxlen: int = 100_000,
                 batch: int = 500, max_buffer: int = 1_000_000, flush_interval: float = 0.0,
                 socket_timeout: float = 5.0, backoff_initial: float = 0.05,
                 backoff_max: float = 5.0) -> None:
        if not isinstance(maxlen, int) or maxlen < 1:
            raise ConfigError(f"maxlen must be a positive integer, was {maxlen!r}")
        super().__init__(target=safe_url(url), batch=batch, max_buffer=max_buffer,
                         flush_interval=flush_interval, retries=None, backoff_initial=backoff_initial,
                         backoff_max=backoff_max)
        self._redis = _import_redis()
        self._client = _connect(self._redis, url, socket_timeout)
        # The flusher's own connection for the batch calls: it connects on first use, so a sink can be
        # made while Redis is down.
        self._connection = self._client.connection_pool.make_connection()
        self.prefix = prefix
        self.maxlen = maxlen
        self.duplicates = 0
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
            if type(record) not in stream_fields.ENCODERS:
                raise ConfigError(f"RedisSink writes Tick, Quote, Depth and Kline records, "
                                  f"was {type(record).__name__}")
        return items

    def _send(self, items: list[Record]) -> None:
        # A batch whose reply was lost (a timeout, a cut connection) may have been applied all the
        # same.  Each batch is one atomic script call that also stamps its number on a marker key, so
        # the retry asks whether it landed instead of writing its ticks a second time (auto IDs).
        if self._unconfirmed is not None and self._drop_landed(items) and not items:
            return
        self._batch_number += 1
        number = self._batch_number
        count, body = self._packer.pack(items, number)
        try:
            with _map_errors(self._redis, self.target):
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

    def _drop_landed(self, items: list[Record]) -> bool:
        """Remove from ``items`` the unconfirmed batch if Redis applied it; True if it did."""
        first, count, number = self._unconfirmed
        if not items or items[0] is not first or len(items) < count:
            self._unconfirmed = None  # the buffer dropped part of it: it cannot be told apart
            return False
        with _map_errors(self._redis, self.target):
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
            logger.error("RedisSink: %s refused %d commands, e.g. %s", self.target, refused,
                         first.decode("utf-8", "replace"))

    def _close_connection(self) -> None:
        self._connection.disconnect()
        self._client.close()


class RedisSource:
    """Read what a :class:`RedisSink` wrote, resuming from stream IDs; survives Redis restarts.

    A read that finds Redis unreachable retries with backoff for up to
    ``reconnect_timeout`` seconds before raising :class:`ConnectError`; ``on_connection``
    is called with False when the connection breaks and True when it is back, so a feed
    can report CONNBROKEN meanwhile.  Symbols are used as written (canonical form, e.g.
    ``AAPL.US``); an :class:`Instrument` is accepted too.

    Example::

        source = RedisSource("redis://127.0.0.1:6379/0")
        entries = source.read_bars("AAPL.US", "1m", after_id="0-0", block_ms=1000)
        last_id = entries[-1].id if entries else "0-0"     # resume from here
    """

    def __init__(self, url: str = DEFAULT_URL, prefix: str = "alltick", *, reconnect_timeout: float = 30.0,
                 socket_timeout: float = 10.0, backoff_initial: float = 0.05, backoff_max: float = 2.0,
                 on_connection: Callable[[bool], None] | None = None) -> None:
        if reconnect_timeout < 0:
            raise ConfigError(f"reconnect_timeout must be 0 or more seconds, was {reconnect_timeout!r}")
        backoff(backoff_initial, backoff_max)
        self.url = safe_url(url)
        self.prefix = prefix
        self.reconnect_timeout = reconnect_timeout
        self.socket_timeout = socket_timeout
        self.on_connection = on_connection
        self._backoff = (backoff_initial, backoff_max)
        self._redis = _import_redis()
        self._client = _connect(self._redis, url, socket_timeout, decode=True)
        self._closed = threading.Event()
        self.is_connected = True

    def __repr__(self) -> str:
        return f"RedisSource({self.url!r}, prefix={self.prefix!r})"

    def read_bars(self, symbol: str | Instrument, period: str, after_id: str = "0-0", *,
                  block_ms: int | None = None, count: int = 1000) -> list[Entry]:
        """Return up to ``count`` bars after ``after_id``, waiting up to ``block_ms`` for the first."""
        symbol = str(symbol)
        key = stream_fields.stream_key(self.prefix, "bar", symbol, period)
        return self._read(key, after_id, block_ms, count,
                          lambda fields: stream_fields.decode_kline(symbol, period, fields))

    def read_ticks(self, symbol: str | Instrument, after_id: str = "0-0", *, block_ms: int | None = None,
                   count: int = 1000) -> list[Entry]:
        """Return up to ``count`` ticks after ``after_id``, waiting up to ``block_ms`` for the first."""
        symbol = str(symbol)
        return self._read(stream_fields.stream_key(self.prefix, "tick", symbol), after_id, block_ms, count,
                          lambda fields: stream_fields.decode_tick(symbol, fields))

    def read_quotes(self, symbol: str | Instrument, after_id: str = "0-0", *, block_ms: int | None = None,
                    count: int = 1000) -> list[Entry]:
        """Return up to ``count`` quotes after ``after_id``, waiting up to ``block_ms`` for the first."""
        symbol = str(symbol)
        return self._read(stream_fields.stream_key(self.prefix, "quote", symbol), after_id, block_ms, count,
                          lambda fields: stream_fields.decode_quote(symbol, fields))

    def read_depth(self, symbol: str | Instrument, after_id: str = "0-0", *, block_ms: int | None = None,
                   count: int = 1000) -> list[Entry]:
        """Return up to ``count`` book snapshots after ``after_id``, waiting up to ``block_ms``."""
        symbol = str(symbol)
        return self._read(stream_fields.stream_key(self.prefix, "depth", symbol), after_id, block_ms, count,
                          lambda fields: stream_fields.decode_depth(symbol, fields))

    def newest_bars(self, symbol: str | Instrument, period: str, count: int) -> list[Entry]:
        """Return the newest ``count`` bars of ``symbol`` and ``period``, oldest first."""
        symbol = str(symbol)
        key = stream_fields.stream_key(self.prefix, "bar", symbol, period)
        return self._newest(key, count, lambda fields: stream_fields.decode_kline(symbol, period, fields))

    def newest_ticks(self, symbol: str | Instrument, count: int) -> list[Entry]:
        """Return the newest ``count`` ticks of ``symbol``, oldest first."""
        symbol = str(symbol)
        return self._newest(stream_fields.stream_key(self.prefix, "tick", symbol), count,
                            lambda fields: stream_fields.decode_tick(symbol, fields))

    def last(self, symbol: str | Instrument) -> Latest:
        """Return the latest tick, quote, book and bar per period written for ``symbol``."""
        symbol = str(symbol)
        entries = self._call(lambda: self._client.hgetall(stream_fields.last_key(self.prefix, symbol)))
        records = stream_fields.decode_last(symbol, entries)
        bars = {name[4:]: record for name, record in records.items() if name.startswith("bar:")}
        return Latest(records.get("tick"), records.get("quote"), records.get("depth"), bars)

    def close(self) -> None:
        """Stop any reconnect wait and release the connection."""
        self._closed.set()
        self._client.close()

    def __enter__(self) -> RedisSource:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _read(self, key: str, after_id: str, block_ms: int | None, count: int,
              decode: Callable[[dict[str, str]], Record]) -> list[Entry]:
        if block_ms is not None and not 0 < block_ms < self.socket_timeout * 1000:
            raise ConfigError(f"block_ms must be None or between 1 and socket_timeout*1000 "
                              f"({int(self.socket_timeout * 1000) - 1}), was {block_ms!r}")
        if count < 1:
            raise ConfigError(f"count must be 1 or more, was {count!r}")
        response = self._call(lambda: self._client.xread({key: after_id}, count=count, block=block_ms))
        if not response:
            return []
        return [Entry(entry_id, decode(fields)) for entry_id, fields in response[0][1]]

    def _newest(self, key: str, count: int, decode: Callable[[dict[str, str]], Record]) -> list[Entry]:
        if count < 1:
            raise ConfigError(f"count must be 1 or more, was {count!r}")
        response = self._call(lambda: self._client.xrevrange(key, count=count))
        return [Entry(entry_id, decode(fields)) for entry_id, fields in reversed(response)]

    def _call(self, command: Callable[[], _T]) -> _T:
        started = 0.0
        delays: Iterator[float] | None = None
        while True:
            try:
                with _map_errors(self._redis, self.url):
                    result = command()
            except TransportError as e:
                now = time.monotonic()
                if delays is None:
                    started, delays = now, backoff(*self._backoff)
                    self._set_connected(False, e)
                remaining = self.reconnect_timeout - (now - started)
                if remaining <= 0 or self._closed.is_set():
                    raise ConnectError(
                        f"Redis at {self.url} stayed unreachable for {now - started:.1f} s "
                        f"(reconnect_timeout={self.reconnect_timeout}); last error: {e}") from None
                self._closed.wait(min(next(delays), remaining))
                continue
            if not self.is_connected:
                self._set_connected(True, None)
            return result

    def _set_connected(self, connected: bool, error: BaseException | None) -> None:
        if connected == self.is_connected:
            return
        self.is_connected = connected
        if connected:
            logger.info("RedisSource: %s is reachable again", self.url)
        else:
            logger.warning("RedisSource: lost %s (%s); reconnecting for up to %s s", self.url, error,
                           self.reconnect_timeout)
        if self.on_connection is not None:
            self.on_connection(connected)


def _import_redis():
    try:
        import redis
    except ImportError:
        raise ConfigError("the Redis sink and source need the redis package; install it with "
                          "pip install backtrader-alltick[redis], was not installed") from None
    return redis


def _connect(redis, url: str, socket_timeout: float, decode: bool = False):
    # Retries are ours (backoff, bounded buffer); redis-py's own would block the caller inside a command.
    from redis.backoff import NoBackoff
    from redis.retry import Retry
    try:
        return redis.Redis.from_url(url, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout,
                                    retry=Retry(NoBackoff(), 0), decode_responses=decode)
    except ValueError as e:
        raise ConfigError(f"Redis URL must look like redis://host:port/db, was {safe_url(url)!r} ({e})") \
            from None


@contextmanager
def _map_errors(redis, url: str) -> Iterator[None]:
    exceptions = redis.exceptions
    try:
        yield
    except exceptions.AuthenticationError as e:
        raise ConfigError(f"Redis at {url} refused the credentials; fix the password in the URL, was "
                          f"refused with: {e}") from None
    except exceptions.TimeoutError as e:
        raise Timeout(f"Redis at {url} did not answer in time ({e})") from None
    except exceptions.ConnectionError as e:
        raise ConnectError(f"Redis at {url} is unreachable ({e}); is redis-server running?") from None
    except exceptions.RedisError as e:
        raise APIError(f"Redis at {url} refused the command: {e}", code=type(e).__name__) from None
