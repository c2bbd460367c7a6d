"""Several processes on one token: how many calls reach the service, how many it refuses, how close.

Run standalone: ``python benchmarks/bench_quota.py [--processes 4] [--calls 3] [--fast]``.

Each client process opens a store on one token of the simulator (in this process), waits for
a common start, then makes ``--calls`` K-line calls.  Two runs: ``per-process`` (``cache=False``,
each store counts only its own calls: what every store did before the shared quota) and
``shared`` (every store beside one cache directory, so one ``quota.sqlite`` counts for all).
The simulator's journal is the judge: calls that reached it, calls it refused (429 / 605), and
the smallest gap between two arrivals.  The Free plan spaces calls 10 s apart, so a default run
takes about 4 minutes; ``--fast`` plays Free's shape ten times faster (one call per second).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from backtrader_alltick.sim import Simulator
from backtrader_alltick.sim.plan_table import service_plan

CLIENT = Path(__file__).parents[1] / "tests" / "transport" / "quota_client.py"
FAST = {"endpoint_interval": 1.0, "batch_interval": 1.0, "min_spacing": 1.0, "per_minute": 100}


def run(processes: int, calls: int, fast: bool, shared: bool) -> dict:
    with Simulator(plan="free") as sim, tempfile.TemporaryDirectory() as workdir:
        if fast:
            sim.set_plan(replace(service_plan("alltick", "free"), name="free-x10", **FAST))
        cache = str(Path(workdir) / "klines.sqlite") if shared else False
        config = {
            "rest_url": sim.rest_url,
            "cache": cache,
            "calls": calls,
            "plan": "free",
            "overrides": FAST if fast else {},
        }
        env = {**os.environ, "ALLTICK_TOKEN": sim.token}
        env.pop("ALLTICK_QUOTA_URL", None)
        children = [
            subprocess.Popen(
                [sys.executable, str(CLIENT), json.dumps(config)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=env,
            )
            for _ in range(processes)
        ]
        for child in children:
            child.stdout.readline()  # "ready"
        started = time.monotonic()
        for child in children:
            child.stdin.write("go\n")
            child.stdin.flush()
        for child in children:
            child.communicate(timeout=3600)
        elapsed = time.monotonic() - started
        arrivals = [entry.wall_time for entry in sim.journal.entries if entry.kind == "rest"]
        gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
        interval = FAST["endpoint_interval"] if fast else 10.0
        return {
            "ledger": "shared" if shared else "per-process",
            "calls_made": processes * calls,
            "reached_service": len(arrivals),
            "refused": sum(sim.counters["errors_sent"].values()),
            "min_gap_s": round(min(gaps), 3) if gaps else None,
            "gaps_under_plan": sum(gap < interval for gap in gaps),
            "elapsed_s": round(elapsed, 1),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--fast", action="store_true", help="Free's shape at one call per second")
    args = parser.parse_args()
    for shared in (False, True):
        print(json.dumps(run(args.processes, args.calls, args.fast, shared)), flush=True)


if __name__ == "__main__":
    main()
