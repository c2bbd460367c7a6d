"""How AllTick names things: wire codes, endpoint families and their paths, K-line periods, ret codes.

Shared by the REST requests (:mod:`.rest`) and the WebSocket frames (:mod:`.stream`).
Section numbers refer to ``shared/protocol/alltick.md``.
"""

from __future__ import annotations

from functools import lru_cache

from ...errors import InvalidSymbol
from ...symbols import STOCK_REGIONS, Instrument, parse_symbol

# kline_type codes (section 4.1); 2h and 4h are not served for stocks.
KLINE_TYPES = {"1m": 1, "5m": 2, "15m": 3, "30m": 4, "1h": 5, "2h": 6, "4h": 7, "1d": 8, "1w": 9, "1M": 10}
_STOCK_PERIODS = tuple(name for name in KLINE_TYPES if name not in ("2h", "4h"))
REST_BASE = {"stock": "/quote-stock-b-api", "other": "/quote-b-api"}
WS_PATH = {"stock": "/quote-stock-b-ws-api", "other": "/quote-b-ws-api"}
# iTick's spot-metal spellings; AllTick only knows GOLD and Silver (section 8).
_CODE_ALIASES = {"XAUUSD": "GOLD", "XAGUSD": "Silver"}
FATAL_RET = 606  # "connection will be closed" (section 7); REST answers it as a rate limit


def native_periods(inst: Instrument | str) -> tuple[str, ...]:
    """Return the period names AllTick serves as K-lines for this instrument."""
    return _STOCK_PERIODS if parse_symbol(inst).is_stock else tuple(KLINE_TYPES)


def can_page_back(inst: Instrument | str) -> bool:
    """Return True when K-line requests accept an end time (non-stock codes only, section 4.1)."""
    return not parse_symbol(inst).is_stock


def family(inst: Instrument | str) -> str:
    """Return ``"stock"`` (stocks and exchange indices) or ``"other"`` (forex, metals, crypto, CFDs)."""
    return "stock" if parse_symbol(inst).is_stock else "other"


def wire_code(inst: Instrument | str) -> str:
    """Return the code as AllTick spells it: ``AAPL.US``, ``700.HK``, ``EURUSD``, ``GOLD``."""
    inst = parse_symbol(inst)
    return inst.symbol if inst.is_stock else _CODE_ALIASES.get(inst.code.upper(), inst.code)


@lru_cache(maxsize=4096)
def symbol_of(code: str) -> str:
    """Return the canonical symbol of a code AllTick sent (``700.HK`` for ``HK-700``), or the code."""
    region, dash, number = code.partition("-")
    if dash and region in STOCK_REGIONS:
        code = f"{number}.{region}"  # the old "HK-1288" style of a doc example (section 9.6)
    try:
        return parse_symbol(code).symbol
    except InvalidSymbol:
        return code  # a code our classifier does not know still reaches the caller as sent
