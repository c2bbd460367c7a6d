"""A universe's newest closed bars in few requests: /batch-kline against the simulator."""

import pytest

from backtrader_alltick.errors import ConfigError


def _rest_calls(sim, endpoint: str) -> int:
    return sum(entry.kind == "rest" and entry.path.endswith("/" + endpoint) for entry in sim.journal.entries)


def test_latest_bars_of_450_symbols_take_3_batch_calls_on_premium_and_equal_the_simulators(
    make_sim, make_store
):
    symbols = [f"S{index:04d}.US" for index in range(450)]
    sim = make_sim(plan="premium", symbols=symbols, speed=1)
    store = make_store(sim)

    bars = store.latest_bars(symbols, "1m")

    assert _rest_calls(sim, "batch-kline") == 3 and _rest_calls(sim, "kline") == 0
    now = sim.clock.now_ms()
    for symbol in symbols:
        truth = [bar for bar in sim.klines(symbol, "1m", now - 10 * 60_000, now) if bar.end <= now - 1000]
        got = bars[symbol]
        assert got is not None and got.end >= truth[-1].end - 60_000
        same = next(bar for bar in truth if bar.end == got.end)
        assert (got.open, got.high, got.low, got.close, got.volume) == (
            same.open,
            same.high,
            same.low,
            same.close,
            same.volume,
        )


def test_latest_bars_never_return_a_forming_bar(alltick_sim, make_store):
    store = make_store(alltick_sim)

    bars = store.latest_bars(["BTCUSDT", "ETHUSDT", "EURUSD"], "1m")

    assert all(bar.end <= alltick_sim.clock.now_ms() for bar in bars.values())


def test_latest_bars_refuse_a_period_the_service_does_not_serve(alltick_sim, make_store):
    with pytest.raises(ConfigError, match="serves the service's own K-line periods"):
        make_store(alltick_sim).latest_bars(["BTCUSDT"], "3m")
