"""StreamBars without a socket: the events a consumer sees around the seam, on an injected clock.

The seam's orderings are covered in tests/test_seam.py; these tests pin what the source adds on
top: which events come out of ``poll`` and when (bars, DELAYED/LIVE/CONNBROKEN, failures), the
book on live bars, the counters, the wake-up a relay waits on, and trades as bars.  The store
stand-in hands the source's listeners to the test and serves closed bars from a list; REST
and the WebSocket are exercised for real in test_source_stream.py.
"""

from __future__ import annotations

import math
import time

import pytest

from backtrader_alltick import timeframes
from backtrader_alltick.clock import ScaledClock
from backtrader_alltick.errors import AuthError, LateTradeWarning, PlanLimitError, SymbolNotFound
from backtrader_alltick.history import BarRange, Window
from backtrader_alltick.markets import MINUTE_MS
from backtrader_alltick.records import Depth, Kline, Tick
from backtrader_alltick.sources import BarReady, Failed, SourceOptions, StateChanged
from backtrader_alltick.sources.inbox import Wake
from backtrader_alltick.sources.stream import StreamBars
from backtrader_alltick.symbols import parse_symbol
from backtrader_alltick.transport.stream_protocol import StreamStatus
from backtrader_alltick.wire import get_dialect

BTC = parse_symbol("BTCUSDT")
BOUNDARY = 1_700_000_040_000  # a minute boundary
SPEED = 60  # a market minute per wall second
WAIT = 10.0  # wall seconds: only guards against a hang


class ListHistory:
    """Closed 1m bars from a list, as History.get_range answers (newest ``count``, closed by now)."""

    def __init__(self, bars: list[Kline], clock, error: Exception | None = None) -> None:
        self.bars, self.clock, self.error = bars, clock, error

    def get_range(self, inst, spec, window: Window, **options) -> BarRange:
        if self.error is not None:
            raise self.error
        end = self.clock.now_ms() if window.end_ms is None else min(window.end_ms, self.clock.now_ms())
        bars = [
            bar
            for bar in self.bars
            if bar.end <= end and (window.start_ms is None or bar.start >= window.start_ms)
        ]
        return BarRange(bars if window.count is None else bars[-window.count :], end)


class HandStore:
    """What StreamBars uses of a store; the test posts trades, books and stream statuses by hand."""

    def __init__(self, clock, bars: list[Kline], error: Exception | None = None) -> None:
        self.clock = clock
        self.wire = get_dialect("alltick")
        self.history = ListHistory(bars, clock, error)
        self.post = self.post_status = None
        self.connected = False
        self.read_up_to: int | None = None  # market ms the connection's reader has read through (None: all)

    @property
    def hub(self):
        return self

    def is_connected(self, family: str, inst=None) -> bool:
        return self.connected

    def read_through(self, family: str, inst, now_ms: int, grace_ms: int = 0, *, fresh: bool = False) -> int:
        # The test hands each trade over itself: nothing is unread unless it says the reader is behind.
        return now_ms if self.read_up_to is None else min(now_ms, self.read_up_to)

    def listen(self, inst, callback, *, depth=False, on_status=None) -> None:
        self.post, self.post_status = callback, on_status

    def unlisten(self, inst, callback, *, depth=False, on_status=None) -> None:
        self.post = self.post_status = None

    def resolve_timeframe(self, inst, timeframe, compression=1, *, live=False):
        natives = self.wire.native_periods(inst)
        return timeframes.resolve(timeframe, compression, natives, inst.symbol, live=live)

    def check_symbols(self, symbols) -> list[Tick]:
        return []

    def status(self, kind: str, **fields) -> None:
        self.post_status(StreamStatus("other", kind, self.clock.now_ms(), **fields))


def minute_bars(last_end: int, count: int) -> list[Kline]:
    return [
        Kline("BTCUSDT", "1m", end - MINUTE_MS, end, 10.0, 11.0, 9.0, 10.5, 1.0, 10.5)
        for end in range(last_end - (count - 1) * MINUTE_MS, last_end + 1, MINUTE_MS)
    ]


def next_event(source, kinds=(BarReady, StateChanged, Failed)):
    """The next event (skipping none), waiting on the source as a consumer would."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        event = source.poll(0.2)
        if event is not None:
            assert isinstance(event, kinds), event
            return event
    raise AssertionError("no event came")


@pytest.fixture
def world():
    made = []

    def build(*, spec="1m", error=None, paused=False):
        # Market time starts just before a boundary: the seam is that boundary, a few wall ms away.
        # paused: the clock stands there until the test resumes it, however slowly the machine runs.
        clock = ScaledClock(BOUNDARY - 3_000, speed=SPEED, paused=paused)
        store = HandStore(clock, minute_bars(BOUNDARY, 6), error)  # REST serves each once it closed
        bar_spec = None if spec is None else store.resolve_timeframe(BTC, timeframes.MINUTES, 1, live=True)
        source = StreamBars(store, BTC, bar_spec, SourceOptions(lookback=3, bidask=True), None)
        made.append(source)
        return store, source

    yield build
    for source in made:
        source.close()


def live_bar_begun(world):
    """A source whose seam is anchored at BOUNDARY, with one trade of the first live bar taken; the
    clock still stands before the boundary."""
    store, source = world(paused=True)
    store.status("connected")
    assert next_event(source) == StateChanged("delayed")
    store.post(Tick("BTCUSDT", BOUNDARY - 2_000, 100.0, 1.0, 100.0, seq=1))  # anchors the seam at BOUNDARY
    store.post(Tick("BTCUSDT", BOUNDARY + 1_000, 101.0, 2.0, 202.0, seq=2))  # the first live bar's
    source.take_input()
    return store, source


def test_history_up_to_the_seam_comes_first_without_a_book_then_live_bars_with_it(world):
    store, source = world(paused=True)
    store.status("connected")
    assert next_event(source) == StateChanged("delayed")
    store.post(Depth("BTCUSDT", BOUNDARY - 2_000, bids=((99.5, 1.0),), asks=((100.5, 2.0),)))
    store.post(Tick("BTCUSDT", BOUNDARY - 2_000, 100.0, 1.0, 100.0, seq=1))  # anchors the seam at BOUNDARY
    store.post(Tick("BTCUSDT", BOUNDARY + 1_000, 101.0, 2.0, 202.0, seq=2))  # the first live bar's
    source.take_input()  # the seam is anchored before the boundary passes; then time runs
    store.clock.resume()

    events = [next_event(source) for _ in range(6)]

    bars = [event for event in events if isinstance(event, BarReady)]
    # The newest three closed bars (lookback), the one up to the seam once it closed, then the live one.
    assert [bar.bar.end for bar in bars] == [BOUNDARY + n * MINUTE_MS for n in range(-3, 2)]
    assert all(math.isnan(bar.bid) and math.isnan(bar.ask) for bar in bars[:4])  # REST bars: no quote
    # Backtrader's convention: LIVE comes with the last bars of history, before the first live one.
    assert events.index(StateChanged("live")) < 5
    live = bars[-1]
    assert (live.bar.volume, live.bid, live.ask) == (2.0, 99.5, 100.5)
    assert source.stats["bars_rest"] == 4 and source.stats["bars_live"] == 1 and source.stats["ticks"] == 2


def test_a_dropped_connection_is_told_at_once_and_the_source_is_delayed_again_when_it_is_back(world):
    store, source = world()
    store.connected = True  # another feed's socket is up: no "connected" comes
    store.post(Tick("BTCUSDT", BOUNDARY - 2_000, 100.0, 1.0, 100.0, seq=1))
    while next_event(source) != StateChanged("live"):
        pass

    store.status("disconnected")
    store.status("connected")

    assert next_event(source) == StateChanged("connbroken")
    assert next_event(source) == StateChanged("delayed")
    assert source.stats["reconnects"] == 1


@pytest.mark.parametrize("how", ["backfill", "stream", "dropped"])
def test_a_failure_is_the_last_event(world, how):
    error = SymbolNotFound("BTCUSDT is unknown", symbol="BTCUSDT") if how == "backfill" else None
    store, source = world(error=error)
    if how == "stream":
        store.status("fatal", error=AuthError("the token was rejected"))
    elif how == "dropped":
        store.status("dropped", error=PlanLimitError("over the plan's cap"), symbols=("BTCUSDT",))
    store.post(Tick("BTCUSDT", BOUNDARY - 2_000, 100.0, 1.0, 100.0, seq=1))

    while not isinstance(event := next_event(source), Failed):
        assert isinstance(event, StateChanged)  # history never arrives before a failure here

    expected = {"backfill": SymbolNotFound, "stream": AuthError, "dropped": PlanLimitError}[how]
    assert isinstance(event.error, expected)
    store.post(Tick("BTCUSDT", BOUNDARY + 1_000, 101.0, 1.0, 101.0, seq=2))
    assert source.poll(0.05) is None and not source.has_pending()


def test_every_post_wakes_a_consumer_of_many_sources(world):
    clock = ScaledClock(BOUNDARY - 3_000, speed=SPEED)
    store = HandStore(clock, minute_bars(BOUNDARY, 6))
    wake = Wake()
    source = StreamBars(store, BTC, None, SourceOptions(), None, wake=wake)
    try:
        assert wake.wait(WAIT)  # the probe of the symbol answered
        source.poll(0)
        assert not wake.has_input()
        store.post(Tick("BTCUSDT", BOUNDARY - 2_000, 100.0, 1.0, 100.0, seq=1))
        assert wake.has_input() and source.has_pending()
    finally:
        source.close()


def test_trades_as_bars_drop_repeats_and_late_trades_and_count_them(world):
    store, source = world(spec=None)
    trades = [
        Tick("BTCUSDT", BOUNDARY - 2_000, 100.0, 1.0, 100.0, seq=1),
        Tick("BTCUSDT", BOUNDARY - 2_000, 100.0, 1.0, 100.0, seq=1),  # the same trade again
        Tick("BTCUSDT", BOUNDARY - 2_500, 99.0, 1.0, 99.0, seq=0),  # older than the last
        Tick("BTCUSDT", BOUNDARY - 1_000, 101.0, 1.0, 101.0, seq=2),
    ]
    for trade in trades:
        store.post(trade)

    events = [next_event(source) for _ in range(3)]

    assert events[0] == StateChanged("live")  # a trade came: no seam for trades
    assert [event.bar.seq for event in events[1:]] == [1, 2]
    assert source.stats["duplicates"] == 1 and source.stats["late_ticks"] == 1 and source.stats["ticks"] == 4


def test_a_trade_after_its_live_bar_was_handed_out_is_counted_and_said_once(world):
    store, source = live_bar_begun(world)
    store.clock.resume()
    while not any(
        isinstance(event, BarReady) and event.bar.end == BOUNDARY + MINUTE_MS
        for event in [next_event(source)]
    ):
        pass

    # Two more trades of the bar just handed out: the service's K-line holds them, ours cannot.
    with pytest.warns(LateTradeWarning, match=r"BTCUSDT: a trade came after its live bar") as said:
        for seq in (3, 4):
            store.post(Tick("BTCUSDT", BOUNDARY + 30_000, 102.0, 1.0, 102.0, seq=seq))
            while source.stats["late_ticks"] < seq - 2:
                source.poll(0.2)

    assert len([w for w in said if issubclass(w.category, LateTradeWarning)]) == 1
    assert source.stats["late_ticks"] == 2


def test_a_bar_held_for_its_reader_comes_at_the_next_poll_once_the_reader_is_through(world):
    # The feeds of a connection hold a minute's bar while its reader is behind.  Once one of them
    # finds the reader through, the others must hand theirs out in the same pass of Cerebro: a
    # pause before a held bar is asked about again would split the minute over two next() calls.
    store, source = live_bar_begun(world)
    store.read_up_to = BOUNDARY + 10_000  # the reader stalls 10 s into the live bar
    store.clock.resume(until_ms=BOUNDARY + 2 * MINUTE_MS)  # far past its end plus grace
    events = []
    deadline = time.monotonic() + WAIT
    while source.stats["held_bars"] == 0 or store.clock.now_ms() < BOUNDARY + 2 * MINUTE_MS:
        assert time.monotonic() < deadline, "the bar was never held"
        if (event := source.poll(0.01)) is not None:
            events.append(event)
    while (event := source.poll(0)) is not None:
        events.append(event)
    assert not any(isinstance(e, BarReady) and e.bar.end == BOUNDARY + MINUTE_MS for e in events)

    store.read_up_to = None  # the reader caught up, as another feed of the connection has just found

    event = source.poll(0)
    assert isinstance(event, BarReady) and event.bar.end == BOUNDARY + MINUTE_MS, event
    assert source.stats["held_bars"] == 1
