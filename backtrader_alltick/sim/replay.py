"""The recorded market: a :class:`MarketModel` whose trades come from a recording instead of the seed.

Everything the simulator serves (WebSocket pushes, K-lines over REST, quotes, books) is
derived from :meth:`MarketModel.day_trades`, so replacing that one method by the recorded
trades makes REST history and the replayed stream agree bar for bar, exactly as for the
synthetic market.  Prices and sizes are kept as integer ticks of the finest decimal the
recording uses, so every pushed number is the float the service originally sent.

Turnover is recomputed as price x size (what the simulator's dialects push); books come
from the recording where depth was recorded, else they are derived from the last trade as
in the synthetic market.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable

import numpy as np

from ..errors import ConfigError
from ..recording import Recording
from ..records import Depth, format_utc
from ..symbols import parse_symbol
from .grid import DAY_MS, MINUTE_MS
from .market import MarketModel
from .prices import DayTrades, TradeArrays

MAX_DECIMALS = 10


class RecordedMarket(MarketModel):
    """Serve the trades of a :class:`~backtrader_alltick.recording.Recording` as the simulator's market.

    Example::

        market = RecordedMarket(Recording("session.rec"))
        market.klines_between("BTCUSDT", "1m", start_ms, end_ms, now_ms=end_ms)
    """

    def __init__(
        self, recording: Recording, symbols: Iterable[str] | None = None, hours: str = "regular"
    ) -> None:
        names = list(symbols) if symbols else recording.symbols
        first_day = recording.start_ms // DAY_MS * DAY_MS
        # The recorded trades are the tape; ``hours`` only says when the market counts as closed.
        super().__init__(seed=0, symbols=names, history_start_ms=first_day, hours=hours)
        self.recording = recording
        self._arrays: dict[str, TradeArrays] = {}
        for name in self.instruments:
            columns = recording.columns(name)
            price_decimals = _decimals(columns.price)
            size_decimals = _decimals(columns.volume)
            books = recording.books(name)
            levels = max(
                (max(len(b.bids), len(b.asks)) for b in books), default=self.specs[name].depth_levels
            )
            self.specs[name] = dataclasses.replace(
                self.specs[name],
                price_decimals=price_decimals,
                size_decimals=size_decimals,
                depth_levels=max(1, levels),
            )
            seq = columns.seq if (columns.seq >= 0).all() else np.arange(len(columns), dtype=np.int64)
            self._arrays[name] = (
                columns.time,
                _as_units(columns.price, price_decimals),
                _as_units(columns.volume, size_decimals),
                columns.direction,
                seq,
            )
        self._book_times = {
            name: np.array([b.time for b in recording.books(name)], dtype=np.int64)
            for name in self.instruments
        }

    def day_trades(self, symbol: str, day: int) -> DayTrades:
        """The recorded trades of ``symbol`` on UTC day ``day``."""
        cached = self._trades.recall((symbol, day))
        if cached is not None:
            return cached
        time, price, size, direction, seq = self._arrays[symbol]
        lo, hi = np.searchsorted(time, (day * DAY_MS, (day + 1) * DAY_MS), side="left")
        minute, count = np.unique(time[lo:hi] // MINUTE_MS, return_counts=True)
        trades = DayTrades(
            time[lo:hi],
            price[lo:hi],
            size[lo:hi],
            direction[lo:hi],
            seq[lo:hi],
            minute.astype(np.int64),
            count.astype(np.int64),
        )
        return self._trades.remember((symbol, day), trades)

    def depth(self, symbol: str, now_ms: int, levels: int | None = None) -> Depth | None:
        """The last recorded book before ``now_ms``; derived from the last trade if none was recorded."""
        times = self._book_times[symbol]
        if not len(times):
            return super().depth(symbol, now_ms, levels)
        index = int(np.searchsorted(times, now_ms, side="left")) - 1
        if index < 0:
            return None
        book = self.recording.books(symbol)[index]
        if levels is not None:
            book = Depth(book.symbol, book.time, book.bids[:levels], book.asks[:levels])
        return book


def _decimals(values: np.ndarray) -> int:
    """The fewest decimals that write every value exactly (at most MAX_DECIMALS)."""
    for decimals in range(MAX_DECIMALS):
        scaled = values * 10.0**decimals
        if np.all(np.abs(scaled - np.rint(scaled)) <= 1e-9 * np.maximum(1.0, np.abs(scaled))):
            return decimals
    return MAX_DECIMALS


def _as_units(values: np.ndarray, decimals: int) -> np.ndarray:
    return np.rint(values * 10.0**decimals).astype(np.int64)


def replayed_market(
    replay: str | os.PathLike[str] | Recording,
    symbols: Iterable[str] | None,
    start_ms: int | None,
    end_ms: int | None,
    hours: str = "regular",
) -> tuple[RecordedMarket, int]:
    """The market of a replay and the moment its clock starts (the recording's first trade by default).

    ``replay`` is a recording path or a :class:`Recording`; trades at or after ``end_ms`` are left
    out; trades before ``start_ms`` are history (served over REST, never pushed).
    """
    if isinstance(replay, Recording):
        if end_ms is not None:
            raise ConfigError(
                "end limits a replay read from a path; for a Recording pass end_ms to "
                f"Recording(...) instead, was end={end_ms}"
            )
        recording = replay
    else:
        recording = Recording(replay, end_ms=end_ms)
    names = [parse_symbol(name).symbol for name in symbols] if symbols else None
    missing = sorted(set(names or ()) - set(recording.symbols))
    if missing:
        raise ConfigError(
            f"symbols must be recorded in {str(recording.path)!r} "
            f"({', '.join(recording.symbols)}), was {', '.join(missing)}"
        )
    start = recording.start_ms if start_ms is None else start_ms
    if not recording.start_ms <= start <= recording.end_ms:
        raise ConfigError(
            f"a replay's start (--from) must lie within the recording, "
            f"{format_utc(recording.start_ms)} to {format_utc(recording.end_ms)}, "
            f"was {format_utc(start)}"
        )
    return RecordedMarket(recording, names, hours), start
