"""InfluxDB 1.x archive: ``InfluxSink`` writes closed bars and ticks, ``InfluxSource`` reads them back.

Spoken over plain HTTP with requests (``/write`` with line protocol, ``/query`` with
InfluxQL); no extra package.  Layout: :mod:`backtrader_alltick.sinks.line_protocol`.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

from ..errors import APIError, ConfigError, ConnectError, ProtocolError, Timeout, TransportError
from ..records import Kline, Tick
from ..symbols import Instrument
from . import line_protocol
from .buffer import BufferedWriter
from .urls import safe_url

logger = logging.getLogger(__name__)

DEFAULT_URL = "http://127.0.0.1:8086"
DEFAULT_TIMEOUT = (3.05, 10.0)
DEFAULT_DATABASE = "alltick"


def split_influx_url(url: str) -> tuple[str, str]:
    """Split ``http://host:8086/mydb`` into the API root and the database (default ``alltick``)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"InfluxDB URL must look like http://host:8086 or http://host:8086/database, "
                          f"was {url!r}")
    database = parts.path.strip("/") or DEFAULT_DATABASE
    if "/" in database:
        raise ConfigError(f"InfluxDB URL may name one database after the port, was {url!r}")
    return urlunsplit((parts.scheme, parts.netloc, "", "", "")), database


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

    def __init__(self, url: str = DEFAULT_URL, database: str = "alltick", *, dialect: str = "alltick",
                 batch: int = 5000, flush_interval: float = 1.0, max_buffer: int = 1_000_000,
                 retries: int = 5, timeout: tuple[float, float] = DEFAULT_TIMEOUT,
                 username: str | None = None, password: str | None = None,
                 backoff_initial: float = 0.2, backoff_max: float = 10.0) -> None:
        line_protocol.escape_tag(dialect)
        if not database:
            raise ConfigError("database must name an InfluxDB database, was ''")
        super().__init__(target=safe_url(url), batch=batch, max_buffer=max_buffer,
                         flush_interval=flush_interval, retries=retries, backoff_initial=backoff_initial,
                         backoff_max=backoff_max)
        self.url = url.rstrip("/")
        self.database = database
        self.dialect = dialect
        self.timeout = timeout
        self.skipped = 0
        self._session = _session(username, password)
        self._stamper = line_protocol.TickStamper()
        self._encode_lock = threading.Lock()
        self._skipped_kinds: set[str] = set()
        self._database_ready = False
        try:
            self._create_database()
        except TransportError as e:
            logger.info("InfluxSink: %s is not reachable yet (%s); the database will be created on the "
                        "first write that gets through", self.target, e)
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
                        lines.append(line_protocol.bar_line(record, self.dialect))
                    elif kind is Tick:
                        lines.append(line_protocol.tick_line(record, self._stamper.stamp(record)))
                    else:
                        self._skip(kind.__name__)
                except ConfigError as e:
                    self.rejected += 1
                    logger.error("InfluxSink: cannot archive a %s of %s: %s", kind.__name__,
                                 getattr(record, "symbol", "?"), e)
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
        if response.status_code == 404 and "database not found" in _error_text(response):
            # Someone dropped the database while we were running: create it again, once.
            self._database_ready = False
            self._create_database()
            response = self._write(lines)
        if response.status_code != 204:
            raise APIError(f"InfluxDB at {self.target} answered {response.status_code} to a write of "
                           f"{len(lines)} points: {_error_text(response)}", status=response.status_code)

    def _write(self, lines: list[str]) -> requests.Response:
        body = "\n".join(lines).encode("utf-8")
        return _request(self._session, "POST", f"{self.url}/write", self.target, self.timeout,
                        params={"db": self.database, "precision": line_protocol.PRECISION}, data=body)

    def _create_database(self) -> None:
        query = f"CREATE DATABASE {line_protocol.quote_identifier(self.database)}"
        response = _request(self._session, "POST", f"{self.url}/query", self.target, self.timeout,
                            data={"q": query})
        error = _error_text(response) if response.status_code != 200 else _result_error(response.json())
        if error:
            raise APIError(f"InfluxDB at {self.target} refused to create database {self.database!r}: {error}",
                           status=response.status_code)
        self._database_ready = True

    def _close_connection(self) -> None:
        self._session.close()


class InfluxSource:
    """Read bars and ticks archived by :class:`InfluxSink`, equal to what was written.

    Symbols are used as written (canonical form, e.g. ``AAPL.US``); an
    :class:`Instrument` is accepted too.  ``dialect`` restricts bars to one dialect's
    archive; with None, bars of every dialect are returned.  A database that does not
    exist yet reads as empty.

    Example::

        source = InfluxSource("http://127.0.0.1:8086", "alltick")
        bars = source.klines("AAPL.US", "1m", start_ms, end_ms)    # bar ends in [start_ms, end_ms]
    """

    def __init__(self, url: str = DEFAULT_URL, database: str = "alltick", *, dialect: str | None = None,
                 timeout: tuple[float, float] = (3.05, 60.0), username: str | None = None,
                 password: str | None = None, chunk_size: int = 10_000) -> None:
        self.url = url.rstrip("/")
        self.target = safe_url(self.url)
        self.database = database
        self.dialect = dialect
        self.timeout = timeout
        self.chunk_size = chunk_size
        self._session = _session(username, password)

    def __repr__(self) -> str:
        return f"InfluxSource({self.target!r}, {self.database!r})"

    def klines(self, symbol: str | Instrument, period: str, start_ms: int, end_ms: int) -> list[Kline]:
        """Return the archived bars of ``symbol`` and ``period`` whose end is in ``[start_ms, end_ms]``."""
        symbol = str(symbol)
        query = line_protocol.select_bars(symbol, period, start_ms, end_ms, self.dialect)
        return [line_protocol.kline_from_row(row, symbol, period) for row in self._rows(query)]

    def ticks(self, symbol: str | Instrument, start_ms: int, end_ms: int) -> list[Tick]:
        """Return the archived ticks of ``symbol`` traded in ``[start_ms, end_ms]``, in order."""
        symbol = str(symbol)
        query = line_protocol.select_ticks(symbol, start_ms, end_ms)
        return [line_protocol.tick_from_row(row, symbol) for row in self._rows(query)]

    def close(self) -> None:
        """Release the HTTP connections."""
        self._session.close()

    def __enter__(self) -> InfluxSource:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _rows(self, query: str) -> Iterator[dict[str, Any]]:
        params = {"db": self.database, "q": query, "epoch": "u", "chunked": "true",
                  "chunk_size": str(self.chunk_size)}
        with _request(self._session, "GET", f"{self.url}/query", self.target, self.timeout, params=params,
                      stream=True) as response:
            if response.status_code != 200:
                raise APIError(f"InfluxDB at {self.target} answered {response.status_code} to a query: "
                               f"{_error_text(response)}", status=response.status_code)
            try:
                for line in response.iter_lines():
                    if line:
                        yield from self._chunk_rows(json.loads(line))
            except requests.RequestException as e:
                raise ConnectError(f"InfluxDB at {self.target} broke off a query answer ({e})") from None
            except ValueError as e:
                raise ProtocolError(f"InfluxDB at {self.target} sent a query answer that is not JSON ({e})") \
                    from None

    def _chunk_rows(self, payload: dict[str, Any]) -> Iterator[dict[str, Any]]:
        error = _result_error(payload)
        if error:
            if "database not found" in error:
                return
            raise APIError(f"InfluxDB at {self.target} refused a query on {self.database!r}: {error}")
        for result in payload.get("results", []):
            for series in result.get("series", []):
                columns = series["columns"]
                for values in series.get("values", []):
                    yield dict(zip(columns, values))


def _session(username: str | None, password: str | None) -> requests.Session:
    session = requests.Session()
    if username is not None:
        session.auth = (username, password or "")
    return session


def _request(session: requests.Session, method: str, url: str, target: str, timeout: tuple[float, float],
             **kwargs: Any) -> requests.Response:
    try:
        return session.request(method, url, timeout=timeout, **kwargs)
    except requests.Timeout as e:
        raise Timeout(f"InfluxDB at {target} did not answer within {timeout} s ({type(e).__name__})") \
            from None
    except requests.ConnectionError as e:
        raise ConnectError(f"InfluxDB at {target} is unreachable ({type(e).__name__}); is influxd running?") \
            from None
    except requests.RequestException as e:
        raise TransportError(f"InfluxDB request to {target} failed ({type(e).__name__})") from None


def _error_text(response: requests.Response) -> str:
    try:
        return str(response.json().get("error", response.text))[:300]
    except ValueError:
        return response.text[:300]


def _result_error(payload: dict[str, Any]) -> str | None:
    if payload.get("error"):
        return str(payload["error"])
    for result in payload.get("results", []):
        if result.get("error"):
            return str(result["error"])
    return None
