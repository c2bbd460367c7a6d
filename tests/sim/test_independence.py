"""The simulator plays the service: it must not read the client's model of markets, hours or plans.

A wrong assumption made twice agrees with itself, so every module under ``backtrader_alltick/sim``
is checked with ``ast``: no import of the client's ``markets``, ``calendars``, ``plans``,
``timeframes``, ``bars`` or ``sessions`` (relative or absolute, constants included), and no
``.market`` attribute (``Instrument.market`` is the client's calendar).
"""

from __future__ import annotations

import ast
from pathlib import Path

import backtrader_alltick.sim as sim_package

SIM_DIR = Path(sim_package.__file__).parent
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


def test_no_sim_module_reads_the_clients_market_model():
    files = sorted(SIM_DIR.glob("*.py"))

    problems = [problem for path in files for problem in violations(path)]

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
