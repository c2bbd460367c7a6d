"""Many live feeds in one Cerebro, against the simulator in its own process, all measured in one run:

1. latency from a 1-minute bar's close to the ``next()`` that sees it (p50/p99, wall seconds) with
   1, 10 and 50 trading feeds on one store, each run with a fifth as many quiet feeds besides (at
   least one, and one polled last: a market that is closed, as a user's universe always has some), as
   ratios to the single feed; and how often every bar of a minute reaches the strategy in one ``next()``;
2. CPU used by a Cerebro with 1, 10 and 50 silent live feeds (market closed), this process only, over
   30 s from 10 s after the start, and with 50 against a baseline in the same run: the same Cerebro
   with every quiet call going through Backtrader's own ``load`` (lines moved forward and back);
3. 100 live feeds on one store: the same latency figures, CPU per delivered bar, and where Cerebro's
   thread spends its time (cProfile, the top functions by own time).

    python benchmarks/bench_many_feeds.py [--minutes 20] [--only latency|idle|hundred]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import pstats
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator

import backtrader as bt
from bench_live import simulator_process

from backtrader_alltick import AllTickStore
from backtrader_alltick.feed import AllTickData

SPEED = 60  # a market minute per wall second: one bar per feed per wall second
WARM_MINUTES = 3  # live minutes left out at the start (seams anchoring, the first stream bars)


def crypto_symbols(count: int) -> list[str]:
    return [f"C{n:03d}USDT" for n in range(count)]


def quiet_symbols(count: int) -> list[str]:
    # Hong Kong has been closed for hours at the simulator's start (15:00 UTC) and stays closed.
    return [f"{n}.HK" for n in range(1, count + 1)]


def interleave(trading: list[str], quiet: list[str]) -> list[str]:
    """Quiet feeds spread among the trading ones, and one polled last (after every trading feed has
    taken the bars that ended the pass's wait): Cerebro polls the feeds in this order."""
    quiet = list(quiet)
    last = quiet.pop(0)
    out, step = [], max(1, len(trading) // max(1, len(quiet)))
    for i, symbol in enumerate(trading):
        if i % step == 0 and quiet:
            out.append(quiet.pop())
        out.append(symbol)
    return out + quiet + [last]


class ManyFeedsProbe(bt.Strategy):
    """Record, for each bar a feed delivers once every feed is LIVE, the wall lag after its close
    and the ``next()`` call it came in; stop after ``minutes`` live minutes."""

    params = (("clock", None), ("speed", 1.0), ("minutes", 20), ("trading", ()))

    def __init__(self) -> None:
        self.lags: list[float] = []
        self.calls_per_minute: Counter = Counter()  # bar close stamp -> next() calls that carried one
        self.bars_per_minute: Counter = Counter()
        self._lens = [0] * len(self.datas)
        self._live: set[int] = set()
        self._first_live_minute: int | None = None

    def notify_data(self, data, status, *args, **kwargs) -> None:
        if status == data.LIVE:
            self._live.add(id(data))

    def next(self) -> None:
        now = self.p.clock.now_ms()
        advanced = []
        for i, data in enumerate(self.datas):
            if len(data) > self._lens[i]:
                self._lens[i] = len(data)
                advanced.append(data)
        if len(self._live) < len(self.datas):
            return
        stamps = {
            round(bt.num2date(data.datetime[0]).timestamp() * 1000)
            for data in advanced
            if data._name in self.p.trading
        }
        if not stamps:
            return
        if self._first_live_minute is None:
            self._first_live_minute = min(stamps) + WARM_MINUTES * 60_000
        for data in advanced:
            if data._name not in self.p.trading:
                continue
            end_ms = round(bt.num2date(data.datetime[0]).timestamp() * 1000)
            if end_ms < self._first_live_minute:
                continue
            self.lags.append((now - end_ms) / 1000 / self.p.speed)
            self.bars_per_minute[end_ms] += 1
        for end_ms in stamps:
            if end_ms >= self._first_live_minute:
                self.calls_per_minute[end_ms] += 1
        if len(self.bars_per_minute) > self.p.minutes:
            self.env.runstop()


def live_run(count: int, minutes: int, profile: bool = False) -> dict:
    trading = crypto_symbols(count)
    symbols = interleave(trading, quiet_symbols(max(1, count // 5)))
    with simulator_process(speed=SPEED, seed=21, symbols=symbols) as sim:
        store = AllTickStore.from_simulator(sim, cache=False)
        cerebro = bt.Cerebro(stdstats=False)
        for symbol in symbols:
            cerebro.adddata(
                store.getdata(dataname=symbol, timeframe=bt.TimeFrame.Minutes, lookback=2), name=symbol
            )
        # The store's clock: ours, corrected by the service's trade stamps (the simulator started first).
        cerebro.addstrategy(
            ManyFeedsProbe, clock=store.clock, speed=SPEED, minutes=minutes, trading=frozenset(trading)
        )
        profiler = cProfile.Profile() if profile else None
        cpu0, wall0 = time.process_time(), time.monotonic()
        if profiler is not None:
            profiler.enable()
        strategy = cerebro.run()[0]
        if profiler is not None:
            profiler.disable()
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        store.stop()
    lags = sorted(strategy.lags)
    # The newest minute may be cut by runstop: judge only minutes every feed delivered.
    full = [m for m, n in strategy.bars_per_minute.items() if n == count]
    together = sum(strategy.calls_per_minute[m] == 1 for m in full)
    result = {
        "count": count,
        "quiet": len(symbols) - count,
        "lags": lags,
        "p50": statistics.median(lags),
        "p99": percentile(lags, 0.99),
        "minutes": len(full),
        "together": together,
        "cpu": cpu,
        "wall": wall,
        "bars": len(lags),
    }
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(12)
        result["profile"] = out.getvalue()
    return result


def percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


class IdleProbe(bt.Strategy):
    params = (("settle", 10.0), ("seconds", 30.0), ("samples", None))

    def start(self) -> None:
        cerebro_clock = time.pthread_getcpuclockid(threading.get_ident())  # Cerebro's own thread

        def sample() -> None:
            self.p.samples.append((time.process_time(), time.clock_gettime(cerebro_clock), time.monotonic()))

        threading.Timer(self.p.settle, sample).start()
        threading.Timer(self.p.settle + self.p.seconds, lambda: (sample(), self.env.runstop())).start()


def idle_cpu(
    count: int, settle: float, seconds: float, qcheck: float = 0.5, quiet_path: bool = True
) -> tuple[float, float]:
    """Shares of one core this process, and Cerebro's thread alone, use while ``count`` live feeds are
    silent (Hong Kong closed at the simulator's start, 15:00 UTC); the simulator runs in its own process.
    ``quiet_path`` False: the baseline, a quiet feed's call goes through Backtrader's whole ``load``."""
    if not quiet_path:
        with _without_quiet_path():
            return idle_cpu(count, settle, seconds, qcheck)
    symbols = [f"{n}.HK" for n in range(1, count + 1)]
    samples: list[tuple[float, float]] = []
    with simulator_process(speed=1, seed=23, symbols=symbols) as sim:
        store = AllTickStore.from_simulator(sim, cache=False)
        cerebro = bt.Cerebro(stdstats=False)
        for symbol in symbols:
            cerebro.adddata(
                store.getdata(dataname=symbol, timeframe=bt.TimeFrame.Minutes, lookback=2, qcheck=qcheck)
            )
        cerebro.addstrategy(IdleProbe, settle=settle, seconds=seconds, samples=samples)
        cerebro.run()
        store.stop()
    (cpu0, own0, wall0), (cpu1, own1, wall1) = samples
    return (cpu1 - cpu0) / (wall1 - wall0), (own1 - own0) / (wall1 - wall0)


@contextlib.contextmanager
def _without_quiet_path() -> Iterator[None]:
    quiet = AllTickData._quiet
    AllTickData._quiet = lambda self: False  # type: ignore[method-assign]
    try:
        yield
    finally:
        AllTickData._quiet = quiet  # type: ignore[method-assign]


def describe(result: dict, grace: float = 0.25) -> str:
    return (
        f"{result['count']:>3} trading + {result['quiet']:>2} quiet feeds: "
        f"p50 {result['p50']:.3f}s p99 {result['p99']:.3f}s "
        f"(grace {grace}s; p99 - grace {result['p99'] - grace:+.3f}s) over {result['bars']} bars; "
        f"{result['together']}/{result['minutes']} minutes in one next()"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=int, default=20, help="live minutes measured per run")
    parser.add_argument("--counts", default="1,10,50", help="feed counts of the latency runs")
    parser.add_argument("--idle-counts", default="1,10,50", help="feed counts of the idle runs")
    parser.add_argument("--idle-settle", type=float, default=10.0)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument(
        "--idle-qcheck",
        type=float,
        default=0.5,
        help="the feeds' qcheck: Cerebro passes over every feed once per qcheck while idle",
    )
    parser.add_argument("--only", choices=["latency", "idle", "hundred"], help="run one part only")
    args = parser.parse_args()

    if args.only in (None, "latency"):
        results = [live_run(int(n), args.minutes) for n in args.counts.split(",")]
        for result in results:
            print("bar close -> next(), " + describe(result))
        base = results[0]
        for result in results[1:]:
            print(
                f"{result['count']} feeds / {base['count']}: p99 ratio {result['p99'] / base['p99']:.2f}, "
                f"p50 ratio {result['p50'] / base['p50']:.2f}"
            )
    if args.only in (None, "idle"):
        counts = [int(n) for n in args.idle_counts.split(",")]
        for count in counts:
            share, cerebro_share = idle_cpu(count, args.idle_settle, args.idle_seconds, args.idle_qcheck)
            print(
                f"idle live Cerebro ({count} silent feeds, qcheck {args.idle_qcheck}s, simulator "
                "in its own process): "
                f"{share:.2%} of one core ({cerebro_share:.2%} in Cerebro's thread) over "
                f"{args.idle_seconds:.0f} s from {args.idle_settle:.0f} s after start"
            )
        base, _ = idle_cpu(
            counts[-1], args.idle_settle, args.idle_seconds, args.idle_qcheck, quiet_path=False
        )
        print(
            f"baseline, {counts[-1]} silent feeds through Backtrader's whole load: {base:.2%} of one core; "
            f"ratio {share / base:.2f}"
        )
    if args.only in (None, "hundred"):
        result = live_run(100, args.minutes, profile=True)
        print("bar close -> next(), " + describe(result))
        print(
            f"100 feeds: {result['cpu'] / max(result['wall'], 1e-9):.0%} of one core over the run "
            f"({result['wall']:.0f} s wall, start-up included), "
            f"{result['cpu'] / max(result['bars'], 1) * 1e3:.2f} ms CPU per measured bar"
        )
        print("Cerebro's thread, top functions by own time (cProfile):")
        print(result["profile"])


if __name__ == "__main__":
    main()
