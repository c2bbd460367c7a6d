"""Jobs that copy from a reader into a sink: the archive's ticks into a recording."""

from __future__ import annotations

import logging
import os

from .errors import ConfigError
from .sinks.recording import RecordingSink
from .transport.influx_client import split_influx_url
from .transport.influx_reader import InfluxReader

logger: logging.Logger = logging.getLogger(__name__)


def export_ticks(
    url: str,
    symbols: list[str],
    start_ms: int,
    end_ms: int,
    path: str | os.PathLike[str],
    *,
    dialect: str = "alltick",
) -> dict[str, int]:
    """Copy the archived ticks of ``symbols`` traded in ``[start_ms, end_ms)`` into the recording at ``path``.

    Returns the number of trades written per symbol.  The recording is appended to, so
    exporting the same interval twice records its trades twice.

    Example::

        export_ticks("http://127.0.0.1:8086/alltick", ["BTCUSDT"], t0, t1, "btc.rec")
    """
    if start_ms >= end_ms:
        raise ConfigError(f"--from must be before --to, was {start_ms} >= {end_ms} (epoch ms)")
    root, database = split_influx_url(url)
    counts: dict[str, int] = {}
    with InfluxReader(root, database) as source, RecordingSink(path, dialect=dialect) as sink:
        for symbol in symbols:
            # InfluxReader.ticks is inclusive at both ends; a recording interval is half-open.
            ticks = [tick for tick in source.ticks(symbol, start_ms, end_ms) if tick.time < end_ms]
            sink.write(ticks)
            counts[symbol] = len(ticks)
        sink.flush(None)
    logger.info("exported %s from %s into %s", counts, source.target, path)
    return counts
