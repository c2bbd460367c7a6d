"""Plan limits as data, for both dialects: the client's limiter and the simulator read the same table.

Sources: protocol/alltick.md sections 4.2, 5.4, 6 (AllTick) and protocol/itick.md section 9.1
(iTick, whose plans are named Free/Base/Professional/Premium; ``basic`` maps to Base).
``unlimited`` is not a vendor plan: it is the simulator's default for tests.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ConfigError

PLAN_NAMES = ("free", "basic", "premium", "professional", "unlimited")


@dataclass(frozen=True)
class Plan:
    """Request and connection limits of one plan of one dialect.

    Example::

        get_plan("alltick", "free").endpoint_interval   # 10.0 seconds between /kline calls
    """

    dialect: str
    name: str
    endpoint_interval: float  # seconds between two calls to the same endpoint
    batch_interval: float  # seconds between two batch-kline calls
    min_spacing: float  # seconds between any two HTTP calls
    per_minute: int | None  # all endpoints combined
    per_day: int | None
    ws_connections: int
    ws_symbols: int  # codes per subscription list (AllTick) or per account (iTick)
    batch_groups: int  # (code, kline_type) groups per batch-kline request
    codes_per_request: int  # codes per trade-tick / depth-tick request
    reconnect_interval: float  # minimum seconds between two WebSocket connection attempts
    ws_request_spacing: float  # seconds between two requests on one WebSocket connection


_ALLTICK = {
    "free": Plan("alltick", "free", 10.0, 10.0, 10.0, 10, 1_000, 1, 5, 5, 5, 10.0, 1.0),
    "basic": Plan("alltick", "basic", 1.0, 3.0, 0.0, 60, 86_400, 1, 100, 100, 50, 3.0, 1.0),
    "premium": Plan("alltick", "premium", 0.1, 2.0, 0.0, 600, 864_000, 3, 200, 200, 50, 3.0, 1.0),
    "professional": Plan(
        "alltick", "professional", 0.05, 1.0, 0.0, 1_200, 1_728_000, 10, 3_000, 500, 50, 3.0, 1.0
    ),
    "unlimited": Plan(
        "alltick", "unlimited", 0.0, 0.0, 0.0, None, None, 100, 100_000, 10_000, 1_000, 0.0, 0.0
    ),
}
_ITICK = {
    "free": Plan("itick", "free", 0.0, 0.0, 12.0, 5, None, 1, 3, 0, 20, 5.0, 0.0),
    "basic": Plan("itick", "basic", 0.0, 0.0, 0.0, 120, None, 3, 200, 0, 20, 5.0, 0.0),
    "professional": Plan("itick", "professional", 0.0, 0.0, 0.0, 600, None, 6, 500, 0, 20, 5.0, 0.0),
    "premium": Plan("itick", "premium", 0.0, 0.0, 0.0, 1_200, None, 12, 2_000, 0, 20, 5.0, 0.0),
    "unlimited": Plan("itick", "unlimited", 0.0, 0.0, 0.0, None, None, 100, 100_000, 0, 1_000, 0.0, 0.0),
}
PLANS = {"alltick": _ALLTICK, "itick": _ITICK}
# iTick serves at most 500 products on one connection, whatever the plan (itick.md 8.2).
ITICK_SYMBOLS_PER_CONNECTION = 500


def get_plan(dialect: str, name: str | Plan) -> Plan:
    """Return the plan table entry (or ``name`` itself, a ``Plan`` of your own); ConfigError otherwise."""
    if dialect not in PLANS:
        raise ConfigError(f"dialect must be one of {', '.join(PLANS)}, was {dialect!r}")
    if isinstance(name, Plan):
        if name.dialect != dialect:
            raise ConfigError(
                f"plan must be a plan of the {dialect} dialect, was one of {name.dialect!r} ({name.name!r})"
            )
        return name
    table = PLANS[dialect]
    key = {"base": "basic", "advanced": "premium"}.get(str(name).lower(), str(name).lower())
    if key not in table:
        raise ConfigError(f"plan must be one of {', '.join(PLAN_NAMES)}, was {name!r}")
    return table[key]
