"""Retry pacing for every reconnect and retry of the package: exponential backoff with one jitter rule.

The rule: the n-th delay is ``initial * factor ** (n - 1)``, capped at ``cap``, then drawn
uniformly from ``[(1 - jitter) * delay, delay]``.  Jitter only shortens a delay, so ``cap`` is
a true ceiling; it spreads the retries of many clients that lost the same server (RFC 6455
section 7.2.3).  Each layer has one retry loop and picks its own numbers: REST requests
(``rest.py``) jitter by half, the stream's reconnects (``stream_link.py``) by a fifth, the
sinks' writes (``sinks/buffer.py``) and the Redis reader's reads (``transport/redis_reader.py``)
by a quarter.  Nothing retries around them: a failure that outlasts a layer's loop is final for
that layer.  A live feed then asks again later, as it reconnects a dropped socket
(``sources/stream.py``): its bars wait, CONNBROKEN, instead of the feed ending.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from ..errors import ConfigError

SINK_JITTER = 0.25  # the sinks' own; every other user passes its jitter


def backoff_delay(
    attempt: int,
    initial: float,
    cap: float,
    *,
    jitter: float,
    factor: float = 2.0,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based).

    Example::

        backoff_delay(3, 0.5, 30.0, jitter=0.0)   # 2.0
    """
    try:
        delay = min(cap, initial * factor ** max(0, attempt - 1))
    except OverflowError:  # a stream that has retried for days: the cap was reached long ago
        delay = cap
    if not jitter:
        return delay
    return delay * (1.0 - jitter * (rng or random).random())


def backoff(
    initial: float,
    cap: float,
    *,
    factor: float = 2.0,
    jitter: float = SINK_JITTER,
    rng: random.Random | None = None,
) -> Iterator[float]:
    """Check the numbers now and return the endless delays :func:`backoff_delay` gives for 1, 2, 3, ...

    Raises ConfigError unless ``0 < initial <= cap``, ``factor >= 1`` and ``0 <= jitter < 1``.

    Example::

        delays = backoff(1.0, 60.0, jitter=0.2)
        stop.wait(next(delays))   # 0.8 to 1.0 s, then 1.6 to 2.0 s, ...
    """
    if not 0 < initial <= cap:
        raise ConfigError(f"backoff needs 0 < initial <= cap, was initial={initial!r}, cap={cap!r}")
    if not factor >= 1:
        raise ConfigError(f"backoff factor must be 1 or more, was {factor!r}")
    if not 0 <= jitter < 1:
        raise ConfigError(f"backoff jitter must be a fraction from 0 to below 1, was {jitter!r}")
    return _delays(initial, cap, factor, jitter, rng)


def _delays(
    initial: float, cap: float, factor: float, jitter: float, rng: random.Random | None
) -> Iterator[float]:
    attempt = 0
    while True:
        attempt += 1
        yield backoff_delay(attempt, initial, cap, factor=factor, jitter=jitter, rng=rng)
