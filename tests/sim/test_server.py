"""The simulator's HTTP server: its threads never keep a script alive."""

from __future__ import annotations

import subprocess
import sys

FORGETS_CLOSE = """
from backtrader_alltick import AllTickStore
from backtrader_alltick.sim import Simulator

sim = Simulator(dialect="alltick", speed=60, seed=1)
store = AllTickStore.from_simulator(sim, cache=False)
frame = store.fetch_klines("BTCUSDT", "1m", count=5)   # leaves a keep-alive socket open
print(len(frame), flush=True)
# no sim.close(), no store.stop(): the script just ends
"""


def test_script_that_forgets_close_still_exits():
    result = subprocess.run([sys.executable, "-c", FORGETS_CLOSE], capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "5"
