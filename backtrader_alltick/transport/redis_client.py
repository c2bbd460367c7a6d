"""The Redis client the relay's sink and its readers share: one import, one way to connect, one error map.

``redis`` is an optional dependency (``pip install backtrader-alltick[redis]``), imported only when a
sink or a reader is created.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from ..errors import APIError, ConfigError, ConnectError, Timeout
from .urls import safe_url

DEFAULT_URL = "redis://127.0.0.1:6379/0"


def import_redis() -> ModuleType:
    try:
        import redis
    except ImportError:
        raise ConfigError(
            "the Redis sink and source need the redis package; install it with "
            "pip install backtrader-alltick[redis], was not installed"
        ) from None
    return redis


def connect(redis: ModuleType, url: str, socket_timeout: float, decode: bool = False) -> Any:
    """A ``redis.Redis`` client of ``url`` (``decode``: replies as str, not bytes).

    Typed ``Any``: redis-py types every reply as bytes-or-str whatever ``decode_responses`` says, so
    its own types would force casts at every read where ``decode`` fixes the type at run time.
    """
    # Retries are ours (backoff, bounded buffer); redis-py's own would block the caller inside a command.
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    try:
        return redis.Redis.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            retry=Retry(NoBackoff(), 0),
            decode_responses=decode,
        )
    except ValueError as e:
        raise ConfigError(
            f"Redis URL must look like redis://host:port/db, was {safe_url(url)!r} ({e})"
        ) from None


@contextmanager
def map_errors(redis: ModuleType, url: str) -> Iterator[None]:
    exceptions = redis.exceptions
    try:
        yield
    except exceptions.AuthenticationError as e:
        raise ConfigError(
            f"Redis at {url} refused the credentials; fix the password in the URL, was refused with: {e}"
        ) from None
    except exceptions.TimeoutError as e:
        raise Timeout(f"Redis at {url} did not answer in time ({e})") from None
    except exceptions.ConnectionError as e:
        raise ConnectError(f"Redis at {url} is unreachable ({e}); is redis-server running?") from None
    except exceptions.RedisError as e:
        raise APIError(f"Redis at {url} refused the command: {e}", code=type(e).__name__) from None
