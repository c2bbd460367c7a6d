"""Retry pacing shared by the sinks and sources: exponential backoff with jitter, and URL redaction."""

from __future__ import annotations

import random
from collections.abc import Iterator
from urllib.parse import urlsplit

from ..errors import ConfigError, redact


def backoff(initial: float, cap: float, factor: float = 2.0) -> Iterator[float]:
    """Yield wait times that grow from ``initial`` by ``factor`` up to ``cap``, forever.

    Each delay is jittered down by up to a quarter so that several clients that lost
    the same server do not all come back at the same instant.
    """
    if initial <= 0 or cap < initial:
        raise ConfigError(f"backoff needs 0 < initial <= cap, was initial={initial!r}, cap={cap!r}")
    delay = initial
    while True:
        yield delay * random.uniform(0.75, 1.0)
        delay = min(cap, delay * factor)


def safe_url(url: str) -> str:
    """Return ``url`` with any password in it masked, fit for messages and logs."""
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    return redact(url, password)
