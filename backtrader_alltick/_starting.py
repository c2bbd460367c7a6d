"""Ctrl-C or SIGTERM while ``alltick-bt stream|record|sim|demo`` is still starting: stop with exit 0.

Python needs about a second to import pandas and Backtrader before the command installs its
own handlers (:class:`~backtrader_alltick.cli.stopping.StopSignals`).  A stop signal in that
second would end the process with 143 (SIGTERM, the default action) or a ``KeyboardInterrupt``
traceback, although nothing has started that needs finishing; systemd and Docker send SIGTERM
whenever they like.  The package's ``__init__`` imports this module first thing, which calls
:func:`guard_start`; it does something only in the process of one of those commands, never in
a program that imports the package.  No thread runs yet, so leaving by ``SystemExit`` from the
handler is safe here.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import PureWindowsPath
from types import FrameType

# The commands documented to stop with exit 0 on Ctrl-C or SIGTERM.
STOPPABLE = frozenset({"stream", "record", "sim", "demo"})
PROGRAM = "alltick-bt"
MODULE = "backtrader_alltick"


def guard_start(argv: list[str] | None = None) -> bool:
    """In an ``alltick-bt`` process running a stoppable command, exit 0 on SIGINT/SIGTERM until the
    command takes over; True if the handlers were installed."""
    argv = list(getattr(sys, "orig_argv", sys.argv)) if argv is None else argv
    if command_of(argv) not in STOPPABLE or threading.current_thread() is not threading.main_thread():
        return False
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _stop)
    return True


def command_of(argv: list[str]) -> str | None:
    """The subcommand of an ``alltick-bt ...`` or ``python -m backtrader_alltick ...`` command line."""
    rest = None
    for index, word in enumerate(argv):
        if word == "-m" and argv[index + 1 : index + 2] == [MODULE]:
            rest = argv[index + 2 :]
            break
        name = PureWindowsPath(word).name.lower()  # takes / and \ as separators
        if name in (PROGRAM, f"{PROGRAM}.exe", f"{PROGRAM}-script.py"):
            rest = argv[index + 1 :]
            break
    words = [word for word in rest or () if not word.startswith("-")]
    return words[0] if words else None


def _stop(signum: int, frame: FrameType | None) -> None:
    os.write(2, b"stopped while starting\n")
    raise SystemExit(0)


guard_start()
