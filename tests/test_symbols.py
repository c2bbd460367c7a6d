import pytest

from backtrader_alltick.errors import ConfigError, InvalidSymbol
from backtrader_alltick.symbols import parse_symbol


@pytest.mark.parametrize(
    ("text", "region", "symbol", "asset", "code", "wire_region"),
    [
        ("AAPL.US", None, "AAPL.US", "stock", "AAPL", "US"),
        ("AAPL$US", None, "AAPL.US", "stock", "AAPL", "US"),
        ("AAPL", "US", "AAPL.US", "stock", "AAPL", "US"),
        ("0700.HK", None, "700.HK", "stock", "700", "HK"),
        ("600519.SH", None, "600519.SH", "stock", "600519", "SH"),
        ("EURUSD", None, "EURUSD", "forex", "EURUSD", "GB"),
        ("EURUSD$GB", None, "EURUSD", "forex", "EURUSD", "GB"),
        ("BTCUSDT$BA", None, "BTCUSDT", "crypto", "BTCUSDT", "BA"),
        ("GOLD", None, "GOLD", "metal", "GOLD", "GB"),
        ("silver", None, "Silver", "metal", "Silver", "GB"),
        ("US500", None, "US500", "cfd", "US500", "GB"),
    ],
)
def test_parse_symbol_accepts_every_documented_spelling(text, region, symbol, asset, code, wire_region):
    inst = parse_symbol(text, region)

    assert (inst.symbol, inst.asset, inst.code, inst.region) == (symbol, asset, code, wire_region)


def test_parse_symbol_without_region_names_the_fix():
    with pytest.raises(InvalidSymbol) as info:
        parse_symbol("AAPL")

    assert str(info.value) == (
        "symbol 'AAPL' has no region; write 'AAPL.US' (or .HK, .SH, .SZ) or pass region='US'"
    )


def test_parse_symbol_conflicting_region_is_rejected():
    with pytest.raises(InvalidSymbol, match="names region 'US' but region='HK'"):
        parse_symbol("AAPL.US", region="HK")


@pytest.mark.parametrize("region", [5, b"US", ["US"]])
def test_a_region_that_is_not_a_string_is_a_config_error_naming_it(region):
    with pytest.raises(ConfigError, match=r"^region must be .*, was "):
        parse_symbol("AAPL", region)
