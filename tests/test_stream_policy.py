import random

import pytest

from backtrader_alltick.errors import ConfigError
from backtrader_alltick.stream_policy import SubscriptionRegistry, backoff, cap_subscriptions, check_ws_url
from backtrader_alltick.symbols import parse_symbol

AAPL, TSLA, MSFT, NVDA, AMZN, META = map(parse_symbol, ("AAPL.US", "TSLA.US", "MSFT.US", "NVDA.US",
                                                          "AMZN.US", "META.US"))


def _take(generator, count):
    return [next(generator) for _ in range(count)]


def test_backoff_without_jitter_doubles_up_to_the_cap():
    assert _take(backoff(1.0, 2.0, 10.0), 6) == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_backoff_with_jitter_stays_within_the_fraction_and_under_the_cap():
    delays = _take(backoff(1.0, 2.0, 8.0, 0.25, random.Random(7)), 200)

    assert all(0.75 <= d <= 1.25 for d in delays[:1])
    assert all(6.0 <= d <= 8.0 for d in delays[10:])
    assert len(set(delays[10:])) > 1  # jittered, not a fixed delay


def test_backoff_with_a_seeded_rng_is_reproducible():
    assert _take(backoff(0.5, 3.0, 60.0, 0.2, random.Random(1)), 8) == \
        _take(backoff(0.5, 3.0, 60.0, 0.2, random.Random(1)), 8)


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


@pytest.mark.parametrize("url", ["wss://quote.alltick.co", "ws://127.0.0.1:1", "ws://[::1]:8080/prefix/"])
def test_check_ws_url_returns_a_possible_websocket_root_as_given(url):
    assert check_ws_url(url) == url


@pytest.mark.parametrize(("url", "problem"), [
    ("http://127.0.0.1:8080", "not ws:// or wss://"), ("garbage", "not ws:// or wss://"),
    ("WS://host", "not ws:// or wss://"), (None, "not ws:// or wss://"), ("ws://", "no host"),
    ("wss://[::1", "Invalid IPv6 URL"), ("ws://host:99999", "Port out of range 0-65535"),
    ("ws://host:0", "port 0"),
    ("ws://host/x?a=1", "a query or fragment"), ("ws://ho st", "white space"),
])
def test_check_ws_url_names_the_parameter_what_is_allowed_and_the_problem(url, problem):
    with pytest.raises(ConfigError) as info:
        check_ws_url(url, "ws_url")

    assert str(info.value) == ("ws_url must be a ws:// or wss:// URL with a host and an optional port and "
                               f"path (e.g. wss://quote.alltick.co), was {url!r} ({problem})")


def test_check_ws_url_never_quotes_the_token():
    with pytest.raises(ConfigError) as info:
        check_ws_url("ws://host/?token=SENTINEL-0123456789", token="SENTINEL-0123456789")

    assert "SENTINEL-0123456789" not in str(info.value)
