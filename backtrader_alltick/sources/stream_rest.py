"""What a stream source asks REST for: the closed bars its backfill worker fetches, and from where.

A :class:`~.stream.StreamBars` source's seam asks for the bars before the stream's first trade (a
start) and for those a drop or a skipped frame cut (a gap).  Its backfill worker then calls
:meth:`StreamRest.fetch` on its own thread: a gap's or a start's few bars come from a
``/batch-kline`` answer shared with the other symbols (:class:`~..history.newest.NewestBars`) where
one covers them, the rest from the history's ``/kline`` pages.
"""

from __future__ import annotations

from collections.abc import Callable

from .. import timeframes
from ..history import Window
from ..history.newest import NewestBars
from ..notices import handing_to
from ..records import Kline
from ..symbols import Instrument
from ..timeframes import BarSpec, slot_of
from . import SourceOptions
from .needs import LiveStore


class StreamRest:
    """The REST side of one stream source; :meth:`fetch` runs on its backfill worker's thread.

    ``start_ms`` is the first bar's close to backfill from (None: the newest ``options.lookback``);
    ``hand_to`` takes the warnings a fetch raises (a long rate-limit wait) to the consumer's thread.

    Example::

        rest = StreamRest(store, inst, spec, options, None, None, inbox.put)
        backfiller = Backfiller(rest.fetch, store.clock, inbox.put,
                                closed_until=rest.closed_until, next_final=rest.next_final)
    """

    def __init__(
        self,
        store: LiveStore,
        inst: Instrument,
        spec: BarSpec | None,
        options: SourceOptions,
        start_ms: int | None,
        newest: NewestBars | None,
        hand_to: Callable[[object], None],
    ) -> None:
        self.store, self.inst, self.spec, self.options = store, inst, spec, options
        self.start_ms = start_ms
        self._newest = newest
        self._hand_to = hand_to
        # Set by the consumer when the seam asks as it anchors: at each symbol's own first trade, so the
        # job's first fetch is gathered with the other sources' as a start's is (NewestBars' longer window).
        self.anchor_fetch = False
        self._symbol_known = False

    def closed_until(self, moment_ms: int) -> int:
        """The close stamp of the newest bar final at ``moment_ms``."""
        # A bar is final when its slot ends (a daily bar: when its trading date ends).
        spec, market = self._spec(), self.inst.market
        return slot_of(spec, slot_of(spec, moment_ms, market).start - 1, market).end

    def next_final(self, close_ms: int) -> int:
        """The moment the bar after the one stamped ``close_ms`` is final."""
        spec, market = self._spec(), self.inst.market
        closed = slot_of(spec, close_ms - 1, market)  # the slot of the bar stamped close_ms
        return slot_of(spec, closed.next_start, market).next_start

    def fetch(self, after_ms: int | None, upto_ms: int, count: int | None) -> tuple[list[Kline], int]:
        """The closed bars that end after ``after_ms`` (None: the start's) up to ``upto_ms``, and the
        moment through which the answer is complete."""
        spec = self._spec()
        if after_ms is None:
            start_ms = self.start_ms
            if start_ms is None and count is None:
                count = self.options.lookback
        else:
            # Every bar that ends after after_ms: the one in progress at after_ms included.
            start_ms = slot_of(spec, after_ms, self.inst.market).start
        bars: list[Kline]
        with handing_to(self._hand_to):
            if start_ms is not None and start_ms > upto_ms:
                # fromdate lies ahead of the newest closed bar (a replay's clock starts before it, or a
                # session asked to start later): nothing to backfill yet; later jobs fetch what closes.
                bars, proven = [], upto_ms
            else:
                bars, proven = self._bars(spec, after_ms, start_ms, upto_ms, count)
            if not bars and not self._symbol_known:
                # A service may answer an unknown code with empty data (itick.md 9.2), and its stream
                # then stays silent: the latest trade tells a quiet history from an unknown code.
                self.store.check_symbols([self.inst])
        self._symbol_known = True
        return bars, proven

    def _spec(self) -> BarSpec:
        return self.spec or self.store.resolve_timeframe(self.inst, timeframes.MINUTES, 1)

    def _bars(
        self, spec: BarSpec, after_ms: int | None, start_ms: int | None, upto_ms: int, count: int | None
    ) -> tuple[list[Kline], int]:
        # A gap's or a start's few bars from a batch answer shared with other symbols, where one covers them.
        newest, got = self._newest, None
        starting, self.anchor_fetch = self.anchor_fetch, False
        if newest is not None:
            if after_ms is not None:
                got = newest.fetch(self.inst, spec, after_ms, upto_ms, starting=starting)
            elif start_ms is not None and count is None:
                got = newest.fetch(self.inst, spec, start_ms - 1, upto_ms, starting=True)  # from start_ms
            elif start_ms is None and count is not None:
                got = newest.fetch_newest(self.inst, spec, count, upto_ms)
        if got is not None:
            return got
        found = self.store.history.get_range(self.inst, spec, Window(start_ms, upto_ms, count))
        return found.bars, found.complete_ms
