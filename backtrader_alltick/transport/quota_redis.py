"""The quota ledger of several machines: one Redis key per token.

Each decision is optimistic: WATCH the key, read it and the server's clock (``TIME``), decide,
then write in MULTI/EXEC; if another process wrote the key meanwhile, EXEC fails and the
decision is made again on the new state.  Times are Redis's, so machines whose clocks disagree
still space their calls by one clock.  The key expires two days after its last write: by then
its day is over and its spacing long past.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from ..errors import ConfigError, TransportError, redact
from .quota_ledger import QuotaState, T, service_day

KEY_PREFIX = "backtrader_alltick:quota:"
KEY_TTL_S = 2 * 86_400
SOCKET_TIMEOUT_S = 5.0
# Optimistic attempts before giving up; each lost race means another process took a slot.
MAX_ATTEMPTS = 100


class RedisLedger:
    """One token's quota in Redis, shared by every process and machine that names the same server.

    Parameters
    ----------
    url : str
        ``redis://[:password@]host:port/db`` (or ``rediss://``, ``unix://``).
    key : str
        The token's ledger name (:func:`~.quota_ledger.quota_key`), never the token.

    Example::

        ledger = RedisLedger("redis://127.0.0.1:6379/0", quota_key("alltick", url, token))
        ledger.transact(lambda state, now: state.day_count)   # calls counted today, by every machine
    """

    shared = True

    def __init__(self, url: str, key: str, *, socket_timeout: float = SOCKET_TIMEOUT_S) -> None:
        try:
            import redis
        except ImportError:
            raise ConfigError(
                "a quota shared through Redis needs the redis package; install it with "
                "pip install backtrader-alltick[redis], was not installed"
            ) from None
        self.url: str = _safe_url(url)
        self._redis = redis
        self._key = KEY_PREFIX + key
        self._lock = threading.Lock()
        try:
            self._client = redis.Redis.from_url(
                url, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout
            )
        except ValueError as e:
            raise ConfigError(
                f"quota_url must look like redis://host:port/db, was {self.url!r} ({e})"
            ) from None

    def __repr__(self) -> str:
        return f"RedisLedger(url={self.url!r})"

    def transact(self, change: Callable[[QuotaState, float], T]) -> T:
        """Run ``change(state, now)`` on the key, again if another process wrote it meanwhile."""
        errors = self._redis.exceptions
        with self._lock:
            for _ in range(MAX_ATTEMPTS):
                try:
                    with self._client.pipeline() as pipe:
                        pipe.watch(self._key)
                        before = _text(pipe.get(self._key))
                        seconds, micros = pipe.time()
                        now = seconds + micros / 1e6
                        state = QuotaState.from_json(before)
                        state.roll(service_day(now))
                        state.settle_clock(now)
                        result = change(state, now)
                        after = state.to_json()
                        pipe.multi()
                        if after != before:
                            pipe.set(self._key, after, ex=KEY_TTL_S)
                        pipe.execute()
                        return result
                except errors.WatchError:
                    continue
                except errors.AuthenticationError as e:
                    raise ConfigError(
                        f"Redis at {self.url} refused the credentials in quota_url ({e})"
                    ) from None
                except errors.RedisError as e:
                    raise TransportError(
                        f"the request quota at {self.url} cannot be reached ({e}); start "
                        "that Redis, or drop quota_url / ALLTICK_QUOTA_URL to share the "
                        "quota only on this machine"
                    ) from None
        raise TransportError(
            f"the request quota at {self.url} changed {MAX_ATTEMPTS} times while this "
            "process tried to take a slot; too many processes share one token"
        )

    def close(self) -> None:
        with self._lock:
            self._client.close()


def _safe_url(url: str) -> str:
    # A password in the URL never reaches a message or a log.
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    return redact(url, password)


def _text(value: Any) -> str | None:
    return value.decode() if isinstance(value, bytes) else value
