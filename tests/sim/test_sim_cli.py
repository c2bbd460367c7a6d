"""``alltick-bt sim``: one JSON line on stdout, then serve until SIGTERM (exit 0)."""

from __future__ import annotations

import json

import pytest
import requests
from simprocess import serving

from backtrader_alltick import cli


def test_sim_prints_its_urls_then_exits_0_on_sigterm():
    with serving(
        "--dialect", "itick", "--speed", "120", "--symbols", "AAPL.US,BTCUSDT", "--token", "cli-token"
    ) as (line, exit_code):
        reply = requests.get(
            line["rest_url"] + "/stock/tick",
            params={"region": "US", "code": "AAPL"},
            headers={"token": line["token"]},
            timeout=10,
        )

    assert exit_code == [0]
    assert line["rest_url"].startswith("http://127.0.0.1:") and line["ws_url"].startswith("ws://127.0.0.1:")
    assert (line["dialect"], line["plan"], line["speed"], line["token"]) == (
        "itick",
        "unlimited",
        120.0,
        "cli-token",
    )
    assert line["symbols"] == ["AAPL.US", "BTCUSDT"]
    assert reply.json()["data"]["s"] == "AAPL"


def test_sim_start_sets_the_market_clock_so_hong_kong_trades():
    symbols = {"trace": "t", "data": {"symbol_list": [{"code": "857.HK"}, {"code": "1288.HK"}]}}
    with serving(
        "--start",
        "2024-03-05T10:30+08:00",
        "--speed",
        "60",
        "--symbols",
        "857.HK,1288.HK",
        "--token",
        "start-token",
    ) as (line, exit_code):
        reply = requests.get(
            line["rest_url"] + "/quote-stock-b-api/trade-tick",
            params={"token": "start-token", "query": json.dumps(symbols)},
            timeout=10,
        ).json()

    start = 1_709_605_800_000  # 2024-03-05 02:30 UTC: Hong Kong's morning session
    assert exit_code == [0] and line["start"] == start
    # The latest trades are from the session running now, not from the previous day's close.
    times = [int(row["tick_time"]) for row in reply["data"]["tick_list"]]
    assert len(times) == 2 and all(start - 60_000 <= time <= start + 600_000 for time in times)


def test_unknown_plan_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["sim", "--plan", "gold"])

    assert exited.value.code == 2
    assert "invalid choice: 'gold'" in capsys.readouterr().err


def test_sim_hours_option_serves_pre_market_trades():
    symbols = {"trace": "t", "data": {"symbol_list": [{"code": "AAPL.US"}]}}
    with serving(
        "--start",
        "2024-03-05T05:00-05:00",
        "--symbols",
        "AAPL.US",
        "--token",
        "hours-token",
        "--hours",
        "extended",
        "--late-print-ms",
        "250",
        "--resend-when-closed-s",
        "5",
    ) as (line, code):
        reply = requests.get(
            line["rest_url"] + "/quote-stock-b-api/trade-tick",
            params={"token": "hours-token", "query": json.dumps(symbols)},
            timeout=10,
        ).json()

    start = 1_709_632_800_000  # 2024-03-05 05:00 New York: pre-market
    assert code == [0]
    assert start - 60_000 <= int(reply["data"]["tick_list"][0]["tick_time"]) <= start + 600_000


def test_unknown_hours_mode_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["sim", "--hours", "always"])

    assert exited.value.code == 2
    assert "invalid choice: 'always'" in capsys.readouterr().err
