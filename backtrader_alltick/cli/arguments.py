"""argparse types of ``alltick-bt``: a bad value is a usage error (exit 2) naming the option, before any work.

Each function takes the text as typed and returns the value or raises ``ArgumentTypeError``,
which argparse turns into ``alltick-bt CMD: error: argument --opt: <message>``.  Nothing is
guessed: a symbol with a stray space or line break, an empty symbol or a URL that cannot be
parsed is refused rather than quietly changed or replaced by a default.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

# Formats every matplotlib backend writes; the chart's format follows the file's suffix.
CHART_SUFFIXES = (".png", ".svg", ".pdf", ".jpg", ".jpeg")


def symbol(text: str) -> str:
    """One symbol as typed, e.g. ``AAPL.US``: not empty, no spaces, line breaks or control characters."""
    if not text:
        raise argparse.ArgumentTypeError("must be a symbol such as AAPL.US, EURUSD or BTCUSDT, was ''")
    if any(char.isspace() or not char.isprintable() for char in text):
        raise argparse.ArgumentTypeError(f"must be a symbol such as AAPL.US without spaces or line breaks, "
                                         f"was {text!r}")
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
            raise argparse.ArgumentTypeError(f"must be a {' or '.join(s + '://' for s in schemes)} URL such "
                                             f"as {example}, was {text!r}")
        return text

    url.__name__ = "URL"  # argparse names the type in some messages
    return url


def chart_file(text: str) -> str:
    """An image file to write, ``.png``, ``.svg``, ``.pdf`` or ``.jpg``, in a folder that exists."""
    path = Path(text)
    if path.suffix.lower() not in CHART_SUFFIXES:
        raise argparse.ArgumentTypeError(f"must be an image file ending in {', '.join(CHART_SUFFIXES)}, "
                                         f"was {text!r}")
    if not path.resolve().parent.is_dir():
        raise argparse.ArgumentTypeError(f"must be in an existing folder, was {text!r}")
    return text


def port(text: str) -> int:
    """A TCP port to bind, 0 (any free port) to 65535."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port from 0 (any free one) to 65535, was {text!r}")
    return value
