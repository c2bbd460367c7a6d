"""What HTTP failures mean: every requests/urllib3 exception maps into the errors tree; Retry-After."""

from __future__ import annotations

import inspect
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
import requests
import urllib3

from backtrader_alltick import errors
from backtrader_alltick.errors import AllTickError, ConfigError, ConnectError, ProtocolError, Timeout
from backtrader_alltick.transport.http_errors import map_errors, parse_retry_after, translate

SENTINEL = "SENTINEL-tok3n-5ecret-0123456789"


def foreign_exceptions(module) -> list[type[BaseException]]:
    return [
        obj
        for _, obj in inspect.getmembers(module, inspect.isclass)
        if issubclass(obj, BaseException) and not issubclass(obj, Warning)
    ]


def build(cls: type[BaseException], text: str) -> BaseException:
    for args in ((text,), (None, text), (text, text), (0, 0), (None, text, text), ()):
        try:
            exc = cls(*args)
            str(exc)
            return exc
        except Exception:
            continue
    return cls.__new__(cls)


# -- Translation table ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cls",
    [
        c
        for c in foreign_exceptions(requests.exceptions)
        if issubclass(c, requests.exceptions.RequestException)
    ],
    ids=lambda c: c.__name__,
)
def test_every_requests_exception_maps_into_the_errors_tree(cls):
    exc = build(cls, f"boom at https://quote.example/kline?token={SENTINEL}")

    mapped = translate(exc, "GET https://quote.example/kline", [SENTINEL])

    assert isinstance(mapped, AllTickError)
    assert type(mapped).__module__ == errors.__name__
    assert SENTINEL not in str(mapped)
    assert cls.__name__ in str(mapped)


@pytest.mark.parametrize(
    "cls",
    [c for c in foreign_exceptions(urllib3.exceptions) if issubclass(c, urllib3.exceptions.HTTPError)],
    ids=lambda c: c.__name__,
)
def test_every_urllib3_exception_maps_into_the_errors_tree(cls):
    exc = build(cls, f"pool error for /kline?token={SENTINEL}")

    mapped = translate(exc, "GET https://quote.example/kline", [SENTINEL])

    assert isinstance(mapped, AllTickError)
    assert SENTINEL not in str(mapped)


@pytest.mark.parametrize(
    ("cls", "expected"),
    [
        (requests.exceptions.ConnectTimeout, Timeout),
        (requests.exceptions.ReadTimeout, Timeout),
        (requests.exceptions.SSLError, ConnectError),
        (requests.exceptions.ConnectionError, ConnectError),
        (requests.exceptions.JSONDecodeError, ProtocolError),
        (requests.exceptions.MissingSchema, ConfigError),
        (requests.exceptions.ChunkedEncodingError, errors.TransportError),
        (urllib3.exceptions.ReadTimeoutError, Timeout),
    ],
)
def test_translation_picks_the_most_specific_class(cls, expected):
    mapped = translate(build(cls, "x"), "GET http://127.0.0.1/kline")

    assert type(mapped) is expected


def test_map_errors_raises_from_none_so_the_url_is_not_chained():
    with pytest.raises(ConnectError) as info, map_errors("GET http://127.0.0.1/kline", [SENTINEL]):
        raise requests.exceptions.ConnectionError(f"Max retries exceeded with url: /kline?token={SENTINEL}")

    assert info.value.__cause__ is None
    assert info.value.__suppress_context__
    assert "could not connect to GET http://127.0.0.1/kline" in str(info.value)


def test_retry_after_accepts_seconds_and_http_dates():
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)

    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after(
        format_datetime(now + timedelta(seconds=30), usegmt=True), now=now.timestamp()
    ) == pytest.approx(30.0)
    assert (
        parse_retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), now=now.timestamp())
        == 0.0
    )
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
