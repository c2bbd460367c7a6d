"""``alltick-bt sim``: one JSON line on stdout, then serve until SIGTERM (exit 0)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest
import requests

from backtrader_alltick import cli


def test_sim_prints_its_urls_then_exits_0_on_sigterm():
    process = subprocess.Popen([sys.executable, "-m", "backtrader_alltick", "sim", "--dialect", "itick",
                                "--speed", "120", "--symbols", "AAPL.US,BTCUSDT", "--token", "cli-token"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = json.loads(process.stdout.readline())
        reply = requests.get(line["rest_url"] + "/stock/tick", params={"region": "US", "code": "AAPL"},
                             headers={"token": line["token"]}, timeout=10)
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()

    assert code == 0
    assert line["rest_url"].startswith("http://127.0.0.1:") and line["ws_url"].startswith("ws://127.0.0.1:")
    assert (line["dialect"], line["plan"], line["speed"], line["token"]) == ("itick", "unlimited", 120.0,
                                                                           "cli-token")
    assert line["symbols"] == ["AAPL.US", "BTCUSDT"]
    assert reply.json()["data"]["s"] == "AAPL"


def test_unknown_plan_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["sim", "--plan", "gold"])

    assert exited.value.code == 2
    assert "invalid choice: 'gold'" in capsys.readouterr().err
