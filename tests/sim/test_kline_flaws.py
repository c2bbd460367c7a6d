"""K-line flaws in the simulator's REST replies: each does what it says, in both dialects, and is counted."""

from __future__ import annotations

import pytest

from backtrader_alltick.errors import ConfigError
from backtrader_alltick.history import Window
from backtrader_alltick.sim import Faults
from backtrader_alltick.sim.kline_flaws import KLINE_FLAWS, SPIKE_FACTOR, VOLUME_FACTOR
from backtrader_alltick.symbols import parse_symbol

MINUTE = 60_000


def served(store, symbol="BTCUSDT", count=60):
    inst = parse_symbol(symbol)
    got = store.history.get_range(inst, store.resolve_timeframe(inst, 4, 1), Window(count=count))
    return {k.start: k for k in got.bars}


def ohlcv(bar) -> tuple:
    return bar.open, bar.high, bar.low, bar.close, bar.volume


def test_each_kline_flaw_changes_only_its_bar_over_rest(sim, make_store):
    truth = sim.klines("BTCUSDT", "1m", sim.start_ms - 60 * MINUTE, sim.start_ms)
    starts = [k.start for k in truth]
    flaws = {
        starts[10]: "gap",
        starts[20]: "repeat",
        starts[30]: "spike",
        starts[40]: "volume_spike",
        starts[50]: "ohlc",
        starts[55]: "stale",
        starts[56]: "stale",
    }
    sim.faults.kline_flaws = flaws

    bars = served(make_store(sim, cache=False), count=80)

    clean = {k.start: k for k in truth}
    changed = [k.start for k in truth if k.start in bars and bars[k.start] != k]
    assert starts[10] not in bars and changed == sorted(set(flaws) - {starts[10]})
    assert ohlcv(bars[starts[20]]) == ohlcv(clean[starts[19]])
    spiked = bars[starts[30]]
    assert spiked.close == pytest.approx(clean[starts[30]].close * SPIKE_FACTOR)
    assert spiked.high >= spiked.close
    assert bars[starts[40]].volume == pytest.approx(clean[starts[40]].volume * VOLUME_FACTOR)
    broken = clean[starts[50]]
    assert bars[starts[50]].high == broken.low < max(broken.open, broken.close)
    last_real = clean[starts[54]].close
    for start in starts[55:57]:
        assert ohlcv(bars[start]) == (last_real, last_real, last_real, last_real, 0.0)
    assert sim.counters["faults"]["kline_flaws"] >= len(flaws)


def test_kline_flaws_leave_the_ground_truth_clean(alltick_sim):
    window = ("BTCUSDT", "1m", alltick_sim.start_ms - 10 * MINUTE, alltick_sim.start_ms)
    truth = alltick_sim.klines(*window)
    alltick_sim.faults.kline_flaws = {k.start: "gap" for k in truth}

    assert alltick_sim.klines(*window) == truth


def test_unknown_kline_flaw_is_refused_naming_the_choices():
    with pytest.raises(ConfigError, match=r"kline_flaws\[0\] must be one of gap, repeat, .*, was 'hole'"):
        Faults(kline_flaws={0: "hole"})
    assert set(KLINE_FLAWS) == {"gap", "repeat", "spike", "stale", "volume_spike", "ohlc"}
