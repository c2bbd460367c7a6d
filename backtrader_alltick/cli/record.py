"""``alltick-bt record``: run the relay until SIGINT or SIGTERM; ``alltick-bt export``: archive to recording.

Without a token (``--token`` or ``ALLTICK_TOKEN``) it records from the built-in simulator,
like ``alltick-bt demo``, so the whole Redis/InfluxDB pipeline can be tried offline.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import ConfigError
from ..relay import Relay
from . import arguments
from .commands import _symbols
from .service import common_options, open_service
from .stopping import StopSignals


def register(subparsers: arguments.Subparsers) -> None:
    """Add ``record`` to ``alltick-bt``'s subparsers."""
    sub = subparsers.add_parser(
        "record",
        parents=[common_options()],
        help="relay live data into a recording file, Redis and/or InfluxDB until interrupted",
        description="Hold one upstream connection and write every trade (and depth update with --types "
        "depth) into a recording directory (--file), every tick/quote/depth update into Redis "
        "streams and every closed bar into Redis and InfluxDB, until SIGINT or SIGTERM. "
        "Without ALLTICK_TOKEN the built-in simulator is recorded.",
    )
    arguments.add_symbols(sub)
    sub.add_argument(
        "--file",
        default=None,
        metavar="PATH",
        help="recording directory (Parquet parts; appended to if it exists), for "
        "alltick-bt sim --replay PATH; needs pip install 'backtrader-alltick[parquet]'",
    )
    sub.add_argument(
        "--flush",
        type=arguments.positive_float,
        default=2.0,
        metavar="SECONDS",
        help="seconds between writes of the recording file: a crash loses at most this much (default 2)",
    )
    sub.add_argument(
        "--redis",
        default=None,
        metavar="URL",
        type=arguments.url_of("redis", "rediss", "unix"),
        help="Redis URL, e.g. redis://127.0.0.1:6379/0",
    )
    sub.add_argument(
        "--influx",
        default=None,
        metavar="URL",
        type=arguments.url_of("http", "https"),
        help="InfluxDB 1.x URL, e.g. http://127.0.0.1:8086 or http://127.0.0.1:8086/mydb",
    )
    sub.add_argument(
        "--types",
        type=arguments.kind_list,
        default="tick",
        help="raw records for Redis: comma list of tick, quote (itick only), depth (default "
        "tick); the --file recording keeps every trade, and depth if listed",
    )
    sub.add_argument(
        "--timeframes",
        type=arguments.timeframe_list,
        default="1m",
        help="closed bars to write: comma list such as 1m,5m,1h (default 1m)",
    )
    sub.add_argument("--archive-ticks", action="store_true", help="also write every tick into InfluxDB")
    sub.add_argument(
        "--lookback",
        type=arguments.positive_int,
        default=500,
        help="bars to backfill per timeframe on a first start (default 500)",
    )
    sub.add_argument(
        "--progress",
        type=arguments.positive_float,
        default=10.0,
        metavar="SECONDS",
        help="seconds between progress lines on stderr (default 10)",
    )
    sub.add_argument(
        "--speed",
        type=arguments.positive_float,
        default=60.0,
        help="simulator clock speed without a token (default 60)",
    )
    sub.add_argument("--seed", type=int, default=1, help="simulator seed without a token (default 1)")
    sub.set_defaults(func=run_record)

    sub = subparsers.add_parser(
        "export",
        parents=[common_options()],
        help="copy archived ticks from InfluxDB into a recording file",
        description="Copy the ticks a relay archived in InfluxDB (record --influx URL --archive-ticks) "
        "between --from and --to into a recording directory, for alltick-bt sim --replay.",
    )
    arguments.add_symbols(sub)
    sub.add_argument(
        "--influx",
        required=True,
        metavar="URL",
        type=arguments.url_of("http", "https"),
        help="InfluxDB 1.x URL with the archive, e.g. http://127.0.0.1:8086/alltick",
    )
    sub.add_argument(
        "--from",
        dest="fromdate",
        type=arguments.moment,
        required=True,
        metavar="TIME",
        help="first moment to export (UTC unless an offset is given)",
    )
    sub.add_argument(
        "--to",
        dest="todate",
        type=arguments.moment,
        required=True,
        metavar="TIME",
        help="export trades before this moment",
    )
    sub.add_argument(
        "--file", required=True, metavar="PATH", help="recording directory to write (or append to)"
    )
    sub.set_defaults(func=run_export)


def run_record(args: argparse.Namespace) -> int:
    if args.redis is None and args.influx is None and args.file is None:
        raise ConfigError(
            "record needs somewhere to write: pass --file PATH, --redis URL and/or --influx URL, was none"
        )
    types = args.types
    if "quote" in types and args.dialect != "itick":
        raise ConfigError(
            f"--types quote needs --dialect itick (AllTick pushes only tick and depth), "
            f"was --dialect {args.dialect}"
        )
    symbols = _symbols(args.symbols)
    with StopSignals() as signals:
        try:
            with open_service(args, symbols, "recording") as service:
                relay = Relay(
                    service.store,
                    symbols,
                    redis_url=args.redis,
                    influx_url=args.influx,
                    timeframes=args.timeframes,
                    types=types,
                    archive_ticks=args.archive_ticks,
                    lookback=args.lookback,
                    recording=args.file,
                    recording_options={"flush_interval": args.flush},
                )
                try:
                    relay.start()
                    print(
                        f"recording {', '.join(symbols)} ({', '.join(types) or 'bars only'}; bars "
                        f"{','.join(args.timeframes)}); stop with Ctrl-C",
                        file=sys.stderr,
                        flush=True,
                    )
                    signals.polling()
                    while not signals.wait(args.progress):
                        if relay.errors:  # a rejected token or an unknown symbol: recording cannot go on
                            raise relay.errors[0]
                        print(_progress(relay.stats), file=sys.stderr, flush=True)
                except KeyboardInterrupt:  # Ctrl-C while starting: what has arrived is flushed all the same
                    pass
                finally:
                    signals.polling()  # a Ctrl-C during the flush must not cut it; a second one exits
                    # Also after a start cut short: the sinks it opened hold what arrived so far.
                    print("stopping: flushing the sinks", file=sys.stderr, flush=True)
                    relay.stop()
        except KeyboardInterrupt:  # Ctrl-C while the built-in simulator was starting
            return 0
    print(_progress(relay.stats, final=True), file=sys.stderr, flush=True)
    return 0


def run_export(args: argparse.Namespace) -> int:
    from ..exports import export_ticks

    start_ms, end_ms = (int(moment.timestamp() * 1000) for moment in (args.fromdate, args.todate))
    counts = export_ticks(
        args.influx, _symbols(args.symbols), start_ms, end_ms, args.file, dialect=args.dialect
    )
    for symbol, count in counts.items():
        print(f"{symbol}: {count} trades", file=sys.stderr)
    print(f"exported {sum(counts.values())} trades into {args.file}", file=sys.stderr, flush=True)
    return 0


def _progress(stats: dict, final: bool = False) -> str:
    bars = ", ".join(f"{count} {period}" for period, count in sorted(stats["bars"].items())) or "0"
    sinks = "; ".join(
        f"{name}: {stats[name]['written']} written, {stats[name]['pending']} pending, "
        f"{stats[name]['dropped']} dropped"
        for name in ("file", "redis", "influx")
        if name in stats
    )
    head = "recorded" if final else "so far"
    return (
        f"{head}: {stats['ticks']} ticks, {stats['quotes']} quotes, {stats['depth']} books, bars {bars}; "
        f"{sinks}; upstream drops {stats['upstream_drops']}"
    )
