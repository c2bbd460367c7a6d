"""``alltick-bt record``: runs the relay on the built-in simulator until SIGTERM, then exits 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from backtrader_alltick.cli import main
from backtrader_alltick.sinks.redis import RedisSource

ROOT = Path(__file__).resolve().parent.parent



def test_record_writes_bars_and_ticks_then_exits_0_on_sigterm(redis_server):
    env = {key: value for key, value in os.environ.items() if key != "ALLTICK_TOKEN"}
    env["PYTHONPATH"] = str(ROOT)
    process = subprocess.Popen(
        [sys.executable, "-m", "backtrader_alltick", "record", "BTCUSDT,EURUSD", "--redis", redis_server.url,
         "--timeframes", "1m,5m", "--types", "tick,depth", "--lookback", "3", "--speed", "240",
         "--progress", "0.5"], stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        with RedisSource(redis_server.url, reconnect_timeout=10) as source:
            # Blocking reads: returns as soon as the recorder wrote a bar (the guard only bounds a hang).
            bars = []
            for _ in range(60):
                bars += source.read_bars("EURUSD", "1m", bars[-1].id if bars else "0-0", block_ms=500)
                if len(bars) >= 4:
                    break
            ticks = source.read_ticks("BTCUSDT")
            books = source.read_depth("BTCUSDT")
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert process.returncode == 0, stderr
    assert len(bars) >= 4 and ticks and books
    assert "no ALLTICK_TOKEN: recording the built-in simulator" in stderr
    assert "recorded:" in stderr and "Traceback" not in stderr


def test_record_without_a_sink_is_a_usage_error_naming_the_fix(capsys):
    assert main(["record", "BTCUSDT"]) == 1
    assert "pass --redis URL and/or --influx URL" in capsys.readouterr().err


def test_record_quotes_need_the_itick_dialect(capsys):
    assert main(["record", "BTCUSDT", "--redis", "redis://127.0.0.1:1/0", "--types", "quote"]) == 1
    assert "--types quote needs --dialect itick" in capsys.readouterr().err


def test_record_stops_with_an_error_when_the_token_is_rejected(capsys, alltick_sim, redis_server):
    code = main(["record", "BTCUSDT", "--redis", redis_server.url, "--token", "sentinel-rejected-1234",
                 "--rest-url", alltick_sim.rest_url, "--ws-url", alltick_sim.ws_url, "--plan", "unlimited",
                 "--progress", "0.2"])

    err = capsys.readouterr().err
    assert code == 1
    assert "error:" in err and "token" in err.lower()
    assert "sentinel-rejected-1234" not in err
