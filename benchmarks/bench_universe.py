"""The relay records a universe: N symbols of the simulator into Redis, every 1-minute bar checked.

The simulator runs in its own process with ``--symbols`` US stocks (``U0000.US`` ...) on the given
plan; the relay (ticks and 1-minute bars into an in-memory ``redis-server`` on a free loopback
port) runs in this one, so this process's CPU time is the relay's.  The simulator's stocks trade
about 0.21 times a second each (market time), so ``--speed 5`` makes each trade about once per
wall second: the tick load of a universe trading once a second in real time, with five times
the real rate of bar closes (so the CPU figure is on the safe side).  The clock runs through
``--hours`` market hours of US regular trading (from 15:00 UTC) after the warm-up.

Reported: CPU (share of one core, and per symbol), resident memory (per symbol, and its growth
after warm-up per market hour), ticks and bars, and the golden check: every 1-minute bar in
Redis equals the simulator's K-line of the same minute (asked over REST after the run)::

    python benchmarks/bench_universe.py [--symbols 3000] [--speed 5] [--hours 2] [--plan professional]

Also reported: the REST requests the start cost until every symbol's bars came from the stream
(``/batch-kline`` answers the start's last bar of up to the plan's groups of symbols a call);
``--kline-start`` starts with one ``/kline`` per symbol instead, as before batch starts, to compare.

The simulator's pusher walks every subscribed symbol each 20 ms step (about 35 ms for 3000
symbols), so it trails its clock by well under a market second at 5x; ``--grace`` (wall seconds a
bar waits for late trades) covers that and the relay's own queueing.

Goal (see README "Many symbols"): 3000 symbols on less than one core, memory flat after warm-up.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from backtrader_alltick.clock import ScaledClock
from backtrader_alltick.errors import LateTradeWarning
from backtrader_alltick.relay import Relay
from backtrader_alltick.store import AllTickStore
from backtrader_alltick.symbols import parse_symbol
from backtrader_alltick.transport.redis_reader import RedisReader

ROOT = Path(__file__).resolve().parent.parent
START = "2024-03-05T15:00"  # US regular hours run to 21:00 UTC


def load_servers():
    # The test fixtures' server helper, loaded by path: tests/ is not a package.
    path = ROOT / "tests" / "sinks" / "sink_servers.py"
    spec = importlib.util.spec_from_file_location("sink_servers", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_simulator(symbols: list[str], speed: float, plan: str):
    command = [
        sys.executable,
        "-m",
        "backtrader_alltick",
        "sim",
        "--speed",
        str(speed),
        "--seed",
        "31",
        "--plan",
        plan,
        "--start",
        START,
        "--symbols",
        ",".join(symbols),
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    return process, json.loads(process.stdout.readline())


_FIELDS = ("open", "high", "low", "close", "volume")
# Counters of a source that say why a bar may lack trades.
_CAUSES = ("late_ticks", "duplicates", "overflows", "before_seam", "reconnects")


class KlineStartStore(AllTickStore):
    """A store whose live sources ask ``/kline`` each (no shared batch answers): the start before."""

    newest = None


def track_origins(relay: Relay) -> dict[str, dict[int, str]]:
    """symbol -> {bar end: "rest" | "stream"}: where each bar the relay delivered was built."""
    origins: dict[str, dict[int, str]] = {}
    for source, (inst, _label) in relay._bars._sources.items():
        mine = origins.setdefault(inst.symbol, {})
        take = source.seam.take

        def taking(take=take, mine=mine):
            ready = take()
            for bar, origin in ready:
                mine[bar.end] = "stream" if origin == "bars_live" else "rest"
            return ready

        source.seam.take = taking
    return origins


def source_stats(sources: dict) -> dict[str, dict[str, int]]:
    return {
        inst.symbol: {key: source.stats.get(key, 0) for key in _CAUSES}
        for source, (inst, _label) in sources.items()
    }


def golden_check(
    store: AllTickStore,
    redis_url: str,
    symbols: list[str],
    window: tuple[int, int],
    warm_until: int,
    origins: dict[str, dict[int, str]],
) -> dict[str, dict]:
    """Every bar in Redis against the simulator's, in the warm-up (bars closing by ``warm_until``) and
    the measured window apart: bars checked, symbols with bars, differing bars (with the source that
    built each)."""
    parts = {name: {"checked": 0, "symbols": set(), "wrong": []} for name in ("warm-up", "measured")}
    with RedisReader(redis_url, reconnect_timeout=0) as source:
        for symbol in symbols:
            bars = [entry.record for entry in source.newest_bars(symbol, "1m", 10_000)]
            bars = [bar for bar in bars if window[0] <= bar.end <= window[1]]
            if not bars:
                continue
            truth = {bar.end: bar for bar in store.rest.klines(parse_symbol(symbol), "1m", 500)}
            for bar in bars:
                part = parts["warm-up" if bar.end <= warm_until else "measured"]
                part["checked"] += 1
                part["symbols"].add(symbol)
                same = truth.get(bar.end)
                if same is None or any(getattr(bar, f) != getattr(same, f) for f in _FIELDS):
                    origin = origins.get(symbol, {}).get(bar.end, "?")
                    part["wrong"].append((symbol, bar, same, origin))
    return parts


def describe_wrong(symbol: str, bar, same, origin: str, stats: dict[str, dict[str, int]]) -> str:
    if same is None:
        diff = "no K-line"
    else:
        diff = ", ".join(
            f"{f} {getattr(bar, f)} vs {getattr(same, f)}"
            for f in _FIELDS
            if getattr(bar, f) != getattr(same, f)
        )
    counters = " ".join(f"{key}={value}" for key, value in stats.get(symbol, {}).items() if value)
    return f"{symbol} end {bar.end} from {origin}: {diff} [{counters or 'no counters'}]"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--symbols", type=int, default=3000)
    parser.add_argument("--speed", type=float, default=5.0)
    parser.add_argument("--hours", type=float, default=2.0, help="market hours measured after warm-up")
    parser.add_argument(
        "--warmup",
        type=float,
        default=20.0,
        help="market minutes before measuring, at least until every symbol is live",
    )
    parser.add_argument("--plan", default="professional")
    parser.add_argument(
        "--kline-start", action="store_true", help="one /kline per symbol at start (no /batch-kline)"
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=1.0,
        help="wall seconds a bar waits for late trades (the simulator's pusher trails "
        "its clock by a step or two with thousands of symbols)",
    )
    args = parser.parse_args()
    # One line per symbol would bury the report: the counters say it per symbol below.
    warnings.filterwarnings("ignore", category=LateTradeWarning)
    symbols = [f"U{index:04d}.US" for index in range(args.symbols)]
    servers = load_servers()
    with tempfile.TemporaryDirectory() as tmp:
        redis_server = servers.RedisServer(Path(tmp), append_only=False)
        redis_server.start()
        sim, info = start_simulator(symbols, args.speed, args.plan)
        try:
            store = (KlineStartStore if args.kline_start else AllTickStore)(
                token=info["token"],
                rest_url=info["rest_url"],
                ws_url=info["ws_url"],
                plan=args.plan,
                cache=False,
                clock=ScaledClock(info["start"], args.speed),
            )
            began_wall, cpu0 = time.monotonic(), time.process_time()
            relay = Relay(
                store,
                symbols,
                redis_url=redis_server.url,
                timeframes=("1m",),
                types=("tick",),
                lookback=1,
                grace=args.grace,
            ).start()
            origins, sources = track_origins(relay), dict(relay._bars._sources)
            wall_per_market_minute = 60 / args.speed
            time.sleep(args.warmup * wall_per_market_minute)
            # Warm-up ends once every symbol's bars come from the stream: the backfill of a universe
            # takes minutes of the plan's request budget, and the seams hold the stream's bars until then.
            while not all(source.history_until is None for source in relay._bars._sources):
                time.sleep(5.0)
            warm_rss, warm_cpu, warm_wall = rss_mb(), time.process_time(), time.monotonic()
            start_rest = store.rest.stats.snapshot()
            warm_stats, warm_market = relay.stats, store.clock.now_ms()
            samples = [(0.0, warm_rss)]
            end_wall = warm_wall + args.hours * 3600 / args.speed
            while time.monotonic() < end_wall:
                time.sleep(min(10.0, max(0.0, end_wall - time.monotonic())))
                samples.append(((store.clock.now_ms() - warm_market) / 3_600_000, rss_mb()))
            cpu, wall = time.process_time() - warm_cpu, time.monotonic() - warm_wall
            stats, end_market = relay.stats, store.clock.now_ms()
            relay.stop()
            final, per_symbol = relay.stats, source_stats(sources)
            parts = golden_check(
                store, redis_server.url, symbols, (info["start"], end_market), warm_market, origins
            )
            store.stop()
        finally:
            sim.send_signal(signal.SIGTERM)
            sim.wait(10)
            redis_server.stop()
    market_hours = (end_market - warm_market) / 3_600_000
    ticks = stats["ticks"] - warm_stats["ticks"]
    bars = sum(stats["bars"].values()) - sum(warm_stats["bars"].values())
    share = cpu / wall
    growth = (samples[-1][1] - samples[0][1]) / max(market_hours, 1e-9)
    print(
        f"relay on {args.symbols} symbols, plan {args.plan}, speed {args.speed}x, "
        f"{market_hours:.2f} market hours measured after "
        f"{(warm_market - info['start']) / 60_000:.0f} market minutes of warm-up "
        f"(startup {warm_wall - began_wall:.0f} s wall, {warm_cpu - cpu0:.1f} s CPU)"
    )
    print(
        f"  start ({'/kline per symbol' if args.kline_start else 'batch'}): {start_rest.requests:,} REST "
        f'requests until every symbol was live ({start_rest.rate_limited} answered "slow down"), '
        f"{start_rest.waited:.1f} s waited for the plan's limits (summed over the symbols' backfill threads)"
    )
    upstream = store.stream_stats.get("stock", {})
    print(
        f"  upstream: {upstream.get('links', '?')} connection(s), {upstream.get('reconnects', '?')} "
        f"reconnects ({upstream.get('stale_timeouts', '?')} for staleness; heartbeats answered "
        f"{upstream.get('heartbeats_answered', '?')}/{upstream.get('heartbeats_sent', '?')}), "
        f"{upstream.get('records', '?'):,} records read; "
        f"ticks {ticks:,} ({ticks / wall:,.0f}/s wall, {ticks / args.symbols / wall:.2f}/s per symbol), "
        f"1m bars {bars:,}"
    )
    print(
        f"  CPU: {share * 100:.1f}% of one core; {share / args.symbols * 1e6:.1f} us per wall second "
        f"per symbol; {cpu / max(ticks, 1) * 1e6:.1f} us per tick (bars included)"
    )
    print(
        f"  memory: {samples[-1][1]:.0f} MB resident, {samples[-1][1] * 1024 / args.symbols:.1f} kB per "
        f"symbol; after warm-up {samples[0][1]:.0f} -> {samples[-1][1]:.0f} MB "
        f"({growth:+.1f} MB per market hour)"
    )
    print(
        f"  redis: written {final['redis']['written']:,}, dropped {final['redis']['dropped']}, "
        f"rejected {final['redis']['rejected']}; relay errors {final['errors']}"
    )
    totals = {key: sum(stats[key] for stats in per_symbol.values()) for key in _CAUSES}
    print("  bar sources: " + ", ".join(f"{key} {value:,}" for key, value in totals.items()))
    wrong_all = []
    for name, part in parts.items():
        wrong = part["wrong"]
        wrong_all += wrong
        by_origin = {}
        for entry in wrong:
            by_origin[entry[3]] = by_origin.get(entry[3], 0) + 1
        print(
            f"  golden ({name}): {part['checked'] - len(wrong):,} of {part['checked']:,} 1-minute bars of "
            f"{len(part['symbols'])} symbols equal the simulator's K-lines, {len(wrong)} differ"
            + (f" ({', '.join(f'{n} from {o}' for o, n in by_origin.items())})" if wrong else "")
        )
        for entry in wrong[:5]:
            print("    " + describe_wrong(*entry, per_symbol))
    with_bars = len(parts["warm-up"]["symbols"] | parts["measured"]["symbols"])
    verdict = "met" if share < 1.0 and not wrong_all and with_bars == args.symbols else "NOT met"
    print(f"goal (all {args.symbols} symbols golden on less than one core): {verdict}")


if __name__ == "__main__":
    main()
