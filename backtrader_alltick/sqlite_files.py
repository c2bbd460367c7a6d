"""What the package's SQLite files share: one immediate transaction, one way to report a bad file.

The K-line cache and the request-quota ledger are small SQLite files the user points at (or a
default beside each other); SQLite and the file system speak of their own failures, while the user
needs the path and the fix.

Example::

    with sqlite_failures(path, "K-line cache"):
        use_wal(db, timeout=30.0)
        with immediate(db) as db:
            db.execute("INSERT ...")
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager

from .errors import CacheError


@contextmanager
def immediate(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction that takes the file's write lock at once, so no other process can slip
    a write between this one's read and write; rolled back on any error."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


@contextmanager
def one_snapshot(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Reads that all see the file at one moment: another process's transaction (creating the
    tables and stamping the version, say) is seen whole or not at all."""
    db.execute("BEGIN")
    try:
        yield db
    finally:
        db.execute("COMMIT")  # nothing was written: ending the read is all there is to do


# How long use_wal() pauses between two tries: short, since the switch it waits for takes milliseconds.
_FIRST_PAUSE_S = 0.005
_LONGEST_PAUSE_S = 0.1


def _pause(seconds: float) -> None:
    # A seam: a test lets the other connection finish here instead of waiting.
    time.sleep(seconds)


def use_wal(db: sqlite3.Connection, timeout: float) -> None:
    """Put the file in WAL mode, waiting up to ``timeout`` seconds for another connection that holds its
    write lock.

    SQLite answers "database is locked" at once, without its busy handler, to a journal-mode change
    while another connection writes a file still in rollback mode: that is what two processes opening
    a new file together meet (optimisation workers on a cold cache), one of them creating the tables.
    """
    deadline = time.monotonic() + timeout
    pause = _FIRST_PAUSE_S
    while True:
        try:
            db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() + pause > deadline:
                raise
        _pause(pause)
        pause = min(pause * 2, _LONGEST_PAUSE_S)


@contextmanager
def sqlite_failures(path: str, what: str, not_ours: str) -> Iterator[None]:
    """Turn SQLite's and the file system's errors into a :class:`CacheError` naming ``path``;
    ``not_ours`` is what a file that is not an SQLite file (or a damaged one) is said to be."""
    try:
        yield
    except sqlite3.DatabaseError as e:
        text = str(e)
        if "not a database" in text or "malformed" in text:
            problem = f"{not_ours}; it was left as is"
        elif "readonly" in text or "unable to open" in text:
            problem = f"cannot be opened for writing ({text})"
        else:
            problem = f"cannot be used (sqlite3: {text})"
        raise CacheError(path, problem, what) from None
    except OSError as e:
        raise CacheError(path, f"cannot be created ({type(e).__name__}: {e.strerror or e})", what) from None
