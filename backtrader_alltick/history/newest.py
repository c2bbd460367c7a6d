"""One ``/batch-kline`` call for the short backfills of many symbols, where it covers them.

At start, and after a reconnect, every symbol of a relay (or every live feed of a store) asks REST
at about the same moment for the bar or two before its seam; later, as each bar up to the seam
closes, for that bar.  ``/kline`` answers one symbol a call.  ``/batch-kline`` answers the newest
two bars of up to the plan's groups (alltick.md 4.2: Free 5, Basic 100, Premium 200, top tiers
500), so :class:`NewestBars` gathers the backfill fetches that arrive together into as few batch
calls as the plan allows.  A fetch whose bars one answer cannot hold, or which the answer turns
out not to cover (a symbol missing from it, a symbol that did not trade in the gap's first slot),
is left to ``/kline``: :meth:`NewestBars.fetch` and :meth:`NewestBars.fetch_newest` return None.
Only bars the service has closed are returned; the answer's forming bar never is.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from ..clock import Clock, as_service_clock
from ..errors import AllTickError
from ..records import Kline
from ..symbols import Instrument
from ..timeframes import BarSpec, slot_of
from ..transport.worker_stop import unguarded

logger: logging.Logger = logging.getLogger(__name__)

# batch(instruments, period): {symbol: the newest bars the service has (two, the newest maybe forming)}.
Batch = Callable[[Sequence[Instrument], str], "dict[str, list[Kline]]"]

# The bars one batch answer holds per symbol (alltick.md 4.2: query_kline_num is 1 or 2).
ANSWER_BARS = 2

# Wall seconds a gathering waits, while a starting fetch is among it, for no other fetch to come, and
# at most.  Sources ask as their seams anchor (at start, after a reconnect): at each symbol's first
# trade, a quiet one two seconds after its stream is up (sources.stream.ANCHOR_MARGIN_S), so those asks come
# apart by up to that; a later fetch (a gap's bar) comes when its bar closes, the same moment for all.
START_GATHER_S, START_MOST_S = 1.0, 2.5


class NewestBars:
    """Gather the backfill fetches of many symbols' threads into ``/batch-kline`` calls.

    A caller's thread waits until no other fetch has come for ``gather_s`` (at most ``most_s``;
    longer while a start's fetch waits: ``start_gather_s``, ``start_most_s``), then one of the
    waiting threads asks for all of them (per period) and hands each its bars.

    Example::

        newest = NewestBars(lambda insts, period: store.rest.batch_klines(insts, period, 2), store.clock)
        got = newest.fetch(inst, spec, after_ms, upto_ms)   # (bars, complete_ms), or None: use /kline
        got = newest.fetch_newest(inst, spec, 1, upto_ms)   # the newest closed bar, as Window(count=1)
    """

    def __init__(
        self,
        batch: Batch,
        clock: Clock,
        *,
        gather_s: float = 0.05,
        most_s: float = 0.5,
        start_gather_s: float = START_GATHER_S,
        start_most_s: float = START_MOST_S,
    ) -> None:
        self._batch = batch
        self._service = as_service_clock(clock)
        self._gather_s, self._most_s = gather_s, most_s
        self._start_gather_s, self._start_most_s = start_gather_s, start_most_s
        self._changed = threading.Condition(threading.Lock())
        # One batch call at a time: while one waits its turn under the plan's spacing, the fetches that
        # come meanwhile gather for the next call instead of each making a call that waits in line.
        self._calling = threading.Lock()
        self._waiting: list[_Ask] = []
        self._last_ask = 0.0
        self._gathering = False
        self._starting = False  # a start's fetch is among those waiting

    def fetch(
        self, inst: Instrument, spec: BarSpec, after_ms: int, upto_ms: int, *, starting: bool = False
    ) -> tuple[list[Kline], int] | None:
        """The bars of ``inst`` closing in ``(after_ms, upto_ms]`` and the moment up to which they are
        complete (as :class:`~.window.BarRange` says), from a batch answer; None when one answer cannot
        hold them (ask ``/kline``).
        ``starting``: a source's first fetch after its seam anchored (at its start, after a reconnect),
        gathered with the others anchoring about then."""
        if not spec.is_native:
            return None
        first = slot_of(spec, after_ms, inst.market)
        if not _fits(spec, inst, first.end, upto_ms):
            logger.debug("%s: bars closing in (%s, %s] need /kline", inst.symbol, after_ms, upto_ms)
            return None
        answer = self._ask(inst, spec, starting)
        if answer is None:
            return None
        bars, closed = answer
        if bars[0].end > first.end:
            # The answer starts after the gap's first bar: it may miss some of the gap.
            logger.debug(
                "%s: the batch answer starts at %s, after %s: /kline", inst.symbol, bars[0].end, first.end
            )
            return None
        # Like a /kline page's complete moment, not capped at upto_ms: a daily bar is final only once
        # its date ends, after its close stamp, and the caller judges that from this moment.
        return [bar for bar in bars if after_ms < bar.end <= min(upto_ms, closed)], closed

    def fetch_newest(
        self, inst: Instrument, spec: BarSpec, count: int, upto_ms: int
    ) -> tuple[list[Kline], int] | None:
        """The newest ``count`` closed bars of ``inst`` closing by ``upto_ms`` and the moment up to
        which they are complete, from a batch answer; None when the answer does not hold them all
        (ask ``/kline``).  One of the answer's bars may be forming, so ``count`` is at most one less
        than it holds."""
        if not spec.is_native or count >= ANSWER_BARS:
            return None
        answer = self._ask(inst, spec, starting=True)
        if answer is None:
            return None
        bars, closed = answer
        # The answer holds the service's newest bars: those left out are newer than the kept ones.
        kept = [bar for bar in bars if bar.end <= min(upto_ms, closed)]
        if len(kept) < count:
            logger.debug("%s: the batch answer holds %d bars by %s: /kline", inst.symbol, len(kept), closed)
            return None
        return kept[-count:], closed

    def _ask(self, inst: Instrument, spec: BarSpec, starting: bool) -> tuple[list[Kline], int] | None:
        """The answer's bars of ``inst``, oldest first, and the moment by which every bar ending is
        proven closed; None when the answer proves nothing (fewer bars than asked)."""
        ask = _Ask(inst, spec.period)
        with self._changed:
            self._waiting.append(ask)
            self._starting = self._starting or starting
            self._last_ask = time.monotonic()
            leader = not self._gathering
            self._gathering = self._gathering or leader
        if leader:
            self._gather_and_ask()
        ask.done.wait()
        if ask.error is not None:
            raise ask.error
        bars = sorted(ask.bars, key=lambda bar: bar.end)
        if len(bars) < ANSWER_BARS:
            # A symbol missing from the answer reads as no bars: only /kline tells it from a quiet one.
            logger.debug("%s: the batch answer holds %d bars: /kline", inst.symbol, len(bars))
            return None
        # As a walk proves a page (PageWalk._closed_edge): a bar older than one the service served is
        # closed, and the newest only once the service's time had passed its end when we asked.
        closed = self._service.closed_until(ask.sent)
        return bars, bars[-1].start if closed is None else max(closed, bars[-1].start)

    def _gather_and_ask(self) -> None:
        started = time.monotonic()
        with self._changed:
            while True:
                quiet_s, most_s = self._gather_s, self._most_s
                if self._starting:
                    quiet_s, most_s = max(quiet_s, self._start_gather_s), max(most_s, self._start_most_s)
                quiet_for = time.monotonic() - self._last_ask
                left = min(quiet_s - quiet_for, started + most_s - time.monotonic())
                if left <= 0:
                    break
                self._changed.wait(left)
        with self._calling:
            with self._changed:
                asks, self._waiting, self._gathering, self._starting = self._waiting, [], False, False
            self._ask_batches(asks)

    def _ask_batches(self, asks: list[_Ask]) -> None:
        by_period: dict[str, list[_Ask]] = {}
        for ask in asks:
            by_period.setdefault(ask.period, []).append(ask)
        for period, group in by_period.items():
            logger.debug("one batch K-line ask of %d symbols (%s)", len(group), period)
            sent = self._service.mark()
            for ask in group:
                ask.sent = sent
            try:
                # The call answers the other waiting threads too: it runs on when this one's feed stops.
                with unguarded():
                    found = self._batch(list(dict.fromkeys(ask.inst for ask in group)), period)
            except AllTickError as e:
                # One code the service refuses fails the whole call (ret 600): each symbol asks /kline,
                # which fails only the symbol at fault, or fails alone as it would have without a batch.
                logger.info("a batch K-line call for %d symbols failed (%s): /kline each", len(group), e)
            except Exception as e:  # a bug: each waiting thread raises it, so its backfill job fails visibly
                for ask in group:
                    ask.error = e
            else:
                for ask in group:
                    ask.bars = found.get(ask.inst.symbol, [])
            finally:
                for ask in group:
                    ask.done.set()


class _Ask:
    def __init__(self, inst: Instrument, period: str) -> None:
        self.inst, self.period = inst, period
        self.bars: list[Kline] = []
        self.error: Exception | None = None
        self.sent = 0  # our clock when the batch call was sent
        self.done = threading.Event()


def _fits(spec: BarSpec, inst: Instrument, first_end: int, upto_ms: int) -> bool:
    """True when at most one answer's bars close from ``first_end`` to ``upto_ms`` (at least one)."""
    count, end = 0, first_end
    while end <= upto_ms:
        count += 1
        if count > ANSWER_BARS:
            return False
        end = slot_of(spec, slot_of(spec, end - 1, inst.market).next_start, inst.market).end
    return count > 0
