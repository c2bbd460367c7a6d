"""Both dialects honour the contract table of wire/__init__.py and stay pure."""

import ast
import inspect
import re
from pathlib import Path

import pytest

from backtrader_alltick import wire
from backtrader_alltick.errors import ConfigError
from backtrader_alltick.symbols import parse_symbol
from backtrader_alltick.wire import alltick, itick

WIRE_DIR = Path(wire.__file__).resolve().parent
FORBIDDEN = {"socket", "requests", "websocket", "sqlite3", "threading", "time", "queue", "asyncio", "urllib3"}


def table_rows():
    """Return (name, required) for every row of the contract table in wire/__init__.py."""
    rows = re.findall(r"^``(\w+)(?:\([^`]*\))?``\s+(yes|no)\s", wire.__doc__, re.M)
    assert len(rows) > 15
    return [(name, required == "yes") for name, required in rows]


@pytest.mark.parametrize("module", [alltick, itick], ids=["alltick", "itick"])
def test_dialect_exports_every_required_name_of_the_table(module):
    missing = [name for name, required in table_rows() if required and not hasattr(module, name)]

    assert missing == []


def test_itick_also_exports_the_optional_quote_functions():
    optional = [name for name, required in table_rows() if not required]

    assert optional and all(hasattr(itick, name) for name in optional)


@pytest.mark.parametrize(
    "name",
    [
        "kline_request",
        "trades_request",
        "depth_request",
        "authorize",
        "parse_klines",
        "parse_trades",
        "parse_depth",
        "ws_connect",
        "subscribe_messages",
        "heartbeat_message",
        "parse_frame",
        "error_for",
        "request_groups",
        "native_periods",
        "can_page_back",
        "family",
        "wire_code",
    ],
)
def test_both_dialects_share_each_signature_prefix(name):
    first = list(inspect.signature(getattr(alltick, name)).parameters)
    second = list(inspect.signature(getattr(itick, name)).parameters)
    shared = min(len(first), len(second))

    assert first[:shared] == second[:shared]


def test_dialect_constants():
    assert (alltick.NAME, itick.NAME) == ("alltick", "itick")
    assert alltick.KLINE_LIMIT == itick.KLINE_LIMIT == 500
    assert alltick.DEFAULT_REST_URL == "https://quote.alltick.co"
    assert itick.DEFAULT_WS_URL == "wss://api.itick.org"


def test_get_dialect_returns_the_modules_and_names_the_choices():
    assert (wire.get_dialect("alltick"), wire.get_dialect("itick")) == (alltick, itick)
    with pytest.raises(ConfigError, match="dialect must be one of alltick, itick, was 'polygon'"):
        wire.get_dialect("polygon")


@pytest.mark.parametrize(
    "path", sorted(WIRE_DIR.rglob("*.py")), ids=lambda p: p.relative_to(WIRE_DIR).as_posix()
)
def test_wire_modules_import_no_io_or_clock(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            imported.add(node.module.split(".")[0])

    assert imported & FORBIDDEN == set()


@pytest.mark.parametrize(
    "symbol", ["XAUUSD", "GOLD", "XAGUSD", "Silver", "EURUSD$GB", "BTCUSDT$BA", "0700.HK"]
)
def test_both_dialects_read_back_the_canonical_symbol_of_what_they_send(symbol):
    inst = parse_symbol(symbol)

    assert parse_symbol(alltick.wire_code(inst)).symbol == inst.symbol
    assert parse_symbol(itick.ws_symbol(inst)).symbol == inst.symbol
