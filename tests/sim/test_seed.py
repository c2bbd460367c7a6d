"""The seed article's three snippets run against the itick simulator with only host and token changed.

Each snippet (``seed_*.py`` beside this file, re-indented, otherwise verbatim) runs in its own
Python process so that its daemon keep-alive thread cannot outlive the test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
# Ends the WebSocket snippet's run_forever() from a timer thread once three pushes arrived.
BOUNDED_RUNNER = """
import sys, threading, websocket
pushes = threading.Event()
seen = []
class CountingApp(websocket.WebSocketApp):
    def __init__(self, *args, on_message=None, **kwargs):
        def counted(ws, message):
            on_message(ws, message)
            if '"type":"tick"' in message:
                seen.append(message)
                if len(seen) >= 3:
                    pushes.set()
        super().__init__(*args, on_message=counted, **kwargs)
websocket.WebSocketApp = CountingApp
namespace = {"__name__": "__main__"}
def close_after_data():
    pushes.wait(30)
    namespace["app"].close()
threading.Thread(target=close_after_data, daemon=True).start()
exec(compile(open(sys.argv[1], encoding="utf-8").read(), sys.argv[1], "exec"), namespace)
"""


def prepare(name: str, sim, tmp_path: Path) -> Path:
    source = (HERE / name).read_text(encoding="utf-8")
    source = source.replace("https://apis.alltick.co", sim.rest_url)
    source = source.replace("wss://apis.alltick.co", sim.ws_url)
    source = source.replace("your_api_token", sim.token)
    target = tmp_path / name
    target.write_text(source, encoding="utf-8")
    return target


def run(arguments: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONIOENCODING": "utf-8"}
    return subprocess.run(
        [sys.executable, *arguments],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
        encoding="utf-8",
    )


def test_seed_rest_tick_prints_the_aapl_tick(itick_sim, tmp_path):
    script = prepare("seed_rest_tick.py", itick_sim, tmp_path)

    result = run([str(script)], tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("苹果公司实时切片: {'s': 'AAPL', 'ld': ")


def test_seed_websocket_prints_streamed_ticks(itick_sim, tmp_path):
    script = prepare("seed_ws_stream.py", itick_sim, tmp_path)
    runner = tmp_path / "bounded_runner.py"
    runner.write_text(BOUNDED_RUNNER, encoding="utf-8")

    result = run([str(runner), str(script)], tmp_path)

    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("接收到流数据:")]
    assert sum("'type': 'tick'" in line for line in lines) >= 3
    assert any("'s': 'AAPL'" in line or "'s': 'TSLA'" in line for line in lines)
    assert itick_sim.journal.wait_for(
        lambda e: e.kind == "ws_message" and e.message.get("params") == "AAPL$US,TSLA$US"
    )


def test_seed_kline_plot_runs_headless(itick_sim, tmp_path):
    script = prepare("seed_kline_plot.py", itick_sim, tmp_path)

    result = run([str(script)], tmp_path)

    assert result.returncode == 0, result.stderr
    assert itick_sim.counters["rest_requests_by_path"] == {"/stock/kline": 1}
