"""The newest closed bar of many symbols at once: ``/batch-kline`` where the dialect has it.

One ``/batch-kline`` call answers the newest bars of up to the plan's groups (alltick.md 4.2: Free 5,
Basic 100, Premium 200, top tiers 500), where ``/kline`` takes one call per symbol; so a universe's
last bars cost ``ceil(symbols / groups)`` requests per endpoint family.  The itick dialect has no
such endpoint and asks per symbol.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from .clock import as_service_clock
from .errors import ConfigError
from .records import Kline
from .symbols import Instrument, parse_symbol

if TYPE_CHECKING:
    from .store import AllTickStore


def latest_closed_bars(
    store: AllTickStore,
    symbols: Iterable[str | Instrument],
    timeframe: int | str = "1m",
    compression: int = 1,
) -> dict[str, Kline | None]:
    """Return ``{symbol: the newest bar the service has closed}`` (None where it has none).

    Only native periods (those the service serves as K-lines); a forming bar is never returned.

    Example::

        bars = latest_closed_bars(store, ["AAPL.US", "TSLA.US"], "1m")
        bars["AAPL.US"].close
    """
    insts = list(dict.fromkeys(parse_symbol(symbol) for symbol in symbols))
    if not insts:
        raise ConfigError("latest_bars needs at least one symbol, was none")
    specs = {inst: store.resolve_timeframe(inst, timeframe, compression) for inst in insts}
    for inst, spec in specs.items():
        if not spec.is_native:
            raise ConfigError(
                f"latest_bars serves the service's own K-line periods; {spec.period} is built "
                f"from {spec.native.name} bars for {inst.symbol}: use fetch_klines for it"
            )
    periods = {spec.period for spec in specs.values()}
    if len(periods) != 1:
        raise ConfigError(f"the symbols name different periods for {timeframe!r}: ask per asset class")
    period = periods.pop()
    rest, clock = store.rest, store.clock
    if hasattr(store.wire, "batch_kline_request"):
        found = rest.batch_klines(insts, period, 2)
    else:
        found = {inst.symbol: rest.klines(inst, period, 2) for inst in insts}
    # Bars end by this moment were closed by the service (its time, learnt from these answers).
    now = as_service_clock(clock).closed_until()
    if now is None:
        now = -1  # the service never told its time: no bar counts as closed
    out: dict[str, Kline | None] = {}
    for inst in insts:
        closed = [bar for bar in found.get(inst.symbol, ()) if bar.end <= now]
        out[inst.symbol] = max(closed, key=lambda bar: bar.end) if closed else None
    return out
