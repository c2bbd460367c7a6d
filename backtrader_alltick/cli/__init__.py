"""The ``alltick-bt`` command: one function per subcommand, built on argparse.

Add a subcommand by writing ``_add_<name>(subparsers)`` that registers its arguments and
sets ``func=<function(args) -> int>``, then listing it in ``SUBCOMMANDS``.  Data goes to
stdout, logs to stderr; an AllTickError prints one ``error: ...`` line and exits 1
(:func:`console.run_command`, the one place that turns errors into exit codes).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections.abc import Callable

from .._version import __version__
from ..config import config_path
from ..errors import ConfigError
from ..plans import PLAN_NAMES
from . import arguments, commands, quality, record
from .console import run_command
from .service import settled
from .stopping import StopSignals

logger: logging.Logger = logging.getLogger(__name__)


def _add_sim(subparsers: arguments.Subparsers) -> None:
    parser = subparsers.add_parser(
        "sim",
        help="serve a local AllTick simulator until interrupted",
        description="Serve the simulator on loopback; print one JSON line "
        "with its URLs and token, then serve until SIGINT/SIGTERM.",
    )
    parser.add_argument(
        "--dialect",
        choices=("alltick", "itick"),
        default=None,
        help="wire dialect to serve (default: $ALLTICK_DIALECT, the config file, else alltick)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=arguments.port, default=0, help="port to bind (default 0: any free port)"
    )
    parser.add_argument("--plan", choices=PLAN_NAMES, default="unlimited")
    parser.add_argument(
        "--speed", type=arguments.positive_float, default=60.0, help="market seconds per wall second"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--start",
        type=arguments.moment,
        default=None,
        metavar="TIME",
        help="market time the clock starts from, UTC unless an offset is given (default "
        "2024-03-05T15:00, US hours; e.g. 2024-03-05T02:00 for Hong Kong and A-shares)",
    )
    parser.add_argument(
        "--symbols",
        default=None,
        type=arguments.symbol_list,
        help="comma-separated symbols, e.g. AAPL.US,BTCUSDT (default: every symbol it knows)",
    )
    parser.add_argument("--token", default=None, help="token to accept (default: a random one)")
    parser.add_argument(
        "--replay",
        default=None,
        metavar="PATH",
        help="serve a recording (alltick-bt record --file PATH) instead of the seeded market",
    )
    parser.add_argument(
        "--from",
        dest="fromdate",
        type=arguments.moment,
        default=None,
        metavar="TIME",
        help="with --replay: start the clock here (default: the recording's first trade)",
    )
    parser.add_argument(
        "--to",
        dest="todate",
        type=arguments.moment,
        default=None,
        metavar="TIME",
        help="with --replay: leave out the trades from this moment on",
    )
    parser.add_argument(
        "--hours",
        choices=("regular", "extended", "overnight"),
        default="regular",
        help="sessions that trade: regular (default), extended (plus US pre-market and "
        "after-hours, HK closing auction, A-share call auctions), overnight (plus the "
        "US overnight session)",
    )
    parser.add_argument(
        "--late-print-ms",
        type=int,
        default=0,
        metavar="MS",
        help="add one trade MS ms after each session close (default 0: none)",
    )
    parser.add_argument(
        "--resend-when-closed-s",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="while a market is closed, re-send its last trade on the WebSocket every "
        "SECONDS market seconds (default 0: never)",
    )
    parser.set_defaults(func=run_sim)


def run_sim(args: argparse.Namespace) -> int:
    """Serve the simulator until SIGINT or SIGTERM; return 0."""
    from ..sim import Simulator

    if args.replay is None and (args.fromdate or args.todate):
        raise ConfigError(
            "--from and --to choose the part of a recording to replay; pass --replay PATH too, "
            "was without --replay"
        )
    if args.replay is not None and args.start is not None:
        raise ConfigError(
            "--start sets the clock of the seeded market; a replay starts at --from, "
            "was both --start and --replay"
        )
    market = (
        dict(start=args.start)
        if args.replay is None
        else dict(replay=args.replay, start=args.fromdate, end=args.todate)
    )
    market.update(
        hours=args.hours, late_print_ms=args.late_print_ms, resend_when_closed_s=args.resend_when_closed_s
    )
    with StopSignals() as signals:
        try:
            with Simulator(
                dialect=args.dialect,
                plan=args.plan,
                speed=args.speed,
                seed=args.seed,
                symbols=args.symbols,
                port=args.port,
                host=args.host,
                token=args.token,
                **market,
            ) as sim:
                print(
                    json.dumps(
                        {
                            "rest_url": sim.rest_url,
                            "ws_url": sim.ws_url,
                            "token": sim.token,
                            "dialect": sim.dialect,
                            "plan": sim.plan.name,
                            "speed": sim.clock.speed,
                            "start": sim.start_ms,
                            "symbols": sim.symbols,
                        }
                    ),
                    flush=True,
                )
                signals.polling()
                signals.wait(math.inf)
        except KeyboardInterrupt:  # stopped while starting
            pass
    return 0


# commands.register adds demo, klines, quote, depth, stream and cache; record.register adds record.
SUBCOMMANDS: list[Callable[[arguments.Subparsers], None]] = [
    commands.register,
    _add_sim,
    record.register,
    quality.register,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alltick-bt",
        description="AllTick market data for Backtrader.",
        epilog=f"Options left out come from ALLTICK_TOKEN, ALLTICK_TOKEN_FILE, ALLTICK_PLAN, "
        f"ALLTICK_DIALECT, ALLTICK_CACHE, ALLTICK_REST_URL, ALLTICK_WS_URL, then the config file "
        f"{config_path()}.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``alltick-bt`` with ``argv`` (default: the process arguments); return the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return run_command(settled(args.func), args)
