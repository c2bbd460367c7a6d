"""How a stream hub was configured: one frozen, checked record its links and connections read.

Defaults come from the dialect (heartbeats: alltick.md 5.3 heartbeat every 10 s, dropped after 30 s;
itick.md 8.5 ping every 15-20 s, 60 s limit) and from the plan (reconnect interval, request
spacing, codes per connection).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .. import plans
from ..clock import Clock, SystemClock
from ..errors import ConfigError, redact
from .retry import backoff

DEFAULT_HEARTBEAT_INTERVAL = {"alltick": 10.0, "itick": 20.0}
DEFAULT_STALE_AFTER = {"alltick": 30.0, "itick": 60.0}
RECONNECT_JITTER = 0.2  # spreads the reconnects of many clients after a server restart


@dataclass(frozen=True)
class StreamSettings:
    """The checked settings of one hub; see :class:`~.stream_hub.StreamHub` for their meaning.

    Example::

        settings = StreamSettings.build(wire.get_dialect("alltick"), "wss://quote.alltick.co", token,
                                        plans.get_plan("alltick", "free"))
        settings.heartbeat_interval   # 10.0, the dialect's default
    """

    dialect: Any
    ws_root: str
    token: str = field(repr=False)
    plan: plans.Plan
    heartbeat_interval: float
    stale_after: float
    reconnect: bool
    reconnections: int
    backoff_initial: float
    backoff_factor: float
    backoff_cap: float
    min_reconnect_interval: float
    request_spacing: float
    connect_timeout: float
    symbol_limit: int
    clock: Clock = field(repr=False)

    @classmethod
    def build(
        cls,
        dialect: Any,
        ws_root: str,
        token: str,
        plan: plans.Plan,
        *,
        heartbeat_interval: float | None = None,
        stale_after: float | None = None,
        reconnect: bool = True,
        reconnections: int = -1,
        backoff_initial: float = 1.0,
        backoff_factor: float = 2.0,
        backoff_cap: float = 60.0,
        min_reconnect_interval: float | None = None,
        request_spacing: float | None = None,
        connect_timeout: float = 10.0,
        clock: Clock | None = None,
    ) -> StreamSettings:
        """Fill the defaults from ``dialect`` and ``plan``; raise ConfigError for a setting that cannot be."""
        name = dialect.NAME
        heartbeat_interval = float(heartbeat_interval or DEFAULT_HEARTBEAT_INTERVAL[name])
        stale_after = float(stale_after or DEFAULT_STALE_AFTER[name])
        if not 0 < heartbeat_interval < stale_after:
            raise ConfigError(
                f"stale_after must be greater than heartbeat_interval "
                f"({heartbeat_interval} s), was {stale_after!r}"
            )
        if reconnections < -1:
            raise ConfigError(f"reconnections must be -1 (forever) or >= 0, was {reconnections!r}")
        backoff(backoff_initial, backoff_cap, factor=backoff_factor, jitter=RECONNECT_JITTER)  # checks them
        symbol_limit = (
            plan.ws_symbols if name != "itick" else min(plan.ws_symbols, plans.ITICK_SYMBOLS_PER_CONNECTION)
        )
        return cls(
            dialect,
            check_ws_url(ws_root, "ws_root", token),
            token,
            plan,
            heartbeat_interval,
            stale_after,
            reconnect,
            reconnections,
            backoff_initial,
            backoff_factor,
            backoff_cap,
            plan.reconnect_interval if min_reconnect_interval is None else float(min_reconnect_interval),
            plan.ws_request_spacing if request_spacing is None else float(request_spacing),
            connect_timeout,
            symbol_limit,
            clock or SystemClock(),
        )


def check_ws_url(url: object, name: str = "ws_url", token: str | None = None) -> str:
    """Return ``url`` when it can be a WebSocket root; raise ConfigError naming ``name`` otherwise.

    Allowed: ``ws://`` or ``wss://`` (lower case, as websocket-client reads it), a host, an
    optional port and path; no query or fragment (the dialect appends the path and the token).

    Example::

        check_ws_url("wss://quote.alltick.co")      # returned as given
        check_ws_url("http://127.0.0.1:8080")       # ConfigError: ws_url must be a ws:// or wss:// URL ...
    """
    text = url if isinstance(url, str) else ""
    problem = _ws_url_problem(text)
    if problem:
        shown = redact(url, token) if isinstance(url, str) else url
        raise ConfigError(
            f"{name} must be a ws:// or wss:// URL with a host and an optional port and path "
            f"(e.g. wss://quote.alltick.co), was {shown!r} ({problem})"
        )
    return text  # a str: any other value has a problem


def _ws_url_problem(text: str) -> str:
    if not text.startswith(("ws://", "wss://")):
        return "not ws:// or wss://"
    if any(ch.isspace() for ch in text):
        return "white space"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as e:  # a bad IPv6 literal or a port out of range
        return str(e)
    if not parts.hostname:
        return "no host"
    if port == 0:
        return "port 0"
    if parts.query or parts.fragment:
        return "a query or fragment"
    return ""
