"""Read back the bars and ticks an :class:`~backtrader_alltick.sinks.influx.InfluxSink` archived."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import requests

from ..errors import APIError, ConnectError, ProtocolError
from ..records import Kline, Tick
from ..symbols import Instrument
from ..transport.influx_client import DEFAULT_URL, error_text, new_session, request, result_error
from ..transport.urls import safe_url
from ..wire import influx_lines


class InfluxReader:
    """Read bars and ticks archived by :class:`InfluxSink`, equal to what was written.

    Symbols are used as written (canonical form, e.g. ``AAPL.US``); an
    :class:`Instrument` is accepted too.  ``dialect`` restricts bars to one dialect's
    archive; with None, bars of every dialect are returned.  A database that does not
    exist yet reads as empty.

    Example::

        source = InfluxReader("http://127.0.0.1:8086", "alltick")
        bars = source.klines("AAPL.US", "1m", start_ms, end_ms)    # bar ends in [start_ms, end_ms]
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        database: str = "alltick",
        *,
        dialect: str | None = None,
        timeout: tuple[float, float] = (3.05, 60.0),
        username: str | None = None,
        password: str | None = None,
        chunk_size: int = 10_000,
    ) -> None:
        self.url: str = url.rstrip("/")
        self.target: str = safe_url(self.url)
        self.database = database
        self.dialect = dialect
        self.timeout = timeout
        self.chunk_size = chunk_size
        self._session = new_session(username, password)

    def __repr__(self) -> str:
        return f"InfluxReader({self.target!r}, {self.database!r})"

    def klines(self, symbol: str | Instrument, period: str, start_ms: int, end_ms: int) -> list[Kline]:
        """Return the archived bars of ``symbol`` and ``period`` whose end is in ``[start_ms, end_ms]``."""
        symbol = str(symbol)
        query = influx_lines.select_bars(symbol, period, start_ms, end_ms, self.dialect)
        return [influx_lines.kline_from_row(row, symbol, period) for row in self._rows(query)]

    def ticks(self, symbol: str | Instrument, start_ms: int, end_ms: int) -> list[Tick]:
        """Return the archived ticks of ``symbol`` traded in ``[start_ms, end_ms]``, in order."""
        symbol = str(symbol)
        query = influx_lines.select_ticks(symbol, start_ms, end_ms)
        return [influx_lines.tick_from_row(row, symbol) for row in self._rows(query)]

    def close(self) -> None:
        """Release the HTTP connections."""
        self._session.close()

    def __enter__(self) -> InfluxReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _rows(self, query: str) -> Iterator[dict[str, Any]]:
        params = {
            "db": self.database,
            "q": query,
            "epoch": "u",
            "chunked": "true",
            "chunk_size": str(self.chunk_size),
        }
        with request(
            self._session, "GET", f"{self.url}/query", self.target, self.timeout, params=params, stream=True
        ) as response:
            if response.status_code != 200:
                raise APIError(
                    f"InfluxDB at {self.target} answered {response.status_code} to a query: "
                    f"{error_text(response)}",
                    status=response.status_code,
                )
            try:
                for line in response.iter_lines():
                    if line:
                        yield from self._chunk_rows(json.loads(line))
            except requests.RequestException as e:
                raise ConnectError(f"InfluxDB at {self.target} broke off a query answer ({e})") from None
            except ValueError as e:
                raise ProtocolError(
                    f"InfluxDB at {self.target} sent a query answer that is not JSON ({e})"
                ) from None

    def _chunk_rows(self, payload: dict[str, Any]) -> Iterator[dict[str, Any]]:
        error = result_error(payload)
        if error:
            if "database not found" in error:
                return
            raise APIError(f"InfluxDB at {self.target} refused a query on {self.database!r}: {error}")
        for result in payload.get("results", []):
            for series in result.get("series", []):
                columns = series["columns"]
                for values in series.get("values", []):
                    yield dict(zip(columns, values))
