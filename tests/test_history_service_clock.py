"""History against a service whose clock is not ours: only bars the service has closed are cached.

The store's clock is the simulator's plus an offset (our machine seconds ahead of the
service, or behind it); loads land right around minute boundaries, with warm and cold
clocks and caches.  Afterwards every cached bar, and every bar handed out, is compared
with the simulator's own K-lines once they have all closed.
"""

from __future__ import annotations

import time

import backtrader as bt

from backtrader_alltick import AllTickStore
from backtrader_alltick.clock import CLOSE_LAG_S, wall_seconds
from backtrader_alltick.history import Window, cache_namespace
from backtrader_alltick.sim import DEFAULT_START_MS
from backtrader_alltick.symbols import parse_symbol
from backtrader_alltick.wire import get_dialect

MINUTE = 60_000
SPEED = 8  # the close lag (0.2 wall s) is 1.6 market s: less than our clock's lead
SYMBOL = "BTCUSDT"


class OffsetClock:
    """Our machine's clock: the service's (the simulator's) plus ``offset_ms``."""

    def __init__(self, clock, offset_ms: int) -> None:
        self.clock, self.offset_ms, self.speed = clock, offset_ms, clock.speed

    def now_ms(self) -> int:
        return self.clock.now_ms() + self.offset_ms


def _store(sim, cache_path, offset_ms: int) -> AllTickStore:
    return AllTickStore(
        token=sim.token,
        dialect=sim.dialect,
        plan=sim.plan.name,
        rest_url=sim.rest_url,
        ws_url=sim.ws_url,
        cache=cache_path,
        clock=OffsetClock(sim.clock, offset_ms),
    )


def _wait_until(sim, market_ms: int) -> None:
    time.sleep(wall_seconds(sim.clock, market_ms))  # waits on the market clock, not for an event


OFFSETS = {"2s-ahead": 2_000, "2s-behind": -2_000, "40s-ahead": 40_000, "40s-behind": -40_000}


def test_only_bars_the_service_closed_are_cached_and_none_it_closed_is_missing(make_sim, tmp_path):
    # The four clocks share one simulator and one timeline: each round loads through all of them.
    # The simulator starts 15 market seconds (2 wall s) before a boundary, so the first round need
    # not wait most of a minute for it.
    sim = make_sim(dialect="alltick", speed=SPEED, start=DEFAULT_START_MS + MINUTE - 15_000)
    inst = parse_symbol(SYMBOL)
    minute_bars = AllTickStore(cache=False).resolve_timeframe(inst, bt.TimeFrame.Minutes, 1)
    stores: dict[str, list[AllTickStore]] = {name: [] for name in OFFSETS}
    handed_out: dict[str, list] = {name: [] for name in OFFSETS}
    caches = {name: [tmp_path / f"{name}-{n}.sqlite" for n in ("first", "second")] for name in OFFSETS}
    lag_ms = CLOSE_LAG_S * 1000 * SPEED
    try:
        boundary = sim.clock.now_ms() // MINUTE * MINUTE + MINUTE
        # Just before a boundary, right after it, and a little later; each with a warm store, a new
        # store on the same cache (our clock not corrected yet) and a new store on a new cache.
        # The last round comes just before a boundary, so the bars it may touch close soon after it.
        for round_, after_ms in enumerate([-300, 50, 1_500, 50, -300]):
            _wait_until(sim, boundary + after_ms)
            for name, offset_ms in OFFSETS.items():
                if round_ % 3 == 0 or not stores[name]:
                    stores[name].append(_store(sim, caches[name][round_ % 2], offset_ms))
                sent = sim.clock.now_ms()
                bars = stores[name][-1].history.get_range(inst, minute_bars, Window(count=5)).bars
                handed_out[name].append((sent, sim.clock.now_ms(), bars))
            boundary += MINUTE
        # Every bar handed out or cached has closed by now: the newest one forming during the last
        # round ends at the boundary after the round's end (waited past by the close lag, and a
        # second for a Date's whole seconds, as a store would).
        last_forming_ends = sim.clock.now_ms() // MINUTE * MINUTE + MINUTE
        _wait_until(sim, last_forming_ends + lag_ms + 1_000)
        for name, offset_ms in OFFSETS.items():
            namespace = cache_namespace(get_dialect(sim.dialect), sim.rest_url)
            _check(sim, name, offset_ms, namespace, caches[name], handed_out[name], lag_ms)
    finally:
        for made in stores.values():
            for store in made:
                store.stop()


def _check(sim, name, offset_ms, namespace, caches, handed_out, lag_ms) -> None:
    for path in caches:
        cache = _store(sim, path, offset_ms).cache
        cached = cache.get(namespace, SYMBOL, "1m", 0, 2**62)
        assert cached, f"{name}: nothing cached in {path.name}"
        truth = {bar.start: bar for bar in sim.klines(SYMBOL, "1m", cached[0].start, cached[-1].end)}
        assert [bar for bar in cached if truth.get(bar.start) != bar] == [], name
        for low, high in cache.covered(namespace, SYMBOL, "1m", 0, 2**62):
            held = [bar.start for bar in cache.get(namespace, SYMBOL, "1m", low, high)]
            assert held == [bar.start for bar in sim.klines(SYMBOL, "1m", low, high)], (
                f"{name}: a covered range misses a bar"
            )
        cache.close()
    for sent, received, bars in handed_out:
        truth = sim.klines(SYMBOL, "1m", sent - 30 * MINUTE, sent + MINUTE)
        assert bars == [bar for bar in truth if bar.start >= bars[0].start and bar.end <= bars[-1].end], name
        # Every bar the service had closed (with the lag, and a Date to the second) when asked is there;
        # on a busy machine the answer may come late enough to hold the next one too, closed by then.
        settled = [bar for bar in truth if bar.end <= sent - lag_ms - 1_000]
        assert settled[-1].end <= bars[-1].end <= received, name
