"""Symbol normalisation: ``AAPL.US``, ``AAPL$US`` or ``("AAPL", region="US")`` -> one Instrument.

The canonical form (``Instrument.symbol``) is AllTick's code: ``AAPL.US``, ``700.HK``,
``600519.SH``, ``EURUSD``, ``BTCUSDT``, ``GOLD``.  Each wire dialect maps an
Instrument to its own codes and endpoint family.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import markets
from .errors import ConfigError, InvalidSymbol

STOCK_REGIONS = {
    "US": markets.US_STOCKS,
    "HK": markets.HK_STOCKS,
    "SH": markets.SH_STOCKS,
    "SZ": markets.SZ_STOCKS,
}
CURRENCIES = {
    "USD",
    "EUR",
    "JPY",
    "GBP",
    "CHF",
    "AUD",
    "NZD",
    "CAD",
    "CNH",
    "CNY",
    "HKD",
    "SGD",
    "SEK",
    "NOK",
    "DKK",
    "THB",
    "TWD",
    "RUB",
    "MXN",
    "ZAR",
    "TRY",
    "PLN",
    "KRW",
    "INR",
}
METALS = {"GOLD", "SILVER", "PALLADIUM", "PLATINUM"}
ENERGY = {"USOIL", "UKOIL", "NGAS", "COPPER", "ALUMINUM", "NICKEL", "LEAD", "ZINC"}
CFD_INDICES = {
    "US500",
    "NAS100",
    "US30",
    "UK100",
    "GER30",
    "FRA40",
    "JPN225",
    "HK50",
    "AUS200",
    "CHA50",
    "EUSTX50",
    "ND25",
    "SMI",
    "TWRIC",
    "SG20",
    "ESP35",
}
CRYPTO_QUOTES = ("USDT", "USDC", "BUSD")
# iTick regions for the non-stock asset classes (protocol/itick.md section 3).
NON_STOCK_REGIONS: dict[str, str | None] = {"GB": None, "BA": "crypto", "BT": "crypto", "PB": "crypto"}
# AllTick spells metals and energy in mixed case; case matters on the wire.
VENDOR_SPELLING = {
    "SILVER": "Silver",
    "PALLADIUM": "Palladium",
    "PLATINUM": "Platinum",
    "ALUMINUM": "Aluminum",
    "NICKEL": "Nickel",
    "LEAD": "Lead",
    "ZINC": "Zinc",
    # iTick's spot-metal codes name the same instruments as AllTick's GOLD and Silver
    # (alltick.md section 8); one canonical symbol keeps cache keys and records aligned.
    "XAUUSD": "GOLD",
    "XAGUSD": "Silver",
}

_MARKET_BY_ASSET = {
    "forex": markets.FOREX,
    "metal": markets.METALS,
    "energy": markets.METALS,
    "cfd": markets.CFD,
    "crypto": markets.CRYPTO,
}

# Codes AllTick's product list gives hours of their own (protocol/alltick.md "Trading-hours notes").
_MARKET_BY_CODE = {
    "UKOIL": markets.UKOIL,
    **dict.fromkeys(("COPPER", "ALUMINUM", "NICKEL", "LEAD", "ZINC"), markets.BASE_METALS),
    "AUS200": markets.AUS200,
}


@dataclass(frozen=True)
class Instrument:
    """A tradable symbol, normalised once.

    Example::

        parse_symbol("700.HK")          # Instrument(code='700', region='HK', asset='stock')
        parse_symbol("EURUSD$GB").symbol  # 'EURUSD'
    """

    code: str
    region: str
    asset: str  # stock, forex, metal, energy, cfd, crypto

    @property
    def symbol(self) -> str:
        return f"{self.code}.{self.region}" if self.asset == "stock" else self.code

    @property
    def is_stock(self) -> bool:
        return self.asset == "stock"

    @property
    def market(self) -> markets.Market:
        if self.asset == "stock":
            return STOCK_REGIONS[self.region]
        return _MARKET_BY_CODE.get(self.code.upper(), _MARKET_BY_ASSET[self.asset])

    def __str__(self) -> str:
        return self.symbol


def parse_symbol(dataname: str | Instrument, region: str | None = None) -> Instrument:
    """Normalise a user-written symbol; raise InvalidSymbol with the fix when it cannot be routed."""
    if isinstance(dataname, Instrument):
        return dataname
    if region is not None and not isinstance(region, str):
        raise ConfigError(f"region must be None or a region code such as 'US' or 'HK', was {region!r}")
    text = str(dataname).strip()
    if not text:
        raise InvalidSymbol(text, "is empty; write e.g. 'AAPL.US', 'EURUSD' or 'BTCUSDT'")
    code, suffix = _split(text)
    if region:
        if suffix and suffix.upper() != region.upper():
            raise InvalidSymbol(text, f"names region {suffix!r} but region={region!r} was passed")
        suffix = region
    suffix = suffix.upper() if suffix else ""
    if suffix in STOCK_REGIONS:
        if suffix == "HK" and code.isdigit():
            code = str(int(code))  # AllTick and iTick both drop HK leading zeros: 0700 -> 700
        return Instrument(code.upper() if not code.isdigit() else code, suffix, "stock")
    asset = _classify(code)
    if asset is None:
        if suffix and suffix not in NON_STOCK_REGIONS:
            raise InvalidSymbol(
                text,
                f"has region {suffix!r}; use one of {', '.join(sorted(STOCK_REGIONS))} for stocks "
                "or GB/BA for forex and crypto",
            )
        raise InvalidSymbol(text, f"has no region; write '{code}.US' (or .HK, .SH, .SZ) or pass region='US'")
    default_region = "BA" if asset == "crypto" else "GB"
    if suffix and suffix not in NON_STOCK_REGIONS:
        raise InvalidSymbol(text, f"is a {asset} code; its region must be {default_region}, was {suffix!r}")
    return Instrument(_vendor_case(code), suffix or default_region, asset)


def _split(text: str) -> tuple[str, str]:
    if "$" in text:
        code, _, suffix = text.partition("$")
        return code, suffix.split("$")[-1]
    head, dot, tail = text.rpartition(".")
    if dot and head and tail.upper() in STOCK_REGIONS:
        return head, tail
    return text, ""


def _classify(code: str) -> str | None:
    upper = code.upper()
    if upper in METALS or re.fullmatch(r"X(AU|AG)[A-Z]{3}", upper):
        return "metal"
    if upper in ENERGY:
        return "energy"
    if upper in CFD_INDICES:
        return "cfd"
    if upper.endswith(CRYPTO_QUOTES) and len(upper) > 4:
        return "crypto"
    if len(upper) == 6 and upper[:3] in CURRENCIES and upper[3:] in CURRENCIES:
        return "forex"
    return None


def _vendor_case(code: str) -> str:
    upper = code.upper()
    return VENDOR_SPELLING.get(upper, upper)
