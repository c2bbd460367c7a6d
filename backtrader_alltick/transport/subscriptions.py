"""Who wants which codes on a stream: reference-counted subscriptions, their receivers, the plan's cap.

Pure: :class:`~backtrader_alltick.transport.stream_hub.StreamHub` holds a lock around every change,
each connection sends what :meth:`SubscriptionRegistry.desired` returns after
:func:`cap_subscriptions`, and the hub's reader threads read :attr:`SubscriptionRegistry.receivers`
without a lock (a change replaces the tuples, never edits them).
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import ConfigError
from ..symbols import Instrument

KINDS = ("trades", "depth")


class SubscriptionRegistry:
    """Reference counts per (instrument, kind), grouped by endpoint family, in subscription order.

    Several feeds may want the same code; it leaves the merged list only when its last
    subscriber goes.  A subscriber may name receivers: ``on_record`` for the code's records
    (:attr:`receivers`, by symbol) and ``on_status`` for the changes of the connection that carries
    the code (:attr:`status_receivers`, by symbol: the hub asks for those of the codes on a
    connection).  Changes are not thread-safe on their own.

    Example::

        registry = SubscriptionRegistry()
        registry.add("stock", parse_symbol("AAPL.US"), "trades")   # True: the merged set changed
        registry.desired("stock")                                  # ([AAPL.US], [])
        registry.attach("stock", parse_symbol("AAPL.US"), inbox.put, None)
        registry.receivers["AAPL.US"]                              # (inbox.put,)
    """

    def __init__(self) -> None:
        self._counts: dict[str, dict[str, dict[Instrument, int]]] = {}
        self.receivers: dict[str, tuple[Callable[[object], None], ...]] = {}
        self.status_receivers: dict[str, tuple[Callable[[object], None], ...]] = {}

    def attach(
        self,
        family: str,
        inst: Instrument,
        on_record: Callable[[object], None] | None,
        on_status: Callable[[object], None] | None,
    ) -> None:
        """Route the code's records to ``on_record`` and its connection's statuses to ``on_status``."""
        del family  # a symbol names one code of one family
        if on_record is not None:
            self.receivers[inst.symbol] = (*self.receivers.get(inst.symbol, ()), on_record)
        if on_status is not None:
            self.status_receivers[inst.symbol] = (*self.status_receivers.get(inst.symbol, ()), on_status)

    def detach(
        self,
        family: str,
        inst: Instrument,
        on_record: Callable[[object], None] | None,
        on_status: Callable[[object], None] | None,
    ) -> None:
        """Undo one :meth:`attach` (receivers never attached are ignored)."""
        del family
        key = inst.symbol
        for routes, receiver in ((self.receivers, on_record), (self.status_receivers, on_status)):
            present = list(routes.get(key, ()))
            if receiver is None or receiver not in present:
                continue
            present.remove(receiver)
            if present:
                routes[key] = tuple(present)
            else:
                del routes[key]

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


def cap_subscriptions(
    trades: list[Instrument], depth: list[Instrument], limit: int, *, shared: bool
) -> tuple[list[Instrument], list[Instrument], list[Instrument]]:
    """Keep the oldest ``limit`` codes; return ``(trades, depth, dropped)``.

    With ``shared`` a product counts once whatever its kinds (iTick: 500 products per
    connection, protocol/itick.md 8.2); otherwise each list is capped on its own (AllTick:
    codes per subscription list, protocol/alltick.md 5.4, where the rest is silently ignored).
    """
    if not shared:
        return trades[:limit], depth[:limit], list(dict.fromkeys(trades[limit:] + depth[limit:]))
    products = list(dict.fromkeys(trades + depth))
    allowed = set(products[:limit])
    return (
        [inst for inst in trades if inst in allowed],
        [inst for inst in depth if inst in allowed],
        products[limit:],
    )


def _checked(kind: str) -> str:
    if kind not in KINDS:
        raise ConfigError(f"kind must be one of {', '.join(KINDS)}, was {kind!r}")
    return kind
