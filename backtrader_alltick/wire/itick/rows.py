"""iTick's record objects: the same JSON for bars, trades, quotes and books in REST answers and pushes.

Section numbers refer to ``shared/protocol/itick.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ... import markets
from ...errors import ProtocolError
from ...records import Depth, Kline, Quote, Tick
from .._decode import MALFORMED, amount, checked_kline, clip, float_or_none, price, stamp

# iTick's SDK types say d: 1 sell, 2 buy (UNCERTAIN, section 4.1); records use AllTick's 1 buy, 2 sell.
_DIRECTION: dict[Any, int] = {1: 2, 2: 1}  # keyed by whatever JSON value ``d`` holds
# Stock ticks' te: 0 regular, 1 pre-market, 2 after-hours (section 4.1); anything else is not known.
_SESSIONS = (0, 1, 2)


def read_kline(row: dict[str, Any], symbol: str, period: str, market: markets.Market, kind: str) -> Kline:
    """Return the bar of a K-line row or push; raise ProtocolError naming ``kind`` if it cannot be true."""
    try:
        return checked_kline(row, ("t", "o", "h", "l", "c", "v", "tu"), symbol, period, market)
    except MALFORMED as e:
        raise ProtocolError(
            f"iTick sent a malformed {kind} for {symbol} ({type(e).__name__}: {e}), was {clip(row)}"
        ) from None


def read_tick(data: dict[str, Any], symbol: str) -> Tick:
    """Return the trade of a tick object (``d`` turned into AllTick's 1 buy, 2 sell, ``te`` kept as
    ``session`` where it is one of the documented values)."""
    session = data.get("te")
    try:
        return Tick(
            symbol,
            stamp(data["t"], "t"),
            price(data["ld"], "ld"),
            amount(data.get("v"), "v"),
            amount(data.get("tu"), "tu"),
            None,
            _DIRECTION.get(data.get("d"), 0),
            session if session in _SESSIONS and not isinstance(session, bool) else None,
        )
    except MALFORMED as e:
        raise ProtocolError(
            f"iTick sent a malformed tick for {symbol} ({type(e).__name__}: {e}), "
            f"was {clip(data)}; it is skipped"
        ) from None


def read_quote(data: dict[str, Any], symbol: str) -> Quote:
    """Return the quote of a quote object; raise ProtocolError if it cannot be true."""
    try:
        return Quote(
            symbol,
            stamp(data["t"], "t"),
            price(data["ld"], "ld"),
            float_or_none(data.get("o")),
            float_or_none(data.get("h")),
            float_or_none(data.get("l")),
            float_or_none(data.get("v")),
            float_or_none(data.get("tu")),
            float_or_none(data.get("p")),
        )
    except MALFORMED as e:
        raise ProtocolError(
            f"iTick sent a malformed quote for {symbol} ({type(e).__name__}: {e}), "
            f"was {clip(data)}; it is skipped"
        ) from None


def read_depth(data: dict[str, Any], symbol: str) -> Depth:
    """Return the book of a depth object, best level first (``po`` 1)."""
    # Depth carries no time in the docs' examples (section 8.4): 0 means "not given".
    try:
        time = stamp(data["t"], "t") if data.get("t") is not None else 0
        return Depth(symbol, time, _levels(data.get("b")), _levels(data.get("a")))
    except MALFORMED as e:
        raise ProtocolError(
            f"iTick sent a malformed book for {symbol} ({type(e).__name__}: {e}), "
            f"was {clip(data)}; it is skipped"
        ) from None


def _levels(side: Sequence[dict[str, Any]] | None) -> tuple[tuple[float, float], ...]:
    ordered = sorted(side or (), key=lambda level: int(level.get("po") or 0))
    return tuple((price(level["p"], "p"), amount(level.get("v"), "v")) for level in ordered)
