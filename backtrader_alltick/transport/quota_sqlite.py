"""The quota ledger of one machine: an SQLite file next to the K-line cache.

Every process that opens the same file (same cache directory) shares one state per token.
Each decision is one ``BEGIN IMMEDIATE`` transaction: it takes the write lock before it reads,
so two processes cannot read the same state and both take the slot it frees; the busy
timeout queues the second.  WAL keeps the cost of a transaction far below any plan's spacing.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from ..errors import CacheError
from ..sqlite_files import immediate, one_snapshot, sqlite_failures, use_wal
from .quota_ledger import QuotaState, T, service_day

logger: logging.Logger = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 30_000
SCHEMA_VERSION = 1
_SCHEMA = "CREATE TABLE IF NOT EXISTS quota (key TEXT PRIMARY KEY, state TEXT NOT NULL) WITHOUT ROWID"
_COLUMNS = ["key", "state"]
WHAT = "request-quota ledger"  # as errors name the file


class FileLedger:
    """One token's quota in an SQLite file shared by the processes of a machine.

    Parameters
    ----------
    path : str or Path
        The ledger file, created if missing (the store uses ``quota.sqlite`` beside its cache).
    key : str
        The token's ledger name (:func:`~.quota_ledger.quota_key`), never the token.
    clock : callable
        Wall-clock seconds; every process of the machine reads the same one.  Injected by tests.

    Example::

        ledger = FileLedger(cache_dir / "quota.sqlite", quota_key("alltick", url, token))
        ledger.transact(lambda state, now: state.day_count)   # calls counted today, by every process
    """

    shared = True

    def __init__(self, path: str | Path, key: str, *, clock: Callable[[], float] = time.time) -> None:
        self.path: str = str(path)
        self._key = key
        self._clock = clock
        self._lock = threading.Lock()  # one connection, used by every thread of the store
        self._db: sqlite3.Connection | None = None
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"FileLedger(path={self.path!r})"

    def _open(self) -> None:
        with self._failures():
            if Path(self.path).is_dir():
                raise CacheError(self.path, "is a directory", WHAT)
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            db = self._db = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
            )
            db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            with one_snapshot(db):
                self._check_ours(db)
            use_wal(db, BUSY_TIMEOUT_MS / 1000)
            db.execute("PRAGMA synchronous = NORMAL")
            with self._transaction() as db:
                db.execute(_SCHEMA)
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _check_ours(self, db: sqlite3.Connection) -> None:
        # Read-only questions first: a file that is not ours leaves here as it came.
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if not tables and version == 0:
            return
        columns = [row[1] for row in db.execute("PRAGMA table_info(quota)")]
        if tables != {"quota"} or columns != _COLUMNS:
            raise CacheError(
                self.path, "is an SQLite database of another program; it was left untouched", WHAT
            )
        if version > SCHEMA_VERSION:
            raise CacheError(
                self.path,
                f"was written by a newer backtrader-alltick (schema {version}, this "
                f"one reads {SCHEMA_VERSION}); upgrade the package",
                WHAT,
            )

    def transact(self, change: Callable[[QuotaState, float], T]) -> T:
        """Run ``change(state, now)`` in one write transaction; store the state if it changed."""
        with self._transaction() as db:
            row = db.execute("SELECT state FROM quota WHERE key = ?", (self._key,)).fetchone()
            before = row[0] if row else None
            state = QuotaState.from_json(before)
            now = self._clock()
            state.roll(service_day(now))
            state.settle_clock(now)
            result = change(state, now)
            after = state.to_json()
            if after != before:
                db.execute(
                    "INSERT INTO quota (key, state) VALUES (?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET state = excluded.state",
                    (self._key, after),
                )
        return result

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._failures():
            if self._db is None:
                raise CacheError(self.path, "was closed with its store; create a new store", WHAT)
            with immediate(self._db) as db:
                yield db

    def _failures(self) -> AbstractContextManager[None]:
        return sqlite_failures(self.path, WHAT, "is not an SQLite file, or a damaged one")
