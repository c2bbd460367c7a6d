"""Warnings a user must see, pointed at the user's own line, from whichever thread noticed the condition.

The package logger has a ``NullHandler``, so a plain script or notebook shows none of its log
records.  What the user must act on (an empty range, a feed that ended, bars left out) goes
through :func:`warn_user` as an :class:`~backtrader_alltick.errors.AllTickWarning` instead, which
Python shows by default, once per message and line, and which ``warnings.simplefilter`` and
``pytest.warns`` can silence, escalate or check.

A warning is attributed to the first frame outside this package and Backtrader (the user's
``cerebro.run()`` or ``fetch_klines`` call), so the location Python prints is the user's.  A
background thread has no such frame: while it works for a consumer, it hands its warnings to
that consumer with :func:`handing_to`, whose thread shows them (a feed's ``_load`` runs on
Cerebro's thread, which runs the user's script).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType

from .errors import AllTickWarning, NoBarsWarning
from .records import format_utc

# Frames under these folders are ours or Backtrader's: never the line a user should look at.  Found
# without importing Backtrader, which the transport layer (a rate-limit wait) does not need.
_backtrader = importlib.util.find_spec("backtrader")
_INTERNAL = tuple(
    os.path.dirname(os.path.abspath(path)) + os.sep
    for path in (__file__, _backtrader.origin if _backtrader else None)
    if path
)
_local = threading.local()


@dataclass(frozen=True)
class Notice:
    """A warning noticed on a background thread, to be shown on its consumer's thread.

    Example::

        with handing_to(inbox.put):          # on the worker: warnings become Notices in the inbox
            fetch()
        item = inbox.get(); item.show()     # on the consumer: warned from the user's call
    """

    message: str
    category: type[AllTickWarning]

    def show(self) -> None:
        """Warn with this message from the current thread (the consumer's)."""
        warn_user(self.message, self.category)


def warn_user(message: str, category: type[AllTickWarning] = AllTickWarning) -> None:
    """Warn ``message`` as ``category``, located at the user's line; on a handing-off thread, hand it on.

    Example::

        warn_user("BTCUSDT: no 1m bars from ...; check fromdate/todate", NoBarsWarning)
    """
    post = getattr(_local, "post", None)
    if post is not None:
        post(Notice(message, category))
        return
    warnings.warn(message, category, stacklevel=_user_stacklevel())


def warn_no_bars(
    symbol: str, label: str, start_ms: int | None, end_ms: int | None, newest: int | None, outcome: str
) -> None:
    """Warn that ``symbol`` has no ``label`` bars in the window asked (``start_ms`` None: the ``newest``).

    Dates around no trading day cross once read as trading days (start after end): between them
    the market was closed, which is what the message then says.

    Example::

        warn_no_bars("AAPL.US", "1m", start_ms, end_ms, None, "the feed ends without bars")
    """
    if start_ms is not None and end_ms is not None and start_ms > end_ms:
        start_ms, end_ms = end_ms, start_ms
    asked = (
        "among the newest" + (f" {newest}" if newest else "")
        if start_ms is None
        else f"from {format_utc(start_ms)} to {'now' if end_ms is None else format_utc(end_ms)}"
    )
    warn_user(
        f"{symbol}: no {label} bars {asked} (before the history starts, or the market was closed), "
        f"so {outcome}; widen fromdate/todate or check the symbol's trading days",
        NoBarsWarning,
    )


@contextmanager
def handing_to(post: Callable[[Notice], None]) -> Iterator[None]:
    """While inside, :func:`warn_user` on this thread calls ``post(Notice)`` instead of warning.

    ``post`` must not block: it runs where the warning was noticed (a backfill worker, say).
    """
    previous = getattr(_local, "post", None)
    _local.post = post
    try:
        yield
    finally:
        _local.post = previous


def _user_stacklevel() -> int:
    # stacklevel 1 is warn_user itself (this helper's caller); walk out to the first frame that is
    # neither ours nor Backtrader's.  A thread with none ends at its bootstrap (threading.py), which
    # is still a truthful place; the message says everything else.
    frame: FrameType | None = sys._getframe(1)
    level = 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_INTERNAL):
        frame = frame.f_back
        level += 1
    return level
