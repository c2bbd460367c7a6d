"""How fast the simulator replays a recording, against the synthetic market pushing the same trades.

Run standalone: ``python benchmarks/bench_replay.py [--seconds 1] [--speed 1000000]``.

A recording of the seed-1 market (six crypto symbols, long enough to outlast the
measurement) is written with ``RecordingSink``.  Each simulator, the replay of that
recording and the synthetic market started at the same moment, then pushes the same
trades at a clock speed far above what can be sent (1,000,000x offers about 1,250,000
trades/s), to a reader that only counts bytes: the simulator's own push rate, the figure
"trades/s at unlimited speed".  The baseline is the synthetic market in the same run, so
the ratio says what replaying costs.  (A websocket-client reader tops out near 60,000
frames/s on its own, see bench_sim_push.py.)  The run also times loading the recording,
and a 10-minute recording replayed at 60x end to end.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import websocket
from bench_sim_push import CRYPTO, raw_capacity

from backtrader_alltick.markets import DAY_MS, MINUTE_MS
from backtrader_alltick.recording import Recording
from backtrader_alltick.records import Tick
from backtrader_alltick.sim import Simulator
from backtrader_alltick.sim.market import MarketModel
from backtrader_alltick.sim.replay import RecordedMarket
from backtrader_alltick.sinks.recording import RecordingSink

START = 1_709_650_800_000  # 2024-03-05T15:00:00Z


def write_recording(path: Path, span_ms: int) -> tuple[int, int]:
    """Record the seed-1 market's trades of ``[START, START + span_ms)``; return (trades, last trade time)."""
    model = MarketModel(seed=1, symbols=CRYPTO, history_start_ms=0)
    count, last = 0, 0
    with RecordingSink(path, batch=1_000_000) as sink:
        for symbol in CRYPTO:
            for day_start in range(START, START + span_ms, DAY_MS):  # a day at a time bounds memory
                ticks = [
                    Tick(t.symbol, t.time, t.price, t.volume, t.price * t.volume, t.seq, t.direction)
                    for t in model.trades(symbol, day_start, min(day_start + DAY_MS, START + span_ms))
                ]
                sink.write(ticks)
                count += len(ticks)
                last = max([last] + [t.time for t in ticks[-1:]])
    return count, last


def subscribe(sim: Simulator) -> websocket.WebSocket:
    connection = websocket.create_connection(
        f"{sim.ws_url}/quote-b-ws-api?token={sim.token}", skip_utf8_validation=True
    )
    connection.send(
        json.dumps(
            {
                "cmd_id": 22004,
                "seq_id": 1,
                "trace": "bench",
                "data": {"symbol_list": [{"code": code} for code in CRYPTO]},
            }
        )
    )
    return connection


def real_time_replay(path: Path, last_ms: int) -> float:
    """Wall seconds from the replay's start until its last trade arrives, at 60x."""
    with Simulator(replay=path, speed=60, dialect="alltick") as sim:
        started = time.perf_counter()
        connection = subscribe(sim)
        while f'"tick_time":{last_ms},' not in connection.recv():
            pass
        elapsed = time.perf_counter() - started
        connection.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="wall seconds to read each simulator")
    parser.add_argument("--speed", type=float, default=1_000_000, help="clock speed for unlimited")
    args = parser.parse_args()
    days = math.ceil(args.speed * args.seconds * 1.2 / 86_400)  # the recording outlasts the reading
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "long.rec"
        total, _ = write_recording(path, days * DAY_MS)
        started = time.perf_counter()
        RecordedMarket(Recording(path))
        load = time.perf_counter() - started
        with Simulator(replay=path, speed=args.speed, dialect="alltick") as sim:
            replay_rate = raw_capacity(sim, args.seconds)
        with Simulator(start=START, speed=args.speed, dialect="alltick", symbols=CRYPTO) as sim:
            synthetic_rate = raw_capacity(sim, args.seconds)
        short = Path(folder) / "ten-minutes.rec"
        short_total, short_last = write_recording(short, 10 * MINUTE_MS)
        ten_minutes = real_time_replay(short, short_last)

    print(f"recording: {total:,} trades of {len(CRYPTO)} symbols over {days} market days")
    print(f"load (Recording + RecordedMarket): {load:.2f} s, {total / load:,.0f} trades/s")
    print(f"replay push rate at x{args.speed:,.0f}: {replay_rate:,.0f} trades/s to a byte-counting reader")
    print(f"baseline, synthetic market, same trades, speed and reader: {synthetic_rate:,.0f} trades/s")
    print(f"ratio replay/synthetic: {replay_rate / synthetic_rate:.2f}")
    print(
        f"a 10-minute recording ({short_total:,} trades) replayed at x60: {ten_minutes:.1f} s wall "
        f"(the market clock alone takes {10 * 60 / 60:.1f} s)"
    )


if __name__ == "__main__":
    main()
