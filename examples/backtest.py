"""Backtest an SMA cross on 1-minute K-lines of AAPL.US.

    python examples/backtest.py                 # no token: the built-in simulator serves the data
    ALLTICK_TOKEN=... python examples/backtest.py   # the real AllTick service (newest 500 bars, cached)

Bars are stamped at their close, in UTC; pass tz="America/New_York" to getdata for local times.
"""

import contextlib
import os

import backtrader as bt

from backtrader_alltick import AllTickStore

SYMBOL = "AAPL.US"


class SmaCross(bt.Strategy):
    params = (("fast", 10), ("slow", 30))

    def __init__(self):
        self.cross = bt.ind.CrossOver(bt.ind.SMA(period=self.p.fast), bt.ind.SMA(period=self.p.slow))

    def next(self):
        if self.cross > 0 and not self.position:
            self.buy()
        elif self.cross < 0 and self.position:
            self.close()

    def notify_trade(self, trade):
        if trade.isclosed:
            print(f"{self.data.datetime.datetime(0):%Y-%m-%d %H:%M}  trade closed, P&L {trade.pnlcomm:+.2f}")


def main():
    with contextlib.ExitStack() as stack:
        if os.environ.get("ALLTICK_TOKEN"):
            store = AllTickStore()  # token from ALLTICK_TOKEN, K-lines cached in the user cache directory
        else:
            from backtrader_alltick.sim import Simulator

            sim = stack.enter_context(Simulator(symbols=[SYMBOL]))
            store = AllTickStore.from_simulator(sim, cache=False)  # keep simulated bars out of the cache
        stack.callback(store.stop)

        cerebro = bt.Cerebro()
        cerebro.broker.setcash(10_000)
        cerebro.addsizer(bt.sizers.FixedSize, stake=10)
        data = store.getdata(
            dataname=SYMBOL, timeframe=bt.TimeFrame.Minutes, compression=1, historical=True, lookback=500
        )
        cerebro.adddata(data)
        cerebro.addstrategy(SmaCross)
        cerebro.run()
        print(f"{len(data)} bars of {SYMBOL}, final value {cerebro.broker.getvalue():,.2f}")


if __name__ == "__main__":
    main()
