"""The pure half of the WebSocket transport: subscription registry, plan caps, reconnect delays, status.

No I/O, no threads, no clock: :class:`~backtrader_alltick.stream.StreamHub` holds a lock around
the registry, sends what :meth:`SubscriptionRegistry.desired` returns after
:func:`cap_subscriptions`, and waits the delays :func:`backoff` yields.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from .errors import AllTickError, ConfigError, redact
from .symbols import Instrument

KINDS = ("trades", "depth")


@dataclass(frozen=True)
class StreamStatus:
    """A change of one family's connection state, in market time from the hub's clock.

    ``kind`` is ``connected``, ``disconnected``, ``fatal`` (no more attempts), ``malformed`` (a
    frame was skipped: whatever it carried is lost, so consumers rebuild the bars in progress
    from REST) or ``dropped`` (``symbols`` are past the plan's cap and not subscribed).  On ``connected``,
    ``since_ms`` is when the link went down (None on the first connect): ``(since_ms, at_ms)`` is
    the gap to backfill.  ``attempt`` counts connection attempts since the last good session.

    Example::

        def on_status(status):
            if status.kind == "connected" and status.since_ms is not None:
                backfill(status.since_ms, status.at_ms)
    """

    family: str
    kind: str
    at_ms: int
    since_ms: int | None = None
    attempt: int = 0
    error: AllTickError | None = None
    symbols: tuple[str, ...] = ()


def check_ws_url(url: object, name: str = "ws_url", token: str | None = None) -> str:
    """Return ``url`` when it can be a WebSocket root; raise ConfigError naming ``name`` otherwise.

    Allowed: ``ws://`` or ``wss://`` (lower case, as websocket-client reads it), a host, an
    optional port and path; no query or fragment (the dialect appends the path and the token).

    Example::

        check_ws_url("wss://quote.alltick.co")      # returned as given
        check_ws_url("http://127.0.0.1:8080")       # ConfigError: ws_url must be a ws:// or wss:// URL ...
    """
    problem = _ws_url_problem(url if isinstance(url, str) else "")
    if problem:
        shown = redact(url, token) if isinstance(url, str) else url
        raise ConfigError(f"{name} must be a ws:// or wss:// URL with a host and an optional port and path "
                          f"(e.g. wss://quote.alltick.co), was {shown!r} ({problem})")
    return url


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


def backoff(initial: float, factor: float, cap: float, jitter_fraction: float = 0.0,
            rng: random.Random | None = None) -> Iterator[float]:
    """Yield reconnect delays growing by ``factor`` up to ``cap``, each jittered by +-``jitter_fraction``."""
    delay = initial
    while True:
        # Jitter spreads reconnects of many clients after a server restart (RFC 6455 section 7.2.3).
        spread = 1.0 + jitter_fraction * (2.0 * rng.random() - 1.0) if rng and jitter_fraction else 1.0
        yield max(0.0, min(cap, delay * spread))
        delay = min(cap, delay * factor)


class SubscriptionRegistry:
    """Reference counts per (instrument, kind), grouped by endpoint family, in subscription order.

    Several feeds may want the same code; it leaves the merged list only when its last
    subscriber goes.  Not thread-safe on its own.

    Example::

        registry = SubscriptionRegistry()
        registry.add("stock", parse_symbol("AAPL.US"), "trades")   # True: the merged set changed
        registry.desired("stock")                                  # ([AAPL.US], [])
    """

    def __init__(self) -> None:
        self._counts: dict[str, dict[str, dict[Instrument, int]]] = {}

    def add(self, family: str, inst: Instrument, kind: str) -> bool:
        """Count one more subscriber; return True when the merged set changed."""
        counts = self._counts.setdefault(family, {k: {} for k in KINDS})[_checked(kind)]
        counts[inst] = counts.get(inst, 0) + 1
        return counts[inst] == 1

    def remove(self, family: str, inst: Instrument, kind: str) -> bool:
        """Count one subscriber less; return True when the merged set changed (unknown codes: False)."""
        counts = self._counts.get(family, {}).get(_checked(kind), {})
        if inst not in counts:
            return False
        counts[inst] -= 1
        if counts[inst]:
            return False
        del counts[inst]
        return True

    def desired(self, family: str) -> tuple[list[Instrument], list[Instrument]]:
        """Return the merged ``(trades, depth)`` lists of one family, oldest subscription first."""
        kinds = self._counts.get(family, {})
        return list(kinds.get("trades", ())), list(kinds.get("depth", ()))

    def is_wanted(self, family: str, inst: Instrument) -> bool:
        """Return True while any subscriber wants any kind of this instrument."""
        return any(inst in counts for counts in self._counts.get(family, {}).values())

    def families(self) -> list[str]:
        """Return the families that have at least one subscription."""
        return [family for family, kinds in self._counts.items() if any(kinds.values())]


def cap_subscriptions(trades: list[Instrument], depth: list[Instrument], limit: int, *,
                      shared: bool) -> tuple[list[Instrument], list[Instrument], list[Instrument]]:
    """Keep the oldest ``limit`` codes; return ``(trades, depth, dropped)``.

    With ``shared`` a product counts once whatever its kinds (iTick: 500 products per
    connection, protocol/itick.md 8.2); otherwise each list is capped on its own (AllTick:
    codes per subscription list, protocol/alltick.md 5.4, where the rest is silently ignored).
    """
    if not shared:
        return trades[:limit], depth[:limit], list(dict.fromkeys(trades[limit:] + depth[limit:]))
    products = list(dict.fromkeys(trades + depth))
    allowed = set(products[:limit])
    return ([inst for inst in trades if inst in allowed], [inst for inst in depth if inst in allowed],
            products[limit:])


def _checked(kind: str) -> str:
    if kind not in KINDS:
        raise ConfigError(f"kind must be one of {', '.join(KINDS)}, was {kind!r}")
    return kind
