"""History from the InfluxDB archive: closed bars as recorded, or built from archived bars and ticks.

AllTick keeps no historical trades, so the archive a relay writes is the only way to
backtest on bars the vendor does not serve, or on ticks.  For one ``BarSpec`` the bars
come from the first of these that holds any in the window:

1. bars archived at exactly that period (what the relay's ``--timeframes`` recorded);
2. archived bars of a shorter period of the same unit, coarsest first, combined (3m or 5m from
   1m, 2h from 1h) with :func:`bars.combine_closed`: a relay that kept only 1m bars serves 5m
   bars too, although AllTick serves 5m natively;
3. archived ticks, built into bars with :class:`bars.BarBuilder` (the live feed's aggregator).

Tick-built bars are only as complete as the archive: a bar whose trades were partly
recorded (the relay started or stopped inside it) is built from the trades that were.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from ..bars import BarBuilder, combine_closed
from ..records import Kline, Tick
from ..symbols import Instrument
from ..timeframes import PERIODS, BarSpec
from ..transport.influx_client import split_influx_url
from ..transport.influx_reader import InfluxReader
from .window import BarRange, Window

logger: logging.Logger = logging.getLogger(__name__)


def archived_bars(
    url: str, inst: Instrument, spec: BarSpec, window: Window, now_ms: int, *, dialect: str | None = None
) -> BarRange:
    """Closed bars of ``spec`` in ``window`` from the archive at ``url``, complete up to ``now_ms``
    (or the window's end).

    ``dialect`` restricts archived bars to one service's recording (ticks carry no dialect).
    A bar still forming at ``now_ms`` is never returned.

    Example::

        got = archived_bars("http://127.0.0.1:8086/alltick", inst, spec, Window(count=100), now_ms)
    """
    root, database = split_influx_url(url)
    upto = now_ms if window.end_ms is None else min(window.end_ms, now_ms)
    low = window.load_start(spec, inst.market) or 0
    label = spec.period
    with InfluxReader(root, database, dialect=dialect) as source:
        bars, origin = source.klines(inst.symbol, label, low, upto), f"{label} bars"
        for base in [] if bars else _shorter_bases(spec):
            archived = source.klines(inst.symbol, base.native.name, low, upto)
            if archived:
                bars, origin = combine_closed(archived, base, inst.market, upto), f"{base.native.name} bars"
                break
        if not bars:
            bars, origin = _bars_from_ticks(source.ticks(inst.symbol, low, upto), inst, spec, upto), "ticks"
    bars = window.keep(bars, upto)
    logger.info(
        "archive %s: %d %s bars of %s from archived %s", source.target, len(bars), label, inst.symbol, origin
    )
    return BarRange(bars, upto)


def _shorter_bases(spec: BarSpec) -> list[BarSpec]:
    # The same bars as multiples of each shorter period of the unit that divides them, coarsest first.
    length = spec.native.count * spec.multiple
    return [
        BarSpec(period, length // period.count, spec.label)
        for period in sorted(PERIODS.values(), key=lambda p: -p.count)
        if period.unit == spec.native.unit and period.count < length and length % period.count == 0
    ]


def _bars_from_ticks(ticks: Iterable[Tick], inst: Instrument, spec: BarSpec, upto: int) -> list[Kline]:
    built: list[Kline] = []
    # Grace 0: every archived trade is already here, none can arrive late.
    builder = BarBuilder(inst.symbol, spec, inst.market, built.append, grace_ms=0)
    for tick in ticks:
        builder.add_tick(tick)
    builder.on_timer(upto)
    return built
