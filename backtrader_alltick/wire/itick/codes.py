"""How iTick names things: REST codes and ``CODE$REGION`` socket symbols, asset paths, kTypes.

Shared by the REST requests (:mod:`.rest`) and the WebSocket frames (:mod:`.stream`).
Section numbers refer to ``shared/protocol/itick.md``.  kType 3 is 15 minutes in the
current docs but 10 minutes in the 2024 ones, and a response cannot tell which the
server meant, so ``15m`` is not native here: the caller builds it from ``5m`` (section 5.1).
"""

from __future__ import annotations

from functools import lru_cache

from ... import markets
from ...errors import ConfigError, InvalidSymbol
from ...symbols import NON_STOCK_REGIONS, STOCK_REGIONS, Instrument, parse_symbol

# kType codes (section 5.1) without the ambiguous 3; 2h and 4h are crypto only.
KTYPES = {"1m": 1, "5m": 2, "30m": 4, "1h": 5, "2h": 6, "4h": 7, "1d": 8, "1w": 9, "1M": 10}
PERIOD_OF_KTYPE = {number: name for name, number in KTYPES.items()}
_CRYPTO_ONLY = ("2h", "4h")
FAMILIES = ("stock", "forex", "indices", "crypto")
# Asset path per asset class (sections 3, 7.1); energy sits with forex and metals (INFERRED).
FAMILY_OF_ASSET = {
    "stock": "stock",
    "forex": "forex",
    "metal": "forex",
    "energy": "forex",
    "cfd": "indices",
    "crypto": "crypto",
}
_CODE_ALIASES = {"GOLD": "XAUUSD", "SILVER": "XAGUSD"}  # AllTick's names for iTick's spot metals


def native_periods(inst: Instrument | str) -> tuple[str, ...]:
    """Return the period names iTick serves as K-lines for this instrument (never ``15m``)."""
    crypto = parse_symbol(inst).asset == "crypto"
    return tuple(name for name in KTYPES if crypto or name not in _CRYPTO_ONLY)


def can_page_back(inst: Instrument | str) -> bool:
    """Return True: every iTick K-line request accepts an end time ``et`` (section 5.3)."""
    return True


def family(inst: Instrument | str) -> str:
    """Return the asset path that serves the instrument: ``stock``, ``forex``, ``indices`` or ``crypto``."""
    return FAMILY_OF_ASSET[parse_symbol(inst).asset]


def wire_code(inst: Instrument | str) -> str:
    """Return the bare code as iTick spells it on REST: ``AAPL``, ``700``, ``EURUSD``, ``XAUUSD``."""
    inst = parse_symbol(inst)
    return inst.code if inst.is_stock else _CODE_ALIASES.get(inst.code.upper(), inst.code.upper())


def ws_symbol(inst: Instrument | str) -> str:
    """Return the WebSocket spelling ``CODE$REGION``: ``AAPL$US``, ``EURUSD$GB``, ``BTCUSDT$BA``."""
    inst = parse_symbol(inst)
    return f"{wire_code(inst)}${inst.region}"


def check_family(name: str) -> None:
    """Raise ConfigError unless ``name`` is one of iTick's asset paths."""
    if name not in FAMILIES:
        raise ConfigError(f"family must be one of {', '.join(FAMILIES)}, was {name!r}")


@lru_cache(maxsize=4096)
def symbol_and_market(raw: str, region: str | None) -> tuple[str, markets.Market]:
    """Return the canonical symbol and market of a symbol iTick sent, with its region ``r`` if any."""
    # Section 8.4: strip "$..." or ".XX" to get the code, region from "r" or the suffix.
    code, suffix = raw, None
    head, dot, tail = raw.rpartition(".")
    if "$" in raw:
        code, _, rest = raw.partition("$")
        suffix = rest.split("$")[-1]
    elif dot and tail.upper() in STOCK_REGIONS:
        code, suffix = head, tail  # the 2024 "AAPL.US" style
    else:
        head, underscore, tail = raw.partition("_")
        if underscore and head in NON_STOCK_REGIONS:
            code, suffix = tail.replace("_", ""), head  # 2024's "BA_BTC_USDT" (section 6)
    try:
        inst = parse_symbol(code, region or suffix or None)
    except InvalidSymbol:
        return code, markets.CRYPTO  # unknown to our classifier: keep the code, plain UTC calendar
    return inst.symbol, inst.market
