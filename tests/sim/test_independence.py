"""The simulator plays the service: it must not read the client's model of markets, hours or plans.

A wrong assumption made twice agrees with itself, so every module under ``backtrader_alltick/sim``
is checked with ``ast``: no import of the client's ``markets``, ``calendars``, ``plans``,
``timeframes``, ``bars`` or ``sessions`` (relative or absolute, constants included), and no
``.market`` attribute (``Instrument.market`` is the client's calendar).  What it imports from the
rest of the package is looked up too: no class, function, table or constant of the client's
model may come in through another module that re-exports it.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
from pathlib import Path

import backtrader_alltick.sim as sim_package

SIM_DIR = Path(sim_package.__file__).parent
SIM_DIR_PACKAGE = sim_package.__name__
CLIENT_MODEL = {"markets", "calendars", "plans", "timeframes", "bars", "sessions"}


def violations(path: Path) -> list[str]:
    """Every forbidden import or ``.market`` use in ``path``, as ``file:line: what``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            names = [module] if module else []
            if node.level > 0 or module in ("backtrader_alltick", ""):
                # "from .. import markets" and "from backtrader_alltick import plans" name the module here
                names += [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[-1] in CLIENT_MODEL or (
                parts[0] == "backtrader_alltick" and len(parts) > 1 and parts[1] in CLIENT_MODEL
            ):
                found.append(f"{path.name}:{node.lineno}: imports {name}")
        if isinstance(node, ast.Attribute) and node.attr == "market":
            found.append(f"{path.name}:{node.lineno}: uses .market")
    return found


def _model_module(name: str) -> bool:
    parts = name.split(".")
    return len(parts) > 1 and parts[0] == "backtrader_alltick" and parts[1] in CLIENT_MODEL


def _from_the_model(value: object) -> bool:
    """Whether ``value`` is a class, function, table, instance or constant of the client's model."""
    if isinstance(value, type) or callable(value):
        return _model_module(getattr(value, "__module__", "") or "")
    if isinstance(value, dict):
        return any(_from_the_model(item) for item in value.values())
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(_from_the_model(item) for item in value)
    if value is None or isinstance(value, (bool, str)) or (isinstance(value, int) and -5 <= value <= 256):
        return False  # shared by every module that names them: no trace of where they came from
    if _model_module(type(value).__module__):
        return True
    # A constant is the same object wherever it is re-exported.
    return any(
        value is held
        for name in CLIENT_MODEL
        for held in vars(importlib.import_module(f"backtrader_alltick.{name}")).values()
    )


def reexports(path: Path, package: str = SIM_DIR_PACKAGE) -> list[str]:
    """Every name ``path`` imports from the package outside ``sim`` that belongs to the client's model."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom) or not (node.level or node.module):
            continue
        module = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
        if not module.startswith("backtrader_alltick") or module.startswith(SIM_DIR_PACKAGE):
            continue
        source = importlib.import_module(module)
        for alias in node.names:
            value = getattr(source, alias.name, None)
            if value is not None and _from_the_model(value):
                found.append(f"{path.name}:{node.lineno}: {alias.name} from {module} is the client's model")
    return found


def test_no_sim_module_reads_the_clients_market_model():
    files = sorted(SIM_DIR.glob("*.py"))

    problems = [problem for path in files for problem in violations(path) + reexports(path)]

    assert len(files) > 10  # the check really looked at the package
    assert problems == []


def test_the_check_finds_each_kind_of_violation(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from ..markets import DAY_MS\nfrom .. import plans\n"
        "import backtrader_alltick.timeframes\nfrom backtrader_alltick import calendars\n"
        "from ..sessions import x\n"
        "from backtrader_alltick.bars import y\nzone = instrument.market.zone\n"
        "from ..symbols import parse_symbol\nfrom .grid import DAY_MS\n"
    )

    assert violations(sample) == [
        "sample.py:1: imports markets",
        "sample.py:2: imports plans",
        "sample.py:3: imports backtrader_alltick.timeframes",
        "sample.py:4: imports calendars",
        "sample.py:5: imports sessions",
        "sample.py:6: imports backtrader_alltick.bars",
        "sample.py:7: uses .market",
    ]


def test_the_check_finds_the_model_re_exported_by_another_module(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from ..symbols import STOCK_REGIONS, parse_symbol\n"  # a table of the client's markets
        "from ..param_checks import END_OF_DAY\n"  # a constant of the client's timeframes
        "from ..feed import BarSpec\n"  # a class of the client's timeframes
        "from ..sources.stream_notes import MINUTE_MS\n"  # a constant of the client's markets, re-exported
        "from ..records import Kline\n"
    )

    assert reexports(sample) == [
        "sample.py:1: STOCK_REGIONS from backtrader_alltick.symbols is the client's model",
        "sample.py:2: END_OF_DAY from backtrader_alltick.param_checks is the client's model",
        "sample.py:3: BarSpec from backtrader_alltick.feed is the client's model",
        "sample.py:4: MINUTE_MS from backtrader_alltick.sources.stream_notes is the client's model",
    ]
