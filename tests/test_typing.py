"""The package type-checks as a user's checker sees it: mypy clean at the project's settings, and
pyright's ``--verifytypes`` finds at least 95 % of the public symbols' types known.

Both checkers come with the ``typecheck`` extra (``pip install -e '.[typecheck]'``); without
them the tests are skipped.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MIN_KNOWN = 0.95


@pytest.mark.skipif(
    importlib.util.find_spec("mypy") is None, reason="mypy is not installed (extra: typecheck)"
)
def test_mypy_finds_no_error_at_the_projects_settings():
    # From the root, so pyproject.toml's [tool.mypy] applies, on this tree's package.
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "backtrader_alltick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("Success: no issues found")


@pytest.mark.skipif(shutil.which("pyright") is None, reason="pyright is not installed (extra: typecheck)")
def test_pyright_knows_the_types_of_the_public_symbols():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        ["pyright", "--verifytypes", "backtrader_alltick", "--ignoreexternal", "--outputjson"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    # Its exit status is 1 below 100 %: the score is the verdict.
    report = json.loads(result.stdout)
    completeness = report["typeCompleteness"]
    assert Path(completeness["packageRootDirectory"]).resolve() == (ROOT / "backtrader_alltick").resolve()
    score = completeness["completenessScore"]
    unknown = [symbol["name"] for symbol in completeness["symbols"] if not symbol["isTypeKnown"]]
    assert score >= MIN_KNOWN, f"{score:.1%} known; not known: {unknown}"
