"""The docs site (the README as the guide, the API reference from the docstrings) builds with
warnings as errors: a broken link, anchor or docstring fails here before it reaches the workflow."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_mkdocs_build_strict_gives_the_guide_and_the_api_reference(tmp_path):
    site = tmp_path / "site"
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)]

    result = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    )

    assert result.returncode == 0, result.stderr[-4000:]
    assert "alltick-bt demo" in (site / "index.html").read_text()
    store_page = (site / "api" / "store" / "index.html").read_text()
    assert "AllTickStore" in store_page and "ratelimit_timeout" in store_page
    assert not (site / "hooks.py").exists()
