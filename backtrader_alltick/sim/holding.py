"""Start a paused simulator's market for a live feed so the feed sees the same bars in every run.

A live feed places its seam (see :mod:`backtrader_alltick.seam`) at the end of the bar in
progress when it handles its first trade, and backfills from REST the bars final at that moment.
On the simulator's fast clock a busy machine can handle that trade a market minute late, and the
feed's bars -- and every number computed from them -- move by a minute.
:func:`resume_when_anchored` lets the market run only to just past that first trade and holds it
there until the feed's first REST request has been answered, however long that takes.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from .grid import MINUTE_MS

if TYPE_CHECKING:
    from .simulator import Simulator

logger: logging.Logger = logging.getLogger(__name__)

# Wall seconds between looks at the simulator: a fraction of a market second on a fast clock.
POLL_S = 0.005
# Wall seconds the market may wait for a subscription, and then stand past the first trade for a feed
# that never asks REST (a feed without backfill): then it runs on, and the run is merely not repeatable.
HOLD_LIMIT_S = 60.0


def resume_when_anchored(
    sim: Simulator,
    symbol: str,
    *,
    ended: threading.Event | None = None,
    within_ms: int = MINUTE_MS,
    limit_s: float = HOLD_LIMIT_S,
) -> threading.Thread:
    """Start ``sim``'s paused clock for a backfilling live feed of ``symbol``; return the thread doing it.

    The clock stands until a WebSocket client has subscribed to ``symbol``, then runs to just
    past the first trade of ``symbol`` (within ``within_ms`` market ms), and stands there until
    the simulator has been asked a REST request since (the feed's backfill, asked once its seam
    is placed) and has answered every request.  Then it runs on for good; at once if no trade
    comes that soon, and also once ``ended`` is set or after ``limit_s`` wall seconds of either
    wait, so nothing waits on a clock that stands.

    Example::

        with Simulator(speed=300, symbols=["BTCUSDT"], paused=True) as sim:
            store = AllTickStore.from_simulator(sim)
            resume_when_anchored(sim, "BTCUSDT")
            cerebro.adddata(store.getdata(dataname="BTCUSDT", timeframe=bt.TimeFrame.Minutes, lookback=20))
            cerebro.run()
    """
    ended = ended if ended is not None else threading.Event()
    thread = threading.Thread(
        target=_hold, args=(sim, symbol, ended, within_ms, limit_s), name="sim-clock-hold", daemon=True
    )
    thread.start()
    return thread


def _hold(sim: Simulator, symbol: str, ended: threading.Event, within_ms: int, limit_s: float) -> None:
    clock = sim.clock
    started, held_since = time.monotonic(), None
    try:
        # The simulator offers no event for a subscription or a reply: look every few wall ms.
        while not any(symbol in session.wanted() for session in sim.sessions()):
            # A simulator closed first (a run that failed, a script's with-block left) serves nobody.
            if ended.wait(POLL_S) or sim.closed or time.monotonic() > started + limit_s:
                return
        if sim.model.instrument(symbol) is None:
            return  # not served: the feed fails on its own
        start = clock.now_ms()
        first = sim.model.trades(symbol, start, start + within_ms)
        if not first:
            return  # nothing to anchor on soon: the feed anchors by its own margin once time runs
        asked = sim.counters["rest_requests"]  # a late answer to an earlier request must not count
        held_since = time.monotonic()
        # The pusher sends the trades before the clock's moment: 1 ms past the first one sends it alone.
        clock.resume(until_ms=first[0].time + 1)
        while not _answered_since(sim, asked):
            if ended.wait(POLL_S) or sim.closed or time.monotonic() > held_since + limit_s:
                return
    finally:
        if held_since is not None and time.monotonic() > held_since + limit_s:
            logger.warning("%s: no REST request came in %.0f s; the market runs on", symbol, limit_s)
        elif held_since is None and time.monotonic() > started + limit_s:
            logger.warning("%s: no subscription came in %.0f s; the market runs on", symbol, limit_s)
        clock.resume()


def _answered_since(sim: Simulator, asked: int) -> bool:
    # A request came since ``asked`` were counted, and every request so far has been answered.
    counters = sim.counters
    return counters["rest_requests"] > asked and counters["rest_replies"] >= counters["rest_requests"]
