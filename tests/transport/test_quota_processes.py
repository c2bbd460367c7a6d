"""One quota for every process on a token: real client processes against the simulator's plan.

The simulator plays a plan shaped like AllTick Free but ten times faster (one call per second,
100 a minute, 1,000 a day), so a test of several processes runs in seconds; one test keeps the
real Free plan.  The simulator times every call on arrival and answers 605 to a call that
comes too soon, so its journal and counters are the judge.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import backtrader as bt
import pytest

from backtrader_alltick.plans import get_plan
from backtrader_alltick.sim.plan_table import service_plan
from backtrader_alltick.transport.quota_ledger import LEDGER_FILE, quota_key
from backtrader_alltick.transport.quota_redis import RedisLedger
from backtrader_alltick.transport.quota_sqlite import FileLedger

CLIENT = Path(__file__).with_name("quota_client.py")
# AllTick Free's shape (protocol/alltick.md 6.1) at ten times the speed.
FAST = {"endpoint_interval": 1.0, "batch_interval": 1.0, "min_spacing": 1.0, "per_minute": 100}
KLINE_PATH = "/quote-b-api/kline"


@pytest.fixture
def fast_sim(make_sim):
    sim = make_sim(dialect="alltick")
    sim.set_plan(replace(service_plan("alltick", "free"), name="free-x10", **FAST))
    return sim


def run_clients(sim, configs: list[dict]) -> list[dict]:
    """Start one process per config, let them all go at once, and return what each reports."""
    env = {**os.environ, "ALLTICK_TOKEN": sim.token}
    env.pop("ALLTICK_QUOTA_URL", None)
    processes = [
        subprocess.Popen(
            [sys.executable, str(CLIENT), json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for config in configs
    ]
    try:
        for process in processes:
            assert process.stdout.readline().strip() == "ready", process.stderr.read()
        for process in processes:
            process.stdin.write("go\n")
            process.stdin.flush()
        reports = []
        for process in processes:
            line = process.stdout.readline()
            assert line, process.stderr.read()
            reports.append(json.loads(line))
            process.wait(timeout=60)
        return reports
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
            for stream in (process.stdin, process.stdout, process.stderr):
                stream.close()


def kline_arrivals(sim) -> list[float]:
    return [
        entry.wall_time for entry in sim.journal.entries if entry.kind == "rest" and entry.path == KLINE_PATH
    ]


def sim_refusals(sim) -> dict:
    return sim.counters["errors_sent"]


def assert_one_plan_kept(sim, reports: list[dict], calls: int, interval: float) -> None:
    arrivals = kline_arrivals(sim)
    assert len(arrivals) == calls
    assert sim_refusals(sim) == {}  # no 429 / 605: the service never had to refuse
    assert [report["rate_limited"] for report in reports] == [0] * len(reports)
    # The simulator's own arrival stamps: every two calls of the token, whoever sent them, keep the plan.
    assert min(b - a for a, b in zip(arrivals, arrivals[1:])) >= interval


def test_four_processes_on_one_cache_directory_keep_one_plan(fast_sim, tmp_path):
    cache = str(tmp_path / "klines.sqlite")
    config = {"rest_url": fast_sim.rest_url, "cache": cache, "calls": 2, "plan": "free", "overrides": FAST}

    reports = run_clients(fast_sim, [config] * 4)

    assert_one_plan_kept(fast_sim, reports, 8, FAST["endpoint_interval"])
    ledger = FileLedger(tmp_path / LEDGER_FILE, quota_key("alltick", fast_sim.rest_url, fast_sim.token))
    try:
        assert ledger.transact(lambda state, now: state.day_count) == fast_sim.counters["rest_requests"] == 8
    finally:
        ledger.close()


def test_two_machines_joined_by_redis_keep_one_plan(fast_sim, tmp_path, redis_server):
    # Two "machines": each its own cache directory, two processes each, one Redis between them.
    configs = [
        {
            "rest_url": fast_sim.rest_url,
            "cache": str(tmp_path / machine / "klines.sqlite"),
            "calls": 2,
            "plan": "free",
            "overrides": FAST,
            "quota_url": redis_server.url,
        }
        for machine in ("a", "a", "b", "b")
    ]

    reports = run_clients(fast_sim, configs)

    assert_one_plan_kept(fast_sim, reports, 8, FAST["endpoint_interval"])
    ledger = RedisLedger(redis_server.url, quota_key("alltick", fast_sim.rest_url, fast_sim.token))
    try:
        assert ledger.transact(lambda state, now: state.day_count) == fast_sim.counters["rest_requests"] == 8
    finally:
        ledger.close()


class WhoCounted(bt.Analyzer):
    """Which process ran the strategy, and which ledger its store counted in."""

    def stop(self) -> None:
        self.rets["pid"] = os.getpid()
        self.rets["ledger"] = getattr(self.data._store.rest.limiter.ledger, "path", None)


def test_optimisation_workers_count_in_the_ledger_of_their_store(
    fast_sim, make_store, tmp_path, worker_pools
):
    store = make_store(fast_sim, plan=replace(get_plan("alltick", "free"), name="free-x10", **FAST))
    # Each worker reopens the pickled store and loads the bars itself, both from a cold cache: the
    # workers open the new cache and ledger files at the same moment.
    # Workers start from a fork server, not by forking this process: here the simulator's threads
    # run beside Cerebro, and a fork taken while one holds a lock can hang a worker.
    worker_pools("forkserver")
    cerebro = bt.Cerebro(maxcpus=2, stdstats=False, optdatas=False, preload=False)
    cerebro.adddata(
        store.getdata(
            dataname="BTCUSDT",
            timeframe=bt.TimeFrame.Minutes,
            historical=True,
            fromdate=datetime(2024, 3, 4, 10),
            todate=datetime(2024, 3, 4, 12),
        )
    )
    cerebro.addanalyzer(WhoCounted, _name="who")
    cerebro.optstrategy(bt.Strategy, unused=[1, 2, 3, 4])

    runs = [run[0].analyzers.who.get_analysis() for run in cerebro.run()]

    assert len({run["pid"] for run in runs} - {os.getpid()}) == 2
    assert sim_refusals(fast_sim) == {}
    arrivals = kline_arrivals(fast_sim)
    assert min((b - a for a, b in zip(arrivals, arrivals[1:])), default=FAST["endpoint_interval"]) >= 1.0
    assert {run["ledger"] for run in runs} == {str(tmp_path / LEDGER_FILE)}
    assert store.rest.limiter.used_today() == fast_sim.counters["rest_requests"] >= 1


def test_two_alltick_bt_commands_on_a_free_token_keep_its_ten_seconds(make_sim, tmp_path):
    # The real Free plan: any two calls of the token 10 s apart (protocol/alltick.md 6.1).
    sim = make_sim(dialect="alltick", plan="free")
    env = {**os.environ, "ALLTICK_TOKEN": sim.token}
    env.pop("ALLTICK_QUOTA_URL", None)
    commands = [
        [
            sys.executable,
            "-m",
            "backtrader_alltick",
            "quote",
            symbol,
            "--plan",
            "free",
            "--rest-url",
            sim.rest_url,
            "--cache",
            str(tmp_path / "klines.sqlite"),
        ]
        for symbol in ("BTCUSDT", "EURUSD")
    ]

    children = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for argv in commands
    ]
    outcomes = [child.communicate(timeout=90) for child in children]

    assert [child.returncode for child in children] == [0, 0], outcomes
    arrivals = [entry.wall_time for entry in sim.journal.entries if entry.kind == "rest"]
    assert len(arrivals) == 2 and sim_refusals(sim) == {}
    assert arrivals[1] - arrivals[0] >= 10.0
    ledger = FileLedger(tmp_path / LEDGER_FILE, quota_key("alltick", sim.rest_url, sim.token))
    try:
        assert ledger.transact(lambda state, now: state.day_count) == 2
    finally:
        ledger.close()
