"""The text of the simulated AllTick server's answers, shared by its REST replies and WebSocket frames.

Numbers are written the way the docs print them (``shared/protocol/alltick.md``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

MESSAGES = {
    200: "ok",
    400: "request data param invalid",
    401: "token invalid",
    402: "query invalid",
    429: "Too Many Requests",
    600: "code invalid",
    601: "body empty",
    603: "token level not enough",
    604: "code unauthorized",
    605: "too many requests",
    606: "too many requests and connection will be closed",
}
HEADER_INVALID = "request header param invalid"


def json_bytes(payload: Any) -> bytes:
    """Compact JSON, as the docs' examples are."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def book_levels(levels: Iterable[tuple[float, float]], size_decimals: int) -> list[dict[str, str]]:
    """Book levels as ``{"price", "volume"}`` objects."""
    # Book sizes with fixed decimals, at least two, as the docs print them ("100000.00").
    places = max(2, size_decimals)
    return [{"price": repr(price), "volume": f"{volume:.{places}f}"} for price, volume in levels]


def decimal_text(value: float, places: int) -> str:
    """Plain decimal text as the docs print volumes and turnover ("300", "12345.6", "0"): no float
    artefacts such as 3256.4700000000003, no exponent such as 1e-05."""
    text = f"{value:.{places}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text
