"""Bars from bars and bars from ticks: synthetic compressions and the live aggregator.

Pure: no I/O, no threads, no clock.  Time comes in as arguments (``now_ms`` is market
time, epoch ms), so a test drives it by hand and a feed hands in its store's clock.

Both paths put bars on the same grid, :func:`timeframes.slot_of`: a bar of ``spec`` groups
``spec.multiple`` native slots counted from the epoch, starts where its first slot
starts and is stamped at the close of its last slot.  A tick-built bar therefore
equals the REST K-line for the same window field for field, and :func:`combine` of
1-minute bars equals a :class:`BarBuilder` fed with the trades behind them.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from .errors import ConfigError
from .markets import DAY_MS, Market
from .records import Kline, Tick
from .timeframes import BarSpec, Slot, bucket_index, group_slot, slot_of

logger: logging.Logger = logging.getLogger(__name__)

_NO_SEAM = -(2**63)


def in_regular_session(slot: Slot, market: Market) -> bool:
    """True when ``market``'s calendar has a regular session inside ``slot``.

    The session policy (README "Trading outside the regular session"): with ``extended_hours``
    off, only bars of such slots are delivered, from REST, the cache, the stream, a relay and
    the archive alike.  A bar it admits holds every trade of its slot, as the service's K-line does.
    """
    return bool(market.open_spans(slot.start, slot.next_start))


def in_regular_hours(moment_ms: int, market: Market) -> bool:
    """True when ``moment_ms`` lies in a regular session of ``market``: the session policy for a
    trade handed out as it is (``TimeFrame.Ticks``), where there is no slot to look at."""
    return bool(market.open_spans(moment_ms, moment_ms + 1))


def regular_bars(bars: Sequence[Kline], spec: BarSpec, market: Market) -> list[Kline]:
    """The bars of ``bars`` whose slot holds a regular session (see :func:`in_regular_session`)."""
    return [bar for bar in bars if in_regular_session(slot_of(spec, bar.start, market), market)]


def combine(klines: Sequence[Kline], spec: BarSpec, market: Market) -> list[Kline]:
    """Build ``spec`` bars from closed native bars (3m from 1m, 2h from 1h, 3d from 1d).

    Native bars are grouped by their slot on the ``spec`` grid; a group becomes one bar
    stamped at the close of the group's last native slot, even when the market closed
    before that slot traded.  Bars repeated with the same ``start`` keep the last copy.
    """
    by_start = {bar.start: bar for bar in klines}
    groups: dict[int, list[Kline]] = {}
    for start in sorted(by_start):
        bar = by_start[start]
        groups.setdefault(bucket_index(spec.native, start, market) // spec.multiple, []).append(bar)
    label = spec.period
    out = []
    for group, members in groups.items():
        slot = group_slot(spec, group, market)
        out.append(
            Kline(
                members[0].symbol,
                label,
                slot.start,
                slot.end,
                open=members[0].open,
                high=max(bar.high for bar in members),
                low=min(bar.low for bar in members),
                close=members[-1].close,
                volume=sum(bar.volume for bar in members),
                turnover=sum(bar.turnover for bar in members),
            )
        )
    return out


def combine_closed(klines: Sequence[Kline], spec: BarSpec, market: Market, now_ms: int) -> list[Kline]:
    """Like :func:`combine`, minus any bar whose slot has not ended by ``now_ms``.

    A synthetic bar still forming is never final, even when all of its native bars so far
    are closed: the next native bar would change it.  A slot of days ends when its last
    trading date does, after its close stamp: trades of that date may still come.
    """
    return [
        bar for bar in combine(klines, spec, market) if slot_of(spec, bar.start, market).next_start <= now_ms
    ]


_KEEP_NEWEST_TRADES = 16  # trade identities a builder keeps past its frontier


class SeenTrades:
    """A bounded memory of recent trades; ``is_repeat`` is True for a trade already seen.

    The identity is the vendor's sequence number; without one (iTick) it is the whole trade,
    since two real trades can share a millisecond and a price.

    :meth:`forget_before` lets a caller that drops old trades anyway (a bar builder past a closed
    bar) keep only the identities that can still matter.

    Example::

        seen = SeenTrades(4096)
        fresh = [tick for tick in ticks if not seen.is_repeat(tick)]
        seen.forget_before(cutoff_ms)
    """

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._seen: set = set()
        self._order: deque = deque()
        self._times: deque[int] = deque()  # each remembered trade's time, in the order of _order

    def __len__(self) -> int:
        return len(self._order)

    def forget_before(self, cutoff_ms: int, keep: int = 0) -> None:
        """Forget the oldest-remembered trades while they are older than ``cutoff_ms``, keeping the
        newest ``keep`` whatever their age.

        Trades arrive nearly in time order, so this stops at the first newer one: a trade
        reordered behind it is forgotten a little later, and never past the ring's size.
        """
        order, times, seen = self._order, self._times, self._seen
        while len(times) > keep and times[0] < cutoff_ms:
            times.popleft()
            seen.discard(order.popleft())

    def is_repeat(self, tick: Tick) -> bool:
        if not self.size:
            return False
        identity = (
            (tick.symbol, tick.seq)
            if tick.seq is not None
            else (tick.symbol, tick.time, tick.price, tick.volume, tick.turnover)
        )
        if identity in self._seen:
            return True
        self._seen.add(identity)
        self._order.append(identity)
        self._times.append(tick.time)
        if len(self._order) > self.size:
            self._seen.discard(self._order.popleft())
            self._times.popleft()
        return False


@dataclass
class BuilderStats:
    """Counters of one :class:`BarBuilder`; ``ticks`` counts every tick offered."""

    ticks: int = 0
    bars: int = 0
    empty_bars: int = 0
    late_ticks: int = 0
    duplicates: int = 0
    before_seam: int = 0
    offhours: int = 0  # left out by the session policy (``regular_only``)


class _FormingBar:
    __slots__ = ("slot", "open", "open_key", "high", "low", "close", "close_key", "volume", "turnover")

    def __init__(self, slot: Slot, price: float, key: tuple, volume: float, turnover: float) -> None:
        self.slot = slot
        self.open = self.high = self.low = self.close = price
        self.open_key = self.close_key = key
        self.volume = volume
        self.turnover = turnover


class BarBuilder:
    """Aggregate one symbol's trades into closed bars, closed by a timer, not by the next tick.

    Ticks are bucketed by their exchange time, so reordered ticks inside an open bar are
    fine.  A bar holds every trade of its slot, whatever the calendar says (a daily bar
    every trade of its trading date, after-hours ones included), and closes when its slot
    ends: ``on_timer(now_ms)`` hands every bar whose slot ended ``grace_ms`` ago or more
    to ``on_bar`` in time order; ``next_deadline()`` says when to call it next.
    A tick for a bar already closed is late and dropped (counted in ``stats``).  Not
    thread-safe: the feed calls it from one thread.

    Parameters
    ----------
    symbol, spec, market
        What to build: bars of ``spec`` on ``market``'s calendar, labelled ``symbol``.
    on_bar
        Called with each closed :class:`~backtrader_alltick.records.Kline`, oldest first.
    grace_ms
        How long after a bar's close stamp late-arriving trades are still taken in.
    emit_empty
        Emit a flat bar at the previous close, volume 0, for an open-market slot with no trades.
    regular_only
        The session policy with ``extended_hours`` off: trades of slots without a regular
        session are left out and counted in ``stats.offhours``.
    dedup_size
        How many recent trade identities (``seq``, else the whole trade) are remembered at most to drop
        repeats; only those of bars still forming are kept.

    Example::

        bars = []
        builder = BarBuilder("AAPL.US", spec, US_STOCKS, bars.append)
        builder.add_tick(tick)
        builder.on_timer(clock.now_ms())     # bars now holds every bar closed by then
    """

    def __init__(
        self,
        symbol: str,
        spec: BarSpec,
        market: Market,
        on_bar: Callable[[Kline], object],
        *,
        grace_ms: int = 250,
        emit_empty: bool = False,
        regular_only: bool = False,
        dedup_size: int = 4096,
    ) -> None:
        if grace_ms < 0:
            raise ConfigError(f"grace_ms must be 0 or more, was {grace_ms!r}")
        if dedup_size < 0:
            raise ConfigError(f"dedup_size must be 0 or more, was {dedup_size!r}")
        self.symbol = symbol
        self.spec = spec
        self.market = market
        self.on_bar = on_bar
        self.grace_ms: int = int(grace_ms)
        self.emit_empty = emit_empty
        self.regular_only = regular_only
        self.dedup_size = dedup_size
        self.stats: BuilderStats = BuilderStats()
        self._label = spec.period
        self._forming: dict[int, _FormingBar] = {}
        # Start of the oldest slot still accepting trades; None until a timer or seam sets it.
        self._frontier: int | None = None
        self._seam_ms = _NO_SEAM
        self._last_close: float | None = None
        self._seen = SeenTrades(dedup_size)
        self._arrivals = 0
        self._cached_slot = Slot(0, 0, 0)
        self._cached_regular = True
        self._empty_deadline: tuple[int, int | None] | None = None  # (frontier, deadline) cache

    def __repr__(self) -> str:
        return (
            f"BarBuilder({self.symbol!r}, {self._label}, {self.market.name}, "
            f"forming={len(self._forming)}, stats={self.stats})"
        )

    def start_after(self, cut_ms: int, last_close: float | None = None) -> None:
        """Set the seam: trades before ``cut_ms`` (a slot boundary) are in bars already delivered.

        Those trades are ignored and counted in ``stats.before_seam``; the first bar built
        here is then complete.  ``last_close`` (the close of the last delivered bar) seeds
        the price of empty bars.
        """
        self._seam_ms = max(self._seam_ms, cut_ms)
        frontier = self._advance_frontier(slot_of(self.spec, cut_ms, self.market).start)
        for start in [start for start in self._forming if start < frontier]:
            del self._forming[start]
        if last_close is not None:
            self._last_close = last_close

    def add_tick(self, tick: Tick) -> None:
        """Take one trade into the bar its exchange time belongs to."""
        stats = self.stats
        stats.ticks += 1
        when = tick.time
        if when < self._seam_ms:
            stats.before_seam += 1
            return
        if self.dedup_size and self._is_repeat(tick):
            stats.duplicates += 1
            return
        slot = self._cached_slot
        if not slot.start <= when < slot.next_start:
            slot = self._cached_slot = slot_of(self.spec, when, self.market)
            self._cached_regular = not self.regular_only or in_regular_session(slot, self.market)
        if not self._cached_regular:
            stats.offhours += 1
            return
        if self._frontier is not None and slot.start < self._frontier:
            stats.late_ticks += 1
            logger.debug(
                "%s: late trade at %d for the bar closed at %d, dropped", self.symbol, when, slot.end
            )
            return
        self._arrivals += 1
        key = (when, -1 if tick.seq is None else tick.seq, self._arrivals)
        price = tick.price
        bar = self._forming.get(slot.start)
        if bar is None:
            self._forming[slot.start] = _FormingBar(slot, price, key, tick.volume, tick.turnover)
            return
        if key < bar.open_key:
            bar.open, bar.open_key = price, key
        if key > bar.close_key:
            bar.close, bar.close_key = price, key
        if price > bar.high:
            bar.high = price
        elif price < bar.low:
            bar.low = price
        bar.volume += tick.volume
        bar.turnover += tick.turnover

    def on_timer(self, now_ms: int) -> list[Kline]:
        """Close every bar whose slot ended ``grace_ms`` or more before ``now_ms``; return them too."""
        old_frontier = self._frontier
        frontier = self._advance_frontier(slot_of(self.spec, now_ms - self.grace_ms, self.market).start)
        due = sorted(start for start in self._forming if start < frontier)
        starts = due
        if self.emit_empty:
            since = old_frontier if old_frontier is not None else (due[0] if due else frontier)
            starts = sorted(set(due).union(self._open_market_slots(since, frontier)))
        closed = []
        for start in starts:
            forming = self._forming.pop(start, None)
            if forming is not None:
                bar = self._finish(forming)
            elif self._last_close is not None:
                bar = self._flat_bar(start, self._last_close)
            else:
                continue  # no price seen yet: nothing honest to draw
            self._last_close = bar.close
            closed.append(bar)
        for bar in closed:
            self.on_bar(bar)
        return closed

    def next_deadline(self) -> int | None:
        """Market ms at which :meth:`on_timer` has work next; None when nothing is pending."""
        deadlines = [bar.slot.next_start + self.grace_ms for bar in self._forming.values()]
        if self.emit_empty and self._last_close is not None and self._frontier is not None:
            empty_deadline = self._next_empty_deadline(self._frontier)
            if empty_deadline is not None:
                deadlines.append(empty_deadline)
        return min(deadlines) if deadlines else None

    def discard(self) -> int:
        """Drop the bars still forming (shutdown: a partial bar is never final); return how many."""
        count = len(self._forming)
        self._forming.clear()
        return count

    def _is_repeat(self, tick: Tick) -> bool:
        return self._seen.is_repeat(tick)

    def _advance_frontier(self, start: int) -> int:
        if self._frontier is None or start > self._frontier:
            self._frontier = start
            # A repeat of a trade before the frontier is dropped anyway: remembering every one would
            # grow the memory of a quiet symbol towards dedup_size, times every symbol of a universe.
            # The newest few are kept so that a service re-sending its last trades (a closed market)
            # is told as a repeat, not as a late trade the delivered bar lacks.
            self._seen.forget_before(start, keep=_KEEP_NEWEST_TRADES)
        return self._frontier

    def _open_market_slots(self, since: int, until: int) -> Iterable[int]:
        starts: set[int] = set()
        for low, high in self.market.open_spans(since, until):
            slot = slot_of(self.spec, low, self.market)
            while slot.start < high and slot.start < until:
                starts.add(slot.start)
                slot = slot_of(self.spec, slot.next_start, self.market)
        return starts

    def _next_empty_deadline(self, frontier: int) -> int | None:
        cached = self._empty_deadline
        if cached is None or cached[0] != frontier:
            # Two weeks reach past any weekend; a monthly slot that far out is not urgent.
            spans = self.market.open_spans(frontier, frontier + 14 * DAY_MS)
            deadline: int | None = None
            if spans:
                deadline = slot_of(self.spec, spans[0][0], self.market).next_start + self.grace_ms
            cached = self._empty_deadline = (frontier, deadline)
        return cached[1]

    def _finish(self, bar: _FormingBar) -> Kline:
        self.stats.bars += 1
        slot = bar.slot
        return Kline(
            self.symbol,
            self._label,
            slot.start,
            slot.end,
            bar.open,
            bar.high,
            bar.low,
            bar.close,
            bar.volume,
            bar.turnover,
        )

    def _flat_bar(self, start: int, price: float) -> Kline:
        self.stats.bars += 1
        self.stats.empty_bars += 1
        slot = slot_of(self.spec, start, self.market)
        return Kline(self.symbol, self._label, slot.start, slot.end, price, price, price, price, 0.0, 0.0)
