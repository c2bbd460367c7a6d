import json
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent.parent / "data"


@pytest.fixture
def text():
    """Return the raw text of a documented payload: ``text("alltick", "ws_22998.json")``."""
    return lambda dialect, name: (DATA / dialect / name).read_text(encoding="utf-8")


@pytest.fixture
def payload(text):
    """Return a documented payload decoded as JSON: ``payload("itick", "rest_kline_forex.json")``."""
    return lambda dialect, name: json.loads(text(dialect, name))
