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


@pytest.mark.parametrize(
    "symbols, unknown",
    [
        (["AAPL.US", "ZZZZ.US"], "ZZZZ.US"),
        (["ZZZZ.US", "AAPL.US", "TSLA.US", "QQQQ.US", "GOOGL.US"], "ZZZZ.US, QQQQ.US"),
    ],
)
def test_alltick_refuses_a_whole_batch_yet_the_error_names_only_the_unknown(
    alltick_sim, make_store, symbols, unknown
):
    store = make_store(alltick_sim)

    with pytest.raises(SymbolNotFound, match=f"does not know {unknown} on") as raised:
        store.check_symbols(symbols)

    assert raised.value.symbol == unknown
