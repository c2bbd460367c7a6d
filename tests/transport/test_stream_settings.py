"""Stream settings: the checked record a hub hands its links, and the WebSocket root check."""

import pytest

from backtrader_alltick import plans, wire
from backtrader_alltick.errors import ConfigError
from backtrader_alltick.transport.stream_settings import StreamSettings, check_ws_url


def test_settings_take_the_dialect_and_plan_defaults_and_hide_the_token():
    settings = StreamSettings.build(
        wire.get_dialect("itick"),
        "wss://api.itick.org",
        "SENTINEL-0123456789",
        plans.get_plan("itick", "premium"),
    )

    assert (settings.heartbeat_interval, settings.stale_after, settings.symbol_limit) == (20.0, 60.0, 500)
    assert "SENTINEL" not in repr(settings)


def test_settings_reject_a_backoff_cap_below_its_start_at_once():
    with pytest.raises(ConfigError, match="backoff needs 0 < initial <= cap, was initial=5.0, cap=1.0"):
        StreamSettings.build(
            wire.get_dialect("alltick"),
            "ws://127.0.0.1:1",
            "tok",
            plans.get_plan("alltick", "free"),
            backoff_initial=5.0,
            backoff_cap=1.0,
        )


@pytest.mark.parametrize("url", ["wss://quote.alltick.co", "ws://127.0.0.1:1", "ws://[::1]:8080/prefix/"])
def test_check_ws_url_returns_a_possible_websocket_root_as_given(url):
    assert check_ws_url(url) == url


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://127.0.0.1:8080", "not ws:// or wss://"),
        ("garbage", "not ws:// or wss://"),
        ("WS://host", "not ws:// or wss://"),
        (None, "not ws:// or wss://"),
        ("ws://", "no host"),
        ("wss://[::1", "Invalid IPv6 URL"),
        ("ws://host:99999", "Port out of range 0-65535"),
        ("ws://host:0", "port 0"),
        ("ws://host/x?a=1", "a query or fragment"),
        ("ws://ho st", "white space"),
    ],
)
def test_check_ws_url_names_the_parameter_what_is_allowed_and_the_problem(url, problem):
    with pytest.raises(ConfigError) as info:
        check_ws_url(url, "ws_url")

    assert str(info.value) == (
        "ws_url must be a ws:// or wss:// URL with a host and an optional port and "
        f"path (e.g. wss://quote.alltick.co), was {url!r} ({problem})"
    )


def test_check_ws_url_never_quotes_the_token():
    with pytest.raises(ConfigError) as info:
        check_ws_url("ws://host/?token=SENTINEL-0123456789", token="SENTINEL-0123456789")

    assert "SENTINEL-0123456789" not in str(info.value)
