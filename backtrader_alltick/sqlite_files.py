"""What the package's SQLite files share: one immediate transaction, one way to report a bad file.

The K-line cache and the request-quota ledger are small SQLite files the user points at (or a
default beside each other); SQLite and the file system speak of their own failures, while the user
needs the path and the fix.

Example::

    with sqlite_failures(path, "K-line cache"), immediate(db) as db:
        db.execute("INSERT ...")
"""

from __future__ import annotations

import sqlite3
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
