"""What HTTP failures mean: ``requests`` / ``urllib3`` exceptions and ``Retry-After`` headers.

:func:`map_errors` is the one place where a foreign exception of the REST path becomes an error
of the tree rooted at ``AllTickError``; the foreign text (it embeds the URL, and AllTick carries
the token in the query string) is redacted and cut from the chain.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from email.utils import parsedate_to_datetime

import requests
import urllib3

from ..errors import (
    AllTickError,
    APIError,
    ConfigError,
    ConnectError,
    ProtocolError,
    Timeout,
    TransportError,
    redact,
)

_DETAIL_LIMIT = 300
_rex = requests.exceptions


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks for: delta seconds or an HTTP date (RFC 9110 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment is None:
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


# Most specific first: ConnectTimeout is both a ConnectionError and a Timeout, SSLError and
# ProxyError are ConnectionErrors, JSONDecodeError is an InvalidJSONError.
_TRANSLATIONS: tuple[tuple[type[BaseException], type[AllTickError], str], ...] = (
    (
        _rex.ConnectTimeout,
        Timeout,
        "connecting to {where} timed out; check the URL and the network, or raise the connect timeout",
    ),
    (_rex.ReadTimeout, Timeout, "{where} did not answer in time; retry later or raise the read timeout"),
    (_rex.Timeout, Timeout, "{where} timed out; retry later or raise the timeout"),
    (_rex.SSLError, ConnectError, "the TLS handshake with {where} failed; check the URL and certificates"),
    (_rex.ProxyError, ConnectError, "the proxy refused {where}; check HTTPS_PROXY / HTTP_PROXY"),
    (
        _rex.ConnectionError,
        ConnectError,
        "could not connect to {where}; check the URL, that the service is up, and the network",
    ),
    (_rex.InvalidJSONError, ProtocolError, "{where} sent JSON that cannot be read"),
    (_rex.TooManyRedirects, ProtocolError, "{where} redirected too many times; check the URL"),
    (_rex.InvalidURL, ConfigError, "the URL of {where} is invalid; check rest_url"),
    (_rex.URLRequired, ConfigError, "no URL was given for {where}; check rest_url"),
    (_rex.MissingSchema, ConfigError, "the URL of {where} lacks http:// or https://; check rest_url"),
    (_rex.InvalidSchema, ConfigError, "the URL of {where} is not http or https; check rest_url"),
    (_rex.InvalidHeader, ConfigError, "a header of {where} is invalid; check the token for line breaks"),
    (_rex.HTTPError, APIError, "{where} answered with an HTTP error"),
    (_rex.RequestException, TransportError, "the request {where} failed; retry later"),
    (urllib3.exceptions.TimeoutError, Timeout, "{where} timed out; retry later or raise the timeout"),
    (urllib3.exceptions.HTTPError, TransportError, "the request {where} failed; retry later"),
)


def translate(exc: BaseException, where: str, secrets: Iterable[str] = ()) -> AllTickError:
    """Return the errors-tree exception for a ``requests`` / ``urllib3`` exception, token redacted."""
    ours, summary = next(
        ((target, text) for foreign, target, text in _TRANSLATIONS if isinstance(exc, foreign)),
        (TransportError, "the request {where} failed; retry later"),
    )
    try:
        detail = redact(str(exc), *secrets)
    except Exception:  # a half-built foreign exception must not hide the real failure
        detail = ""
    if len(detail) > _DETAIL_LIMIT:
        detail = detail[:_DETAIL_LIMIT] + "..."
    message = f"{summary.format(where=where)} ({type(exc).__name__}: {detail})"
    if ours is APIError:
        response = getattr(exc, "response", None)
        return APIError(message, status=getattr(response, "status_code", None))
    return ours(message)


@contextmanager
def map_errors(where: str, secrets: Iterable[str]) -> Iterator[None]:
    """Translate every foreign exception raised inside into the errors tree (the only place that does)."""
    try:
        yield
    except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError) as e:
        # from None: the original text embeds the full URL, token included.
        raise translate(e, where, secrets) from None
