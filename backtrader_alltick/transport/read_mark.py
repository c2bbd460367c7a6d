"""How far a connection's reader has read: the moment through which everything that reached the socket
has been handed to the feeds.

A bar closes on our timer ``grace`` after its end, but a trade of the bar that the service sent in
time may still sit unread in the socket while the reader thread waits for the CPU (a universe's
backfill, a busy machine).  Closing then would hand out a bar short of that trade.  The reader
marks each moment it finds the socket empty with every whole message handed out; a bar closes only
once that moment has passed its end plus grace, so the service's trades, not our clock alone,
decide.  A reader that keeps up is found empty at once, so a bar is not held when nothing is unread.

Reading everything that arrived is not enough when the service itself sends late: a feed that falls
behind (a busy server, a congested route) delivers each trade seconds after its stamp, and a bar
closed ``grace`` after its end would still lack the trades on their way.  So the mark also learns the
stream's lag: for each frame that carries a newer trade than any before, how far the service's time
(the store's clock) had run past that trade's stamp when it was handed out.  The largest lag of the
last second (kept while the stream is quiet: a stalled feed has not caught up) holds a bar past
``grace`` by what it exceeds ``grace``; a stream on time (lag within ``grace``) holds nothing.
"""

from __future__ import annotations

import math
import select
import socket
from typing import Protocol

from ..records import Tick

_NEVER = -(2**63)  # no socket read yet: nothing can be unread, nothing vouched for either

# Wall seconds of frames over which the stream's lag is the largest seen (two half windows), and the
# most it may hold a bar: a trade stamped longer ago than that is a replay or a wrong stamp, not lag.
LAG_WINDOW_S, LAG_CAP_S = 1.0, 30.0
# Wall seconds over which :meth:`ReadMark.through` gives every asker the same answer.  The feeds of a
# connection ask one after another in one pass of Cerebro; if the reader took a chunk in between, one
# feed would hold a minute's bar and the next hand its own out (or the other way round), splitting the
# minute over two ``next()`` calls.  A consumer waiting between its passes asks for a fresh answer
# instead: a bar held in one pass is handed out as soon as the reader has caught up, not once the
# window has passed, and the next pass agrees with that answer.  An answer is never earlier than
# the last one (what had been handed out then still has): a feed asking after its bar was held by
# the reader must not hold a minute that another feed of the connection has handed out already.
AGREE_S = 0.1


class _MarketClock(Protocol):
    speed: float

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
        speed = float(getattr(clock, "speed", 1.0))
        self._half_window_ms = int(LAG_WINDOW_S / 2 * 1000 * speed)
        self._lag_cap_ms = int(LAG_CAP_S * 1000 * speed)
        self._newest = _NEVER  # the newest trade stamp handed out
        # The largest lag of the current half window and of the one before it; their start.
        self._window_start = _NEVER
        self._lag_now = self._lag_before = 0
        self.lag_ms: int = 0  # the stream's lag: the largest of the two half windows
        self._agree_ms = int(AGREE_S * 1000 * speed)
        self._answers: dict[int, tuple[int, int]] = {}  # grace_ms -> (asked at, through)

    def __repr__(self) -> str:
        since, waiting = self._state
        return f"ReadMark(through={since}, waiting={waiting is not None}, lag_ms={self.lag_ms})"

    def handed_out(self, records: list) -> None:
        """Learn the stream's lag from a frame's records just handed out (the reader's thread only)."""
        newest = self._newest
        for record in records:
            if type(record) is Tick and record.time > newest:
                newest = record.time
        if newest == self._newest:
            return  # no newer trade: a repeat, a late print or a quote says nothing about the lag
        self._newest = newest
        now = self._clock.now_ms()
        lag = min(max(now - newest, 0), self._lag_cap_ms)
        if now - self._window_start >= self._half_window_ms:
            self._window_start, self._lag_before, self._lag_now = now, self._lag_now, lag
        else:
            self._lag_now = max(self._lag_now, lag)
        self.lag_ms = max(self._lag_now, self._lag_before)

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

    def through(self, now_ms: int, grace_ms: int = 0, *, fresh: bool = False) -> int:
        """Market ms through which everything that reached the socket has been handed out: ``now_ms``
        (read before calling) while the reader waits with nothing unread, else the last moment it found
        the socket empty; earlier by what the stream's lag exceeds ``grace_ms`` (the wait a bar's
        close already allows for trades in flight).  Asked again within ``AGREE_S``: the same answer
        (``fresh``: a new one, asked while the consumer waits between its passes); later, never an
        earlier one."""
        asked, answer = self._answers.get(grace_ms, (_NEVER, _NEVER))
        if not fresh and asked <= now_ms <= asked + self._agree_ms:
            return answer
        answer = max(answer, self._read_through(now_ms) - max(0, self.lag_ms - grace_ms))
        self._answers[grace_ms] = (now_ms, answer)
        return answer

    def _read_through(self, now_ms: int) -> int:
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
