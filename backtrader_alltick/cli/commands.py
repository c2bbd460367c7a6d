"""The data commands of ``alltick-bt``: ``demo``, ``klines``, ``quote``, ``depth``, ``stream``, ``cache``.

Each command is one function that parses its arguments, calls the public API
(:class:`~backtrader_alltick.store.AllTickStore`, :mod:`demo`, :mod:`plot`) and prints.
Data goes to stdout; logs, progress and errors go to stderr (an
:class:`~backtrader_alltick.errors.AllTickError` becomes one ``error: ...`` line and exit
status 1 in :func:`console.run_command`); usage errors exit with 2.

``register(subparsers)`` adds the commands to the ``alltick-bt`` parser of :mod:`cli`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import importlib.util
import json
import logging
import queue
import sys
import time
from pathlib import Path

import pandas as pd

from .. import demo
from ..errors import ConfigError
from ..records import KIND_OF, PUSHED_KINDS
from ..store import AllTickStore
from ..symbols import parse_symbol
from ..timeframes import bars_since_earliest
from . import arguments
from .console import ProgressLine, format_time, record_line
from .service import cache_setting, common_options, open_service, open_store
from .stopping import POLL_S, StopSignals

logger: logging.Logger = logging.getLogger(__name__)

STREAM_RECONNECTIONS = 2  # `stream` without --seconds: three failed attempts in a row end it


def _symbols(values: list[list[str]]) -> list[str]:
    # "AAPL.US TSLA.US" and "AAPL.US,TSLA.US" both work (arguments.symbol_list split each argument);
    # normalising early rejects typos before any request.
    return [parse_symbol(name).symbol for names in values for name in names]


# -- The commands ------------------------------------------------------------------------------


def run_demo(args: argparse.Namespace) -> int:
    chart = None if args.no_chart else args.chart
    if chart and importlib.util.find_spec("matplotlib") is None:
        print(
            "no chart: matplotlib is not installed; pip install 'backtrader-alltick[plot]' adds it",
            file=sys.stderr,
        )
        chart = None
    # Backtrader's loop runs on this thread and polls no flag: Ctrl-C stays a KeyboardInterrupt throughout
    # (StopSignals.polling is never called), and a second one during the clean-up exits at once.
    with StopSignals():
        try:
            # The real service runs in real time: a few minutes by default, with room for its bars to close.
            # The simulator's market stands still until the paper feed has subscribed: same output every run.
            with open_service(args, [parse_symbol(args.symbol).symbol], "using", paused=True) as service:
                minutes = args.minutes or (60 if service.simulated else 3)
                wall_timeout = minutes * 60 / args.speed * 2 + 60 if service.simulated else minutes * 90 + 60
                report = demo.run_demo(
                    service.store,
                    args.symbol,
                    source=service.description,
                    minutes=minutes,
                    history=args.history,
                    chart=chart,
                    wall_timeout=wall_timeout,
                    simulator=service.simulator,
                )
        except KeyboardInterrupt:
            print("stopped: the demo was interrupted, no report", file=sys.stderr, flush=True)
            return 0
    print(demo.format_report(report))
    return 0


def run_klines(args: argparse.Namespace) -> int:
    count = arguments.bar_count(args)
    suffix = Path(args.out).suffix.lower() if args.out else None
    if suffix not in (None, ".csv", ".parquet"):
        raise ConfigError(f"--out must end in .csv or .parquet, was {args.out!r}")
    if suffix == ".parquet" and not any(importlib.util.find_spec(m) for m in ("pyarrow", "fastparquet")):
        raise ConfigError(
            f"writing {args.out} needs pyarrow, which is not installed; run pip install pyarrow or write .csv"
        )
    progress = ProgressLine()
    with open_store(args) as store:
        _check_servable(store, args, count)
        store.rest.limiter.on_wait = progress.waiting  # the plan's waits show on the progress line
        frame = store.fetch_klines(
            args.symbol,
            args.timeframe.timeframe,
            args.timeframe.compression,
            args.fromdate,
            args.todate,
            count,
            on_progress=progress,
        )
    progress.finish()
    _write_frame(frame, args.out)
    by_date = frame.index.name == "date"  # daily and longer bars: trading dates
    shape, what = ("%Y-%m-%d", "trading date") if by_date else ("%Y-%m-%d %H:%M", "bar close")
    span = f"{frame.index[0]:{shape}} .. {frame.index[-1]:{shape}}" if len(frame) else "-"
    print(
        f"{parse_symbol(args.symbol).symbol} {args.timeframe.text}: {len(frame)} closed bars, "
        f"{what} {span}{'' if by_date or not len(frame) else ' UTC'}",
        file=sys.stderr,
    )
    if args.plot:
        from ..plot import plot_klines

        plot_klines(frame, args.plot, title=f"{parse_symbol(args.symbol).symbol} {args.timeframe.text}")
        print(f"chart: {args.plot}", file=sys.stderr)
    return 0


def _check_servable(store: AllTickStore, args: argparse.Namespace, count: int | None) -> None:
    # No service has bars before 1970: a request reaching past that would page for hours to find nothing.
    timeframe = args.timeframe
    spec = store.resolve_timeframe(parse_symbol(args.symbol), timeframe.timeframe, timeframe.compression)
    native = bars_since_earliest(spec.native.name, store.clock.now_ms())
    most = native // spec.multiple - 1  # one more native bar may be forming
    if most < 1:
        raise ConfigError(
            f"--timeframe must be shorter than all history since 1970 ({native:,} "
            f"{spec.native.name} bars), was {args.timeframe.text}"
        )
    if count is not None and count > most:
        raise ConfigError(
            f"--count must be at most {most:,} for --timeframe {args.timeframe.text} (the bars "
            f"since 1970; no service has older ones), was {count:,}"
        )


def run_quote(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        ticks = store.latest_trades(_symbols(args.symbols))
    if not args.json:
        print(f"{'time (UTC)':<23}  {'type':<5}  {'symbol':<10}  {'price':>14} x volume")
    for tick in ticks:
        print(record_line(tick, args.json))
    return 0


def run_depth(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        books = store.depth(_symbols(args.symbols))
    for book in books:
        if args.json:  # the same levels as the table: --levels is what the user asked to see
            shown = dataclasses.replace(book, bids=book.bids[: args.levels], asks=book.asks[: args.levels])
            print(record_line(shown, True))
            continue
        print(f"{book.symbol}  {format_time(book.time)} UTC")
        print(f"  {'bid':>14} {'size':>12}   {'ask':>14} {'size':>12}")
        for level in range(min(args.levels, max(len(book.bids), len(book.asks)))):
            bid = book.bids[level] if level < len(book.bids) else ("", "")
            ask = book.asks[level] if level < len(book.asks) else ("", "")
            print(f"  {bid[0]:>14} {bid[1]:>12}   {ask[0]:>14} {ask[1]:>12}")
    return 0


def run_stream(args: argparse.Namespace) -> int:
    types = set(args.types)
    if not types:
        raise ConfigError(f"--types must name at least one of {', '.join(PUSHED_KINDS)}, was none")
    if "quote" in types and args.dialect != "itick":
        raise ConfigError(
            "--types quote needs --dialect itick (AllTick pushes only tick and depth), "
            f"was --dialect {args.dialect}"
        )
    symbols = _symbols(args.symbols)
    inbox: queue.Queue = queue.Queue(maxsize=100_000)

    # Runs on the socket thread: never block it, drop when the terminal lags.
    def offer(item: object) -> None:
        with contextlib.suppress(queue.Full):
            inbox.put_nowait(item)

    # Without --seconds nothing else ends a stream that cannot connect: give up after a few attempts.
    reconnections = -1 if args.seconds else STREAM_RECONNECTIONS
    with StopSignals() as signals:
        try:
            with open_store(args, reconnections=reconnections) as store:
                store.check_symbols(symbols)  # an unknown symbol fails here: subscriptions drop it silently
                for index, symbol in enumerate(symbols):
                    store.listen(
                        parse_symbol(symbol),
                        offer,
                        depth=bool(types & {"quote", "depth"}),
                        on_status=offer if index == 0 else None,
                    )
                signals.polling()
                _print_pushes(inbox, types, args, signals)
        except KeyboardInterrupt:  # Ctrl-C while still starting
            pass
        if signals.requested:
            print("stopped", file=sys.stderr, flush=True)
    return 0


def _print_pushes(
    inbox: queue.Queue, types: set[str], args: argparse.Namespace, signals: StopSignals
) -> None:
    deadline = time.monotonic() + args.seconds if args.seconds else None
    printed = 0
    while (args.limit is None or printed < args.limit) and not signals.requested:
        wait = POLL_S if deadline is None else min(POLL_S, deadline - time.monotonic())
        if wait <= 0:
            break
        try:
            item = inbox.get(timeout=wait)
        except queue.Empty:
            continue
        if getattr(item, "kind", None) is not None:  # a StreamStatus
            if item.kind == "fatal":
                raise item.error
            print(f"stream {item.family}: {item.kind}", file=sys.stderr, flush=True)
        elif KIND_OF.get(type(item)) in types:
            print(record_line(item, args.json), flush=True)
            printed += 1


def run_cache(args: argparse.Namespace) -> int:
    if not cache_setting(args.cache):
        raise ConfigError(
            "the cache is off (--cache off, ALLTICK_CACHE or the config file); pass --cache PATH"
        )
    with open_store(args, needs_token=False) as store:
        cache = store.cache
        assert cache is not None, "the cache setting is on (checked above)"
        if args.action == "clear":
            symbol = parse_symbol(args.symbol).symbol if args.symbol else None
            cache.clear(symbol)
            print(
                json.dumps({"path": str(cache.path), "cleared": symbol or "*"})
                if args.json
                else f"cleared {args.symbol or 'every symbol'} from {cache.path}"
            )
            return 0
        rows = cache.info()
        if args.json:
            series = [
                {
                    **row,
                    "first": format_time(row["first"]),
                    "last": format_time(row["last"]),
                    "first_ms": row["first"],
                    "last_ms": row["last"],
                }
                for row in rows
            ]
            print(json.dumps({"path": str(cache.path), "series": series}))
            return 0
        print(f"cache: {cache.path}")
        if not rows:
            print("empty")
        for row in rows:
            print(
                f"{row['dialect']:<8} {row['symbol']:<12} {row['period']:<4} {row['bars']:>8} bars  "
                f"{format_time(row['first'])[:16]} .. {format_time(row['last'])[:16]} UTC"
            )
    return 0


def _write_frame(frame: pd.DataFrame, out: str | None) -> None:
    if out is None:
        frame.to_csv(sys.stdout)
    elif Path(out).suffix.lower() == ".parquet":
        frame.to_parquet(out)
    else:
        frame.to_csv(out)


# -- Registration -----------------------------------------------------------------------------


def register(subparsers: arguments.Subparsers) -> None:
    """Add the data commands to ``alltick-bt``'s subparsers (``parser.add_subparsers()``)."""
    common = [common_options()]
    add = functools.partial(subparsers.add_parser, parents=common)

    sub = add(
        "demo",
        help="backtest and paper-trade on the built-in simulator (no token needed)",
        description="Backtest an SMA cross on 1-minute K-lines, then paper-trade it on live bars, "
        "print a summary and write a chart. Without ALLTICK_TOKEN the built-in "
        "simulator serves the data on a fast clock.",
    )
    sub.add_argument(
        "--symbol",
        default=demo.DEFAULT_SYMBOL,
        type=arguments.symbol,
        help=f"instrument to trade (default {demo.DEFAULT_SYMBOL})",
    )
    sub.add_argument(
        "--minutes",
        type=arguments.positive_int,
        default=None,
        help="live 1-minute bars to paper-trade (default 60 simulated, 3 on the real service)",
    )
    sub.add_argument(
        "--speed",
        type=arguments.positive_float,
        default=180.0,
        help="simulator clock speed, market seconds per second (default 180)",
    )
    sub.add_argument(
        "--history", type=arguments.positive_int, default=500, help="bars to backtest on (default 500)"
    )
    sub.add_argument("--seed", type=int, default=1, help="simulator seed: same seed, same market (default 1)")
    # Checked when parsed: the chart is drawn only after both sessions have run.
    sub.add_argument(
        "--chart",
        default="alltick-demo.png",
        metavar="FILE.png",
        type=arguments.chart_file,
        help="PNG file for the chart (default alltick-demo.png)",
    )
    sub.add_argument("--no-chart", action="store_true", help="do not write a chart")
    sub.set_defaults(func=run_demo)

    sub = add(
        "klines",
        help="download closed K-lines (cached) to CSV, Parquet or a chart",
        description="Download closed K-lines, stamped at bar close (UTC). Data goes to stdout as CSV "
        "unless --out is given.",
    )
    sub.add_argument("symbol", type=arguments.symbol, help="e.g. AAPL.US, 700.HK, EURUSD, BTCUSDT")
    arguments.add_bar_selection(sub, default_count=100)
    sub.add_argument("--out", "-o", default=None, help="write FILE.csv or FILE.parquet instead of stdout")
    sub.add_argument(
        "--plot",
        default=None,
        metavar="FILE.png",
        type=arguments.chart_file,
        help="also draw a chart (.png, .svg, .pdf or .jpg)",
    )
    sub.set_defaults(func=run_klines)

    sub = add("quote", help="latest trade of each symbol")
    arguments.add_symbols(sub)
    sub.add_argument("--json", action="store_true", help="one JSON object per line")
    sub.set_defaults(func=run_quote)

    sub = add("depth", help="order book of each symbol")
    arguments.add_symbols(sub)
    sub.add_argument(
        "--levels", type=arguments.positive_int, default=5, help="price levels to show (default 5)"
    )
    sub.add_argument("--json", action="store_true", help="one JSON object per line")
    sub.set_defaults(func=run_depth)

    sub = add("stream", help="print live pushes until Ctrl-C, --limit or --seconds")
    arguments.add_symbols(sub)
    sub.add_argument(
        "--types",
        type=arguments.kind_list,
        default="tick",
        help="comma list of tick, quote (itick only), depth (default tick)",
    )
    sub.add_argument("--limit", type=arguments.positive_int, default=None, help="stop after N pushes")
    sub.add_argument(
        "--seconds",
        type=arguments.positive_float,
        default=None,
        help="stop after S seconds (without it, three failed connection attempts in a row end "
        "the stream with an error)",
    )
    sub.add_argument("--json", action="store_true", help="one JSON object per line")
    sub.set_defaults(func=run_stream)

    sub = add("cache", help="show or clear the K-line cache")
    sub.add_argument("action", choices=("info", "clear"))
    sub.add_argument(
        "--symbol",
        default=None,
        type=arguments.symbol,
        help="clear only this symbol (leave it out to clear every symbol)",
    )
    sub.add_argument(
        "--json",
        action="store_true",
        help="one JSON object: path and series (dialect, symbol, period, bars, first, last)",
    )
    sub.set_defaults(func=run_cache)
