"""InfluxDB 1.x archive: ``InfluxSink`` writes closed bars and ticks.

They are read back by :class:`~backtrader_alltick.transport.influx_reader.InfluxReader`.  Layout:
:mod:`backtrader_alltick.wire.influx_lines`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any

import requests

from ..errors import APIError, ConfigError, TransportError
from ..records import Kline, Tick
from ..transport.influx_client import (
    DEFAULT_TIMEOUT,
    DEFAULT_URL,
    error_text,
    new_session,
    request,
    result_error,
)
from ..transport.urls import safe_url
from ..wire import influx_lines
from .buffer import BufferedWriter

logger: logging.Logger = logging.getLogger(__name__)


class InfluxSink(BufferedWriter):
    """Archive closed bars and ticks in InfluxDB 1.x, batched, with bounded buffering while it is down.

    Bars go to measurement ``bar`` (tags symbol, period, dialect; time = bar end) and
    ticks to ``tick`` (tag symbol).  ``write()`` encodes and queues; a background
    thread posts a batch when ``batch`` lines are queued or the oldest has waited
    ``flush_interval`` seconds.  While InfluxDB is unreachable up to ``max_buffer``
    lines are kept and retried with backoff; past that the oldest are dropped with a
    WARNING.  A batch the server fails on (5xx) is retried ``retries`` times.  The
    database is created on start (or on the first write that reaches the server).
    Quotes and depth are not archived: they are skipped and counted in ``skipped``.

    Parameters
    ----------
    url : str
        Root of the InfluxDB HTTP API.
    database : str
        Database to write into; created if missing.
    dialect : str
        Value of the ``dialect`` tag on bars.
    batch, flush_interval, max_buffer, retries
        Batching and buffering, see above.

    Example::

        with InfluxSink("http://127.0.0.1:8086", "alltick") as sink:
            sink.write(closed_bars)
    """

    rejected: int  # also counts records it cannot encode (BufferedWriter's counter)

    def __init__(
        self,
        url: str = DEFAULT_URL,
        database: str = "alltick",
        *,
        dialect: str = "alltick",
        batch: int = 5000,
        flush_interval: float = 1.0,
        max_buffer: int = 1_000_000,
        retries: int = 5,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        username: str | None = None,
        password: str | None = None,
        backoff_initial: float = 0.2,
        backoff_max: float = 10.0,
    ) -> None:
        influx_lines.escape_tag(dialect)
        if not database:
            raise ConfigError("database must name an InfluxDB database, was ''")
        super().__init__(
            target=safe_url(url),
            batch=batch,
            max_buffer=max_buffer,
            flush_interval=flush_interval,
            retries=retries,
            backoff_initial=backoff_initial,
            backoff_max=backoff_max,
        )
        self.url: str = url.rstrip("/")
        self.database = database
        self.dialect = dialect
        self.timeout = timeout
        self.skipped: int = 0
        self._session = new_session(username, password)
        self._stamper = influx_lines.TickStamper()
        self._encode_lock = threading.Lock()
        self._skipped_kinds: set[str] = set()
        self._database_ready = False
        try:
            self._create_database()
        except TransportError as e:
            logger.info(
                "InfluxSink: %s is not reachable yet (%s); the database will be created on the "
                "first write that gets through",
                self.target,
                e,
            )
        self._start()

    def __repr__(self) -> str:
        return f"InfluxSink({self.target!r}, {self.database!r}, pending={self.pending})"

    def _prepare(self, records: Iterable[Any]) -> list[str]:
        lines: list[str] = []
        with self._encode_lock:
            for record in records:
                kind = type(record)
                try:
                    if kind is Kline:
                        lines.append(influx_lines.bar_line(record, self.dialect))
                    elif kind is Tick:
                        lines.append(influx_lines.tick_line(record, self._stamper.stamp(record)))
                    else:
                        self._skip(kind.__name__)
                except ConfigError as e:
                    self.rejected += 1
                    logger.error(
                        "InfluxSink: cannot archive a %s of %s: %s",
                        kind.__name__,
                        getattr(record, "symbol", "?"),
                        e,
                    )
        return lines

    def _skip(self, kind: str) -> None:
        self.skipped += 1
        if kind not in self._skipped_kinds:
            self._skipped_kinds.add(kind)
            logger.warning("InfluxSink archives Kline and Tick records only; %s records are skipped", kind)

    def _send(self, lines: list[str]) -> None:
        if not self._database_ready:
            self._create_database()
        response = self._write(lines)
        if response.status_code == 404 and "database not found" in error_text(response):
            # Someone dropped the database while we were running: create it again, once.
            self._database_ready = False
            self._create_database()
            response = self._write(lines)
        if response.status_code != 204:
            raise APIError(
                f"InfluxDB at {self.target} answered {response.status_code} to a write of "
                f"{len(lines)} points: {error_text(response)}",
                status=response.status_code,
            )

    def _write(self, lines: list[str]) -> requests.Response:
        body = "\n".join(lines).encode("utf-8")
        return request(
            self._session,
            "POST",
            f"{self.url}/write",
            self.target,
            self.timeout,
            params={"db": self.database, "precision": influx_lines.PRECISION},
            data=body,
        )

    def _create_database(self) -> None:
        query = f"CREATE DATABASE {influx_lines.quote_identifier(self.database)}"
        response = request(
            self._session, "POST", f"{self.url}/query", self.target, self.timeout, data={"q": query}
        )
        error = error_text(response) if response.status_code != 200 else result_error(response.json())
        if error:
            raise APIError(
                f"InfluxDB at {self.target} refused to create database {self.database!r}: {error}",
                status=response.status_code,
            )
        self._database_ready = True

    def _close_connection(self) -> None:
        self._session.close()
