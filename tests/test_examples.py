"""The scripts in ``examples/`` run as a user would start them: no token, the built-in simulator."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_plot import png_size

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


# Run before an example (python -c): a machine so busy that the feed starts a wall second late and
# handles its first trade late too -- minutes of market time on the simulator's x300 clock.
ON_A_BUSY_MACHINE = """
import runpy, sys, time
from backtrader_alltick.feed import AllTickData
from backtrader_alltick.sources.stream import StreamBars
start, on_tick, handled = AllTickData.start, StreamBars._on_tick, []
def late_start(data):
    time.sleep(1.0)
    start(data)
def late_tick(source, tick):
    if not handled:
        time.sleep(1.0)
    handled.append(tick)
    on_tick(source, tick)
AllTickData.start, StreamBars._on_tick = late_start, late_tick
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def start_example(name: str, *args: str, cwd: Path, busy: bool = False) -> subprocess.Popen:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("ALLTICK_TOKEN", "ALLTICK_REST_URL", "ALLTICK_WS_URL", "DISPLAY", "MPLBACKEND")
    }
    env["XDG_CACHE_HOME"] = str(cwd / "user-cache")  # anything cached by mistake lands here
    return subprocess.Popen(
        [sys.executable, *(["-c", ON_A_BUSY_MACHINE] if busy else []), str(EXAMPLES / name), *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish_example(process: subprocess.Popen) -> subprocess.CompletedProcess:
    try:
        stdout, stderr = process.communicate(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def run_example(name: str, *args: str, cwd: Path, busy: bool = False) -> subprocess.CompletedProcess:
    return finish_example(start_example(name, *args, cwd=cwd, busy=busy))


def test_every_example_is_tested():
    tested = {
        "backtest.py",
        "paper_trading.py",
        "multi_symbol_resample.py",
        "kline_chart.py",
        "stream_printer.py",
        "relay_two_strategies.py",
    }  # run in tests/test_relay.py, which starts its redis-server
    assert {path.name for path in EXAMPLES.glob("*.py")} == tested


def test_backtest(tmp_path):
    out = run_example("backtest.py", cwd=tmp_path).stdout

    # The newest 500 bars, less the forming one and one that may have closed within the close lag.
    assert re.search(r"^(498|499|500) bars of AAPL\.US, final value", out, re.M)
    assert "trade closed, P&L" in out
    assert not (tmp_path / "user-cache").exists()  # simulated bars never reach the user's cache


def test_paper_trading_goes_live_and_fills_orders_the_same_on_a_busy_machine(tmp_path):
    # Both runs at once (each in a directory of its own): each waits mostly on its simulator's clock.
    (tmp_path / "calm").mkdir()
    (tmp_path / "busy").mkdir()
    calm = start_example("paper_trading.py", cwd=tmp_path / "calm")
    busy_run = start_example("paper_trading.py", cwd=tmp_path / "busy", busy=True)
    try:
        out = finish_example(calm).stdout
    except BaseException:
        busy_run.kill()
        busy_run.communicate()
        raise
    busy = finish_example(busy_run).stdout

    assert out.index("data status: DELAYED") < out.index("data status: LIVE")
    assert "BUY " in out or "SELL" in out
    assert "final value" in out.splitlines()[-1]
    # The same bars, but for the last REST bar LIVE may be told before (Backtrader's convention).
    assert len(set(live_bar_closes(busy)) & set(live_bar_closes(out))) >= len(live_bar_closes(out)) - 1
    assert "BUY " in busy or "SELL" in busy


def live_bar_closes(out: str) -> list[str]:
    return re.findall(r"^(\d\d:\d\d) close", out, re.M)


def test_multi_symbol_resample_lines_up_15_minute_bars(tmp_path):
    lines = run_example("multi_symbol_resample.py", cwd=tmp_path).stdout.splitlines()

    assert len(lines) >= 4
    for line in lines:
        assert line[9:11] in ("00", "15", "30", "45")  # "MM-DD HH:MM": closes on the quarter hour
        for symbol in ("EURUSD", "GOLD", "US500", "BTCUSDT"):
            assert symbol in line


def test_kline_chart_writes_png(tmp_path):
    out = run_example("kline_chart.py", "chart.png", cwd=tmp_path).stdout

    assert "wrote chart.png" in out
    width, height = png_size(tmp_path / "chart.png")
    assert width > 600 and height > 300


@pytest.mark.parametrize(
    "dialect, kinds", [("alltick", {"Tick", "Depth"}), ("itick", {"Tick", "Depth", "Quote"})]
)
def test_stream_printer(tmp_path, dialect, kinds):
    lines = run_example("stream_printer.py", dialect, cwd=tmp_path).stdout.splitlines()

    assert len(lines) == 30
    assert {line.split()[0] for line in lines} <= kinds
    assert any("AAPL.US" in line for line in lines) and any("TSLA.US" in line for line in lines)
