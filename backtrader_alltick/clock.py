"""Clocks: the one source of "now" for a store, its feeds and the simulator.

A clock has ``now_ms()`` (market time, epoch ms) and ``speed`` (market seconds per
wall second), so a waiter can turn a market-time delay into a wall-time timeout.

Whether a bar has closed is the service's decision, so a store's clock is a
:class:`ServiceClock`: our own clock (the wall, or an injected one) only measures the time
between the service's answers, and the service's time is learnt from what they carry.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Protocol

from .errors import ConfigError

# Wall seconds a bar must have been closed by the service's clock before its K-line counts as
# final: the service may still be adding the last trades of a bar that just ended.
CLOSE_LAG_S = 0.2


class Clock(Protocol):
    speed: float

    def now_ms(self) -> int: ...


class WallClock:
    """Wall-clock UTC read once, then advanced by the monotonic clock, so it never jumps back.

    Example::

        WallClock().now_ms()   # about time.time() * 1000
    """

    speed: float = 1.0

    def __init__(self) -> None:
        self._wall0 = time.time() * 1000
        self._mono0 = time.monotonic()

    def now_ms(self) -> int:
        return int(self._wall0 + (time.monotonic() - self._mono0) * 1000)


class ServiceClock:
    """The service's time, learnt from its answers; ``base`` (our clock) only measures time between them.

    Evidence is anything that proves the service's clock has reached a moment: the HTTP
    ``Date`` of an answer (:meth:`observe_server_clock`), a trade stamp or the start of the
    newest bar of a page (:meth:`observe_server_time`).  The largest such moment, carried
    forward by ``base``, is a lower bound of the service's time (:meth:`known_ms`): a bar
    counts as closed only when that bound has passed its end (:meth:`closed_until`), never
    because our clock says so.  ``now_ms()`` is that bound once the service has been heard
    from, so a clock seconds (or years) off ours closes nothing early.

    Example::

        clock = ServiceClock()                        # our clock: the wall
        sent = clock.mark()
        ... send a request; the answer's Date header says 15:01:00 ...
        clock.observe_server_clock(date_ms)
        clock.closed_until(sent)                      # bars ending by this are final
    """

    # Our clock and the service's may run at rates this far apart (quartz: well under 100 ppm).
    DRIFT = 1e-4
    # A trade stamp further ahead than ten minutes of the time known so far is wrong, not a clock.
    MAX_SKEW_MS = 600_000

    def __init__(self, base: Clock | None = None) -> None:
        self.base: Clock = base if base is not None else WallClock()
        self.speed: float = float(self.base.speed)
        self._lock = threading.Lock()
        self._best: tuple[int, int] | None = None  # (service ms, base ms): the tightest lower bound
        self._read = False  # a reading of the service's own clock (an HTTP Date) has been seen

    def __getstate__(self) -> dict[str, Any]:
        # A copy in another process (optimisation workers) learns the service's time anew.
        return {"base": self.base}

    def __setstate__(self, state: dict[str, Any]) -> None:
        # ServiceClock's own __init__: a subclass (SystemClock) may take no base.
        ServiceClock.__init__(self, state["base"])

    def __repr__(self) -> str:
        return (
            f"ServiceClock(base={type(self.base).__name__}, offset_ms={self.offset_ms}, learnt={self.learnt})"
        )

    @property
    def learnt(self) -> bool:
        """Whether the service has told its time yet."""
        return self._best is not None

    @property
    def offset_ms(self) -> int:
        """How far the service's clock is known to run ahead of ours (negative: behind); 0 before learning."""
        at = self.base.now_ms()
        known = self.known_ms(at)
        return 0 if known is None else known - at

    def mark(self) -> int:
        """Our clock now: a moment to ask :meth:`known_ms` about later (say, when a request was sent)."""
        return self.base.now_ms()

    def now_ms(self) -> int:
        # Read without the lock: _best is replaced whole, and every trade and bar asks the time, so
        # thousands of backfill threads and the stream reader queued on one lock (a convoy).
        at = self.base.now_ms()
        read = self._read
        known = self._known(at)
        if known is None:
            return at
        # Trade stamps and bar starts alone may be stale (a closed market); far behind ours they
        # say nothing about now.  A reading of the service's clock always decides.
        if read or known >= at - self.MAX_SKEW_MS:
            return known
        return at

    def known_ms(self, at: int | None = None) -> int | None:
        """The latest moment the service's clock had surely reached at our moment ``at`` (default now);
        None until the service has told its time."""
        at = self.base.now_ms() if at is None else at
        return self._known(at)

    def closed_until(self, at: int | None = None) -> int | None:
        """Bars ending by this moment were closed by the service at our moment ``at`` (default now);
        None until the service has told its time: nothing counts as closed then."""
        known = self.known_ms(at)
        return None if known is None else known - int(CLOSE_LAG_S * 1000 * self.speed)

    def observe_server_clock(self, server_ms: int) -> None:
        """The service's clock read ``server_ms`` or later just now (an HTTP ``Date``: floored seconds)."""
        self._observe(int(server_ms), reading=True)

    def observe_server_time(self, server_ms: int) -> None:
        """The service's time has reached ``server_ms``: a trade stamp, the start of a bar it served."""
        best = self._best
        # Called for every trade.  Our clock never runs back, and the time known only grows, so a stamp
        # no newer than the newest taken, or than the time known now from one consistent reading of
        # it, changes nothing: dismissed without the lock (or, the first, without a clock read).
        if best is not None and (
            server_ms <= best[0] or server_ms <= _carried(best, self.base.now_ms(), self.DRIFT)
        ):
            return
        self._observe(int(server_ms), reading=False)

    def _observe(self, server_ms: int, reading: bool) -> None:
        at = self.base.now_ms()
        if not reading or self._read:
            known = self._known(at)
            if known is not None and server_ms <= known:
                return  # nothing to learn, the common case: no lock
        with self._lock:
            known = self._known(at)
            if not reading:
                if known is None:
                    reference = at
                else:
                    reference = known if self._read else max(at, known)
                if server_ms > reference + self.MAX_SKEW_MS:
                    return  # a stamp from the future: a wrong stamp, not the service's clock
            if known is None or server_ms > known:
                self._best = (server_ms, at)
            self._read = self._read or reading

    def _known(self, at: int) -> int | None:
        best = self._best  # one read: another thread may replace it meanwhile
        return None if best is None else _carried(best, at, self.DRIFT)


def _carried(best: tuple[int, int], at: int, drift: float) -> int:
    """The service's time at our moment ``at``, from its (service ms, base ms) reading ``best``."""
    server_ms, base_ms = best
    elapsed = at - base_ms
    # Carried forward (or back) by our clock, allowing for the rates differing by drift.
    return server_ms + elapsed - int(abs(elapsed) * drift)


class SystemClock(ServiceClock):
    """The default store clock: the wall, corrected by what the service's answers and trades say.

    Example::

        clock = SystemClock()
        clock.observe_server_time(tick.time)   # the store does this for every trade
    """

    def __init__(self) -> None:
        super().__init__(WallClock())


class _Trusted:
    """A clock taken as the service's own (a simulator's, in its process): it decides alone."""

    learnt = True

    def __init__(self, clock: Clock) -> None:
        self.base: Clock = clock
        self.speed: float = float(clock.speed)

    def now_ms(self) -> int:
        return self.base.now_ms()

    def mark(self) -> int:
        return self.base.now_ms()

    def known_ms(self, at: int | None = None) -> int:
        return self.base.now_ms() if at is None else at

    def closed_until(self, at: int | None = None) -> int:
        return self.known_ms(at) - int(CLOSE_LAG_S * 1000 * self.speed)

    def observe_server_clock(self, server_ms: int) -> None:
        pass

    def observe_server_time(self, server_ms: int) -> None:
        pass


def as_service_clock(clock: Clock) -> ServiceClock | _Trusted:
    """``clock`` if it learns the service's time; any other clock is taken as the service's own."""
    return clock if isinstance(clock, ServiceClock) else _Trusted(clock)


class ScaledClock:
    """Market time that starts at ``start_ms`` and runs ``speed`` times faster than the wall.

    ``paused=True`` makes a clock that stands at ``start_ms`` until :meth:`resume`: whatever
    runs before that (a backtest, a feed connecting) sees the same market time however long
    it takes, so a run on a fast clock gives the same bars every time.  ``resume(until_ms=...)``
    lets it run only up to a moment, where it stands again until the next :meth:`resume`.

    Example::

        clock = ScaledClock(start_ms=1_700_000_000_000, speed=60)   # a minute per second
        held = ScaledClock(start_ms=1_700_000_000_000, speed=60, paused=True)
        held.resume(until_ms=1_700_000_059_999)                      # runs, then stands there
        held.resume()                                                # from there on it runs
    """

    def __init__(self, start_ms: int, speed: float = 1.0, *, paused: bool = False) -> None:
        if not speed > 0:
            raise ConfigError(f"speed must be above 0, was {speed!r}")
        self.start_ms: int = int(start_ms)
        self.speed: float = float(speed)
        # (market ms, wall moment it was read there, moment it stands at or None); None while paused.
        # Replaced whole and read once per now_ms, so resume() on another thread needs no lock.
        self._run: tuple[int, float, int | None] | None = (
            None if paused else (self.start_ms, time.monotonic(), None)
        )

    @property
    def paused(self) -> bool:
        """True until :meth:`resume` for a clock made with ``paused=True``."""
        return self._run is None

    def resume(self, until_ms: int | None = None) -> None:
        """Let the clock run on from where it stands, up to ``until_ms`` if given (None: for good).

        A clock already running for good is left as it is.
        """
        run = self._run
        if run is not None and run[2] is None:
            return
        self._run = (self.now_ms(), time.monotonic(), None if until_ms is None else int(until_ms))

    def now_ms(self) -> int:
        run = self._run
        if run is None:
            return self.start_ms
        since_ms, wall0, until_ms = run
        moment = since_ms + int((time.monotonic() - wall0) * 1000 * self.speed)
        return moment if until_ms is None else min(moment, until_ms)


def wall_seconds(clock: Clock, market_ms: float) -> float:
    """Wall seconds until ``clock`` reaches ``market_ms``; 0 when it already has."""
    return max(0.0, (market_ms - clock.now_ms()) / 1000 / clock.speed)
