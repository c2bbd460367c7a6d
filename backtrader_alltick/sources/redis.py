"""Live bars from a relay's Redis streams (``AllTickData(source="redis")``).

Same events as :class:`~backtrader_alltick.sources.stream.StreamBars`, so the feed's states
and Cerebro see no difference.  A reader thread does every Redis call (a read that finds
Redis down retries until it is back, which must not block the consumer) and posts what it
got to its :class:`~.inbox.Inbox`; :meth:`RedisBars.poll` runs on the consumer's thread.

* Backfill: the bars already in the stream from ``start_ms`` (or the newest ``lookback``),
  delivered as DELAYED; once the reader reaches the end of the stream the source is LIVE.
* Resume: the reader continues after the last stream ID it saw, so neither a relay
  restart nor a Redis restart loses or repeats a bar; bars are also deduplicated by end.
* Redis down: CONNBROKEN at once, then DELAYED when it answers again and LIVE when the
  reader has caught up with what the relay wrote meanwhile.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..bars import in_regular_hours, in_regular_session
from ..errors import AllTickError, ConfigError, ProtocolError, SessionPolicyWarning
from ..notices import warn_user
from ..records import Depth, Kline, Tick, format_utc
from ..symbols import Instrument
from ..timeframes import BarSpec, slot_of
from ..transport.redis_reader import Entry, RedisReader
from . import COUNTERS, Event, SourceOptions
from .inbox import Inbox, Outbox, Wake

if TYPE_CHECKING:
    from .needs import LiveStore

logger: logging.Logger = logging.getLogger(__name__)

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
class _ReaderFailed:
    error: AllTickError


class RedisBars:
    """Live bars (or trades, for ``spec`` None) of one symbol, read from a relay's Redis streams.

    ``options.url`` is the Redis URL, ``options.prefix`` the relay's key prefix.

    Example::

        options = SourceOptions(url="redis://127.0.0.1:6379/0", lookback=10)
        source = RedisBars(store, parse_symbol("BTCUSDT"), spec, options, None)
        event = source.poll(0.5)
    """

    def __init__(
        self,
        store: LiveStore,
        inst: Instrument,
        spec: BarSpec | None,
        options: SourceOptions,
        start_ms: int | None,
        *,
        wake: Wake | None = None,
    ) -> None:
        if options.url is None:  # the feed refuses source="redis" without source_url before this
            raise ConfigError("RedisBars needs options.url, a redis:// URL, was None")
        url = options.url
        self.stats: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self._wake = wake if wake is not None else Wake()
        self._inbox = Inbox(max(options.inbox_size // READ_COUNT, 8), self._wake)
        self._out = Outbox()
        self._wake.attach(self._inbox, self)
        self.inst: Instrument = inst
        self.spec: BarSpec | None = spec
        self.options: SourceOptions = options
        self.symbol: str = inst.symbol
        self.period: str | None = None if spec is None else spec.period
        self.start_ms: int | None = start_ms
        self._last_end: int | None = None
        self._offhours_noted = False
        self._is_tail = False
        self._broken = False
        self._closing = threading.Event()
        self.source: RedisReader = RedisReader(
            url, options.prefix, reconnect_timeout=math.inf, on_connection=self._on_connection
        )
        self._thread = threading.Thread(
            target=self._read_loop, name=f"alltick-redis-{self.symbol}", daemon=True
        )
        self._thread.start()

    def __repr__(self) -> str:
        return f"RedisBars({self.symbol}, {self.period or 'ticks'}, {self.state})"

    @property
    def state(self) -> str:
        """``delayed``, ``live``, ``connbroken`` or ``over``."""
        return self._out.state

    def close(self) -> None:
        """Stop the reader thread and release the connection."""
        self._closing.set()
        self._wake.detach(self._inbox, self)
        self._inbox.close()
        self.source.close()
        self._thread.join(READ_BLOCK_MS / 1000 + self.source.socket_timeout)

    @property
    def history_until(self) -> int | None:
        """While bars still come from before LIVE, the close stamp of the last one handed out; else None."""
        return None if self.state == "live" else self._last_end

    # -- the consumer's thread -----------------------------------------------------------------------

    def poll(self, timeout: float) -> Event | None:
        """The next event, waiting at most ``timeout`` wall seconds (0 with a shared wake); None: none yet."""
        deadline = time.monotonic() + timeout
        while True:
            self.take_input()
            event = self._out.take(self._caught_up())
            remaining = deadline - time.monotonic()
            if event is not None or remaining <= 0 or self._out.state == "over":
                return event
            self._wake.wait(remaining)

    def take_input(self) -> bool:
        """Take what the reader put; True when an event is then ready."""
        for item in self._inbox.take_all():
            if self._out.state == "over":
                break
            self._handle(item)
        return self._out.has_pending(self._caught_up())

    def has_events(self) -> bool:
        """True when :meth:`poll` has an event ready without taking more input."""
        return self._out.has_pending(self._caught_up())

    def has_pending(self) -> bool:
        """True when :meth:`poll` has an event ready or input waiting."""
        if self._out.state == "over":
            return self._out.has_pending(self._caught_up())
        return self._out.has_pending(self._caught_up()) or not self._inbox.empty()

    def due_in(self) -> float:
        """No timers: every event comes from the reader thread."""
        return math.inf

    def timers_due(self) -> bool:
        return False

    def _caught_up(self) -> bool:
        return self._is_tail and not self._broken

    def _handle(self, item) -> None:
        if isinstance(item, _Batch):
            for entry in item.entries:
                self._queue(entry.record)
            self._is_tail = item.is_tail
        elif isinstance(item, _Connection):
            if not item.is_up and not self._broken:
                self._broken = True
                self.stats["reconnects"] += 1
                self._out.note("connbroken")
            elif item.is_up and self._broken:
                self._broken = False
                self._is_tail = False  # LIVE again once the reader has caught up
                self._out.note("delayed")
        elif isinstance(item, _ReaderFailed):
            self._out.fail(item.error)
        elif isinstance(item, Depth):  # the latest book, for the bid/ask lines
            self._out.book(item)

    def _queue(self, record) -> None:
        if isinstance(record, Tick):
            if self.start_ms is None or record.time >= self.start_ms:
                self.stats["ticks"] += 1
                if self._kept(record, record.time, "offhours_trades"):
                    self._out.bar(record, quoted=True)
            return
        if self._last_end is not None and record.end <= self._last_end:
            self.stats["duplicate_bars"] = self.stats.get("duplicate_bars", 0) + 1
            return
        if self.start_ms is not None and record.end < self.start_ms:
            return  # Backtrader's filter: a bar stamped exactly at fromdate stays
        self._last_end = record.end
        if not self._kept(record, record.start, "offhours_bars"):
            return
        live = self.state == "live"
        self.stats["bars_live" if live else "bars_rest"] += 1
        self._out.bar(record, quoted=live)  # a bar replayed from before LIVE has no quote

    def _kept(self, record: Tick | Kline, moment_ms: int, counter: str) -> bool:
        """The session policy, as for the stream: the relay may have kept what this feed leaves out."""
        if self.options.extended_hours:
            return True
        market = self.inst.market
        if self.spec is None:
            regular = in_regular_hours(moment_ms, market)
        else:
            regular = in_regular_session(slot_of(self.spec, moment_ms, market), market)
        if regular:
            return True
        self.stats[counter] += 1
        if not self._offhours_noted:
            self._offhours_noted = True
            what = "trades" if self.spec is None else f"{self.period} bars"
            warn_user(
                f"{self.symbol}: {what} outside the regular session are left out (extended_hours=False), "
                f"the first at {format_utc(moment_ms)}; counted in stats['{counter}']; pass "
                "extended_hours=True to keep them",
                SessionPolicyWarning,
            )
        return False

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
                if self.options.bidask:
                    depth = self.source.last(self.symbol).depth
                    if depth is not None:
                        self._post(depth)
        except Exception as e:
            # close() cuts the connection under a blocked read; whatever that raises is the way out.
            if self._closing.is_set():
                return
            if isinstance(e, AllTickError):  # a malformed entry: nothing after it can be read in order
                self._post(_ReaderFailed(e))
            else:  # the thread must never die silently
                logger.exception("%s: the Redis reader crashed", self.symbol)
                self._post(_ReaderFailed(ProtocolError(f"the Redis reader of {self.symbol} crashed: {e!r}")))

    def _first_id(self) -> str:
        # Backfill: bars closing at or after fromdate, else the newest `lookback` entries posted here.
        if self.start_ms is not None and self.period is not None:
            # Bar IDs are their close stamps and reads start after the ID given: a bar closing
            # exactly at fromdate is read too (the filter in _queue drops anything earlier).
            return f"{self.start_ms - 1}-0"
        if self.start_ms is not None:
            return "0-0"  # trade IDs are Redis arrival times: read all, keep those after fromdate
        count = self.options.lookback if self.options.backfill_start else 1
        if self.period is None:
            newest = self.source.newest_ticks(self.symbol, count)
        else:
            newest = self.source.newest_bars(self.symbol, self.period, count)
        if not newest:
            logger.info(
                "%s: no %s in Redis yet; waiting for a relay to write some",
                self.symbol,
                f"{self.period} bars" if self.period else "trades",
            )
            return "0-0"
        if self.options.backfill_start:
            self._post(_Batch(newest, False))
        return newest[-1].id

    def _read(self, after: str, block_ms: int) -> list[Entry]:
        if self.period is None:
            return self.source.read_ticks(self.symbol, after, block_ms=block_ms, count=READ_COUNT)
        return self.source.read_bars(self.symbol, self.period, after, block_ms=block_ms, count=READ_COUNT)

    def _post(self, item) -> None:
        # Block the reader (not the consumer) while it is behind: nothing is lost, memory stays bounded.
        while not self._closing.is_set():
            if self._inbox.put_waiting(item, 0.5):
                return

    def _on_connection(self, is_up: bool) -> None:
        if not self._closing.is_set():
            self._post(_Connection(is_up))
