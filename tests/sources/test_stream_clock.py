"""Live bars on the service's clock when ours is far from it: a simulator in 2024 (``alltick-bt sim``),
or a machine whose clock is hours off.

The WebSocket upgrade's ``Date`` tells the store the service's time before the first trade comes, so
the seam that trade anchors stands on the service's clock, not on ours.
"""

from __future__ import annotations

import threading
import time

import pytest

from backtrader_alltick.clock import ScaledClock, ServiceClock
from backtrader_alltick.sources import BarReady, Failed, SourceOptions
from backtrader_alltick.sources.stream import StreamBars
from backtrader_alltick.symbols import parse_symbol

BTC = parse_symbol("BTCUSDT")
WAIT = 30.0  # wall seconds: only guards against a hang


@pytest.mark.parametrize("dialect", ["alltick", "itick"])
def test_a_store_whose_clock_is_years_from_the_services_builds_live_bars_from_the_stream(
    make_sim, make_store, dialect
):
    sim = make_sim(dialect=dialect)  # its clock in March 2024, at 60x
    # Ours runs as fast (a user's script on the simulator's speed) from the wall's date, years later.
    ours = ServiceClock(ScaledClock(start_ms=int(time.time() * 1000), speed=sim.clock.speed))
    store = make_store(sim, cache=False, clock=ours)
    spec = store.resolve_timeframe(BTC, "1m")
    source = StreamBars(store, BTC, spec, SourceOptions(lookback=1), None)
    bars = []
    guard = threading.Event()
    timer = threading.Timer(WAIT, guard.set)
    timer.start()
    try:
        while source.stats["bars_live"] < 2:
            assert not guard.is_set(), f"no bars built from the stream: {source.stats}"
            event = source.poll(0.05)
            assert not isinstance(event, Failed), event
            if isinstance(event, BarReady):
                bars.append(event.bar)
    finally:
        timer.cancel()
        source.close()

    truth = {k.end: k for k in sim.klines("BTCUSDT", "1m", bars[0].start, bars[-1].end)}
    for bar in bars:
        k = truth[bar.end]
        assert (bar.open, bar.high, bar.low, bar.close) == (k.open, k.high, k.low, k.close), bar
        assert bar.volume == pytest.approx(k.volume, rel=1e-9), bar
