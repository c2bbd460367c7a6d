"""The CLI pointed at ``alltick-bt sim`` in another process: the simulator's clock (2024) decides, not ours.

Our clock reads the real date while the simulator's runs from 2024-03-05 at 60x; every
command must still see the simulator's present and keep no hole or stale bar in its cache.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import requests
from simprocess import serving

from backtrader_alltick.transport.redis_reader import RedisReader
from backtrader_alltick.transport.rest import parse_http_date

ROOT = Path(__file__).resolve().parent.parent
MINUTE = pd.Timedelta(minutes=1)


def _env() -> dict:
    env = {key: value for key, value in os.environ.items() if key != "ALLTICK_TOKEN"}
    env["PYTHONPATH"] = str(ROOT)
    return env


@pytest.fixture
def sim_process() -> Iterator[dict]:
    """``alltick-bt sim`` in its own process; yields its JSON line (URLs, token)."""
    with serving("--speed", "60", "--symbols", "BTCUSDT,EURUSD", env=_env(), cwd=ROOT) as (line, _):
        yield line


def _service(sim: dict) -> list[str]:
    return [
        "--token",
        sim["token"],
        "--rest-url",
        sim["rest_url"],
        "--ws-url",
        sim["ws_url"],
        "--plan",
        "unlimited",
    ]


def _klines(sim: dict, count: int, cache: str) -> pd.DataFrame:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "backtrader_alltick",
            "klines",
            "BTCUSDT",
            "-n",
            str(count),
            "--cache",
            cache,
            *_service(sim),
        ],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return pd.read_csv(io.StringIO(done.stdout), index_col=0, parse_dates=True)


def _service_now(sim: dict) -> pd.Timestamp:
    answer = requests.get(sim["rest_url"] + "/nothing-here", timeout=10)
    return pd.Timestamp(parse_http_date(answer.headers["Date"]), unit="ms", tz="UTC")


def _wait_service_minutes(sim: dict, minutes: float) -> None:
    time.sleep(minutes * 60 / sim["speed"])  # waits on the simulator's clock, not for an event


def test_klines_twice_minutes_apart_sees_the_new_bars(sim_process, tmp_path):
    cache = str(tmp_path / "klines.sqlite")

    first = _klines(sim_process, 50, cache)
    _wait_service_minutes(sim_process, 4)
    before = _service_now(sim_process)
    second = _klines(sim_process, 50, cache)
    after = _service_now(sim_process)

    assert second.index[-1] - first.index[-1] >= 3 * MINUTE
    # The newest closed bar when the command asked, which was between these two readings of the service.
    assert before - MINUTE * 2 <= second.index[-1] <= after
    assert second.loc[first.index[-1] :].iloc[0].equals(first.iloc[-1])


def test_a_warm_cache_holds_no_hole_and_equals_no_cache(sim_process, tmp_path):
    cache = str(tmp_path / "klines.sqlite")
    _klines(sim_process, 1000, cache)
    _wait_service_minutes(sim_process, 3)
    _klines(sim_process, 1000, cache)

    before = _service_now(sim_process)
    warm = _klines(sim_process, 3000, cache)
    fresh = _klines(sim_process, 3000, "off")
    # The bars that closed between the two runs, read off the simulator's clock (its Date header has
    # whole seconds, hence one more), are the newest of one and missing from the other.
    turned = (_service_now(sim_process) - before) // MINUTE + 2

    steps = warm.index.to_series().diff().dropna()
    assert (steps == MINUTE).all(), f"holes: {steps[steps != MINUTE]}"
    both = warm.index.intersection(fresh.index)
    assert len(both) >= 3000 - turned
    pd.testing.assert_frame_equal(warm.loc[both], fresh.loc[both])


def test_record_writes_one_minute_bars_and_ctrl_c_logs_no_backfill_failure(
    sim_process, redis_server, tmp_path
):
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "backtrader_alltick",
            "record",
            "BTCUSDT",
            "--redis",
            redis_server.url,
            "--timeframes",
            "1m,5m",
            "--lookback",
            "3",
            "--progress",
            "0.5",
            "--cache",
            str(tmp_path / "k.sqlite"),
            *_service(sim_process),
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        cwd=ROOT,
    )
    try:
        with RedisReader(redis_server.url, reconnect_timeout=10) as source:
            bars = []
            for _ in range(120):  # blocking reads: returns once the recorder wrote the bars
                bars += source.read_bars("BTCUSDT", "1m", bars[-1].id if bars else "0-0", block_ms=500)
                if len(bars) >= 6:
                    break
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            stderr = process.communicate(timeout=60)[1]
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()

    assert process.returncode == 0, stderr
    assert len(bars) >= 6, stderr
    assert "backfill failed" not in stderr and "Traceback" not in stderr, stderr
