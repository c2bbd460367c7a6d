"""Relay throughput: ticks/s that ``RedisSink`` writes into Redis, against the best hand-written relay
in the same run: a redis-py pipeline per 500 ticks sending the sink's commands (an XADD per tick into
its capped stream, one HSET per symbol of its newest tick; same keys and values).

Starts its own in-memory ``redis-server`` on a free loopback port (``apt-get install redis-server``)::

    python benchmarks/bench_relay.py [--ticks 100000] [--symbols 20] [--repeat 3]

Two ways of feeding the sink are measured: one ``write()`` per tick, as a relay's
stream callback does, and one ``write()`` per 500 ticks.  Each figure is the best of
``--repeat`` runs, ending when Redis has confirmed every record.  Last, the whole relay
(``Relay``: the simulator's WebSocket stream in, ticks and 1-minute bars into Redis) runs
``--repeat`` times for ``--seconds`` against a simulator in its own process; the ticks per
second are those Redis confirmed (bars not counted), best run.  For scale, the same stream is also read with a
callback that only counts: the most the simulator delivers on this machine.  If the relay
comes close to that figure, the bench measures the simulator, not the relay.

The target: end to end >= 0.7x the bare pipeline, and nothing dropped: after
the relay stops, Redis has confirmed every tick and bar the relay took from the stream.

Then the other end: the CPU a live Cerebro uses while its only Redis-fed feed (``source="redis"``)
waits for bars that do not come, this process only (Redis runs in its own), over ``--idle-seconds``
from ``--idle-settle`` seconds after the start (``--only idle`` runs just this part).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import backtrader as bt
import redis

from backtrader_alltick.clock import ScaledClock
from backtrader_alltick.records import Tick
from backtrader_alltick.relay import Relay
from backtrader_alltick.sinks.redis import RedisSink
from backtrader_alltick.store import AllTickStore
from backtrader_alltick.symbols import parse_symbol
from backtrader_alltick.wire import redis_streams

ROOT = Path(__file__).resolve().parent.parent
BATCH = 500
MAXLEN = 100_000
PREFIX = "alltick"
T0 = 1_700_000_000_000


def load_servers():
    # The test fixtures' server helper, loaded by path: tests/ is not a package.
    path = ROOT / "tests" / "sinks" / "sink_servers.py"
    spec = importlib.util.spec_from_file_location("sink_servers", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_ticks(count: int, symbols: int) -> list[Tick]:
    names = [f"SYM{n}.US" for n in range(symbols)]
    return [
        Tick(
            names[n % symbols],
            T0 + n * 7,
            100.0 + (n % 977) * 0.01,
            1.0 + n % 13,
            (n % 977) * 1.5,
            seq=n,
            direction=n % 3,
        )
        for n in range(count)
    ]


def bare_pipeline(client: redis.Redis, ticks: list[Tick]) -> float:
    """The best hand-written relay: the sink's commands, as a careful user would write them with
    redis-py.  Per BATCH ticks one pipeline: an XADD per tick into its capped stream, then one HSET
    per symbol of its newest tick (the same keys, fields and values as ``RedisSink``)."""
    began = time.perf_counter()
    for offset in range(0, len(ticks), BATCH):
        pipe = client.pipeline(transaction=False)
        newest: dict[str, dict] = {}
        for tick in ticks[offset : offset + BATCH]:
            fields = redis_streams.encode_tick(tick)
            pipe.xadd(
                redis_streams.stream_key(PREFIX, "tick", tick.symbol), fields, maxlen=MAXLEN, approximate=True
            )
            newest[tick.symbol] = fields
        for symbol, fields in newest.items():
            pipe.hset(redis_streams.last_key(PREFIX, symbol), "tick", json.dumps(fields))
        pipe.execute()
    return time.perf_counter() - began


def sink_run(url: str, ticks: list[Tick], chunk: int) -> float:
    with RedisSink(url, batch=BATCH, maxlen=MAXLEN) as sink:
        began = time.perf_counter()
        for offset in range(0, len(ticks), chunk):
            sink.write(ticks[offset : offset + chunk])
        if not sink.flush(timeout=600):
            raise RuntimeError(f"RedisSink did not confirm {sink.pending} records")
        elapsed = time.perf_counter() - began
    if sink.written != len(ticks):
        raise RuntimeError(f"RedisSink wrote {sink.written} of {len(ticks)} ticks")
    return elapsed


def best_of(repeat: int, client: redis.Redis, run) -> float:
    times = []
    for _ in range(repeat):
        client.flushall()
        times.append(run())
    return min(times)


RELAY_SYMBOLS = ["BTCUSDT", "ETHUSDT", "EURUSD", "GOLD", "USDJPY"]
SPEED = 60_000
TARGET = 0.7


@contextmanager
def simulator_store():
    """A store on a simulator in its own process (so its pushing does not share our interpreter)."""
    command = [
        sys.executable,
        "-m",
        "backtrader_alltick",
        "sim",
        "--speed",
        str(SPEED),
        "--seed",
        "21",
        "--symbols",
        ",".join(RELAY_SYMBOLS),
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        info = json.loads(process.stdout.readline())
        store = AllTickStore(
            token=info["token"],
            rest_url=info["rest_url"],
            ws_url=info["ws_url"],
            plan="unlimited",
            cache=False,
            clock=ScaledClock(info["start"], SPEED),
        )
        try:
            yield store
        finally:
            store.stop()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(10)


def stream_alone(seconds: float) -> float:
    """Records per second the simulator's stream delivers to a callback that only counts them."""
    with simulator_store() as store:
        counted = [0]

        def count(record) -> None:
            counted[0] += 1

        for symbol in RELAY_SYMBOLS:
            store.listen(parse_symbol(symbol), count)
        time.sleep(1.0)  # warm-up: connection and subscription
        first, began = counted[0], time.monotonic()
        time.sleep(seconds)
        return (counted[0] - first) / (time.monotonic() - began)


def relay_run(redis_url: str, seconds: float) -> tuple[float, dict, int]:
    """Ticks per second the relay takes from the stream into Redis (confirmed by Redis), its stats
    after stopping, and how many records it took that Redis did not confirm."""
    with simulator_store() as store:
        relay = Relay(
            store, RELAY_SYMBOLS, redis_url=redis_url, timeframes=("1m",), types=("tick",), lookback=5
        ).start()
        time.sleep(1.0)  # warm-up: connection, subscription, backfill
        before, began = relay.stats, time.monotonic()
        time.sleep(seconds)
        after, elapsed = relay.stats, time.monotonic() - began
        relay.stop()  # flushes: everything taken must now be confirmed
        final = relay.stats
    bars = sum(after["bars"].values()) - sum(before["bars"].values())
    rate = (after["redis"]["written"] - before["redis"]["written"] - bars) / elapsed
    taken = final["ticks"] + sum(final["bars"].values())
    return rate, final, taken - final["redis"]["written"]


class IdleProbe(bt.Strategy):
    """Read this process's CPU time ``settle`` wall seconds after the run starts and again ``seconds``
    later, then stop: start-up (connecting, the first empty reads) is left out of the figure."""

    params = (("settle", 10.0), ("seconds", 30.0), ("samples", None))

    def start(self) -> None:
        def sample() -> None:
            self.p.samples.append((time.process_time(), time.monotonic()))

        threading.Timer(self.p.settle, sample).start()
        threading.Timer(self.p.settle + self.p.seconds, lambda: (sample(), self.env.runstop())).start()


def idle_consumer_cpu(redis_url: str, settle: float, seconds: float) -> float:
    """Share of one core a live Cerebro uses while its only feed reads an empty Redis stream."""
    samples: list[tuple[float, float]] = []
    store = AllTickStore(dialect="alltick", cache=False)
    try:
        cerebro = bt.Cerebro(stdstats=False)
        cerebro.adddata(
            store.getdata(
                dataname="BTCUSDT", timeframe=bt.TimeFrame.Minutes, source="redis", source_url=redis_url
            )
        )
        cerebro.addstrategy(IdleProbe, settle=settle, seconds=seconds, samples=samples)
        cerebro.run()
    finally:
        store.stop()
    (cpu0, wall0), (cpu1, wall1) = samples
    return (cpu1 - cpu0) / (wall1 - wall0)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ticks", type=int, default=100_000)
    parser.add_argument("--symbols", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--idle-settle", type=float, default=10.0, help="seconds before idle is measured")
    parser.add_argument("--idle-seconds", type=float, default=30.0, help="seconds idle is measured over")
    parser.add_argument("--only", choices=["throughput", "idle"], help="run one part only")
    args = parser.parse_args()
    if args.only in (None, "throughput"):
        throughput(args)
    if args.only in (None, "idle"):
        idle(args)


def idle(args: argparse.Namespace) -> None:
    servers = load_servers()
    with tempfile.TemporaryDirectory() as tmp:
        server = servers.RedisServer(Path(tmp), append_only=False)
        server.start()
        try:
            share = idle_consumer_cpu(server.url, args.idle_settle, args.idle_seconds)
        finally:
            server.stop()
    print(
        f"idle live Cerebro (one Redis-fed feed, no bars coming, Redis in its own process): {share:.2%} "
        f"of one core, this process only, over {args.idle_seconds:.0f} s from {args.idle_settle:.0f} s "
        "after start"
    )


def throughput(args: argparse.Namespace) -> None:
    ticks = make_ticks(args.ticks, args.symbols)
    servers = load_servers()

    with tempfile.TemporaryDirectory() as tmp:
        server = servers.RedisServer(Path(tmp), append_only=False)
        server.start()
        try:
            client = redis.Redis.from_url(server.url)
            baseline = best_of(args.repeat, client, lambda: bare_pipeline(client, ticks))
            per_tick = best_of(args.repeat, client, lambda: sink_run(server.url, ticks, 1))
            per_batch = best_of(args.repeat, client, lambda: sink_run(server.url, ticks, BATCH))
            relay_runs = []
            for _ in range(args.repeat):
                client.flushall()
                relay_runs.append(relay_run(server.url, args.seconds))
            client.close()
        finally:
            server.stop()
    delivered = stream_alone(args.seconds)
    relayed, relay_stats, _ = max(relay_runs, key=lambda run: run[0])
    # Nothing may be lost in any run, not only in the fastest.
    unconfirmed = sum(run[2] for run in relay_runs)
    dropped = sum(run[1]["redis"]["dropped"] for run in relay_runs)
    rejected = sum(run[1]["redis"]["rejected"] for run in relay_runs)

    rate = len(ticks) / baseline
    print(
        f"relay throughput, {len(ticks):,} ticks over {args.symbols} symbols, best of {args.repeat}, "
        f"pipelines of {BATCH}"
    )
    print(f"  redis-py pipeline, the sink's commands {rate:>11,.0f} ticks/s   ratio 1.00 (baseline)")
    runs = (("RedisSink, write() per tick", per_tick), ("RedisSink, write() per 500", per_batch))
    for label, elapsed in runs:
        print(f"  {label:<37} {len(ticks) / elapsed:>12,.0f} ticks/s   ratio {baseline / elapsed:.2f}")
    label = "Relay, stream -> Redis (end to end)"
    print(
        f"  {label:<37} {relayed:>12,.0f} ticks/s   ratio {relayed / rate:.2f}   "
        f"(plus bars: {relay_stats['bars']})"
    )
    label = "simulator stream alone (upper bound)"
    print(
        f"  {label:<37} {delivered:>12,.0f} ticks/s   ratio {delivered / rate:.2f}   "
        f"(relay takes {relayed / delivered:.0%} of it)"
    )
    lost = unconfirmed + dropped + rejected
    verdict = "met" if relayed / rate >= TARGET and lost == 0 else "NOT met"
    print(
        f"end-to-end relay ratio {relayed / rate:.2f} (target >= {TARGET}), "
        f"dropped {dropped}, rejected {rejected}, taken but unconfirmed {unconfirmed} "
        f"(all runs): target {verdict}"
    )


if __name__ == "__main__":
    main()
