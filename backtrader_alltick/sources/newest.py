"""One ``/batch-kline`` call for the short backfills of many symbols, where it covers them.

After a reconnect every symbol of a relay asks REST, at about the same moment, for the bar or two
the drop cut; later, as each bar of the gap closes, for that bar.  ``/kline`` answers one symbol a
call.  ``/batch-kline`` answers the newest two bars of up to the plan's groups (alltick.md 4.2:
Free 5, Basic 100, Premium 200, top tiers 500), so :class:`NewestBars` gathers the backfill fetches
that arrive together into as few batch calls as the plan allows.  A fetch whose gap holds more
bars than the answer can cover, or which the answer turns out not to cover (a symbol that did
not trade in the gap's first slot), is left to ``/kline``: :meth:`NewestBars.fetch` returns None.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from ..clock import Clock, as_service_clock
from ..records import Kline
from ..symbols import Instrument
from ..timeframes import BarSpec, slot_of

logger: logging.Logger = logging.getLogger(__name__)

# batch(instruments, period): {symbol: the newest bars the service has (two, the newest maybe forming)}.
Batch = Callable[[Sequence[Instrument], str], "dict[str, list[Kline]]"]

# The bars one batch answer holds per symbol (alltick.md 4.2: query_kline_num is 1 or 2).
ANSWER_BARS = 2


class NewestBars:
    """Gather the backfill fetches of many symbols' threads into ``/batch-kline`` calls.

    A caller's thread waits until no other fetch has come for ``gather_s`` (at most ``most_s``),
    then one of the waiting threads asks for all of them (per period) and hands each its bars.

    Example::

        newest = NewestBars(lambda insts, period: store.rest.batch_klines(insts, period, 2), store.clock)
        got = newest.fetch(inst, spec, after_ms, upto_ms)   # (bars, complete_ms), or None: use /kline
    """

    def __init__(self, batch: Batch, clock: Clock, *, gather_s: float = 0.05, most_s: float = 0.5) -> None:
        self._batch = batch
        self._service = as_service_clock(clock)
        self._gather_s = gather_s
        self._most_s = most_s
        self._changed = threading.Condition(threading.Lock())
        self._waiting: list[_Ask] = []
        self._last_ask = 0.0
        self._gathering = False

    def fetch(
        self, inst: Instrument, spec: BarSpec, after_ms: int, upto_ms: int
    ) -> tuple[list[Kline], int] | None:
        """The bars of ``inst`` closing in ``(after_ms, upto_ms]`` and the moment up to which they are
        complete, from a batch answer; None when one answer cannot hold them (ask ``/kline``)."""
        if not spec.is_native:
            return None
        first = slot_of(spec, after_ms, inst.market)
        if not _fits(spec, inst, first.end, upto_ms):
            logger.debug("%s: bars closing in (%s, %s] need /kline", inst.symbol, after_ms, upto_ms)
            return None
        if self._service.closed_until() is None:
            return None  # the service never told its time: /kline proves what is closed
        ask = _Ask(inst, spec.period)
        with self._changed:
            self._waiting.append(ask)
            self._last_ask = time.monotonic()
            leader = not self._gathering
            self._gathering = self._gathering or leader
        if leader:
            self._gather_and_ask()
        ask.done.wait()
        if ask.error is not None:
            raise ask.error
        bars = sorted(ask.bars, key=lambda bar: bar.end)
        if len(bars) >= ANSWER_BARS and bars[0].end > first.end:
            # The answer starts after the gap's first bar: it may miss some of the gap.
            logger.debug(
                "%s: the batch answer starts at %s, after %s: /kline", inst.symbol, bars[0].end, first.end
            )
            return None
        closed = self._service.closed_until()
        complete = min(upto_ms, after_ms if closed is None else closed)
        return [bar for bar in bars if after_ms < bar.end <= complete], complete

    def _gather_and_ask(self) -> None:
        started = time.monotonic()
        with self._changed:
            while True:
                quiet_for = time.monotonic() - self._last_ask
                left = min(self._gather_s - quiet_for, started + self._most_s - time.monotonic())
                if left <= 0:
                    break
                self._changed.wait(left)
            asks, self._waiting, self._gathering = self._waiting, [], False
        by_period: dict[str, list[_Ask]] = {}
        for ask in asks:
            by_period.setdefault(ask.period, []).append(ask)
        for period, group in by_period.items():
            try:
                found = self._batch(list(dict.fromkeys(ask.inst for ask in group)), period)
            except Exception as e:  # each waiting thread raises it: its backfill job fails as it would alone
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
