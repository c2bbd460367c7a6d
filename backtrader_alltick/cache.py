"""Persistent K-line cache: one SQLite file shared by every store and process of a user.

Two tables.  ``klines`` holds closed bars keyed by (namespace, symbol, period, start)
and is written with upserts.  The namespace says where bars came from (the dialect alone for
its real service, ``alltick@host:port`` for any other host: ``history.cache_namespace``); its
column is named ``dialect``, kept so older cache files still open.  ``coverage`` holds the
ranges of bar start times known to be complete: a closed market has no bars, so only coverage
tells "nothing there" from "never fetched".  Ranges are half-open ``[start, end)`` in epoch ms
and are merged on insert.

The file uses WAL so readers never block writers, a busy timeout so two processes
writing at once queue instead of failing, and ``BEGIN IMMEDIATE`` for every write so
a reader never has to upgrade its lock mid-transaction (that upgrade is the one case
SQLite's busy handler cannot resolve).

A file that is not ours (a directory, a text file, another program's SQLite database,
even one with tables of our names but other columns, a cache of a newer version) is
refused with :class:`~backtrader_alltick.errors.CacheError` before anything is written
to it, its pragmas included.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from .errors import CacheError, ConfigError
from .records import Kline
from .sqlite_files import immediate, one_snapshot, sqlite_failures, use_wal

logger: logging.Logger = logging.getLogger(__name__)

CACHE_FILE = Path("backtrader_alltick") / "klines.sqlite"
MEMORY = ":memory:"
BUSY_TIMEOUT_MS = 30_000
# 2: daily and longer bars close on the calendar's last trading day (early closes included);
# bars cached by version 1 carry other close instants and are dropped on open.
SCHEMA_VERSION = 2
_DAILY_AND_LONGER = ("1d", "1w", "1M")
_KEY = ("dialect", "symbol", "period", "start")
# Each table's columns, and their place in the primary key (0: not in it), as PRAGMA table_info tells.
_COLUMNS = {
    "klines": {
        **{name: index + 1 for index, name in enumerate(_KEY)},
        **dict.fromkeys(("end", "open", "high", "low", "close", "volume", "turnover"), 0),
    },
    "coverage": {**{name: index + 1 for index, name in enumerate(_KEY)}, "end": 0},
}
_TABLES = set(_COLUMNS)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS klines (
    dialect TEXT NOT NULL, symbol TEXT NOT NULL, period TEXT NOT NULL, start INTEGER NOT NULL,
    "end" INTEGER NOT NULL, open REAL NOT NULL, high REAL NOT NULL, low REAL NOT NULL,
    close REAL NOT NULL, volume REAL NOT NULL, turnover REAL NOT NULL,
    PRIMARY KEY (dialect, symbol, period, start)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS coverage (
    dialect TEXT NOT NULL, symbol TEXT NOT NULL, period TEXT NOT NULL, start INTEGER NOT NULL,
    "end" INTEGER NOT NULL,
    PRIMARY KEY (dialect, symbol, period, start)
) WITHOUT ROWID;
"""
_UPSERT = """
INSERT INTO klines (dialect, symbol, period, start, "end", open, high, low, close, volume, turnover)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (dialect, symbol, period, start) DO UPDATE SET
    "end" = excluded."end", open = excluded.open, high = excluded.high, low = excluded.low,
    close = excluded.close, volume = excluded.volume, turnover = excluded.turnover
"""


def default_cache_path() -> Path:
    """Return the cache file in the user cache directory of this platform."""
    if sys.platform.startswith("win"):
        root = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        root = str(Path.home() / "Library" / "Caches")
    else:
        root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / CACHE_FILE


def cache_directory(setting: bool | str | os.PathLike[str] | None) -> Path | None:
    """The directory of the cache a store's ``cache`` param names; None for no cache or ``":memory:"``."""
    if setting is True:
        return default_cache_path().parent
    if not setting or str(setting) == MEMORY:
        return None
    return Path(setting).parent


class KlineCache:
    """Closed K-lines on disk, with the time ranges known to be complete.

    Parameters
    ----------
    path : str or Path, optional
        The SQLite file; default :func:`default_cache_path`.  ``":memory:"`` keeps
        everything in this object only.

    Example::

        cache = KlineCache()
        cache.put("alltick", bars)
        cache.mark_covered("alltick", "BTCUSDT", "1m", bars[0].start, bars[-1].end)
        cache.missing("alltick", "BTCUSDT", "1m", t0, t1)   # [] when nothing is left to fetch
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        if path is None:
            path = default_cache_path()
        self.path: str = str(path)
        # One connection guarded by a lock: feeds of a store may load from several threads.
        self._lock = threading.RLock()
        self._db = self._connect()
        try:
            self._prepare()
        except BaseException:
            self._db.close()
            raise
        logger.debug("K-line cache opened at %s", self.path)

    def _connect(self) -> sqlite3.Connection:
        with self._failures():
            if self.path != MEMORY:
                if Path(self.path).is_dir():
                    raise CacheError(self.path, "is a directory")
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            return sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
            )

    def _prepare(self) -> None:
        with self._failures():
            self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            with one_snapshot(self._db):
                self._check_ours()
            if self.path != MEMORY:
                use_wal(self._db, BUSY_TIMEOUT_MS / 1000)
                self._db.execute("PRAGMA synchronous = NORMAL")
        with self._write() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            if 0 < version < 2:
                self._drop_periods(db, _DAILY_AND_LONGER)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _check_ours(self) -> None:
        # Read-only questions first: a file that is not ours must leave here exactly as it came.
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        tables = {name for (name,) in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables and version == 0:
            return  # a new (or empty) file
        if tables - _TABLES or not tables:
            listed = ", ".join(sorted(tables)) or "none"
            raise CacheError(
                self.path,
                f"is an SQLite database of another program (tables: {listed}, "
                f"user_version {version}); it was left untouched",
            )
        for table in sorted(tables):
            columns = {row[1]: row[5] for row in self._db.execute(f"PRAGMA table_info({table})")}
            if columns != _COLUMNS[table]:
                raise CacheError(
                    self.path,
                    f"is an SQLite database of another program (table {table} has "
                    f"columns {', '.join(columns)}, user_version {version}); it was "
                    "left untouched",
                )
        if version > SCHEMA_VERSION:
            raise CacheError(
                self.path,
                f"was written by a newer backtrader-alltick (schema {version}, this "
                f"one reads {SCHEMA_VERSION}); upgrade the package",
            )

    def __repr__(self) -> str:
        return f"KlineCache(path={self.path!r})"

    @staticmethod
    def _drop_periods(db: sqlite3.Connection, periods: tuple[str, ...]) -> None:
        marks = ", ".join("?" * len(periods))
        dropped = db.execute(f"DELETE FROM klines WHERE period IN ({marks})", periods).rowcount
        db.execute(f"DELETE FROM coverage WHERE period IN ({marks})", periods)
        logger.info(
            "K-line cache: dropped %d daily/weekly/monthly bars of an older version "
            "(they are fetched again with the trading calendar's closes)",
            dropped,
        )

    def __enter__(self) -> KlineCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def put(self, namespace: str, klines: Iterable[Kline], *, now_ms: int | None = None) -> int:
        """Insert or replace closed bars; return how many were written.

        ``now_ms``, when given, is checked against every bar: a bar that ends after it
        is still forming and must not be cached.
        """
        rows = []
        for bar in klines:
            if now_ms is not None and bar.end > now_ms:
                raise ConfigError(
                    f"bar {bar.symbol} {bar.period} ending at {bar.end} is still forming at {now_ms}; "
                    "cache only closed bars"
                )
            rows.append(
                (
                    namespace,
                    bar.symbol,
                    bar.period,
                    bar.start,
                    bar.end,
                    bar.open,
                    bar.high,
                    bar.low,
                    bar.close,
                    bar.volume,
                    bar.turnover,
                )
            )
        if rows:
            with self._write() as db:
                db.executemany(_UPSERT, rows)
        return len(rows)

    def get(self, namespace: str, symbol: str, period: str, start_ms: int, end_ms: int) -> list[Kline]:
        """Return cached bars whose start lies in ``[start_ms, end_ms)``, oldest first."""
        with self._lock, self._failures():
            rows = self._db.execute(
                'SELECT start, "end", open, high, low, close, volume, turnover FROM klines '
                "WHERE dialect = ? AND symbol = ? AND period = ? AND start >= ? AND start < ? "
                "ORDER BY start",
                (namespace, symbol, period, start_ms, end_ms),
            ).fetchall()
        return [Kline(symbol, period, *row) for row in rows]

    def mark_covered(self, namespace: str, symbol: str, period: str, start_ms: int, end_ms: int) -> None:
        """Record that every bar starting in ``[start_ms, end_ms)`` is in the cache."""
        if end_ms <= start_ms:
            return
        key = (namespace, symbol, period)
        with self._write() as db:
            # Overlapping and touching ranges fold into one.
            rows = db.execute(
                'SELECT start, "end" FROM coverage WHERE dialect = ? AND symbol = ? AND period = ? '
                'AND start <= ? AND "end" >= ?',
                (*key, end_ms, start_ms),
            ).fetchall()
            low = min([start_ms, *(row[0] for row in rows)])
            high = max([end_ms, *(row[1] for row in rows)])
            db.executemany(
                "DELETE FROM coverage WHERE dialect = ? AND symbol = ? AND period = ? AND start = ?",
                [(*key, row[0]) for row in rows],
            )
            db.execute(
                'INSERT INTO coverage (dialect, symbol, period, start, "end") VALUES (?, ?, ?, ?, ?)',
                (*key, low, high),
            )

    def covered(
        self, namespace: str, symbol: str, period: str, start_ms: int, end_ms: int
    ) -> list[tuple[int, int]]:
        """Return the covered ranges that intersect ``[start_ms, end_ms)``, clipped to it, in order."""
        with self._lock, self._failures():
            rows = self._db.execute(
                'SELECT start, "end" FROM coverage WHERE dialect = ? AND symbol = ? AND period = ? '
                'AND start < ? AND "end" > ? ORDER BY start',
                (namespace, symbol, period, end_ms, start_ms),
            ).fetchall()
        return [(max(low, start_ms), min(high, end_ms)) for low, high in rows]

    def missing(
        self, namespace: str, symbol: str, period: str, start_ms: int, end_ms: int
    ) -> list[tuple[int, int]]:
        """Return the parts of ``[start_ms, end_ms)`` not covered yet, oldest first."""
        gaps: list[tuple[int, int]] = []
        cursor = start_ms
        for low, high in self.covered(namespace, symbol, period, start_ms, end_ms):
            if low > cursor:
                gaps.append((cursor, low))
            cursor = max(cursor, high)
        if cursor < end_ms:
            gaps.append((cursor, end_ms))
        return gaps

    def info(self) -> list[dict[str, Any]]:
        """Summarise the cache: one dict per (dialect, symbol, period) with bars, first start, last end."""
        with self._lock, self._failures():
            rows = self._db.execute(
                'SELECT dialect, symbol, period, COUNT(*), MIN(start), MAX("end") FROM klines '
                "GROUP BY dialect, symbol, period ORDER BY dialect, symbol, period"
            ).fetchall()
        return [
            {"dialect": d, "symbol": s, "period": p, "bars": n, "first": first, "last": last}
            for d, s, p, n, first, last in rows
        ]

    def clear(self, symbol: str | None = None) -> None:
        """Forget every bar and coverage range, or only those of ``symbol`` (all dialects and periods)."""
        with self._write() as db:
            for table in ("klines", "coverage"):
                if symbol is None:
                    db.execute(f"DELETE FROM {table}")
                else:
                    db.execute(f"DELETE FROM {table} WHERE symbol = ?", (symbol,))

    def close(self) -> None:
        """Close the database connection; the object cannot be used afterwards."""
        with self._lock:
            self._db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._failures(), immediate(self._db) as db:
            yield db

    def _failures(self) -> AbstractContextManager[None]:
        return sqlite_failures(
            self.path, "K-line cache", "is not a K-line cache (not an SQLite file, or a damaged one)"
        )
