"""StreamHub: error mapping and validation here; behaviour over real loopback sockets below."""

import inspect
import socket

import pytest
import websocket
import websocket._exceptions as ws_exceptions

from backtrader_alltick import plans, wire
from backtrader_alltick.errors import (
    AllTickError,
    APIError,
    AuthError,
    ConfigError,
    ConnectError,
    RateLimited,
    Timeout,
    TransportError,
    is_retryable,
)
from backtrader_alltick.stream import StreamHub, _map_errors

SENTINEL = "SENTINEL-TOKEN-0123456789"
SAFE_URL = "ws://127.0.0.1:1/quote-b-ws-api?token=SENT…6789"


def _mapped(exc: BaseException, *, connecting: bool = False) -> AllTickError:
    with pytest.raises(AllTickError) as info, _map_errors(SAFE_URL, SENTINEL, connecting=connecting):
        raise exc
    return info.value


def _instance(cls):
    if cls is ws_exceptions.WebSocketBadStatusException:
        return cls(f"Handshake status 500 for ws://h/?token={SENTINEL}", 500)
    return cls(f"failure on ws://h/?token={SENTINEL}")


@pytest.mark.parametrize("cls", [c for _, c in inspect.getmembers(ws_exceptions, inspect.isclass)
                                 if issubclass(c, ws_exceptions.WebSocketException)])
def test_map_errors_translates_every_websocket_client_exception_without_the_token(cls):
    error = _mapped(_instance(cls))

    assert isinstance(error, AllTickError)
    assert SENTINEL not in str(error) and SENTINEL not in repr(error)
    assert error.__cause__ is None and error.__suppress_context__


@pytest.mark.parametrize(("exc", "expected", "retryable"), [
    (websocket.WebSocketBadStatusException("x", 401), AuthError, False),
    (websocket.WebSocketBadStatusException("x", 403), AuthError, False),
    (websocket.WebSocketBadStatusException("x", 429, resp_headers={"retry-after": "2"}), RateLimited, True),
    (websocket.WebSocketBadStatusException("x", 503), APIError, True),
    (websocket.WebSocketBadStatusException("x", 404), APIError, False),
    (websocket.WebSocketTimeoutException("timed out"), Timeout, True),
    (TimeoutError("timed out"), Timeout, True),
    (ConnectionRefusedError(111, "refused"), ConnectError, True),
    (socket.gaierror(-2, "Name or service not known"), ConnectError, True),
    (websocket.WebSocketConnectionClosedException("gone"), TransportError, True),
    (ConnectionResetError(104, "reset"), TransportError, True),
])
def test_map_errors_picks_the_most_specific_class_and_retry_decision(exc, expected, retryable):
    error = _mapped(exc)

    assert type(error) is expected
    assert is_retryable(error) is retryable


def test_map_errors_rejected_upgrade_names_the_redacted_url_and_the_fix():
    error = _mapped(websocket.WebSocketBadStatusException("x", 401), connecting=True)

    assert str(error) == f"token rejected by {SAFE_URL} (HTTP 401); check the token or ALLTICK_TOKEN"


def test_map_errors_rate_limited_upgrade_carries_retry_after():
    error = _mapped(websocket.WebSocketBadStatusException("x", 429, resp_headers={"retry-after": "45"}))

    assert error.retry_after == 45.0


def test_map_errors_closed_socket_while_connecting_is_a_connect_error():
    assert type(_mapped(websocket.WebSocketConnectionClosedException(""), connecting=True)) is ConnectError


def test_map_errors_lets_our_own_errors_through_unchanged():
    original = AuthError("token rejected", status=401)

    assert _mapped(original) is original


def _hub(**kwargs):
    return StreamHub(wire.get_dialect("alltick"), "ws://127.0.0.1:1", SENTINEL,
                     plans.get_plan("alltick", "free"), on_event=print, on_status=print, **kwargs)


def test_hub_rejects_stale_after_not_above_the_heartbeat_interval():
    with pytest.raises(ConfigError) as info:
        _hub(heartbeat_interval=10.0, stale_after=10.0)

    assert str(info.value) == "stale_after must be greater than heartbeat_interval (10.0 s), was 10.0"


def test_hub_rejects_reconnections_below_minus_one():
    with pytest.raises(ConfigError, match="reconnections must be -1"):
        _hub(reconnections=-2)


def test_hub_defaults_come_from_the_dialect_and_the_plan():
    hub = _hub()

    assert (hub.heartbeat_interval, hub.stale_after) == (10.0, 30.0)
    assert (hub.min_reconnect_interval, hub.request_spacing, hub.symbol_limit) == (10.0, 1.0, 5)
    assert SENTINEL not in repr(hub)


def test_hub_stop_before_start_and_twice_is_harmless():
    hub = _hub()
    hub.subscribe("AAPL.US")

    hub.stop()
    hub.stop()
    hub.start()

    assert hub.stats == {}
