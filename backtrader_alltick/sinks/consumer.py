"""The live half of ``AllTickData(source="redis")``: bars from a relay's Redis streams.

Same small interface as :class:`~backtrader_alltick.live.LiveSession` (``next_bar(wait)``,
``last_end``, ``bid``, ``ask``, ``inbox``, ``close()``), so the feed's state machine and
Cerebro see no difference.  A reader thread does every Redis call (a read that finds Redis
down retries until it is back, which must not block Cerebro) and posts what it got to
the inbox; ``next_bar`` runs on Cerebro's thread and waits at most ``wait`` on the inbox.

* Backfill: the bars already in the stream from ``fromdate`` (or the newest ``lookback``),
  delivered as DELAYED; once the reader reaches the end of the stream the feed is LIVE.
* Resume: the reader continues after the last stream ID it saw, so neither a relay
  restart nor a Redis restart loses or repeats a bar; bars are also deduplicated by end.
* Redis down: CONNBROKEN at once, then DELAYED when it answers again and LIVE when the
  reader has caught up with what the relay wrote meanwhile.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass

from ..errors import AllTickError, ProtocolError
from ..feed import _ST_BACKFILL, _ST_LIVE, _ST_OVER
from ..records import Tick
from .redis import Entry, RedisSource

logger = logging.getLogger(__name__)

READ_COUNT = 1000
# A blocking XREAD never outlasts this, so close() returns promptly even if Redis hangs.
READ_BLOCK_MS = 500


@dataclass(frozen=True)
class _Batch:
    entries: list[Entry]
    is_tail: bool  # the stream holds nothing after these (as of the read)


@dataclass(frozen=True)
class _Connection:
    is_up: bool


@dataclass(frozen=True)
class _Failed:
    error: AllTickError


class RedisSession:
    """Live bars (or trades, for ``TimeFrame.Ticks``) of one feed, read from a relay's Redis streams.

    Example::

        data = AllTickData(store=store, dataname="BTCUSDT", timeframe=bt.TimeFrame.Minutes,
                           source="redis", source_url="redis://127.0.0.1:6379/0")
        cerebro.adddata(data)      # the feed builds a RedisSession in start()
    """

    def __init__(self, feed, start_ms: int | None, *, prefix: str = "alltick") -> None:
        self.feed = feed
        self.inst, self.spec = feed.inst, feed.spec
        self.symbol = self.inst.symbol
        self.period = None if self.spec is None else self.spec.period
        self.start_ms = start_ms
        self.inbox: queue.Queue = queue.Queue(maxsize=max(feed.p.inbox_size // READ_COUNT, 8))
        self.bid = self.ask = math.nan
        self._ready: deque = feed._ready
        self._last_end: int | None = None
        self._last_id: str | None = None
        self._is_tail = False
        self._broken = False
        self._closing = threading.Event()
        self.source = RedisSource(feed.p.source_url, prefix, reconnect_timeout=math.inf,
                                  on_connection=self._on_connection)
        self._thread = threading.Thread(target=self._read_loop, name=f"redis-feed-{self.symbol}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the reader thread and release the connection."""
        self._closing.set()
        self.source.close()
        self._thread.join(READ_BLOCK_MS / 1000 + self.source.socket_timeout)

    @property
    def last_end(self) -> int | None:
        """Close stamp of the last bar handed to the feed."""
        return self._last_end

    # -- Cerebro's thread -------------------------------------------------------------------------

    def next_bar(self, wait: float):
        """One step of ``_load``: True with a bar in the lines, None when idle, False at the end."""
        deadline = time.monotonic() + wait
        while True:
            self._drain()
            if self.feed._state == _ST_OVER:
                return False
            if self._ready:
                self.feed._fill(*self._ready.popleft())
                if self._is_tail and not self._broken and len(self._ready) <= 1:
                    self._go_live()
                return True
            if self._is_tail and not self._broken:
                self._go_live()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                item = self.inbox.get(timeout=remaining)
            except queue.Empty:
                return None
            self._handle(item)

    def _drain(self) -> None:
        for _ in range(self.inbox.qsize()):
            try:
                self._handle(self.inbox.get_nowait())
            except queue.Empty:
                return

    def _handle(self, item) -> None:
        feed = self.feed
        if isinstance(item, _Batch):
            for entry in item.entries:
                self._queue(entry.record)
            self._is_tail = item.is_tail
        elif isinstance(item, _Connection):
            if not item.is_up and not self._broken:
                self._broken = True
                feed.stats["reconnects"] += 1
                feed._state = _ST_BACKFILL
                feed.put_notification(feed.CONNBROKEN)
            elif item.is_up and self._broken:
                self._broken = False
                self._is_tail = False  # LIVE again once the reader has caught up
                feed.put_notification(feed.DELAYED)
        elif isinstance(item, _Failed):
            feed._fail(item.error)
        else:  # the latest book, for the bid/ask lines
            self.bid = item.best_bid if item.best_bid is not None else math.nan
            self.ask = item.best_ask if item.best_ask is not None else math.nan

    def _queue(self, record) -> None:
        if isinstance(record, Tick):
            if self.start_ms is None or record.time >= self.start_ms:
                self.feed.stats["ticks"] += 1
                self._ready.append((record, True))
            return
        if self._last_end is not None and record.end <= self._last_end:
            self.feed.stats["duplicate_bars"] = self.feed.stats.get("duplicate_bars", 0) + 1
            return
        if self.start_ms is not None and record.end < self.start_ms:
            return  # Backtrader's filter: a bar stamped exactly at fromdate stays
        self._last_end = record.end
        live = self.feed._state == _ST_LIVE
        self.feed.stats["bars_live" if live else "bars_rest"] += 1
        self._ready.append((record, live))  # a bar replayed from before LIVE has no quote

    def _go_live(self) -> None:
        if self.feed._state != _ST_LIVE:
            self.feed._state = _ST_LIVE
            self.feed.put_notification(self.feed.LIVE)

    # -- the reader thread ------------------------------------------------------------------------

    def _read_loop(self) -> None:
        try:
            after = self._first_id()
            while not self._closing.is_set():
                entries = self._read(after, READ_BLOCK_MS)
                if self._closing.is_set():
                    return
                if entries:
                    after = entries[-1].id
                self._post(_Batch(entries, len(entries) < READ_COUNT))
                if self.feed.p.bidask:
                    depth = self.source.last(self.symbol).depth
                    if depth is not None:
                        self._post(depth)
        except Exception as e:
            # close() cuts the connection under a blocked read; whatever that raises is the way out.
            if self._closing.is_set():
                return
            if isinstance(e, AllTickError):  # a malformed entry: nothing after it can be read in order
                self._post(_Failed(e))
            else:  # the thread must never die silently
                logger.exception("%s: the Redis reader crashed", self.symbol)
                self._post(_Failed(ProtocolError(f"the Redis reader of {self.symbol} crashed: {e!r}")))

    def _first_id(self) -> str:
        # Backfill: bars closing at or after fromdate, else the newest `lookback` entries posted here.
        if self.start_ms is not None and self.period is not None:
            # Bar IDs are their close stamps and reads start after the ID given: a bar closing
            # exactly at fromdate is read too (the filter in _queue drops anything earlier).
            return f"{self.start_ms - 1}-0"
        if self.start_ms is not None:
            return "0-0"  # trade IDs are Redis arrival times: read all, keep those after fromdate
        count = self.feed.p.lookback if self.feed.p.backfill_start else 1
        if self.period is None:
            newest = self.source.newest_ticks(self.symbol, count)
        else:
            newest = self.source.newest_bars(self.symbol, self.period, count)
        if not newest:
            logger.info("%s: no %s in Redis yet; waiting for a relay to write some", self.symbol,
                        f"{self.period} bars" if self.period else "trades")
            return "0-0"
        if self.feed.p.backfill_start:
            self._post(_Batch(newest, False))
        return newest[-1].id

    def _read(self, after: str, block_ms: int) -> list[Entry]:
        if self.period is None:
            return self.source.read_ticks(self.symbol, after, block_ms=block_ms, count=READ_COUNT)
        return self.source.read_bars(self.symbol, self.period, after, block_ms=block_ms, count=READ_COUNT)

    def _post(self, item) -> None:
        # Block the reader (not Cerebro) while the feed is behind: nothing is lost, memory stays bounded.
        while not self._closing.is_set():
            try:
                self.inbox.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def _on_connection(self, is_up: bool) -> None:
        if not self._closing.is_set():
            self._post(_Connection(is_up))

