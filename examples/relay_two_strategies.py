"""One relay, two strategies: the relay holds the only upstream connection, both read bars from Redis.

    python examples/relay_two_strategies.py                          # simulator + a private redis-server
    python examples/relay_two_strategies.py --redis redis://127.0.0.1:6379/0
    ALLTICK_TOKEN=... python examples/relay_two_strategies.py --redis redis://127.0.0.1:6379/0

AllTick Free and Basic allow one WebSocket per token.  The relay (``alltick-bt record``
in production; here in this process) subscribes once and writes every closed bar into
Redis; each strategy runs its own Cerebro on ``AllTickData(source="redis")`` and gets
the same bars, backfill first (DELAYED) then live (LIVE).  Without ``--redis`` the script
starts a throw-away ``redis-server`` on a free loopback port (``apt-get install redis-server``).
"""

import argparse
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import backtrader as bt

from backtrader_alltick import AllTickStore, Relay

SYMBOL = "BTCUSDT"


class SmaCross(bt.Strategy):
    params = (("fast", 3), ("slow", 8), ("bars", 32), ("name", ""))

    def __init__(self):
        self.cross = bt.ind.CrossOver(bt.ind.SMA(period=self.p.fast), bt.ind.SMA(period=self.p.slow))
        self.live = False
        self.bars = []

    def notify_data(self, data, status, *args, **kwargs):
        print(f"[{self.p.name}] data status: {data._getstatusname(status)}")
        self.live = status == data.LIVE

    def prenext(self):  # the averages are still warming up: only count the bar
        self.record_bar()

    def record_bar(self):
        self.bars.append((self.data.datetime.datetime(0), self.data.close[0]))
        if len(self.bars) >= self.p.bars:
            self.env.runstop()

    def next(self):
        self.record_bar()
        if not self.live:
            return  # backfilled bars only warm the averages
        if self.cross > 0 and not self.position:
            self.buy()
            print(f"[{self.p.name}] {self.data.datetime.datetime(0):%H:%M} buy at {self.data.close[0]:,.2f}")
        elif self.cross < 0 and self.position:
            self.close()
            print(f"[{self.p.name}] {self.data.datetime.datetime(0):%H:%M} sell at {self.data.close[0]:,.2f}")


def run_strategy(name, redis_url, clock, fromdate, results, **params):
    store = AllTickStore(clock=clock, cache=False)  # no token: it only reads Redis
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(
        store.getdata(
            dataname=SYMBOL,
            timeframe=bt.TimeFrame.Minutes,
            source="redis",
            source_url=redis_url,
            fromdate=fromdate,
            qcheck=0.2,
        )
    )
    cerebro.addstrategy(SmaCross, name=name, **params)
    guard = threading.Timer(120, cerebro.runstop)  # never hang if the relay stops writing
    guard.start()
    try:
        results[name] = cerebro.run()[0]
    finally:
        guard.cancel()
        store.stop()


@contextlib.contextmanager
def private_redis():
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("no redis-server: install it (apt-get install redis-server) or pass --redis URL")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with tempfile.TemporaryDirectory() as workdir:
        server = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                workdir,
            ],
            stdout=subprocess.DEVNULL,
        )
        try:
            for _ in range(200):  # wait until it answers
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.1):
                    break
                time.sleep(0.02)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            server.terminate()
            server.wait(10)


@contextlib.contextmanager
def upstream_store():
    if os.environ.get("ALLTICK_TOKEN"):
        store = AllTickStore(cache=False)
        yield store, None
        store.stop()
        return
    from backtrader_alltick.sim import Simulator

    with Simulator(dialect="alltick", speed=300, seed=7, symbols=[SYMBOL]) as sim:
        store = AllTickStore.from_simulator(sim, cache=False)
        yield store, sim
        store.stop()


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--redis", default=None, help="Redis URL (default: start a private redis-server)")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        redis_url = args.redis or stack.enter_context(private_redis())
        store, sim = stack.enter_context(upstream_store())
        relay = stack.enter_context(Relay(store, [SYMBOL], redis_url=redis_url, lookback=20))
        # Both strategies start at the same bar and stop at the same count, so they see the same series.
        fromdate = _minutes_ago(store.clock, 20)
        results = {}
        threads = [
            threading.Thread(
                target=run_strategy, kwargs=params, args=(name, redis_url, store.clock, fromdate, results)
            )
            for name, params in (("fast", {"fast": 3, "slow": 8}), ("slow", {"fast": 5, "slow": 13}))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        stats = relay.stats
        connections = sim.counters["ws_connections_opened"] if sim else 1
    same = results["fast"].bars == results["slow"].bars
    print(
        f"relay: {stats['ticks']} ticks, {stats['bars'].get('1m', 0)} bars written; "
        f"upstream connections: {connections}"
    )
    print(f"both strategies saw the same {len(results['fast'].bars)} bars: {same}")


def _minutes_ago(clock, minutes):
    from datetime import datetime, timezone

    now_ms = clock.now_ms()
    start_ms = now_ms - now_ms % 60_000 - minutes * 60_000
    return datetime.fromtimestamp(start_ms / 1000, tz=timezone.utc).replace(tzinfo=None)


if __name__ == "__main__":
    main()
