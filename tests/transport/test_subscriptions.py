"""Subscriptions: reference counts per code and kind, and the plan's cap on them."""

import pytest

from backtrader_alltick.errors import ConfigError
from backtrader_alltick.symbols import parse_symbol
from backtrader_alltick.transport.subscriptions import SubscriptionRegistry, cap_subscriptions

AAPL, TSLA, MSFT, NVDA, AMZN, META = map(
    parse_symbol, ("AAPL.US", "TSLA.US", "MSFT.US", "NVDA.US", "AMZN.US", "META.US")
)


def test_registry_keeps_a_code_while_any_subscriber_wants_it():
    registry = SubscriptionRegistry()

    assert registry.add("stock", AAPL, "trades") is True
    assert registry.add("stock", AAPL, "trades") is False
    assert registry.remove("stock", AAPL, "trades") is False
    assert registry.desired("stock") == ([AAPL], [])
    assert registry.remove("stock", AAPL, "trades") is True
    assert registry.desired("stock") == ([], [])
    assert registry.families() == []


def test_registry_merges_kinds_separately_in_subscription_order():
    registry = SubscriptionRegistry()
    for inst in (TSLA, AAPL, MSFT):
        registry.add("stock", inst, "trades")
    registry.add("stock", AAPL, "depth")
    registry.add("other", parse_symbol("BTCUSDT"), "trades")

    assert registry.desired("stock") == ([TSLA, AAPL, MSFT], [AAPL])
    assert registry.is_wanted("stock", AAPL) and not registry.is_wanted("stock", NVDA)
    assert sorted(registry.families()) == ["other", "stock"]


def test_registry_ignores_removing_an_unknown_code():
    assert SubscriptionRegistry().remove("stock", AAPL, "trades") is False


def test_registry_rejects_an_unknown_kind_naming_the_choices():
    with pytest.raises(ConfigError) as info:
        SubscriptionRegistry().add("stock", AAPL, "quotes")

    assert str(info.value) == "kind must be one of trades, depth, was 'quotes'"


def test_cap_per_list_keeps_the_oldest_codes_of_each_kind():
    trades = [AAPL, TSLA, MSFT, NVDA, AMZN, META]

    kept_trades, kept_depth, dropped = cap_subscriptions(trades, [META, AAPL], 5, shared=False)

    assert kept_trades == trades[:5]
    assert kept_depth == [META, AAPL]
    assert dropped == [META]


def test_cap_shared_counts_a_product_once_across_kinds():
    kept_trades, kept_depth, dropped = cap_subscriptions([AAPL, TSLA, MSFT], [AAPL, NVDA], 3, shared=True)

    assert kept_trades == [AAPL, TSLA, MSFT]
    assert kept_depth == [AAPL]
    assert dropped == [NVDA]


def test_status_receivers_are_per_symbol_so_the_hub_can_tell_only_a_connections_codes():
    registry = SubscriptionRegistry()
    heard = []

    registry.attach("stock", AAPL, None, heard.append)
    registry.attach("stock", TSLA, None, print)
    registry.detach("stock", TSLA, None, print)

    assert registry.status_receivers == {"AAPL.US": (heard.append,)}
