"""``fetch_klines`` on many pages says it is working: a log line per page, ``on_progress``, a tqdm bar."""

from __future__ import annotations

import logging
import sys

import pytest

from backtrader_alltick.errors import ConfigError
from backtrader_alltick.history import Progress


def test_each_page_is_logged_at_info_and_passed_to_on_progress(alltick_sim, make_store, caplog):
    store = make_store(alltick_sim, cache=False)
    seen: list[Progress] = []

    with caplog.at_level(logging.INFO, logger="backtrader_alltick"):
        frame = store.fetch_klines("BTCUSDT", "1m", count=1200, on_progress=seen.append)

    assert len(frame) == 1200
    assert [p.requests for p in seen[:3]] == [1, 2, 3]  # 500 bars a request
    pages = [r.getMessage() for r in caplog.records if r.name == "backtrader_alltick.progress"]
    assert pages[0].startswith("BTCUSDT 1m: request 1, 500 bars so far") and len(pages) == len(seen)


def test_progress_true_draws_a_tqdm_bar_on_stderr(alltick_sim, make_store, capsys):
    pytest.importorskip("tqdm")
    store = make_store(alltick_sim, cache=False)

    store.fetch_klines("BTCUSDT", "1m", count=1200, progress=True)

    err = capsys.readouterr().err
    assert "BTCUSDT 1m" in err and "requests=" in err


def test_progress_true_without_tqdm_names_the_extra_before_any_request(alltick_sim, make_store, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm raises ImportError
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    store = make_store(alltick_sim, cache=False)

    with pytest.raises(ConfigError, match=r"pip install 'backtrader-alltick\[progress\]'"):
        store.fetch_klines("BTCUSDT", "1m", count=1200, progress=True)
    assert alltick_sim.counters["rest_requests"] == 0
