"""What WebSocket failures mean: websocket-client and socket exceptions mapped without the token."""

import inspect
import socket

import pytest
import websocket
import websocket._exceptions as ws_exceptions

from backtrader_alltick.errors import (
    AllTickError,
    APIError,
    AuthError,
    ConnectError,
    RateLimited,
    Timeout,
    TransportError,
    is_retryable,
)
from backtrader_alltick.transport.websocket_errors import map_errors

SENTINEL = "SENTINEL-TOKEN-0123456789"
SAFE_URL = "ws://127.0.0.1:1/quote-b-ws-api?token=SENT…6789"


def _mapped(exc: BaseException, *, connecting: bool = False) -> AllTickError:
    with pytest.raises(AllTickError) as info, map_errors(SAFE_URL, SENTINEL, connecting=connecting):
        raise exc
    return info.value


def _instance(cls):
    if cls is ws_exceptions.WebSocketBadStatusException:
        return cls(f"Handshake status 500 for ws://h/?token={SENTINEL}", 500)
    return cls(f"failure on ws://h/?token={SENTINEL}")


@pytest.mark.parametrize(
    "cls",
    [
        c
        for _, c in inspect.getmembers(ws_exceptions, inspect.isclass)
        if issubclass(c, ws_exceptions.WebSocketException)
    ],
)
def test_map_errors_translates_every_websocket_client_exception_without_the_token(cls):
    error = _mapped(_instance(cls))

    assert isinstance(error, AllTickError)
    assert SENTINEL not in str(error) and SENTINEL not in repr(error)
    assert error.__cause__ is None and error.__suppress_context__


@pytest.mark.parametrize(
    ("exc", "expected", "retryable"),
    [
        (websocket.WebSocketBadStatusException("x", 401), AuthError, False),
        (websocket.WebSocketBadStatusException("x", 403), AuthError, False),
        (
            websocket.WebSocketBadStatusException("x", 429, resp_headers={"retry-after": "2"}),
            RateLimited,
            True,
        ),
        (websocket.WebSocketBadStatusException("x", 503), APIError, True),
        (websocket.WebSocketBadStatusException("x", 404), APIError, False),
        (websocket.WebSocketTimeoutException("timed out"), Timeout, True),
        (TimeoutError("timed out"), Timeout, True),
        (ConnectionRefusedError(111, "refused"), ConnectError, True),
        (socket.gaierror(-2, "Name or service not known"), ConnectError, True),
        (websocket.WebSocketConnectionClosedException("gone"), TransportError, True),
        (ConnectionResetError(104, "reset"), TransportError, True),
    ],
)
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
