"""History from the InfluxDB archive: closed bars as recorded, or built from archived bars and ticks.

AllTick keeps no historical trades, so the archive a relay writes is the only way to
backtest on bars the vendor does not serve, or on ticks.  For one ``BarSpec`` the bars
come from the first of these that holds any in the window:

1. bars archived at exactly that period (what the relay's ``--timeframes`` recorded);
2. archived bars of the native period, combined (3m from 1m) with :func:`bars.combine_closed`;
3. archived ticks, built into bars with :class:`bars.BarBuilder` (the live feed's aggregator).

Tick-built bars are only as complete as the archive: a bar whose trades were partly
recorded (the relay started or stopped inside it) is built from the trades that were.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit, urlunsplit

from ..bars import BarBuilder, combine_closed, first_slot_start
from ..errors import ConfigError
from ..records import Kline
from ..symbols import Instrument
from ..timeframes import BarSpec
from .influx import InfluxSource

logger = logging.getLogger(__name__)

DEFAULT_DATABASE = "alltick"


def split_influx_url(url: str) -> tuple[str, str]:
    """Split ``http://host:8086/mydb`` into the API root and the database (default ``alltick``)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"InfluxDB URL must look like http://host:8086 or http://host:8086/database, "
                          f"was {url!r}")
    database = parts.path.strip("/") or DEFAULT_DATABASE
    if "/" in database:
        raise ConfigError(f"InfluxDB URL may name one database after the port, was {url!r}")
    return urlunsplit((parts.scheme, parts.netloc, "", "", "")), database


def load_archived_bars(url: str, inst: Instrument, spec: BarSpec, start_ms: int | None, end_ms: int | None,
                       count: int | None, now_ms: int, *, dialect: str | None = None) -> list[Kline]:
    """Return closed bars of ``spec`` from the archive at ``url`` stamped ``start_ms <= end <= end_ms``.

    With ``start_ms`` None the newest ``count`` bars are returned.  ``dialect`` restricts
    archived bars to one service's recording (ticks carry no dialect).  A bar still
    forming at ``now_ms`` is never returned.
    """
    if start_ms is not None and end_ms is not None and start_ms > end_ms:
        raise ConfigError(f"fromdate must not be after todate, was {start_ms} > {end_ms} (epoch ms)")
    root, database = split_influx_url(url)
    upto = now_ms if end_ms is None else min(end_ms, now_ms)
    low = 0 if start_ms is None else first_slot_start(spec, start_ms, inst.market)
    label = spec.period
    with InfluxSource(root, database, dialect=dialect) as source:
        bars, origin = source.klines(inst.symbol, label, low, upto), f"{label} bars"
        if not bars and not spec.is_native:
            native = source.klines(inst.symbol, spec.native.name, low, upto)
            bars, origin = combine_closed(native, spec, inst.market, upto), f"{spec.native.name} bars"
        if not bars:
            bars, origin = _bars_from_ticks(source.ticks(inst.symbol, low, upto), inst, spec, upto), "ticks"
    # Backtrader's filter, as in AllTickStore.load_spec: a bar stamped exactly at fromdate stays.
    bars = [bar for bar in bars if bar.end <= upto and (start_ms is None or bar.end >= start_ms)]
    if count is not None:
        bars = bars[-count:]
    logger.info("archive %s: %d %s bars of %s from archived %s", source.target, len(bars), label,
                inst.symbol, origin)
    return bars


def _bars_from_ticks(ticks, inst: Instrument, spec: BarSpec, upto: int) -> list[Kline]:
    built: list[Kline] = []
    # Grace 0: every archived trade is already here, none can arrive late.
    builder = BarBuilder(inst.symbol, spec, inst.market, built.append, grace_ms=0)
    for tick in ticks:
        builder.add_tick(tick)
    builder.on_timer(upto)
    return built


def export_ticks(url: str, symbols: list[str], start_ms: int, end_ms: int, path, *,
                 dialect: str = "alltick") -> dict[str, int]:
    """Copy the archived ticks of ``symbols`` traded in ``[start_ms, end_ms)`` into the recording at ``path``.

    Returns the number of trades written per symbol.  The recording is appended to, so
    exporting the same interval twice records its trades twice.

    Example::

        export_ticks("http://127.0.0.1:8086/alltick", ["BTCUSDT"], t0, t1, "btc.rec")
    """
    from .recording import RecordingSink

    if start_ms >= end_ms:
        raise ConfigError(f"--from must be before --to, was {start_ms} >= {end_ms} (epoch ms)")
    root, database = split_influx_url(url)
    counts: dict[str, int] = {}
    with InfluxSource(root, database) as source, RecordingSink(path, dialect=dialect) as sink:
        for symbol in symbols:
            # InfluxSource.ticks is inclusive at both ends; a recording interval is half-open.
            ticks = [tick for tick in source.ticks(symbol, start_ms, end_ms) if tick.time < end_ms]
            sink.write(ticks)
            counts[symbol] = len(ticks)
        sink.flush(None)
    logger.info("exported %s from %s into %s", counts, source.target, path)
    return counts
