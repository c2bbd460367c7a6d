"""Backtest speed: the same SMA-cross strategy over 100,000 cached 1-minute bars, fed by
``AllTickData`` and by ``bt.feeds.PandasData``, in one process.  Prints the time ratio
(target <= 1.10) and the HTTP requests a cold download of those bars needs.

    python benchmarks/bench_backtest.py [--bars 100000] [--dialect alltick]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import backtrader as bt

from backtrader_alltick import AllTickStore
from backtrader_alltick.frames import klines_frame
from backtrader_alltick.history import Window
from backtrader_alltick.sim import Simulator
from backtrader_alltick.symbols import parse_symbol

SYMBOL = "BTCUSDT"  # crypto trades 24/7, so 100,000 minutes are 100,000 bars


class SmaCross(bt.Strategy):
    params = (("fast", 10), ("slow", 30))

    def __init__(self) -> None:
        self.cross = bt.ind.CrossOver(bt.ind.SMA(period=self.p.fast), bt.ind.SMA(period=self.p.slow))
        self.trades = 0

    def notify_trade(self, trade) -> None:
        self.trades += trade.isclosed

    def next(self) -> None:
        if self.cross > 0 and not self.position:
            self.buy()
        elif self.cross < 0 and self.position:
            self.close()


def run(data) -> tuple[float, float, int]:
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(data)
    cerebro.addstrategy(SmaCross)
    cerebro.broker.setcash(10_000_000.0)  # enough for whole BTC units, so the strategy really trades
    began = time.perf_counter()
    strategy = cerebro.run()[0]
    return time.perf_counter() - began, cerebro.broker.getvalue(), strategy.trades


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bars", type=int, default=100_000)
    parser.add_argument("--dialect", default="alltick", choices=["alltick", "itick"])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, Simulator(dialect=args.dialect, speed=1, seed=7) as sim:
        cache = Path(tmp) / "klines.sqlite"
        store = AllTickStore.from_simulator(sim, cache=cache)
        began = time.perf_counter()
        inst = parse_symbol(SYMBOL)
        spec = store.resolve_timeframe(inst, bt.TimeFrame.Minutes, 1)
        klines = store.history.get_range(inst, spec, Window(count=args.bars)).bars
        cold_seconds = time.perf_counter() - began
        cold_requests = sim.counters["rest_requests"]
        # The newest page always carries the forming bar, which is never kept: one bar more to fetch.
        minimum = math.ceil((args.bars + 1) / store.wire.KLINE_LIMIT)
        print(
            f"cold download: {len(klines)} bars of {inst} in {cold_requests} HTTP requests "
            f"(minimum the API allows: {minimum}), {cold_seconds:.1f}s"
        )
        frame = klines_frame(klines).tz_localize(None)
        fromdate = frame.index[0].to_pydatetime()
        todate = frame.index[-1].to_pydatetime()

        alltick_times, pandas_times = [], []
        for _ in range(args.repeat):
            data = store.getdata(
                dataname=SYMBOL,
                timeframe=bt.TimeFrame.Minutes,
                historical=True,
                fromdate=fromdate,
                todate=todate,
            )
            seconds, value_a, trades = run(data)
            alltick_times.append(seconds)
            seconds, value_b, _ = run(bt.feeds.PandasData(dataname=frame, timeframe=bt.TimeFrame.Minutes))
            pandas_times.append(seconds)
        warm_requests = sim.counters["rest_requests"] - cold_requests
        store.stop()

    best_a, best_b = min(alltick_times), min(pandas_times)
    print(f"warm runs made {warm_requests} HTTP requests")
    print(
        f"AllTickData: {best_a:.2f}s  PandasData: {best_b:.2f}s  (best of {args.repeat}, {len(frame)} bars)"
    )
    print(f"time ratio AllTickData / PandasData = {best_a / best_b:.3f}  (target <= 1.10)")
    print(
        f"same final portfolio value: {value_a == value_b} ({value_a:.2f} vs {value_b:.2f}, {trades} trades)"
    )


if __name__ == "__main__":
    main()
