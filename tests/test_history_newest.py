"""NewestBars against the simulator: the short gaps of many symbols in one /batch-kline call."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import backtrader as bt

from backtrader_alltick.clock import wall_seconds
from backtrader_alltick.history import Window, cache_namespace
from backtrader_alltick.history.newest import ANSWER_BARS, NewestBars
from backtrader_alltick.sim import DEFAULT_START_MS
from backtrader_alltick.symbols import parse_symbol

MINUTE = 60_000
SYMBOLS = [f"N{n:02d}USDT" for n in range(24)]


def rest_calls(sim, endpoint: str) -> int:
    return sum(n for path, n in sim.counters["rest_requests_by_path"].items() if path.endswith(endpoint))


def closed_minute(sim) -> int:
    """The end of the newest minute the service has surely closed, waiting for its close if needed."""
    # The minute that just ended may still take its last trades.  A loop, not one wait: on a loaded
    # machine the wait can overshoot into the next minute's first seconds.
    now = sim.clock.now_ms()
    while now % MINUTE < 20_000:
        threading.Event().wait(wall_seconds(sim.clock, now - now % MINUTE + 20_000))  # market time passing
        now = sim.clock.now_ms()
    return now - now % MINUTE


def batch_gap(sim, store):
    """A NewestBars over ``store``, the instruments of SYMBOLS, their 1-minute spec and the end of the
    newest minute the service has closed (its time learnt first, as the start's backfill does)."""
    newest = NewestBars(
        lambda insts, period: store.rest.batch_klines(insts, period, ANSWER_BARS), store.clock
    )
    insts = [parse_symbol(symbol) for symbol in SYMBOLS]
    spec = store.resolve_timeframe(insts[0], bt.TimeFrame.Minutes, 1)
    store.rest.klines(insts[0], "1m", 1)
    return newest, insts, spec, closed_minute(sim)


def test_the_one_bar_gaps_of_many_symbols_cost_one_batch_call_and_equal_the_klines(make_sim, make_store):
    sim = make_sim(dialect="alltick", symbols=SYMBOLS)
    newest, insts, spec, upto = batch_gap(sim, make_store(sim, cache=False))
    klines, batches = rest_calls(sim, "/kline"), rest_calls(sim, "/batch-kline")

    # Every symbol's backfill worker asks at about the same moment, as after a reconnect.
    with ThreadPoolExecutor(len(insts)) as pool:
        answers = list(pool.map(lambda inst: newest.fetch(inst, spec, upto - MINUTE, upto), insts))

    assert rest_calls(sim, "/batch-kline") - batches == 1
    assert rest_calls(sim, "/kline") == klines
    for symbol, answer in zip(SYMBOLS, answers):
        assert answer is not None, symbol
        bars, complete = answer
        assert complete >= upto  # the service had closed every bar up to it, or later
        assert bars == [bar for bar in sim.klines(symbol, "1m", upto - 2 * MINUTE, upto) if bar.end == upto]


def test_a_gap_longer_than_one_answer_is_left_to_kline_without_a_call(make_sim, make_store):
    sim = make_sim(dialect="alltick", symbols=SYMBOLS[:1])
    store = make_store(sim, cache=False)
    newest = NewestBars(
        lambda insts, period: store.rest.batch_klines(insts, period, ANSWER_BARS), store.clock
    )
    inst = parse_symbol(SYMBOLS[0])
    spec = store.resolve_timeframe(inst, bt.TimeFrame.Minutes, 1)
    upto = closed_minute(sim)
    before = sim.counters["rest_requests"]

    assert newest.fetch(inst, spec, upto - (ANSWER_BARS + 1) * MINUTE, upto) is None
    assert sim.counters["rest_requests"] == before


def test_a_symbol_missing_from_the_answer_is_left_to_kline_and_the_others_are_answered(make_sim, make_store):
    sim = make_sim(dialect="alltick", symbols=SYMBOLS[:2])
    store = make_store(sim, cache=False)
    kept, dropped = SYMBOLS[0], SYMBOLS[1]

    def batch_without_one(insts, period):
        # The service's real answer, less one symbol's group, as an answer that left a code out reads.
        found = store.rest.batch_klines(insts, period, ANSWER_BARS)
        return {symbol: bars for symbol, bars in found.items() if symbol != dropped}

    newest = NewestBars(batch_without_one, store.clock)
    spec = store.resolve_timeframe(parse_symbol(kept), bt.TimeFrame.Minutes, 1)
    upto = closed_minute(sim)

    with ThreadPoolExecutor(2) as pool:
        answers = dict(
            zip(
                (kept, dropped),
                pool.map(
                    lambda symbol: newest.fetch(parse_symbol(symbol), spec, upto - MINUTE, upto),
                    (kept, dropped),
                ),
            )
        )

    assert answers[dropped] is None  # its bars come from /kline, not an empty gap
    bars, complete = answers[kept]
    assert bars == [bar for bar in sim.klines(kept, "1m", upto - 2 * MINUTE, upto) if bar.end == upto]


def test_the_newest_closed_bar_at_a_start_comes_from_the_batch_answer(make_sim, make_store):
    sim = make_sim(dialect="alltick", symbols=SYMBOLS[:3])
    store = make_store(sim, cache=False)
    # The asks come at once here: a start's longer gathering would let the fast clock pass a minute.
    newest = NewestBars(
        lambda insts, period: store.rest.batch_klines(insts, period, ANSWER_BARS),
        store.clock,
        start_gather_s=0.05,
        start_most_s=0.5,
    )
    insts = [parse_symbol(symbol) for symbol in SYMBOLS[:3]]
    spec = store.resolve_timeframe(insts[0], bt.TimeFrame.Minutes, 1)
    upto = closed_minute(sim)
    klines, batches = rest_calls(sim, "/kline"), rest_calls(sim, "/batch-kline")

    with ThreadPoolExecutor(len(insts)) as pool:
        answers = list(pool.map(lambda inst: newest.fetch_newest(inst, spec, 1, upto), insts))

    assert rest_calls(sim, "/batch-kline") - batches == 1 and rest_calls(sim, "/kline") == klines
    for inst, (bars, complete) in zip(insts, answers):
        assert complete >= upto - MINUTE
        assert bars == sim.klines(inst.symbol, "1m", upto - 2 * MINUTE, upto)[-1:]
        assert bars[0].end <= upto


def test_closed_bars_of_a_batch_answer_are_cached_and_a_later_load_needs_no_kline(make_sim, make_store):
    sim = make_sim(dialect="alltick", symbols=SYMBOLS[:1])
    store = make_store(sim)  # with a cache file
    inst = parse_symbol(SYMBOLS[0])
    spec = store.resolve_timeframe(inst, bt.TimeFrame.Minutes, 1)
    upto = closed_minute(sim)
    assert store.newest.fetch(inst, spec, upto - MINUTE, upto) is not None
    klines = rest_calls(sim, "/kline")

    got = store.history.get_range(inst, spec, Window(start_ms=upto, end_ms=upto))

    assert rest_calls(sim, "/kline") == klines  # the batch answer proved that minute: read from the cache
    assert got.bars == [
        bar for bar in sim.klines(SYMBOLS[0], "1m", upto - 2 * MINUTE, upto) if bar.end == upto
    ]
    namespace = cache_namespace(store.wire, store.rest_url)
    covered = store.cache.covered(namespace, SYMBOLS[0], "1m", upto - 10 * MINUTE, upto + 10 * MINUTE)
    assert len(covered) == 1 and covered[0][1] <= sim.clock.now_ms()  # never past what the service closed
    cached = store.cache.get(namespace, SYMBOLS[0], "1m", upto - 10 * MINUTE, upto + 10 * MINUTE)
    assert cached and all(bar.end <= covered[0][1] for bar in cached)  # no forming bar kept


def test_fetches_that_come_while_a_batch_call_waits_its_turn_join_the_next_call(make_sim, make_store):
    # Professional: batch calls 1 s apart.  A universe's backfill workers wake over a second (a bar's
    # close on a busy machine), each further from the last than a gathering waits for the next.  At 5x
    # the calls waiting in line stay within the minute after the gap's bar.  The clock starts where
    # closed_minute would wait for (20 s into a minute), 4 wall s at 5x.
    sim = make_sim(
        dialect="alltick", symbols=SYMBOLS, plan="professional", speed=5, start=DEFAULT_START_MS + 20_000
    )
    newest, insts, spec, upto = batch_gap(sim, make_store(sim, cache=False))
    batches = rest_calls(sim, "/batch-kline")

    def wakes_late(order_and_inst):
        order, inst = order_and_inst
        threading.Event().wait(0.06 * order)  # the scenario's timing, not a synchronisation
        return newest.fetch(inst, spec, upto - MINUTE, upto)

    with ThreadPoolExecutor(len(insts)) as pool:
        answers = list(pool.map(wakes_late, enumerate(insts)))

    assert all(answer is not None for answer in answers)
    # One call per gathering while the calls wait in line would be 24 calls, 24 s of spacing.
    assert rest_calls(sim, "/batch-kline") - batches <= 5
