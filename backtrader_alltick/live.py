"""The live half of ``AllTickData``: inbox, backfill worker and the feed's states around the seam.

Socket threads only ever ``put_nowait`` into the inbox; everything else runs on
Cerebro's thread inside ``next_bar``, so notifications and lines are never touched
from another thread (backtrader-live-feeds.md, section e).  Which bars come from REST and
which from the stream is decided by :class:`~backtrader_alltick.seam.Seam` (its docstring
states the invariant); this module feeds it events stamped with the store's clock.
"""

from __future__ import annotations

import logging
import math
import queue
import time
from collections import deque

from . import timeframes
from .backfill import Backfiller, BackfillFailed, BackfillResult
from .bars import SeenTrades, slot_of
from .clock import wall_seconds
from .feed import _ST_BACKFILL, _ST_LIVE, _ST_OVER
from .records import Depth, Kline, Tick
from .seam import Seam

logger = logging.getLogger(__name__)

# Wall seconds after the stream is up before a silent symbol anchors its seam: long
# enough for the coalesced subscribe (AllTick spaces requests 1 s apart) to be active.
ANCHOR_MARGIN_S = 2.0
_OVERFLOW = object()


class LiveSession:
    """Live bars for one feed: subscribe, anchor the seam, backfill, then build bars from ticks."""

    def __init__(self, feed, start_ms: int | None) -> None:
        self.feed = feed
        self.store = store = feed._store
        self.clock = store.clock
        self.inst, self.spec = feed.inst, feed.spec
        self.family = store.wire.family(self.inst)
        self.start_ms = start_ms
        self.inbox: queue.Queue = queue.Queue(maxsize=feed.p.inbox_size)
        self.bid = self.ask = math.nan
        self._ready: deque = feed._ready
        self._last_tick_time: int | None = None
        self._seen = SeenTrades()
        self._probe_job: int | None = None
        self._symbol_known = False
        self._margin_ms = int(ANCHOR_MARGIN_S * 1000 * self.clock.speed)
        # TimeFrame.Ticks has no seam: it is live once a trade came or the margin passed.
        self._ticks_flowing = False
        self._ticks_deadline: int | None = None
        self.backfiller = Backfiller(self._fetch, self.clock, self._post, next_close=self._next_close)
        self.seam: Seam | None = None
        if self.spec is not None:
            self.seam = Seam(self.inst.symbol, self.spec, self.inst.market,
                             request_rest=self.backfiller.request, deliver=self._deliver,
                             grace_ms=int(feed.p.grace * 1000 * self.clock.speed),
                             emit_empty=feed.p.emit_empty,
                             anchor_margin_ms=self._margin_ms, backfill_start=feed.p.backfill_start,
                             backfill=feed.p.backfill)
        if not feed.p.backfill_start or self.spec is None:
            # Nothing to backfill, but an unknown symbol must still be reported.
            self._probe_job = self.backfiller.request(None, self.clock.now_ms(), 1)
        closed = self.inst.market.closed_note(self.clock.now_ms())
        if closed:  # said once: a quiet feed on a holiday or after the close is expected, not a fault
            logger.info("%s: %s; no bars until then", self.inst.symbol, closed)
        store.listen(self.inst, self._post, depth=feed.p.bidask, on_status=self._post_status)
        if store.hub.is_connected(self.family):  # another feed's socket: no "connected" will come
            self._stream_up(self.clock.now_ms())

    @property
    def builder(self):
        """The tick-to-bar builder (None for TimeFrame.Ticks)."""
        return self.seam.builder if self.seam is not None else None

    def close(self) -> None:
        self.store.unlisten(self.inst, self._post, depth=self.feed.p.bidask, on_status=self._post_status)
        self.backfiller.stop()

    # -- socket threads -------------------------------------------------------------

    def _post(self, item) -> None:
        try:
            self.inbox.put_nowait(item)
        except queue.Full:
            # Never block the socket thread; the lost ticks are rebuilt from REST.
            self.feed.stats["overflows"] += 1
            self._overflowed = True

    def _post_status(self, status) -> None:
        if status.family == self.family:
            self._post(status)

    _overflowed = False

    # -- Cerebro's thread -----------------------------------------------------------

    def next_bar(self, wait: float):
        """One step of ``_load``: True with a bar in the lines, None when idle, False at the end."""
        deadline = time.monotonic() + wait
        while True:
            self._drain()
            self._run_timers()
            if self.feed._state == _ST_OVER:  # set by feed._fail
                return False
            if self._ready:
                self.feed._fill(*self._ready.popleft())
                if self.seam_done and len(self._ready) <= 1:
                    self._go_live()
                return True
            if self.seam_done:
                self._go_live()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            timeout = min(remaining, self._wall_until_next_timer())
            try:
                item = self.inbox.get(timeout=max(timeout, 0.0))
            except queue.Empty:
                continue
            if self.feed._state != _ST_OVER:
                self._handle(item)

    def _go_live(self) -> None:
        if self.feed._state != _ST_LIVE:
            self.feed._state = _ST_LIVE
            self.feed.put_notification(self.feed.LIVE)

    def _wall_until_next_timer(self) -> float:
        moment = self.seam.next_deadline() if self.seam is not None else self._ticks_deadline
        return math.inf if moment is None else wall_seconds(self.clock, moment)

    def _drain(self) -> None:
        if self._overflowed:
            self._overflowed = False
            if self.seam is not None:
                self.seam.on_overflow(self.clock.now_ms())
        for _ in range(self.inbox.qsize()):
            if self.feed._state == _ST_OVER:
                return  # the feed failed: what is still queued no longer matters
            try:
                self._handle(self.inbox.get_nowait())
            except queue.Empty:
                return

    def _run_timers(self) -> None:
        now = self.clock.now_ms()
        if self.seam is not None:
            self.seam.on_timer(now)
        elif self._ticks_deadline is not None and now >= self._ticks_deadline:
            self._ticks_flowing, self._ticks_deadline = True, None

    def _handle(self, item) -> None:
        if isinstance(item, Tick):
            self._on_tick(item)
        elif isinstance(item, Depth):
            self.bid = item.best_bid if item.best_bid is not None else math.nan
            self.ask = item.best_ask if item.best_ask is not None else math.nan
        elif isinstance(item, BackfillResult):
            if item.job != self._probe_job and self.seam is not None:
                self.seam.on_rest(item.job, item.bars, item.done)
        elif isinstance(item, BackfillFailed):
            self.feed._fail(item.error)
        elif getattr(item, "kind", None) is not None:
            self._on_status(item)

    def _on_tick(self, tick: Tick) -> None:
        stats = self.feed.stats
        stats["ticks"] += 1
        if self.seam is not None:
            self.seam.on_trade(tick, self.clock.now_ms())
            built = self.seam.builder.stats
            stats["late_ticks"], stats["duplicates"] = built.late_ticks, built.duplicates
            return
        # TimeFrame.Ticks: every trade is a bar; drop repeats and trades older than the last.
        self._ticks_flowing, self._ticks_deadline = True, None
        if self._seen.is_repeat(tick):
            stats["duplicates"] += 1
            return
        if self._last_tick_time is not None and tick.time < self._last_tick_time:
            stats["late_ticks"] += 1
            return
        self._last_tick_time = tick.time
        self._ready.append((tick, True))

    def _deliver(self, bar: Kline, source: str) -> None:
        self.feed.stats[source] += 1
        self._ready.append((bar, source == "bars_live"))

    def _on_status(self, status) -> None:
        now = self.clock.now_ms()
        if status.kind == "fatal":
            self.feed._fail(status.error)
        elif status.kind == "disconnected":
            self.feed.stats["reconnects"] += 1
            self.feed._state = _ST_BACKFILL  # until the new seam is done
            self.feed.put_notification(self.feed.CONNBROKEN)
            if self.seam is not None:
                self.seam.on_stream_down(now)
            self._ticks_flowing, self._ticks_deadline = False, None
        elif status.kind == "dropped" and self.inst.symbol in status.symbols:
            self.feed._fail(status.error)
        elif status.kind == "malformed" and self.seam is not None:
            # The skipped frame may have carried one of our trades: rebuild the bars in progress.
            self.seam.on_malformed(now)
        elif status.kind == "connected" and not self.seam_anchored:
            self.feed.put_notification(self.feed.DELAYED)
            self._stream_up(now)

    def _stream_up(self, now: int) -> None:
        if self.seam is not None:
            self.seam.on_stream_up(now)
        else:
            self._ticks_deadline = now + self._margin_ms

    @property
    def seam_anchored(self) -> bool:
        return self.seam.anchored if self.seam is not None else self._ticks_flowing

    def _next_close(self, moment_ms: int) -> int:
        spec = self.spec or self.store.resolve_timeframe(self.inst, timeframes.MINUTES, 1)
        return slot_of(spec, moment_ms, self.inst.market).end

    @property
    def seam_done(self) -> bool:
        """False while bars up to the seam are still coming from REST."""
        return self.seam.done if self.seam is not None else self._ticks_flowing

    @property
    def last_end(self) -> int | None:
        """Close stamp of the last bar handed to the feed."""
        return self.seam.last_end if self.seam is not None else None

    def _fetch(self, after_ms: int | None, upto_ms: int, count: int | None) -> list[Kline]:
        spec = self.spec or self.store.resolve_timeframe(self.inst, timeframes.MINUTES, 1)
        if after_ms is None:
            start_ms = self.start_ms
            if start_ms is None and count is None:
                count = self.feed.p.lookback
        else:
            # Every bar that ends after after_ms: the one in progress at after_ms included.
            start_ms = slot_of(spec, after_ms, self.inst.market).start
        bars = self.store.load_spec(self.inst, spec, start_ms, upto_ms, count)
        if not bars and not self._symbol_known:
            # A service may answer an unknown code with empty data (itick.md 9.2), and its stream
            # then stays silent: the latest trade tells a quiet history from an unknown code.
            self.store.check_symbols([self.inst])
        self._symbol_known = True  # on the backfill thread only
        return bars
