"""Lenient decoding shared by both dialects: JSON text, vendor numbers and times, bar order.

Both references leave value types UNCERTAIN (strings or numbers, seconds or
milliseconds, bars in any order and repeated), so both parsers read values the same way.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from ..records import Kline, normalize_epoch_ms

try:  # orjson roughly halves the cost of the live hot path; json is the fallback.
    from orjson import loads
except ImportError:  # pragma: no cover - depends on the environment
    from json import loads

__all__ = ["loads", "dumps", "epoch_ms", "int_or_none", "float_or_none", "unique_bars", "clip"]


def dumps(obj: Any) -> str:
    """Return compact JSON, the form both vendors' examples use on the wire."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def epoch_ms(value: Any) -> int:
    """Return epoch ms from seconds or milliseconds, numbers or strings (fast for 13-digit ints)."""
    if type(value) is int and value >= 1_000_000_000_000:
        return value
    return normalize_epoch_ms(value)


def int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


def unique_bars(bars: Iterable[Kline]) -> list[Kline]:
    """Return bars sorted by start with one bar per start; a later repeat wins (it is the newer state)."""
    by_start = {bar.start: bar for bar in bars}
    return [by_start[start] for start in sorted(by_start)]


def clip(value: Any, limit: int = 200) -> str:
    """Return a short printable form of a payload for an error message."""
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
