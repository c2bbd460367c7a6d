"""One exception tree for everything the plugin raises.

::

    AllTickError
    ├── ConfigError (also ValueError)
    │   ├── UnsupportedTimeframe
    │   ├── InvalidSymbol
    │   └── CacheError                 the K-line cache file cannot be used
    ├── TransportError
    │   ├── ConnectError
    │   └── Timeout (also TimeoutError)
    ├── ProtocolError                  the vendor sent something malformed
    └── APIError (status, code, message)
        ├── AuthError
        ├── RateLimited (retry_after)
        ├── PlanLimitError
        └── SymbolNotFound

    AllTickWarning (UserWarning)       something the user must know, the run goes on
    ├── NoBarsWarning                  a range held no bars
    │   └── HistoryLimitWarning        the service serves only its newest bars: the range starts later
    ├── FeedEndedWarning               a feed ended by an error (data.last_error)
    ├── MarketClosedWarning            a live feed started while its market is closed
    ├── SessionPolicyWarning           trades or bars left out by extended_hours=False
    ├── LateTradeWarning               a trade came after its live bar was handed out
    ├── LiveOnlyWarning                backfill=False / backfill_start=False cost bars or used REST
    ├── RateLimitWarning               a request waits more than a minute for the plan
    ├── CacheWarning                   the default cache file was refused: the store runs without it
    └── BarLengthWarning               a feed's bars lie closer together than its timeframe says

Warnings go through :func:`backtrader_alltick.notices.warn_user`, which points them at the
user's line; filter them as any Python warning (``warnings.simplefilter("error", AllTickWarning)``).

Messages name the subject, the offending value and the fix.  They never contain the
token: transports redact URLs with :func:`redact` before any text is built, and
foreign exceptions are cut from the chain (:func:`~backtrader_alltick.redaction.detached`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .redaction import mask_token, redact

__all__ = [
    "AllTickError",
    "ConfigError",
    "UnsupportedTimeframe",
    "InvalidSymbol",
    "CacheError",
    "TransportError",
    "ConnectError",
    "Timeout",
    "ProtocolError",
    "APIError",
    "AuthError",
    "RateLimited",
    "PlanLimitError",
    "SymbolNotFound",
    "AllTickWarning",
    "NoBarsWarning",
    "HistoryLimitWarning",
    "FeedEndedWarning",
    "MarketClosedWarning",
    "SessionPolicyWarning",
    "LiveOnlyWarning",
    "RateLimitWarning",
    "CacheWarning",
    "BarLengthWarning",
    "LateTradeWarning",
    "is_retryable",
    "check_token",
    "mask_token",
    "redact",
]


class AllTickError(Exception):
    """Root of every error raised by backtrader_alltick.

    Every one pickles whole, message and attributes, so an error raised in an optimisation worker
    (``cerebro.optstrategy`` with ``maxcpus`` > 1) reaches ``cerebro.run()`` in the parent.

    Example::

        error = pickle.loads(pickle.dumps(CacheError("/tmp/notes.txt", "is not a K-line cache")))
        error.path   # '/tmp/notes.txt'
    """

    def __reduce__(self) -> tuple[Any, ...]:
        # Python rebuilds an exception by calling its class with ``args`` (the message alone here);
        # CacheError(path, problem) and its like then fail in the receiving process, where
        # multiprocessing.Pool's result thread dies of it and cerebro.run() waits for ever.
        return (_rebuild, (type(self), self.args, self.__dict__))


def _rebuild(cls: type[AllTickError], args: tuple[Any, ...], state: dict[str, Any]) -> AllTickError:
    error = cls.__new__(cls, *args)  # sets ``args`` without running the class's own __init__
    error.__dict__.update(state)
    return error


class ConfigError(AllTickError, ValueError):
    """A parameter given to the plugin is invalid; nothing was sent."""


class UnsupportedTimeframe(ConfigError):
    """The (timeframe, compression) pair cannot be served by the dialect for this symbol."""

    def __init__(self, timeframe: str, symbol: str, supported: Iterable[str], reason: str = "") -> None:
        self.timeframe = timeframe
        self.symbol = symbol
        self.supported: tuple[str, ...] = tuple(supported)
        self.reason = reason
        why = f" ({reason})" if reason else ""
        super().__init__(
            f"timeframe {timeframe} is not supported for {symbol}{why}; "
            f"use one of: {', '.join(self.supported)}"
        )


class InvalidSymbol(ConfigError):
    """A symbol cannot be parsed or routed; the message says how to write it."""

    def __init__(self, symbol: str, hint: str) -> None:
        self.symbol = symbol
        self.hint = hint
        super().__init__(f"symbol {symbol!r} {hint}")


class CacheError(ConfigError):
    """The K-line cache file cannot be used (not ours, unreadable, unwritable); it is left as it was.

    The message names the path and the fix: another path, or no cache.

    Example::

        AllTickStore(cache="/tmp/notes.txt").fetch_klines("BTCUSDT")  # CacheError: ... is not a K-line cache
    """

    def __init__(self, path: str, problem: str, what: str = "K-line cache") -> None:
        self.path = path
        # ``what`` names the file: the quota ledger lives beside the cache and moves with it.
        super().__init__(
            f"the {what} {path} {problem}; pass another file as cache= (--cache PATH) "
            "or turn the cache off with cache=False (--cache off)"
        )


class TransportError(AllTickError):
    """The network failed between us and the service; retrying may help."""


class ConnectError(TransportError):
    """The service could not be reached (refused, DNS, TLS, handshake)."""


class Timeout(TransportError, TimeoutError):
    """The service did not answer in time."""


class ProtocolError(AllTickError):
    """The service sent something that does not follow its documented format."""


class APIError(AllTickError):
    """The service answered with an error status or error code."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: int | str | None = None,
        symbol: str | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.symbol = symbol
        self.message = message
        super().__init__(message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status={self.status!r}, code={self.code!r})"


class AuthError(APIError):
    """The token was rejected (missing, wrong or expired); retrying will not help."""


class RateLimited(APIError):
    """The plan's request rate was exceeded; ``retry_after`` says how long to wait, if known."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        status: int | None = None,
        code: int | str | None = None,
        symbol: str | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, status=status, code=code, symbol=symbol)


class PlanLimitError(APIError):
    """The request needs a higher plan (too many symbols, groups or bars, code not in the plan)."""


class SymbolNotFound(APIError):
    """The service does not know the symbol, or it was sent to the wrong endpoint family."""


class AllTickWarning(UserWarning):
    """Something the user must act on or know while the run goes on; the message names the symbol and the fix.

    Shown once per message by Python's default filter; escalate or silence it as any warning.

    Example::

        warnings.simplefilter("error", AllTickWarning)     # in tests: every one becomes an exception
        warnings.simplefilter("ignore", SessionPolicyWarning)
    """


class NoBarsWarning(AllTickWarning):
    """A feed or ``fetch_klines`` found no bars in the range asked (before the history, or market closed)."""


class HistoryLimitWarning(NoBarsWarning):
    """The service serves only the newest bars of the symbol (AllTick stocks: 500), so part of the range
    asked has none; the K-line cache keeps what each run fetches, so history grows across runs."""


class FeedEndedWarning(AllTickWarning):
    """A feed ended because of an error; ``data.last_error`` holds it and the message says the fix."""


class MarketClosedWarning(AllTickWarning):
    """A live feed started while its market is closed: bars come when it opens (or from off-hours trades)."""


class SessionPolicyWarning(AllTickWarning):
    """``extended_hours=False`` left trades or bars out (counted in ``stats``), or the calendar disagrees."""


class LiveOnlyWarning(AllTickWarning):
    """``backfill=False`` left a gap after a drop, or with ``backfill_start=False`` REST rebuilt bars."""


class RateLimitWarning(AllTickWarning):
    """A request waits more than a minute for the plan's limits (or for the service's Retry-After)."""


class CacheWarning(AllTickWarning):
    """The cache file in the user cache directory (or the quota ledger beside it) cannot be used, so the
    store runs without it; a file passed as ``cache=`` is a :class:`CacheError` instead."""


class LateTradeWarning(AllTickWarning):
    """A trade came after its live bar was handed out (past ``grace``): that bar lacks it."""


class BarLengthWarning(AllTickWarning):
    """A feed's bars lie closer together than its timeframe says (``PandasData`` defaults to daily bars)."""


def is_retryable(exc: BaseException) -> bool:
    """Return True when the same request may succeed if sent again later."""
    if isinstance(exc, (TransportError, RateLimited)):
        return True
    if isinstance(exc, (AuthError, PlanLimitError, SymbolNotFound, ConfigError)):
        return False
    if isinstance(exc, APIError):
        return exc.status is not None and exc.status >= 500
    return False


def check_token(token: str | None) -> str:
    """Return the token without surrounding whitespace; raise if it is missing or malformed."""
    token = (token or "").strip()
    if not token:
        raise AuthError(
            "no token: set ALLTICK_TOKEN or pass token=... to the store "
            "(or run `alltick-bt demo`, which needs none)"
        )
    if any(ch.isspace() or not ch.isprintable() for ch in token):
        # Never quote it: the message would carry the token.
        raise ConfigError(
            "the token contains spaces or control characters; check how it was read "
            f"(a line break inside it?), was {mask_token(token)}"
        )
    return token
