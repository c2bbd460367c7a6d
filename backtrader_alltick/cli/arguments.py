"""argparse types of ``alltick-bt``: a bad value is a usage error (exit 2) naming the option, before any work.

Each type takes the text as typed and returns the value or raises ``ArgumentTypeError``,
which argparse turns into ``alltick-bt CMD: error: argument --opt: <message>``.  Nothing is
guessed: a symbol with a stray space or line break, an empty symbol or a URL that cannot be
parsed is refused rather than quietly changed or replaced by a default.  ``add_symbols`` and
``add_bar_selection`` add the arguments that several commands share.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from datetime import datetime, time, timezone
from pathlib import Path
from typing import NamedTuple, TypeAlias, TypeVar
from urllib.parse import urlsplit

from .. import timeframes
from ..errors import ConfigError
from ..param_checks import parse_iso
from ..records import PUSHED_KINDS

# Formats every matplotlib backend writes; the chart's format follows the file's suffix.
CHART_SUFFIXES = (".png", ".svg", ".pdf", ".jpg", ".jpeg")
# --from / --to outside these bounds is a typo (0001-01-01, 9999-12-31), not a request for data.
EARLIEST, LATEST = datetime(1970, 1, 1, tzinfo=timezone.utc), datetime(2100, 1, 1, tzinfo=timezone.utc)
_Number = TypeVar("_Number", int, float)
# What parser.add_subparsers() returns, as each command module's register() receives it.
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def symbol(text: str) -> str:
    """One symbol as typed, e.g. ``AAPL.US``: not empty, no spaces, line breaks or control characters."""
    if not text:
        raise argparse.ArgumentTypeError("must be a symbol such as AAPL.US, EURUSD or BTCUSDT, was ''")
    if any(char.isspace() or not char.isprintable() for char in text):
        raise argparse.ArgumentTypeError(
            f"must be a symbol such as AAPL.US without spaces or line breaks, was {text!r}"
        )
    return text


def symbol_list(text: str) -> list[str]:
    """``AAPL.US`` or ``AAPL.US,BTCUSDT``: symbols separated by commas (a trailing comma is fine)."""
    names = [name for name in text.split(",") if name]
    if not names:
        raise argparse.ArgumentTypeError(f"must be one or more symbols such as AAPL.US,BTCUSDT, was {text!r}")
    return [symbol(name) for name in names]


def url_of(*schemes: str) -> Callable[[str], str]:
    """A type for a service URL with one of ``schemes`` and a host, e.g. ``url_of("http", "https")``."""
    example = f"{schemes[0]}://127.0.0.1:8080"

    def url(text: str) -> str:
        try:
            parts = urlsplit(text)
            parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
        except ValueError as e:
            raise argparse.ArgumentTypeError(f"must be a URL such as {example}, was {text!r} ({e})") from None
        if parts.scheme not in schemes or not (parts.hostname or parts.scheme == "unix"):
            raise argparse.ArgumentTypeError(
                f"must be a {' or '.join(s + '://' for s in schemes)} URL such as {example}, was {text!r}"
            )
        return text

    url.__name__ = "URL"  # argparse names the type in some messages
    return url


def chart_file(text: str) -> str:
    """An image file to write, ``.png``, ``.svg``, ``.pdf`` or ``.jpg``, in a folder that exists."""
    path = Path(text)
    if path.suffix.lower() not in CHART_SUFFIXES:
        raise argparse.ArgumentTypeError(
            f"must be an image file ending in {', '.join(CHART_SUFFIXES)}, was {text!r}"
        )
    if not path.resolve().parent.is_dir():
        raise argparse.ArgumentTypeError(f"must be in an existing folder, was {text!r}")
    return text


def port(text: str) -> int:
    """A TCP port to bind, 0 (any free port) to 65535."""
    return _number(text, int, lambda value: 0 <= value <= 65535, "a port from 0 (any free one) to 65535")


def positive_int(text: str) -> int:
    """A whole number of 1 or more (a count, a number of minutes)."""
    return _number(text, int, lambda value: value >= 1, "a whole number of 1 or more")


def positive_float(text: str) -> float:
    """A finite number above 0 (seconds, a clock speed, a threshold)."""
    value = _number(text, float, lambda value: value > 0, "a number above 0")
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, was {text!r}")
    return value


def _number(
    text: str, convert: Callable[[str], _Number], allowed: Callable[[_Number], bool], what: str
) -> _Number:
    value: _Number | None
    try:
        value = convert(text)
    except ValueError:
        value = None
    if value is None or not allowed(value):
        raise argparse.ArgumentTypeError(f"must be {what}, was {text!r}")
    return value


def moment(text: str) -> datetime:
    """An ISO date or date-time (UTC unless it names an offset) for ``--from`` / ``--to``, read by
    :func:`~backtrader_alltick.param_checks.parse_iso` as ``fromdate``/``todate`` strings are."""
    try:
        value = parse_iso(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a date or time like 2024-03-05 or 2024-03-05T15:30, was {text!r}"
        ) from None
    if not isinstance(value, datetime):
        value = datetime.combine(value, time())
    utc: datetime | None
    try:
        utc = value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    except OverflowError:  # an offset that moves year 1 or 9999 past the calendar
        utc = None
    if utc is None or not EARLIEST <= utc < LATEST:
        raise argparse.ArgumentTypeError(
            f"must be from {EARLIEST:%Y-%m-%d} to before {LATEST:%Y-%m-%d} "
            f"(no market data lies outside), was {text!r}"
        )
    return utc


class Timeframe(NamedTuple):
    """A ``--timeframe`` value: Backtrader's TimeFrame number, the compression, and the text given."""

    timeframe: int
    compression: int
    text: str


def timeframe(text: str) -> Timeframe:
    """A bar length such as ``5m``, ``2h``, ``1d`` (:func:`~backtrader_alltick.timeframes.parse_period`)."""
    try:
        value, compression = timeframes.parse_period(text)
    except ConfigError:
        raise argparse.ArgumentTypeError(f"must look like {timeframes.PERIOD_SYNTAX}, was {text!r}") from None
    return Timeframe(value, compression, text.strip())


def _comma_list(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def timeframe_list(text: str) -> list[str]:
    """A comma list of bar lengths such as ``1m,5m,1h``, each checked by :func:`timeframe`."""
    names = _comma_list(text)
    if not names:
        raise argparse.ArgumentTypeError(f"must list at least one bar length such as 1m,5m, was {text!r}")
    for name in names:
        timeframe(name)
    return names


def kind_list(text: str) -> list[str]:
    """A comma list of pushed record kinds (``tick``, ``quote``, ``depth``); may be empty (bars only)."""
    names = _comma_list(text)
    unknown = [name for name in names if name not in PUSHED_KINDS]
    if unknown:
        raise argparse.ArgumentTypeError(f"must be a comma list of {', '.join(PUSHED_KINDS)}, was {text!r}")
    return names


def add_symbols(parser: argparse.ArgumentParser) -> None:
    """The positional ``symbols``: one or more arguments, each one symbol or a comma list."""
    parser.add_argument("symbols", nargs="+", type=symbol_list, help="symbols, space or comma separated")


def add_bar_selection(parser: argparse.ArgumentParser, default_count: int) -> None:
    """``--timeframe``/``-t``, and the newest ``--count``/``-n`` bars or those ``--from`` ``--to``."""
    parser.add_argument(
        "--timeframe",
        "-t",
        type=timeframe,
        default="1m",
        metavar="TIMEFRAME",
        help="bar length: 1m, 5m, 15m, 30m, 1h, 2h, 4h, 1d, 1w, 1M or a multiple such as 3m (default 1m)",
    )
    parser.add_argument(
        "--count", "-n", type=positive_int, default=None, help=f"newest N bars (default {default_count})"
    )
    parser.add_argument(
        "--from", dest="fromdate", type=moment, default=None, metavar="TIME", help="first bar (UTC)"
    )
    parser.add_argument(
        "--to", dest="todate", type=moment, default=None, metavar="TIME", help="last bar close (UTC)"
    )
    parser.set_defaults(parser=parser, default_count=default_count)


def bar_count(args: argparse.Namespace) -> int | None:
    """How many newest bars ``add_bar_selection``'s options ask for; None for a ``--from`` range."""
    if args.count is not None and (args.fromdate or args.todate):
        args.parser.error("give either --count or --from/--to, not both")
    return args.count if args.count is not None or args.fromdate else args.default_count
