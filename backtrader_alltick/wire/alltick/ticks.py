"""AllTick's trade and book objects: the same JSON in ``/trade-tick``/``/depth-tick`` rows and in pushes.

Section numbers refer to ``shared/protocol/alltick.md``.
"""

from __future__ import annotations

from typing import Any

from ...errors import ProtocolError
from ...records import Depth, Tick
from .._decode import MALFORMED, amount, clip, price, stamp
from .codes import symbol_of


def read_tick(data: dict[str, Any], kind: str) -> Tick:
    """Return the trade of a tick row or push; raise ProtocolError naming ``kind`` if it cannot be true."""
    try:
        seq = data.get("seq")
        return Tick(
            symbol_of(data["code"]),
            stamp(data["tick_time"], "tick_time"),
            price(data["price"], "price"),
            amount(data.get("volume"), "volume"),
            amount(data.get("turnover"), "turnover"),
            None if seq is None else int(seq),
            int(data.get("trade_direction") or 0),
        )
    except MALFORMED as e:
        raise ProtocolError(
            f"AllTick sent a malformed {kind} trade ({type(e).__name__}: {e}), "
            f"was {clip(data)}; it is skipped"
        ) from None


def read_depth(data: dict[str, Any], kind: str) -> Depth:
    """Return the book of a depth row or push, levels in the vendor's order; ProtocolError if malformed."""
    try:
        return Depth(
            symbol_of(data["code"]),
            stamp(data["tick_time"], "tick_time"),
            tuple(
                (price(level["price"], "price"), amount(level.get("volume"), "volume"))
                for level in data.get("bids") or ()
            ),
            tuple(
                (price(level["price"], "price"), amount(level.get("volume"), "volume"))
                for level in data.get("asks") or ()
            ),
        )
    except MALFORMED as e:
        raise ProtocolError(
            f"AllTick sent a malformed {kind} book ({type(e).__name__}: {e}), was {clip(data)}; it is skipped"
        ) from None
