"""Several symbols at once, each loaded as 1-minute bars and resampled to 15 minutes.

    python examples/multi_symbol_resample.py
    ALLTICK_TOKEN=... python examples/multi_symbol_resample.py

Bars are stamped at their close, Backtrader's convention for resampled bars, so the
15-minute bars close on :00, :15, :30 and :45 and line up across symbols.  The strategy
prints each symbol's 15-minute close and, every bar, which one gained most over the hour.
"""

import contextlib
import os
from datetime import datetime, timedelta, timezone

import backtrader as bt

from backtrader_alltick import AllTickStore

SYMBOLS = ["EURUSD", "GOLD", "US500", "BTCUSDT"]


class Momentum(bt.Strategy):
    def __init__(self):
        self.change = {data._name: bt.ind.PercentChange(data.close, period=4) for data in self.datas}

    def next(self):
        when = self.datas[0].datetime.datetime(0)
        closes = "  ".join(f"{data._name} {data.close[0]:,.5g}" for data in self.datas)
        best = max(self.change, key=lambda name: self.change[name][0])
        print(f"{when:%m-%d %H:%M}  {closes}  | best hour: {best} {self.change[best][0]:+.2%}")


def main():
    with contextlib.ExitStack() as stack:
        if os.environ.get("ALLTICK_TOKEN"):
            store = AllTickStore()
        else:
            from backtrader_alltick.sim import Simulator

            sim = stack.enter_context(Simulator(symbols=SYMBOLS))
            store = AllTickStore.from_simulator(sim, cache=False)
        stack.callback(store.stop)

        # The last three hours by the store's clock: the simulator's market time, or now.
        now = datetime.fromtimestamp(store.clock.now_ms() / 1000, tz=timezone.utc)
        cerebro = bt.Cerebro(stdstats=False)
        for symbol in SYMBOLS:
            minute = store.getdata(
                dataname=symbol,
                timeframe=bt.TimeFrame.Minutes,
                historical=True,
                fromdate=now - timedelta(hours=3),
                todate=now,
            )
            cerebro.resampledata(minute, timeframe=bt.TimeFrame.Minutes, compression=15, name=symbol)
        cerebro.addstrategy(Momentum)
        cerebro.run()


if __name__ == "__main__":
    main()
