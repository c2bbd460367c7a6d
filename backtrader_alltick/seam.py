"""The seam of a live feed: where its bars stop coming from REST and start coming from the stream.

Pure: no I/O, no threads.  Time comes in as ``now_ms`` (market time, epoch ms) with each
event, REST is asked through a callback and answered with :meth:`Seam.on_rest`, so a test
drives every ordering of events by hand.

The invariant: **every trade with** ``start <= ts < end`` **of a delivered bar is in exactly one
delivered bar, whichever of REST and the stream supplied it**; delivered bars are complete and
their close stamps strictly increase.  It holds by these rules:

1. The seam ``S`` is the close stamp of the slot in progress, whatever the calendar says of that
   slot: trades may come while it says closed.  Bars closing at or before ``S`` come from REST,
   which answers only bars the service has closed and so complete; bars closing after ``S`` are
   built from the stream, which ignores every trade before the end of that slot (for a daily
   bar, the end of its trading date, which may lie after its session's close).
2. The stream covers a slot only if it delivered every trade of it.  After a *reset* -- the
   connection dropped, a malformed frame was skipped (the wire parsers refuse an impossible
   trade as malformed), or the inbox overflowed -- that is unknown for every slot up to the
   moment the stream is known to flow again, so the bars forming are thrown away and the seam
   is anchored anew.
3. The first trade after a reset anchors the seam at the close of the slot holding the latest
   of: that trade's time, the present moment and the newest trade offered before the reset.
   A trade's own time is not enough: a server may replay a trade it pushed before the reset
   (same ``seq``, already delivered) or a late one, and a seam anchored on that old time would
   hand the stream a slot whose first trades were pushed while nobody listened.  "The present"
   is our clock plus the most the service's stamps have run ahead of it (up to ``MAX_LEAD_MS``):
   a trade lost at the reset may be stamped that far ahead, in the next slot.  A symbol that
   stays silent anchors at ``anchor_margin_ms`` after the stream is up.
4. Bars the stream builds are held back until REST has delivered every bar up to ``S``; then
   they follow in order.  A bar whose close stamp is not after the last delivered one is
   dropped: it was already delivered from the other source.

Example::

    seam = Seam("BTCUSDT", spec, CRYPTO, request_rest=filler.request)
    seam.on_stream_up(now_ms)
    seam.on_trade(tick, now_ms)            # anchors the seam, asks REST for bars up to it
    seam.on_rest(job, bars, done=True)     # REST bars first, then the stream's
    seam.on_timer(now_ms)                  # closes stream bars once their grace has passed
    for bar, source in seam.take():        # every bar once, oldest first: "bars_rest" or "bars_live"
        ...
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable

from .bars import BarBuilder, regular_bars
from .markets import Market
from .records import Kline, Tick
from .timeframes import BarSpec, slot_of

logger: logging.Logger = logging.getLogger(__name__)

# A trade stamped this far ahead of our clock is believed for rule 3 at most: a clock error, not a
# bad timestamp, is what it measures.
MAX_LEAD_MS = 10_000

RequestRest = Callable[[int | None, int], int]  # (after_ms, upto_ms) -> job id
Reseam = Callable[[str, int, int, bool], None]  # (why, last_end, seam, from_rest)


class Seam:
    """Decide, for one symbol and bar spec, which bars REST supplies and which the stream builds.

    ``request_rest(after_ms, upto_ms)`` must eventually answer with :meth:`on_rest` for the
    bars closing in ``(after_ms, upto_ms]`` (``after_ms`` None: the feed's first backfill).
    :meth:`take` hands out every bar exactly once, oldest first, with where it came from
    (``"bars_rest"`` or ``"bars_live"``); :attr:`stats` counts them and the trades left out.
    ``backfill_start`` and ``backfill`` say whether the first seam and later ones (after a reset)
    ask REST at all.
    ``on_reseam(why, last_end, seam, from_rest)``, if given, is told each time a seam is set anew
    after bars were delivered: whether REST rebuilds the bars closing in ``(last_end, seam]``
    (``from_rest``) or they are skipped (``backfill`` off).
    ``regular_only`` applies the session policy with ``extended_hours`` off to both sources: bars of
    slots without a regular session are left out (counted in :attr:`stats`; the first such trade is
    kept in :attr:`first_offhours` for the user's warning).
    """

    def __init__(
        self,
        symbol: str,
        spec: BarSpec,
        market: Market,
        *,
        request_rest: RequestRest,
        grace_ms: int = 250,
        emit_empty: bool = False,
        anchor_margin_ms: int = 2000,
        backfill_start: bool = True,
        backfill: bool = True,
        regular_only: bool = False,
        on_reseam: Reseam | None = None,
    ) -> None:
        self.spec: BarSpec = spec
        self.market: Market = market
        # The builder's closed bars are taken from what on_timer returns, never called back for.
        self._builder = BarBuilder(
            symbol, spec, market, _ignore, grace_ms=grace_ms, emit_empty=emit_empty, regular_only=regular_only
        )
        self.regular_only = regular_only
        self.offhours_bars: int = 0
        self.first_offhours: Tick | None = None  # the first trade the session policy left out
        self._delivered = {"bars_rest": 0, "bars_live": 0}
        self._ready: deque[tuple[Kline, str]] = deque()
        self._request_rest = request_rest
        self._anchor_margin_ms = anchor_margin_ms
        self._backfill_start, self._backfill = backfill_start, backfill
        self._on_reseam = on_reseam
        self._why = ""  # what cut the stream last (for on_reseam)
        self._seam: int | None = None
        self._done = False
        self._job: int | None = None
        self._pending: deque[Kline] = deque()
        self._last_end: int | None = None
        self._last_close: float | None = None
        self._anchor_deadline: int | None = None
        self._floor_ms: int | None = None  # the seam must close after this moment (rule 3)
        self._newest_offered: int | None = None
        self._lead_ms = 0  # how far the service's trade stamps have run ahead of our clock

    def __repr__(self) -> str:
        return f"Seam(seam={self._seam}, done={self._done}, last_end={self._last_end})"

    @property
    def anchored(self) -> bool:
        """True once the current seam has a place (a trade came, or the margin passed)."""
        return self._seam is not None

    @property
    def done(self) -> bool:
        """True once REST has delivered every bar up to the seam: bars now come from the stream."""
        return self._done

    @property
    def last_end(self) -> int | None:
        """Close stamp of the last bar delivered."""
        return self._last_end

    @property
    def stats(self) -> dict[str, int]:
        """Bars handed out by source, trades dropped as late or repeated or by the session policy."""
        built = self._builder.stats
        return {
            **self._delivered,
            "late_ticks": built.late_ticks,
            "duplicates": built.duplicates,
            "before_seam": built.before_seam,
            "offhours_trades": built.offhours,
            "offhours_bars": self.offhours_bars,
        }

    def take(self) -> list[tuple[Kline, str]]:
        """The bars delivered since the last call, oldest first, each with where it came from."""
        ready = list(self._ready)
        self._ready.clear()
        return ready

    # -- events ------------------------------------------------------------------------------------

    def on_trade(self, tick: Tick, now_ms: int) -> None:
        """A trade of this symbol arrived from the stream."""
        if self._seam is None:
            self._anchor(max(tick.time, now_ms))
        if self._newest_offered is None or tick.time > self._newest_offered:
            self._newest_offered = tick.time
        if tick.time - now_ms > self._lead_ms:
            self._lead_ms = min(tick.time - now_ms, MAX_LEAD_MS)
        stats = self._builder.stats
        offhours = stats.offhours
        self._builder.add_tick(tick)
        if self.first_offhours is None and stats.offhours != offhours:
            self.first_offhours = tick

    def on_stream_up(self, now_ms: int) -> None:
        """The stream is (back) up: a silent symbol anchors its seam after the margin."""
        if self._seam is None:
            self._anchor_deadline = now_ms + self._anchor_margin_ms

    def on_stream_down(self, now_ms: int, why: str = "the stream dropped") -> None:
        """The connection dropped: no seam until the stream is back (``on_stream_up``)."""
        self._reset(now_ms, why)
        self._anchor_deadline = None

    def on_malformed(self, now_ms: int) -> None:
        """A frame that may have carried one of our trades was skipped."""
        if self._seam is not None:
            self._reset(now_ms, "a malformed frame was skipped")
            self._anchor_deadline = now_ms + self._anchor_margin_ms
        else:  # not anchored yet: the seam the next trade sets must still close after the lost one
            self._raise_floor(now_ms)

    def on_overflow(self, now_ms: int) -> None:
        """Trades were thrown away unseen; those still queued are older than the lost ones."""
        self._reset(now_ms, "the inbox overflowed")
        self._anchor(now_ms)

    def on_rest(self, job: int, bars: list[Kline], done: bool) -> None:
        """REST answered (part of) a job; bars of superseded jobs still count, once each."""
        if self.regular_only:
            kept = regular_bars(bars, self.spec, self.market)
            self.offhours_bars += len(bars) - len(kept)
            bars = kept
        for bar in bars:
            self._deliver_once(bar, "bars_rest")
        if job == self._job and done:
            self._finish()

    def on_rest_failed(self, job: int) -> bool:
        """REST gave up on ``job``: ask again for what is still missing; False if ``job`` is not the one
        the seam waits for (a superseded job's failure changes nothing)."""
        if job != self._job or self._seam is None:
            return False
        self._job = self._request_rest(self._last_end, self._seam)
        return True

    def on_timer(self, now_ms: int, read_through_ms: int | None = None) -> None:
        """Run what is due by ``now_ms``: a silent symbol's anchor, stream bars whose grace passed.

        ``read_through_ms``: the moment through which the stream's trades have all been offered (None:
        ``now_ms``); a bar closes only once that moment, too, has passed its end plus grace.
        """
        if self._seam is None and self._anchor_deadline is not None and now_ms >= self._anchor_deadline:
            self._anchor(now_ms)
        if self._seam is None:
            # Nothing is built before the seam has a place; and a clock read before the service told
            # its time (ours, maybe years off) must not move the builder's frontier past its trades.
            return
        closing = now_ms if read_through_ms is None else min(now_ms, read_through_ms)
        for bar in self._builder.on_timer(closing):
            self._on_built(bar)

    def next_deadline(self) -> int | None:
        """Market ms at which :meth:`on_timer` has work next; None when nothing is pending."""
        moments = [m for m in (self._anchor_deadline, self._builder.next_deadline()) if m is not None]
        return min(moments, default=None)

    # -- rules ------------------------------------------------------------------------------------

    def _anchor(self, moment_ms: int) -> None:
        self._anchor_deadline = None
        if self._floor_ms is not None:
            moment_ms = max(moment_ms, self._floor_ms)
        self._floor_ms = None
        slot = slot_of(self.spec, moment_ms, self.market)
        self._seam = seam = slot.end
        self._builder.start_after(slot.next_start, last_close=self._last_close)
        from_rest = self._backfill if self._last_end is not None else self._backfill_start
        if self._last_end is not None and self._on_reseam is not None:
            self._on_reseam(self._why, self._last_end, seam, from_rest)
        if from_rest:
            self._job = self._request_rest(self._last_end, seam)
        else:
            self._finish()

    def _reset(self, now_ms: int, why: str) -> None:
        logger.info(
            "%s: %s; %s",
            self._builder.symbol,
            why,
            "rebuilding the cut bar from REST" if self._backfill else "the cut bars are skipped",
        )
        self._why = why
        self._builder.discard()
        self._pending.clear()
        self._raise_floor(now_ms)
        self._seam = None
        self._done = False
        self._job = None

    def _raise_floor(self, now_ms: int) -> None:
        # Rule 3: the next seam closes after the present (our clock plus the service's lead) and
        # after every trade offered so far.
        present = now_ms + self._lead_ms
        self._floor_ms = max(m for m in (present, self._floor_ms, self._newest_offered) if m is not None)
        self._newest_offered = None

    def _finish(self) -> None:
        self._done = True
        while self._pending:
            self._deliver_once(self._pending.popleft(), "bars_live")

    def _on_built(self, bar: Kline) -> None:
        if self._done:
            self._deliver_once(bar, "bars_live")
        else:
            self._pending.append(bar)

    def _deliver_once(self, bar: Kline, source: str) -> None:
        if self._last_end is not None and bar.end <= self._last_end:
            return  # already delivered from the other source
        self._last_end = bar.end
        self._last_close = bar.close
        self._delivered[source] += 1
        self._ready.append((bar, source))


def _ignore(bar: Kline) -> None:
    pass
