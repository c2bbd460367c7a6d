"""Read back what the relay's :class:`~backtrader_alltick.sinks.redis.RedisSink` wrote, resuming from IDs."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple, TypeVar

from ..errors import ConfigError, ConnectError, TransportError
from ..records import Depth, Kline, Quote, Record, Tick
from ..symbols import Instrument
from ..wire import redis_streams
from . import redis_client
from .redis_client import DEFAULT_URL
from .retry import backoff
from .urls import safe_url

logger: logging.Logger = logging.getLogger(__name__)

_T = TypeVar("_T")
_R = TypeVar("_R", bound=Record)


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


class RedisReader:
    """Read what a :class:`RedisSink` wrote, resuming from stream IDs; survives Redis restarts.

    A read that finds Redis unreachable retries with backoff for up to
    ``reconnect_timeout`` seconds before raising :class:`ConnectError`; ``on_connection``
    is called with False when the connection breaks and True when it is back, so a feed
    can report CONNBROKEN meanwhile.  Symbols are used as written (canonical form, e.g.
    ``AAPL.US``); an :class:`Instrument` is accepted too.

    Example::

        source = RedisReader("redis://127.0.0.1:6379/0")
        entries = source.read_bars("AAPL.US", "1m", after_id="0-0", block_ms=1000)
        last_id = entries[-1].id if entries else "0-0"     # resume from here
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        prefix: str = "alltick",
        *,
        reconnect_timeout: float = 30.0,
        socket_timeout: float = 10.0,
        backoff_initial: float = 0.05,
        backoff_max: float = 2.0,
        on_connection: Callable[[bool], None] | None = None,
    ) -> None:
        if reconnect_timeout < 0:
            raise ConfigError(f"reconnect_timeout must be 0 or more seconds, was {reconnect_timeout!r}")
        backoff(backoff_initial, backoff_max)
        self.url: str = safe_url(url)
        self.prefix = prefix
        self.reconnect_timeout = reconnect_timeout
        self.socket_timeout = socket_timeout
        self.on_connection = on_connection
        self._backoff = (backoff_initial, backoff_max)
        self._redis = redis_client.import_redis()
        self._client = redis_client.connect(self._redis, url, socket_timeout, decode=True)
        self._closed = threading.Event()
        self.is_connected: bool = True

    def __repr__(self) -> str:
        return f"RedisReader({self.url!r}, prefix={self.prefix!r})"

    def read_bars(
        self,
        symbol: str | Instrument,
        period: str,
        after_id: str = "0-0",
        *,
        block_ms: int | None = None,
        count: int = 1000,
    ) -> list[Entry]:
        """Return up to ``count`` bars after ``after_id``, waiting up to ``block_ms`` for the first."""
        symbol = str(symbol)
        key = redis_streams.stream_key(self.prefix, "bar", symbol, period)
        return self._read(
            key, after_id, block_ms, count, lambda fields: redis_streams.decode_kline(symbol, period, fields)
        )

    def read_ticks(
        self,
        symbol: str | Instrument,
        after_id: str = "0-0",
        *,
        block_ms: int | None = None,
        count: int = 1000,
    ) -> list[Entry]:
        """Return up to ``count`` ticks after ``after_id``, waiting up to ``block_ms`` for the first."""
        return self._read_records("tick", redis_streams.decode_tick, str(symbol), after_id, block_ms, count)

    def read_quotes(
        self,
        symbol: str | Instrument,
        after_id: str = "0-0",
        *,
        block_ms: int | None = None,
        count: int = 1000,
    ) -> list[Entry]:
        """Return up to ``count`` quotes after ``after_id``, waiting up to ``block_ms`` for the first."""
        return self._read_records("quote", redis_streams.decode_quote, str(symbol), after_id, block_ms, count)

    def read_depth(
        self,
        symbol: str | Instrument,
        after_id: str = "0-0",
        *,
        block_ms: int | None = None,
        count: int = 1000,
    ) -> list[Entry]:
        """Return up to ``count`` book snapshots after ``after_id``, waiting up to ``block_ms``."""
        return self._read_records("depth", redis_streams.decode_depth, str(symbol), after_id, block_ms, count)

    def _read_records(
        self,
        kind: str,
        decode: Callable[[str, dict[str, str]], Record],
        symbol: str,
        after_id: str,
        block_ms: int | None,
        count: int,
    ) -> list[Entry]:
        key = redis_streams.stream_key(self.prefix, kind, symbol)
        return self._read(key, after_id, block_ms, count, lambda fields: decode(symbol, fields))

    def newest_bars(self, symbol: str | Instrument, period: str, count: int) -> list[Entry]:
        """Return the newest ``count`` bars of ``symbol`` and ``period``, oldest first."""
        symbol = str(symbol)
        key = redis_streams.stream_key(self.prefix, "bar", symbol, period)
        return self._newest(key, count, lambda fields: redis_streams.decode_kline(symbol, period, fields))

    def newest_ticks(self, symbol: str | Instrument, count: int) -> list[Entry]:
        """Return the newest ``count`` ticks of ``symbol``, oldest first."""
        symbol = str(symbol)
        return self._newest(
            redis_streams.stream_key(self.prefix, "tick", symbol),
            count,
            lambda fields: redis_streams.decode_tick(symbol, fields),
        )

    def last(self, symbol: str | Instrument) -> Latest:
        """Return the latest tick, quote, book and bar per period written for ``symbol``."""
        symbol = str(symbol)
        entries = self._call(lambda: self._client.hgetall(redis_streams.last_key(self.prefix, symbol)))
        records = redis_streams.decode_last(symbol, entries)
        bars = {
            name[4:]: record
            for name, record in records.items()
            if name.startswith("bar:") and isinstance(record, Kline)
        }
        return Latest(
            _of(records.get("tick"), Tick),
            _of(records.get("quote"), Quote),
            _of(records.get("depth"), Depth),
            bars,
        )

    def close(self) -> None:
        """Stop any reconnect wait and release the connection."""
        self._closed.set()
        self._client.close()

    def __enter__(self) -> RedisReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _read(
        self,
        key: str,
        after_id: str,
        block_ms: int | None,
        count: int,
        decode: Callable[[dict[str, str]], Record],
    ) -> list[Entry]:
        if block_ms is not None and not 0 < block_ms < self.socket_timeout * 1000:
            raise ConfigError(
                f"block_ms must be None or between 1 and socket_timeout*1000 "
                f"({int(self.socket_timeout * 1000) - 1}), was {block_ms!r}"
            )
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
                with redis_client.map_errors(self._redis, self.url):
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
                        f"(reconnect_timeout={self.reconnect_timeout}); last error: {e}"
                    ) from None
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
            logger.info("RedisReader: %s is reachable again", self.url)
        else:
            logger.warning(
                "RedisReader: lost %s (%s); reconnecting for up to %s s",
                self.url,
                error,
                self.reconnect_timeout,
            )
        if self.on_connection is not None:
            self.on_connection(connected)


def _of(record: Record | None, kind: type[_R]) -> _R | None:
    # decode_last files each record under its own kind; this says so to the type checker.
    return record if isinstance(record, kind) else None
