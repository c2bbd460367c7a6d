"""How far a connection's reader has read: the moment through which everything that reached the socket
has been handed to the feeds.

A bar closes on our timer ``grace`` after its end, but a trade of the bar that the service sent in
time may still sit unread in the socket while the reader thread waits for the CPU (a universe's
backfill, a busy machine).  Closing then would hand out a bar short of that trade.  The reader
marks each moment it finds the socket empty with every whole message handed out; a bar closes only
once that moment has passed its end plus grace, so the service's trades, not our clock alone,
decide.  A reader that keeps up is found empty at once, so a bar is not held when nothing is unread.
"""

from __future__ import annotations

import math
import select
import socket
from typing import Protocol

_NEVER = -(2**63)  # no socket read yet: nothing can be unread, nothing vouched for either


class _MarketClock(Protocol):
    def now_ms(self) -> int: ...


class ReadMark:
    """The moment (market ms) through which a socket reader has handed out everything it received.

    The reader calls :meth:`wait_readable` instead of blocking in ``recv`` whenever it has handed out
    every whole message read so far; any thread asks :meth:`through`.

    Example::

        mark = ReadMark(clock)
        # the reader thread, its buffer empty:
        if not mark.wait_readable(sock, timeout):
            raise TimeoutError
        # a consumer, before closing a bar that ends (with grace) at close_ms:
        now = clock.now_ms()
        if mark.through(now) >= close_ms:
            ...  # every trade the service sent before close_ms has been handed out
    """

    def __init__(self, clock: _MarketClock) -> None:
        self._clock = clock
        # (moment found empty, socket waited on now or None while reading): one tuple, so that a
        # reader replacing it is seen whole by another thread, and a change is seen by identity.
        self._state: tuple[int, socket.socket | None] = (_NEVER, None)

    def __repr__(self) -> str:
        since, waiting = self._state
        return f"ReadMark(through={since}, waiting={waiting is not None})"

    def wait_readable(self, sock: socket.socket, timeout: float | None) -> bool:
        """Wait up to ``timeout`` seconds (None: for ever) until ``sock`` has bytes; False on timeout.

        The reader's thread only, with every whole message read so far handed out.
        """
        since = self._state[0]
        moment = self._clock.now_ms()
        try:
            unread = _readable(sock)
        except (OSError, ValueError):  # closed under us: recv says how
            return True
        if not unread:
            # Nothing unread at ``moment``: every byte that arrived before it has been handed out.
            since = moment
            self._state = (since, sock)
            try:
                readable = _wait(sock, timeout)
            finally:
                self._state = (since, None)  # before recv takes bytes out of the socket
            return readable
        return True  # a backlog: the moment found empty stays the one before it

    def through(self, now_ms: int) -> int:
        """Market ms through which everything that reached the socket has been handed out: ``now_ms``
        (read before calling) while the reader waits with nothing unread, else the last moment it found
        the socket empty."""
        state = self._state
        since, sock = state
        if sock is None:
            return since
        try:
            unread = _readable(sock)
        except (OSError, ValueError):  # closed under us: the connection is ending
            return since
        # The reader takes bytes only after it has replaced the state: the same state now means
        # nothing had been taken when the socket was seen empty.
        if unread or self._state is not state:
            return since
        return max(since, now_ms)


def _readable(sock: socket.socket) -> bool:
    pending = getattr(sock, "pending", None)  # TLS: bytes already decrypted, out of the kernel's sight
    if pending is not None and pending():
        return True
    return _wait(sock, 0)


def _wait(sock: socket.socket, timeout: float | None) -> bool:
    # poll where there is one: select() refuses descriptors past 1024, which a process holding many
    # connections and files reaches, and the mark would then never move.
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP)
        return bool(poller.poll(None if timeout is None else math.ceil(timeout * 1000)))
    return bool(select.select([sock], [], [], timeout)[0])
