"""The simulated service's plan table: what each vendor plan allows, as the vendors document it.

Written from protocol/alltick.md 4.2, 5.4, 5.5 and 6.1-6.5 (AllTick) and protocol/itick.md 8.2
and 9.1 (iTick), not taken from the client's limiter: the simulator plays the service.  The
field names are the ones the client's plan uses, so a test may hand ``sim.plan`` to a client.
``unlimited`` is no vendor plan: it is the simulator's default, for tests.

Example::

    service_plan("alltick", "free").per_minute    # 10
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError

PLAN_NAMES = ("free", "basic", "premium", "professional", "unlimited")
# AllTick's Premium is also called "Advanced" (alltick.md 6.1); iTick's Basic is called "Base" (itick.md 9.1).
ALIASES = {"base": "basic", "advanced": "premium"}
# iTick serves at most 500 products on one connection, whatever the plan (itick.md 8.2).
ITICK_SYMBOLS_PER_CONNECTION = 500


@dataclass(frozen=True)
class ServicePlan:
    """The limits one plan of one vendor enforces.

    Example::

        service_plan("itick", "basic").ws_connections    # 3
    """

    dialect: str
    name: str
    endpoint_interval: float  # seconds between two calls of one endpoint
    batch_interval: float  # seconds between two batch-kline calls
    min_spacing: float  # seconds between any two calls, where the vendor words it so
    per_minute: int | None  # all endpoints combined
    per_day: int | None
    ws_connections: int  # concurrent WebSocket connections per token
    ws_symbols: int  # codes per subscription list (AllTick, per connection) or per account (iTick)
    batch_groups: int  # (code, kline_type) groups per batch-kline request
    codes_per_request: int  # codes per trade-tick / depth-tick request
    reconnect_interval: float  # seconds between two WebSocket connection attempts
    ws_request_spacing: float  # seconds between two requests on one WebSocket connection
    ws_connection_spacing: float = 0.0  # seconds between two requests on different connections


# AllTick: 6.1 (per-endpoint interval, batch-kline interval, per-minute and daily caps; Free "only 1
# interface every 10 s"), 6.3 (connections per token; 1 s between requests on one connection, 3 s
# between requests on different connections),
# 5.4 (codes per subscription), 4.2/6.2 (batch groups; Free 5 codes per request, about 50 on paid
# plans), 5.5 (reconnect at least 10 s apart on Free, 3 s on paid plans).
_ALLTICK = {
    "free": ServicePlan("alltick", "free", 10.0, 10.0, 10.0, 10, 1_000, 1, 5, 5, 5, 10.0, 1.0, 3.0),
    "basic": ServicePlan("alltick", "basic", 1.0, 3.0, 0.0, 60, 86_400, 1, 100, 100, 50, 3.0, 1.0, 3.0),
    "premium": ServicePlan("alltick", "premium", 0.1, 2.0, 0.0, 600, 864_000, 3, 200, 200, 50, 3.0, 1.0, 3.0),
    "professional": ServicePlan(
        "alltick", "professional", 0.05, 1.0, 0.0, 1_200, 1_728_000, 10, 3_000, 500, 50, 3.0, 1.0, 3.0
    ),
    "unlimited": ServicePlan(
        "alltick", "unlimited", 0.0, 0.0, 0.0, None, None, 100, 100_000, 10_000, 1_000, 0.0, 0.0
    ),
}
# iTick 9.1: calls per minute, connections and subscriptions per plan; no daily cap is documented.
# Free's 5 calls a minute are paced 12 s apart, as the documented clients do.  iTick has no batch
# K-line endpoint (0 groups) and documents no codes-per-request cap (20: a modest URL).  Reconnects:
# the official SDKs wait 5 s (itick.md 8.6).
_ITICK = {
    "free": ServicePlan("itick", "free", 0.0, 0.0, 12.0, 5, None, 1, 3, 0, 20, 5.0, 0.0),
    "basic": ServicePlan("itick", "basic", 0.0, 0.0, 0.0, 120, None, 3, 200, 0, 20, 5.0, 0.0),
    "professional": ServicePlan("itick", "professional", 0.0, 0.0, 0.0, 600, None, 6, 500, 0, 20, 5.0, 0.0),
    "premium": ServicePlan("itick", "premium", 0.0, 0.0, 0.0, 1_200, None, 12, 2_000, 0, 20, 5.0, 0.0),
    "unlimited": ServicePlan(
        "itick", "unlimited", 0.0, 0.0, 0.0, None, None, 100, 100_000, 0, 1_000, 0.0, 0.0
    ),
}
PLANS = {"alltick": _ALLTICK, "itick": _ITICK}


def service_plan(dialect: str, name: str) -> ServicePlan:
    """The plan ``name`` of ``dialect``; ConfigError naming the choices otherwise."""
    if dialect not in PLANS:
        raise ConfigError(f"dialect must be one of {', '.join(PLANS)}, was {dialect!r}")
    key = str(name).lower()
    key = ALIASES.get(key, key)
    if key not in PLANS[dialect]:
        raise ConfigError(f"plan must be one of {', '.join(PLAN_NAMES)}, was {name!r}")
    return PLANS[dialect][key]
