"""iTick's wire format, the seed article's dialect: ``/stock/kline?region=&code=&kType=``, ``ac`` frames.

Pure: builds :class:`~backtrader_alltick.wire.HttpRequest` values and text frames, and
turns decoded JSON and frame text into :mod:`~backtrader_alltick.records`; no I/O, no
clock.  Section numbers refer to ``shared/protocol/itick.md``.  Where the
reference is UNCERTAIN every documented variant is accepted: symbols as ``EURUSD``,
``EURUSD$GB``, ``AAPL.US`` or ``BA_BTC_USDT``; ``data`` as null, an object, a list or a
map keyed by code; the flat ``kline@N`` push and the legacy nested ``k`` one.

kType 3 is 15 minutes in the current docs but 10 minutes in the 2024 ones, and a
response cannot tell which the server meant, so ``15m`` is not native here: the caller
builds it from ``5m`` (section 5.1).

This package is the dialect (``get_dialect("itick")``); its modules are ``codes``
(codes, socket symbols, asset paths, kTypes), ``rest`` (requests and answers),
``stream`` (WebSocket frames) and ``rows`` (record objects, the same on both).  The usage
example of either dialect is in :mod:`backtrader_alltick.wire`.
"""

from .codes import FAMILIES, KTYPES, can_page_back, family, native_periods, wire_code, ws_symbol
from .rest import (
    DEFAULT_REST_URL,
    KLINE_LIMIT,
    authorize,
    depth_request,
    error_for,
    kline_request,
    parse_depth,
    parse_klines,
    parse_quotes,
    parse_trades,
    quote_request,
    request_groups,
    trades_request,
)
from .stream import DEFAULT_WS_URL, heartbeat_message, parse_frame, subscribe_messages, ws_connect

NAME = "itick"

__all__ = [
    "NAME",
    "DEFAULT_REST_URL",
    "DEFAULT_WS_URL",
    "KLINE_LIMIT",
    "KTYPES",
    "FAMILIES",
    "native_periods",
    "can_page_back",
    "family",
    "wire_code",
    "ws_symbol",
    "request_groups",
    "kline_request",
    "trades_request",
    "quote_request",
    "depth_request",
    "authorize",
    "parse_klines",
    "parse_trades",
    "parse_quotes",
    "parse_depth",
    "error_for",
    "ws_connect",
    "subscribe_messages",
    "heartbeat_message",
    "parse_frame",
]
