"""The live half of ``AllTickData``: inbox, seam, backfill and tick-to-bar building.

Socket threads only ever ``put_nowait`` into the inbox; everything else runs on
Cerebro's thread inside ``next_bar``, so notifications and lines are never touched
from another thread (backtrader-live-feeds.md, section e).
"""

from __future__ import annotations

import logging
import math
import queue
import time
from collections import deque

from . import timeframes
from .backfill import Backfiller, BackfillFailed, BackfillResult
from .bars import BarBuilder, SeenTrades, seam_end, slot_of
from .clock import wall_seconds
from .feed import _ST_BACKFILL, _ST_LIVE, _ST_OVER
from .records import Depth, Kline, Tick

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
        self._pending: deque[Kline] = deque()
        self._last_end: int | None = None
        self._last_close: float | None = None
        self._last_tick_time: int | None = None
        self._seen = SeenTrades()
        self._seam: int | None = None
        self._seam_done = False
        self._seam_job: int | None = None
        self._probe_job: int | None = None
        self._broken = False
        self._symbol_known = False
        self._margin_ms = int(ANCHOR_MARGIN_S * 1000 * self.clock.speed)
        # A silent symbol anchors its seam a moment after the stream is up (see _on_status).
        self._anchor_deadline: int | None = None
        self.builder = None
        if self.spec is not None:
            self.builder = BarBuilder(self.inst.symbol, self.spec, self.inst.market, self._on_built,
                                      grace_ms=int(feed.p.grace * 1000 * self.clock.speed),
                                      emit_empty=feed.p.emit_empty)
        self.backfiller = Backfiller(self._fetch, self.clock, self._post, next_close=self._next_close)
        if not feed.p.backfill_start or self.spec is None:
            # Nothing to backfill, but an unknown symbol must still be reported.
            self._probe_job = self.backfiller.request(None, self.clock.now_ms(), 1)
        closed = self.inst.market.closed_note(self.clock.now_ms())
        if closed:  # said once: a quiet feed on a holiday or after the close is expected, not a fault
            logger.info("%s: %s; no bars until then", self.inst.symbol, closed)
        store.listen(self.inst, self._post, depth=feed.p.bidask, on_status=self._post_status)
        if store.hub.is_connected(self.family):  # another feed's socket: no "connected" will come
            self._anchor_deadline = self.clock.now_ms() + self._margin_ms

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
                if self._seam_done and not self._broken and len(self._ready) <= 1:
                    self._go_live()
                return True
            if self._seam_done and not self._broken:
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
        moments = [m for m in (self._anchor_deadline,
                               self.builder.next_deadline() if self.builder else None) if m is not None]
        return min((wall_seconds(self.clock, m) for m in moments), default=math.inf)

    def _drain(self) -> None:
        if self._overflowed:
            self._overflowed = False
            self._restart_seam("the inbox overflowed")
            # Anchor now: the trades still queued are older than the ones that were thrown away.
            self._anchor(self.clock.now_ms())
        for _ in range(self.inbox.qsize()):
            if self.feed._state == _ST_OVER:
                return  # the feed failed: what is still queued no longer matters
            try:
                self._handle(self.inbox.get_nowait())
            except queue.Empty:
                return

    def _run_timers(self) -> None:
        now = self.clock.now_ms()
        if self._seam is None and self._anchor_deadline is not None and now >= self._anchor_deadline:
            self._anchor(now)
        if self.builder is not None:
            self.builder.on_timer(now)

    def _handle(self, item) -> None:
        if isinstance(item, Tick):
            self._on_tick(item)
        elif isinstance(item, Depth):
            self.bid = item.best_bid if item.best_bid is not None else math.nan
            self.ask = item.best_ask if item.best_ask is not None else math.nan
        elif isinstance(item, BackfillResult):
            self._on_backfill(item)
        elif isinstance(item, BackfillFailed):
            self.feed._fail(item.error)
        elif getattr(item, "kind", None) is not None:
            self._on_status(item)

    def _on_tick(self, tick: Tick) -> None:
        self.feed.stats["ticks"] += 1
        if self._seam is None:
            self._anchor(tick.time)
        if self.builder is not None:
            self.builder.add_tick(tick)
            return
        # TimeFrame.Ticks: every trade is a bar; drop repeats and trades older than the last.
        if self._seen.is_repeat(tick):
            self.feed.stats["duplicates"] += 1
            return
        if self._last_tick_time is not None and tick.time < self._last_tick_time:
            self.feed.stats["late_ticks"] += 1
            return
        self._last_tick_time = tick.time
        self._ready.append((tick, True))

    def _anchor(self, moment_ms: int) -> None:
        self._anchor_deadline = None
        if self.spec is None:
            self._seam, self._seam_done = moment_ms, True
            return
        self._seam = seam = seam_end(self.spec, moment_ms, self.inst.market)
        self.builder.start_after(seam, last_close=self._last_close)
        wants_rest = self.feed.p.backfill if self._last_end is not None else self.feed.p.backfill_start
        if wants_rest:
            self._seam_job = self.backfiller.request(self._last_end, seam)
        else:
            self._finish_seam()

    def _on_backfill(self, result: BackfillResult) -> None:
        if result.job == self._probe_job:
            return
        for bar in result.bars:
            self._queue_bar(bar, source="bars_rest")
        if result.job == self._seam_job and result.done:
            self._finish_seam()

    def _finish_seam(self) -> None:
        self._seam_done = True
        self._broken = False
        while self._pending:
            self._queue_bar(self._pending.popleft(), source="bars_live")

    def _on_built(self, bar: Kline) -> None:
        built = self.builder.stats
        self.feed.stats["late_ticks"], self.feed.stats["duplicates"] = built.late_ticks, built.duplicates
        if self._seam_done:
            self._queue_bar(bar, source="bars_live")
        else:
            self._pending.append(bar)

    def _queue_bar(self, bar: Kline, *, source: str) -> None:
        if self._last_end is not None and bar.end <= self._last_end:
            return  # already delivered from the other source
        self._last_end = bar.end
        self._last_close = bar.close
        self.feed.stats[source] += 1
        self._ready.append((bar, source == "bars_live"))

    def _on_status(self, status) -> None:
        if status.kind == "fatal":
            self.feed._fail(status.error)
        elif status.kind == "disconnected":
            self.feed.stats["reconnects"] += 1
            self._broken = True
            self.feed._state = _ST_BACKFILL  # until the new seam is done
            self.feed.put_notification(self.feed.CONNBROKEN)
            self._restart_seam("the stream dropped")
            self._anchor_deadline = None  # no seam before the stream is back
        elif status.kind == "dropped" and self.inst.symbol in status.symbols:
            self.feed._fail(status.error)
        elif status.kind == "malformed" and self._seam is not None:
            # The skipped frame may have carried one of our trades: rebuild the bars in progress.
            self._restart_seam("a malformed frame was skipped")
        elif status.kind == "connected" and self._seam is None:
            self.feed.put_notification(self.feed.DELAYED)
            self._anchor_deadline = self.clock.now_ms() + self._margin_ms

    def _restart_seam(self, why: str) -> None:
        logger.info("%s: %s; rebuilding the cut bar from REST", self.inst.symbol, why)
        if self.builder is not None:
            self.builder.discard()
        self._pending.clear()
        self._seam = None
        self._seam_done = False
        self._seam_job = None
        self._anchor_deadline = self.clock.now_ms() + self._margin_ms

    def _next_close(self, moment_ms: int) -> int:
        spec = self.spec or self.store.resolve_timeframe(self.inst, timeframes.MINUTES, 1)
        return slot_of(spec, moment_ms, self.inst.market).end

    @property
    def seam_done(self) -> bool:
        """False while bars up to the seam are still coming from REST."""
        return self._seam_done

    @property
    def last_end(self) -> int | None:
        """Close stamp of the last bar handed to the feed."""
        return self._last_end

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
