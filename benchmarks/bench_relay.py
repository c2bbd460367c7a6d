"""Relay throughput: the ticks ``Relay`` moves from the simulator's stream into Redis, against the
best hand-written relay on the same stream, measured in the same run.

The baseline (``HandRelay``) reads the same simulator stream through the store (``store.listen``,
the same parsing) and sends the sink's commands with a redis-py pipeline per 500 ticks from its
own writer thread: an XADD per tick into its capped stream, then one HSET per symbol of its newest
tick (the same keys, fields and values as ``RedisSink``).  It builds no bars and drops no repeats:
the relay does both on top, so the comparison leans towards the baseline.

Starts its own in-memory ``redis-server`` on a free loopback port (``apt-get install redis-server``)::

    python benchmarks/bench_relay.py [--rounds 5] [--seconds 5] [--ticks 100000]

Each round runs, against a fresh simulator process (same seed, same start, so the same trades):
the stream alone (a callback that only counts), the baseline and the relay, in an order that
alternates between rounds so a drifting machine load favours neither.  Each run discards
``--warmup`` seconds (connection, subscription, backfill), then counts for ``--seconds`` the
ticks Redis confirmed (bars not counted), the CPU seconds of this process (every thread: the
stream reader, the bar builder, the sink) and of ``redis-server``, each per confirmed tick, and
how many records were taken from the stream but not yet confirmed at the window's end (``behind``:
a consumer that falls behind the stream).  Figures are medians over the rounds.

Two ratios, relay over baseline:

* capacity: ticks per CPU second of this process.  The client is one interpreter (one GIL),
  so this is the most ticks per second each can take on one core; the simulator's own speed
  and the machine's load from other processes do not enter it.  The headline figure.
* wall: ticks per wall second.  Near 1.0 when both keep up with the simulator (the stream alone
  shows what it delivers): then it measures the simulator, not the relay.

The target: capacity >= 0.7x the baseline, and nothing dropped: after the relay stops, Redis has
confirmed every tick and bar the relay took from the stream.  For reference, the sink alone
against the bare pipeline on ticks made in memory (``--ticks``; median of ``--repeat`` after a
discarded warm-up).

Then the other end: the CPU a live Cerebro uses while its only Redis-fed feed (``source="redis"``)
waits for bars that do not come, this process only (Redis runs in its own), over ``--idle-seconds``
from ``--idle-settle`` seconds after the start (``--only idle`` runs just this part,
``--only throughput`` the rest).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import signal
import statistics
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
RELAY_SYMBOLS = ["BTCUSDT", "ETHUSDT", "EURUSD", "GOLD", "USDJPY"]
SPEED = 60_000
TARGET = 0.7


def load_servers():
    # The test fixtures' server helper, loaded by path: tests/ is not a package.
    path = ROOT / "tests" / "sinks" / "sink_servers.py"
    spec = importlib.util.spec_from_file_location("sink_servers", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- the sink alone, on ticks made in memory ------------------------------------------------------


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


def pipeline_batch(client: redis.Redis, ticks: list[Tick]) -> None:
    """One batch as a careful user writes it with redis-py: an XADD per tick into its capped stream,
    then one HSET per symbol of its newest tick (the same keys, fields and values as ``RedisSink``)."""
    pipe = client.pipeline(transaction=False)
    newest: dict[str, dict] = {}
    for tick in ticks:
        fields = redis_streams.encode_tick(tick)
        pipe.xadd(
            redis_streams.stream_key(PREFIX, "tick", tick.symbol), fields, maxlen=MAXLEN, approximate=True
        )
        newest[tick.symbol] = fields
    for symbol, fields in newest.items():
        pipe.hset(redis_streams.last_key(PREFIX, symbol), "tick", json.dumps(fields))
    pipe.execute()


def bare_pipeline(client: redis.Redis, ticks: list[Tick]) -> float:
    began = time.perf_counter()
    for offset in range(0, len(ticks), BATCH):
        pipeline_batch(client, ticks[offset : offset + BATCH])
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


def median_of(repeat: int, client: redis.Redis, run) -> float:
    times = []
    for _ in range(repeat + 1):
        client.flushall()
        times.append(run())
    return statistics.median(times[1:])  # the first run warms caches and connections


# -- end to end, from the simulator's stream -------------------------------------------------------


@contextmanager
def simulator_store():
    """A store on a simulator in its own process (so its pushing does not share our interpreter)."""
    command = [sys.executable, "-m", "backtrader_alltick", "sim", "--speed", str(SPEED), "--seed", "21"]
    command += ["--symbols", ",".join(RELAY_SYMBOLS)]
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


class HandRelay:
    """The best hand-written relay: the reader thread that takes a tick also sends, a redis-py pipeline
    per ``BATCH`` ticks.  Sending from the reader, not a writer thread, is what keeps it fast in
    CPython: handing each batch to a writer thread stalls the writer on the GIL at every socket call
    (a reader with a frame always ready holds it for the switch interval each time), which fell
    behind the stream at under half this rate when tried.  (A real one also needs a timer for a
    quiet stream; here the stream never is.)"""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.written = 0
        self._batch: list[Tick] = []
        self._lock = threading.Lock()  # one reader thread per endpoint family calls in

    def behind(self) -> int:
        return len(self._batch)

    def on_record(self, record: object) -> None:
        if type(record) is not Tick:
            return
        with self._lock:
            batch = self._batch
            batch.append(record)
            if len(batch) < BATCH:
                return
            self._batch = []
        self._send(batch)

    def _send(self, batch: list[Tick]) -> None:
        pipeline_batch(self.client, batch)
        with self._lock:
            self.written += len(batch)

    def stop(self) -> None:
        with self._lock:
            batch, self._batch = self._batch, []
        if batch:
            self._send(batch)
        self.client.close()


def redis_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def measure(client: redis.Redis, count, warmup: float, seconds: float, behind=lambda: 0) -> dict:
    """Ticks, wall seconds and CPU seconds (ours, redis-server's) of a ``seconds`` window after ``warmup``;
    ``behind``: records taken from the stream but not yet confirmed by Redis at the window's end."""
    time.sleep(warmup)
    ticks0, wall0, cpu0, server0 = count(), time.monotonic(), time.process_time(), redis_cpu(client)
    time.sleep(seconds)
    ticks, wall = count() - ticks0, time.monotonic() - wall0
    cpu, server = time.process_time() - cpu0, redis_cpu(client) - server0
    return {
        "ticks": ticks,
        "rate": ticks / wall,
        "cpu_per_tick": cpu / max(ticks, 1),
        "redis_per_tick": server / max(ticks, 1),
        "behind": behind(),
    }


def stream_alone(client: redis.Redis, url: str, warmup: float, seconds: float) -> dict:
    """What the simulator's stream delivers to a callback that only counts."""
    with simulator_store() as store:
        counted = [0]

        def count(record) -> None:
            counted[0] += 1

        for symbol in RELAY_SYMBOLS:
            store.listen(parse_symbol(symbol), count)
        return measure(client, lambda: counted[0], warmup, seconds)


def hand_relay(client: redis.Redis, url: str, warmup: float, seconds: float) -> dict:
    with simulator_store() as store:
        hand = HandRelay(url)
        for symbol in RELAY_SYMBOLS:
            store.listen(parse_symbol(symbol), hand.on_record)
        try:
            return measure(client, lambda: hand.written, warmup, seconds, hand.behind)
        finally:
            for symbol in RELAY_SYMBOLS:
                store.unlisten(parse_symbol(symbol), hand.on_record)
            hand.stop()


def relay_run(client: redis.Redis, url: str, warmup: float, seconds: float) -> dict:
    """The relay's figures, plus its stats after stopping and how many records it took that Redis
    did not confirm."""
    with simulator_store() as store:
        relay = Relay(store, RELAY_SYMBOLS, redis_url=url, timeframes=("1m",), types=("tick",), lookback=5)
        relay.start()

        def confirmed_ticks() -> int:
            stats = relay.stats
            return stats["redis"]["written"] - sum(stats["bars"].values())

        figures = measure(client, confirmed_ticks, warmup, seconds, lambda: relay.stats["redis"]["pending"])
        relay.stop()  # flushes: everything taken must now be confirmed
        final = relay.stats
    taken = final["ticks"] + sum(final["bars"].values())
    figures.update(final=final, unconfirmed=taken - final["redis"]["written"])
    return figures


def end_to_end(client: redis.Redis, url: str, rounds: int, warmup: float, seconds: float) -> list[dict]:
    runs = {"stream": stream_alone, "hand": hand_relay, "relay": relay_run}
    results = []
    for number in range(rounds):
        order = ["stream", "hand", "relay"] if number % 2 == 0 else ["relay", "hand", "stream"]
        found = {}
        for name in order:
            client.flushall()
            found[name] = runs[name](client, url, warmup, seconds)
        results.append(found)
        hand, relay = found["hand"], found["relay"]
        print(
            f"  round {number + 1}: capacity {hand['cpu_per_tick'] / relay['cpu_per_tick']:.2f}"
            f", wall {relay['rate'] / hand['rate']:.2f}",
            file=sys.stderr,
        )
    return results


def median(results: list[dict], name: str, key: str) -> float:
    return statistics.median(found[name][key] for found in results)


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
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=float, default=1.5)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--ticks", type=int, default=100_000)
    parser.add_argument("--symbols", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
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
            baseline = median_of(args.repeat, client, lambda: bare_pipeline(client, ticks))
            per_tick = median_of(args.repeat, client, lambda: sink_run(server.url, ticks, 1))
            per_batch = median_of(args.repeat, client, lambda: sink_run(server.url, ticks, BATCH))
            results = end_to_end(client, server.url, args.rounds, args.warmup, args.seconds)
            client.close()
        finally:
            server.stop()

    print(
        f"sink alone, {len(ticks):,} ticks made in memory over {args.symbols} symbols, "
        f"median of {args.repeat}"
    )
    print(
        f"  {'redis-py pipeline, the sink commands':<38} {len(ticks) / baseline:>10,.0f} ticks/s   ratio 1.00"
    )
    for label, elapsed in (
        ("RedisSink, write() per tick", per_tick),
        ("RedisSink, write() per 500", per_batch),
    ):
        print(f"  {label:<38} {len(ticks) / elapsed:>10,.0f} ticks/s   ratio {baseline / elapsed:.2f}")

    capacities = [found["hand"]["cpu_per_tick"] / found["relay"]["cpu_per_tick"] for found in results]
    walls = [found["relay"]["rate"] / found["hand"]["rate"] for found in results]
    print(
        f"end to end from the simulator stream, {len(RELAY_SYMBOLS)} symbols, median of {args.rounds} rounds "
        f"of {args.seconds:g} s after {args.warmup:g} s warm-up"
    )
    print(f"  {'':<38} {'ticks/s':>10}  {'us CPU/tick':>11}  {'redis us/tick':>13}  {'behind':>8}")
    labels = (
        ("stream", "stream alone (counting callback)"),
        ("hand", "hand-written relay (baseline)"),
        ("relay", "Relay (ticks + 1m bars)"),
    )
    for name, label in labels:
        rate, cpu = median(results, name, "rate"), median(results, name, "cpu_per_tick")
        server = median(results, name, "redis_per_tick")
        behind = median(results, name, "behind")
        print(f"  {label:<38} {rate:>10,.0f}  {cpu * 1e6:>11.1f}  {server * 1e6:>13.1f}  {behind:>8,.0f}")
    capacity, wall = statistics.median(capacities), statistics.median(walls)
    spread = f"{min(capacities):.2f}-{max(capacities):.2f}"
    print(f"  capacity ratio (ticks per CPU second) {capacity:.2f} (rounds {spread}); wall ratio {wall:.2f}")

    unconfirmed = sum(found["relay"]["unconfirmed"] for found in results)
    dropped = sum(found["relay"]["final"]["redis"]["dropped"] for found in results)
    rejected = sum(found["relay"]["final"]["redis"]["rejected"] for found in results)
    verdict = "met" if capacity >= TARGET and unconfirmed + dropped + rejected == 0 else "NOT met"
    print(
        f"relay capacity ratio {capacity:.2f} (target >= {TARGET}), dropped {dropped}, rejected {rejected}, "
        f"taken but unconfirmed {unconfirmed} (all rounds): target {verdict}"
    )


if __name__ == "__main__":
    main()
