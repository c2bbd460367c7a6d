"""StreamRest: which closed bars a stream source's backfill worker asks for, without a service.

The fetches over a real service (the batch answers, the /kline fallback) are covered in
test_source_stream.py and test_feed_batch.py; these pin the grid and the checks around them.
"""

from __future__ import annotations

from backtrader_alltick import timeframes
from backtrader_alltick.history import BarRange
from backtrader_alltick.markets import MINUTE_MS
from backtrader_alltick.sources import SourceOptions
from backtrader_alltick.sources.stream_rest import StreamRest
from backtrader_alltick.symbols import parse_symbol
from backtrader_alltick.wire import get_dialect

BTC = parse_symbol("BTCUSDT")
BOUNDARY = 1_700_000_040_000  # a minute boundary


class EmptyStore:
    """A service that knows no bars: every range is empty, and each symbol check is counted."""

    def __init__(self) -> None:
        self.wire = get_dialect("alltick")
        self.history = self
        self.checked: list[str] = []

    def get_range(self, inst, spec, window, **options) -> BarRange:
        return BarRange([], window.end_ms)

    def check_symbols(self, symbols) -> list:
        self.checked += [inst.symbol for inst in symbols]
        return []

    def resolve_timeframe(self, inst, timeframe, compression=1, *, live=False):
        return timeframes.resolve(timeframe, compression, self.wire.native_periods(inst), inst.symbol)


def rest_of(store, *, start_ms=None) -> StreamRest:
    spec = store.resolve_timeframe(BTC, timeframes.MINUTES, 1)
    return StreamRest(store, BTC, spec, SourceOptions(lookback=3), start_ms, None, lambda item: None)


def test_a_bar_is_final_once_its_minute_has_ended_and_the_next_one_when_that_ends():
    rest = rest_of(EmptyStore())

    assert rest.closed_until(BOUNDARY + 30_000) == BOUNDARY
    assert rest.closed_until(BOUNDARY) == BOUNDARY  # the bar stamped at the boundary has just closed
    assert rest.next_final(BOUNDARY) == BOUNDARY + MINUTE_MS


def test_an_empty_first_answer_checks_the_symbol_once_an_empty_later_one_does_not():
    # A service may answer an unknown code with empty data and a silent stream: the first empty
    # answer asks whether the code exists; a quiet market's later empty answers cost nothing more.
    store = EmptyStore()
    rest = rest_of(store)

    assert rest.fetch(None, BOUNDARY, None) == ([], BOUNDARY)
    assert rest.fetch(BOUNDARY, BOUNDARY + MINUTE_MS, None) == ([], BOUNDARY + MINUTE_MS)
    assert store.checked == ["BTCUSDT"]


def test_a_start_ahead_of_the_newest_closed_bar_fetches_nothing_yet():
    store = EmptyStore()
    rest = rest_of(store, start_ms=BOUNDARY + 10 * MINUTE_MS)

    assert rest.fetch(None, BOUNDARY, None) == ([], BOUNDARY)
