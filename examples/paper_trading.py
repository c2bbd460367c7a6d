"""Paper-trade on live 1-minute bars built from trade ticks, with Backtrader's broker filling orders.

    python examples/paper_trading.py               # simulator, its clock 300x: a bar every 0.2 s
    ALLTICK_TOKEN=... python examples/paper_trading.py   # AllTick, real time: one bar per minute

The feed first backfills closed bars over REST (status DELAYED), then switches to bars
built from the WebSocket's trades (LIVE).  The strategy trades only on live bars and
stops the run after LIVE_BARS of them.
"""

import contextlib
import os

import backtrader as bt

from backtrader_alltick import AllTickStore

SYMBOL = "BTCUSDT"


class LiveSmaCross(bt.Strategy):
    params = (("live_bars", 20),)

    def __init__(self):
        self.cross = bt.ind.CrossOver(bt.ind.SMA(period=3), bt.ind.SMA(period=8))
        self.live = False
        self.live_seen = 0

    def notify_data(self, data, status, *args, **kwargs):
        print(f"data status: {data._getstatusname(status)}")
        self.live = status == data.LIVE

    def notify_order(self, order):
        if order.status == order.Completed:
            side = "BUY " if order.isbuy() else "SELL"
            print(f"  {side} {order.executed.size:.4f} at {order.executed.price:,.2f}")

    def next(self):
        if not self.live:
            return  # backfilled history: warm the averages, do not trade
        self.live_seen += 1
        print(f"{self.data.datetime.datetime(0):%H:%M} close {self.data.close[0]:,.2f}")
        if self.cross > 0 and not self.position:
            self.buy()
        elif self.cross < 0 and self.position:
            self.close()
        if self.live_seen >= self.p.live_bars:
            self.env.runstop()


def main():
    with contextlib.ExitStack() as stack:
        if os.environ.get("ALLTICK_TOKEN"):
            store, live_bars = AllTickStore(), 5
        else:
            from backtrader_alltick.sim import Simulator, resume_when_anchored

            # The simulator's market stands still until the feed has subscribed and placed its seam
            # between REST and live bars: every run trades the same bars, however slow the machine.
            sim = stack.enter_context(Simulator(speed=300, symbols=[SYMBOL], paused=True))
            resume_when_anchored(sim, SYMBOL)
            store, live_bars = AllTickStore.from_simulator(sim, cache=False), 20
        stack.callback(store.stop)

        cerebro = bt.Cerebro()
        cerebro.broker.setcash(100_000)
        cerebro.addsizer(bt.sizers.PercentSizer, percents=50)  # fractional BTC sizes
        cerebro.adddata(store.getdata(dataname=SYMBOL, timeframe=bt.TimeFrame.Minutes, lookback=20))
        cerebro.addstrategy(LiveSmaCross, live_bars=live_bars)
        cerebro.run()
        print(f"final value {cerebro.broker.getvalue():,.2f}")


if __name__ == "__main__":
    main()
