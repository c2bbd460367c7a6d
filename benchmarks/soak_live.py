"""Soak the live path: live feeds under random chaos, then every bar delivered against the simulator's.

Feeds: BTCUSDT and EURUSD (crypto and forex) and AAPL.US (a stock, when the simulated clock is
inside its hours), 1-minute bars, one live Cerebro, an accelerated clock.  A chaos thread
fires ``--drops`` socket drops (half of them ~0.4 s of market time before a minute boundary),
malformed frames (some ~2.5 s after a boundary), and REST 429/5xx storms on the backfills;
the server replays an already-delivered trade after every reconnect and malformed frame.

At the end it prints, per feed, bars expected / missing / duplicated / wrong, reconnects,
and the process's memory.  Exit status 1 if any bar is missing, duplicated or wrong.

    python benchmarks/soak_live.py [--drops 50] [--dialect alltick] [--speed 60] [--seed 7]
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
from datetime import timezone

import backtrader as bt

from backtrader_alltick import AllTickStore
from backtrader_alltick.clock import wall_seconds
from backtrader_alltick.markets import MINUTE_MS
from backtrader_alltick.sim import Simulator
from backtrader_alltick.symbols import parse_symbol

SYMBOLS = ("BTCUSDT", "EURUSD", "AAPL.US")
SETTLE_BARS = 4  # quiet bars after the last fault, so every cut bar has been rebuilt


class Collect(bt.Strategy):
    """Keep every delivered bar per feed as (close ms, o, h, l, c, v)."""

    params = (("done", None),)

    def __init__(self) -> None:
        self.rows = {d._name: [] for d in self.datas}
        self.lengths = {d._name: 0 for d in self.datas}

    def prenext(self) -> None:
        self.next()

    def next(self) -> None:
        for data in self.datas:
            if len(data) != self.lengths[data._name]:
                self.lengths[data._name] = len(data)
                end = round(bt.num2date(data.datetime[0]).replace(tzinfo=timezone.utc).timestamp() * 1000)
                self.rows[data._name].append(
                    (end, data.open[0], data.high[0], data.low[0], data.close[0], data.volume[0])
                )
        if self.p.done.is_set():
            self.env.runstop()


class Chaos(threading.Thread):
    """Fire drops, malformed frames and REST storms at random moments, some aimed at minute boundaries."""

    def __init__(self, sim: Simulator, drops: int, seed: int, settle_s: float, finished: threading.Event):
        super().__init__(name="soak-chaos", daemon=True)
        self.sim, self.drops, self.rng, self.settle_s = sim, drops, random.Random(seed), settle_s
        self.finished = finished
        self.fired = {"drops": 0, "malformed": 0, "rest_storms": 0}
        self.stop = threading.Event()

    def _at_market(self, moment_ms: int) -> None:
        self.stop.wait(wall_seconds(self.sim.clock, moment_ms))

    def run(self) -> None:
        sim, rng = self.sim, self.rng
        self.stop.wait(3.0)  # let the feeds go live first
        self.rss_live = rss_mb()
        while self.fired["drops"] < self.drops and not self.stop.is_set():
            now = sim.clock.now_ms()
            boundary = (now // MINUTE_MS + 1) * MINUTE_MS
            roll = rng.random()
            if roll < 0.5:
                self._at_market(boundary - 400 if rng.random() < 0.5 else now + rng.randint(500, 50_000))
                sim.drop_connections()
                self.fired["drops"] += 1
                self.stop.wait(rng.uniform(1.2, 2.0))  # the hub's reconnect backoff starts at 1 s
            elif roll < 0.8:
                self._at_market(boundary + 2500 if rng.random() < 0.5 else now + rng.randint(500, 50_000))
                sim.faults.update(malformed_frames=rng.randint(1, 3))
                self.fired["malformed"] += 1
            else:
                if rng.random() < 0.5:
                    sim.faults.update(rate_limit_burst=rng.randint(2, 6))
                else:
                    sim.faults.update(
                        server_error_burst=rng.randint(2, 6), server_error_status=rng.choice((500, 502, 503))
                    )
                self.fired["rest_storms"] += 1
                self.stop.wait(rng.uniform(0.1, 0.5))
        self.stop.wait(self.settle_s)
        self.finished.set()


def compare(sim: Simulator, rows: list[tuple], symbol: str) -> dict:
    """Delivered bars against the simulator's own 1-minute K-lines over the same span."""
    if not rows:
        return {"expected": 0, "delivered": 0, "missing": 0, "duplicated": 0, "wrong": 0}
    ends = [row[0] for row in rows]
    truth = {k.end: k for k in sim.klines(symbol, "1m", ends[0] - MINUTE_MS, ends[-1])}
    expected = {end for end in truth if ends[0] <= end <= ends[-1]}
    delivered = set(ends)
    wrong = 0
    for end, o, h, low, c, v in rows:
        k = truth.get(end)
        if (
            k is None
            or (o, h, low, c) != (k.open, k.high, k.low, k.close)
            or abs(v - k.volume) > 1e-9 * max(1.0, k.volume)
        ):
            wrong += 1
    return {
        "expected": len(expected),
        "delivered": len(rows),
        "missing": len(expected - delivered),
        "duplicated": len(ends) - len(delivered),
        "wrong": wrong,
    }


def rss_mb() -> float:
    """Resident memory of this process now (simulator included), from /proc."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--drops", type=int, default=50)
    parser.add_argument("--dialect", choices=("alltick", "itick"), default="alltick")
    parser.add_argument("--speed", type=float, default=60.0, help="market seconds per wall second")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    faults = dict(resend_stale_trade=True, duplicate_every=11)
    with Simulator(
        dialect=args.dialect, plan="unlimited", speed=args.speed, seed=args.seed, faults=faults
    ) as sim:
        store = AllTickStore.from_simulator(sim, cache=False)
        now = sim.clock.now_ms()
        symbols = [
            s
            for s in SYMBOLS
            if parse_symbol(s).market.is_open(now) and parse_symbol(s).market.is_open(now + 4 * 3600_000)
        ]
        cerebro = bt.Cerebro(stdstats=False)
        for symbol in symbols:
            cerebro.adddata(
                store.getdata(
                    dataname=symbol, timeframe=bt.TimeFrame.Minutes, lookback=5, qcheck=0.1, grace=0.5
                ),
                name=symbol,
            )
        finished = threading.Event()
        chaos = Chaos(sim, args.drops, args.seed, SETTLE_BARS * 60 / args.speed + 1.0, finished)
        cerebro.addstrategy(Collect, done=finished)
        started = time.monotonic()
        chaos.start()
        strategy = cerebro.run()[0]
        chaos.stop.set()
        wall = time.monotonic() - started

        print(
            f"soak: {args.dialect}, speed {args.speed:g}x, {wall:.0f} s wall, "
            f"{(sim.clock.now_ms() - now) / MINUTE_MS:.0f} market minutes, seed {args.seed}"
        )
        print(f"faults fired: {chaos.fired}; simulator counted {sim.counters['faults']}")
        failed = False
        print(
            f"{'feed':10} {'expected':>8} {'delivered':>9} {'missing':>7} {'duplicated':>10} {'wrong':>5} "
            f"{'reconnects':>10}"
        )
        for data in strategy.datas:
            result = compare(sim, strategy.rows[data._name], data._name)
            failed |= bool(result["missing"] or result["duplicated"] or result["wrong"])
            print(
                f"{data._name:10} {result['expected']:8} {result['delivered']:9} {result['missing']:7} "
                f"{result['duplicated']:10} {result['wrong']:5} {data.stats['reconnects']:10}"
            )
        skipped = [s for s in SYMBOLS if s not in symbols]
        if skipped:
            print(f"not run (market closed at the simulated time): {', '.join(skipped)}")
        print(
            f"stream connects per family: "
            f"{ {family: stats['connects'] for family, stats in store.stream_stats.items()} }"
        )
        print(
            f"memory (RSS, simulator included): {chaos.rss_live:.0f} MB once live, "
            f"{rss_mb():.0f} MB at the end"
        )
        store.stop()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
