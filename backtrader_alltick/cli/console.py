"""What ``alltick-bt`` shows in a terminal: record lines, a progress line, logs and errors on stderr.

Data lines go to stdout; everything else (logs, progress, ``error: ...``) to stderr, so
``alltick-bt quote AAPL.US > quotes.txt`` captures data only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, is_dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, TextIO

from ..errors import AllTickError, AllTickWarning
from ..records import KIND_OF, Depth, Quote, Tick

if TYPE_CHECKING:
    from ..history import Progress

SIGPIPE_STATUS = 141  # 128 + SIGPIPE (13): what `cat file | head -1` leaves in PIPESTATUS for cat


@contextlib.contextmanager
def verbosity(verbose: int = 0, debug: bool = False) -> Iterator[None]:
    """Let the package log at INFO (``-v``) or DEBUG (``-vv``, ``--debug``) while a command runs.

    ``cli.main`` sends log records to stderr; the package's level is restored afterwards
    so that a command run inside another program leaves its logging as it was.
    """
    package = logging.getLogger("backtrader_alltick")
    previous = package.level
    if debug or verbose >= 2:
        package.setLevel(logging.DEBUG)
    elif verbose == 1:
        package.setLevel(logging.INFO)
    try:
        yield
    finally:
        package.setLevel(previous)


@contextlib.contextmanager
def warnings_as_lines() -> Iterator[None]:
    """Show the package's warnings as ``warning: ...`` lines on stderr while a command runs, each once.

    A script sees them as Python warnings (file, line, category); a terminal user needs the
    message only.  Other warnings keep Python's own format.  Everything is restored afterwards.
    """
    shown: set[str] = set()

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        if not issubclass(category, AllTickWarning):
            previous(message, category, filename, lineno, file, line)
            return
        text = f"warning: {message}"
        if text not in shown:  # the same condition noticed twice (two threads, two calls) is one line
            shown.add(text)
            print(text, file=sys.stderr, flush=True)

    with warnings.catch_warnings():
        previous = warnings.showwarning
        # Python's registry would hide a repeat only per calling line; the set above decides instead.
        warnings.simplefilter("always", AllTickWarning)
        warnings.showwarning = show
        yield


def run_command(function: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a command with ``-v`` applied; AllTickError and OSError become one stderr line and status 1.

    The one place that turns errors into exit codes (the traceback too with ``--debug``);
    Ctrl-C is status 130.  The package's warnings show as ``warning: ...`` lines.
    """
    try:
        with verbosity(getattr(args, "verbose", 0), getattr(args, "debug", False)), warnings_as_lines():
            code = function(args)
            sys.stdout.flush()  # here, so that a reader gone (`| head`) is noticed below, not at exit
            return code
    except BrokenPipeError:
        return reader_gone()
    except (AllTickError, OSError) as e:
        if getattr(args, "debug", False):
            traceback.print_exc(file=sys.stderr)
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def reader_gone() -> int:
    """The reader of stdout closed the pipe (``alltick-bt klines ... | head -1``): stop quietly, as Unix
    tools do, with the status a shell reports for them (141: killed by SIGPIPE)."""
    # What is still buffered goes nowhere: without this, Python's flush at exit prints a traceback.
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return SIGPIPE_STATUS


def format_time(ms: int) -> str:
    """Epoch ms as UTC text with milliseconds; ``-`` for a record that carries no time (iTick depth)."""
    if not ms:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def record_line(record: Tick | Quote | Depth, as_json: bool = False) -> str:
    """One printable line for a Tick, Quote or Depth: aligned text, or a JSON object."""
    kind = KIND_OF.get(type(record), type(record).__name__.lower())
    if as_json:
        is_record = is_dataclass(record) and not isinstance(record, type)
        fields = asdict(record) if is_record else {"value": repr(record)}
        return json.dumps({"type": kind, **fields}, separators=(",", ":"))
    head = f"{format_time(record.time)}  {kind:<5}  {record.symbol:<10}"
    if isinstance(record, Tick):
        return f"{head}  {record.price:>14g} x {record.volume:g}"
    if isinstance(record, Quote):
        return f"{head}  last {record.last:g}  open {record.open}  high {record.high}  low {record.low}"
    if isinstance(record, Depth):
        return f"{head}  bid {_level(record.bids)}  ask {_level(record.asks)}"
    return f"{head}  {record!r}"


def _level(levels: Sequence[tuple[float, float]]) -> str:
    return f"{levels[0][0]:g} x {levels[0][1]:g}" if levels else "-"


class ProgressLine:
    """Progress of a K-line download on stderr, shown once it spans several requests or waits."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream: TextIO = stream or sys.stderr
        self.shown: bool = False

    def __call__(self, progress: Progress) -> None:
        if progress.requests < 2 and not self.shown:
            return
        fraction = progress.fraction
        bar = f" [{'#' * int(fraction * 20):<20}] {fraction:4.0%}" if fraction is not None else ""
        self._write(
            f"{progress.symbol} {progress.period}: {progress.requests} requests, {progress.bars} bars{bar}"
        )

    def waiting(self, seconds: float, endpoint: str) -> None:
        if seconds >= 0.5:
            self._write(f"waiting {seconds:.1f} s for the plan's rate limit ({endpoint})")

    def _write(self, text: str) -> None:
        interactive = getattr(self.stream, "isatty", lambda: False)()
        self.stream.write(f"\r{text:<72}" if interactive else text + "\n")
        self.stream.flush()
        self.shown = True

    def finish(self) -> None:
        if self.shown and getattr(self.stream, "isatty", lambda: False)():
            self.stream.write("\n")
