"""A store's REST snapshots against the simulator: latest trades and the symbol check."""

from __future__ import annotations

import pytest

from backtrader_alltick.errors import SymbolNotFound


def test_latest_trades_takes_a_comma_separated_string(itick_sim, make_store):
    store = make_store(itick_sim)
    assert [t.symbol for t in store.latest_trades("AAPL.US, BTCUSDT")] == ["AAPL.US", "BTCUSDT"]


def test_check_symbols_names_every_symbol_the_answer_leaves_out(itick_sim, make_store):
    store = make_store(itick_sim)
    assert [t.symbol for t in store.check_symbols(["AAPL.US"])] == ["AAPL.US"]
    with pytest.raises(SymbolNotFound, match="does not know ZZZZ.US, QQQQ.US") as raised:
        store.check_symbols(["AAPL.US", "ZZZZ.US", "QQQQ.US"])
    assert raised.value.symbol == "ZZZZ.US"
