"""AllTick's own wire format, the default dialect: ``query=`` JSON on REST, ``cmd_id`` frames on WebSocket.

Pure: builds :class:`~backtrader_alltick.wire.HttpRequest` values and text frames, and
turns decoded JSON and frame text into :mod:`~backtrader_alltick.records`; no I/O, no
clock.  Section numbers refer to ``shared/protocol/alltick.md``.  Where the
reference is UNCERTAIN every documented variant is accepted: numbers as strings or
numbers, seconds or milliseconds, bars in any order or repeated, the batch-kline
``kline_data`` shape.

This package is the dialect (``get_dialect("alltick")``); its modules are ``codes``
(wire codes, endpoint families, periods), ``rest`` (requests and answers), ``stream``
(WebSocket frames) and ``ticks`` (trade and book objects, the same on both).  The usage
example of either dialect is in :mod:`backtrader_alltick.wire`.
"""

from .codes import KLINE_TYPES, can_page_back, family, native_periods, wire_code
from .rest import (
    BATCH_KLINE_LIMIT,
    DEFAULT_REST_URL,
    KLINE_LIMIT,
    authorize,
    batch_kline_request,
    depth_request,
    error_for,
    kline_request,
    parse_batch_klines,
    parse_depth,
    parse_klines,
    parse_trades,
    request_groups,
    trades_request,
)
from .stream import DEFAULT_WS_URL, heartbeat_message, parse_frame, subscribe_messages, ws_connect

NAME = "alltick"

__all__ = [
    "NAME",
    "DEFAULT_REST_URL",
    "DEFAULT_WS_URL",
    "KLINE_LIMIT",
    "BATCH_KLINE_LIMIT",
    "KLINE_TYPES",
    "native_periods",
    "can_page_back",
    "family",
    "wire_code",
    "request_groups",
    "kline_request",
    "batch_kline_request",
    "trades_request",
    "depth_request",
    "authorize",
    "parse_klines",
    "parse_batch_klines",
    "parse_trades",
    "parse_depth",
    "error_for",
    "ws_connect",
    "subscribe_messages",
    "heartbeat_message",
    "parse_frame",
]
