"""Helpers shared by the Cerebro-level tests: run a strategy and collect what it saw."""

from __future__ import annotations

import threading
from datetime import datetime, timezone

import backtrader as bt


class Recorder(bt.Strategy):
    """Record every bar of every data as (symbol, close-stamp ms, o, h, l, c, v) and every notification;
    stop once every data (or those named in ``stop_on``) has ``stop_after`` bars."""

    params = (("stop_after", None), ("stop_on", None))

    def __init__(self) -> None:
        self.rows: dict[str, list[tuple]] = {d._name: [] for d in self.datas}
        self.notes: dict[str, list[str]] = {d._name: [] for d in self.datas}
        self.lengths: dict[str, int] = {d._name: 0 for d in self.datas}
        self.seen = 0

    def notify_data(self, data, status, *args, **kwargs) -> None:
        self.notes[data._name].append(data._getstatusname(status))

    def prenext(self) -> None:
        self.next()

    def next(self) -> None:
        for data in self.datas:
            if len(data) != self.lengths[data._name]:  # this data delivered a new bar
                self.lengths[data._name] = len(data)
                self.rows[data._name].append(
                    (data.datetime[0], data.open[0], data.high[0], data.low[0], data.close[0], data.volume[0])
                )
        self.seen += 1
        if self.p.stop_after is not None and all(
            len(rows) >= self.p.stop_after
            for name, rows in self.rows.items()
            if self.p.stop_on is None or name in self.p.stop_on
        ):
            self.env.runstop()


def run_guarded(cerebro: bt.Cerebro, timeout: float):
    """Run a (live) Cerebro, stopping it after ``timeout`` wall seconds if it has not ended; return
    the first strategy."""
    guard = threading.Timer(timeout, cerebro.runstop)
    guard.start()
    try:
        return cerebro.run()[0]
    finally:
        guard.cancel()


def as_ms_rows(rows: list[tuple]) -> list[tuple]:
    """Convert recorded rows' datetime floats back to epoch ms (exact for bar boundaries)."""
    out = []
    for num, *values in rows:
        moment = bt.num2date(num).replace(tzinfo=timezone.utc)
        out.append((round(moment.timestamp() * 1000), *values))
    return out


def kline_rows(klines) -> list[tuple]:
    return [(k.end, k.open, k.high, k.low, k.close, k.volume) for k in klines]


def utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).replace(tzinfo=None)


class Outcome(bt.Analyzer):
    """What a user compares between two runs: every closed trade and the final portfolio value."""

    def start(self) -> None:
        self.trades: list[tuple] = []
        self.value = None

    def notify_trade(self, trade) -> None:
        if trade.isclosed:
            self.trades.append(
                (
                    trade.data._name,
                    bt.num2date(trade.dtopen),
                    bt.num2date(trade.dtclose),
                    trade.baropen,
                    trade.barclose,
                    round(trade.pnlcomm, 8),
                )
            )

    def stop(self) -> None:
        self.value = round(self.strategy.broker.getvalue(), 8)

    def get_analysis(self) -> dict:
        return {"value": self.value, "trades": self.trades}


class SmaCross(bt.Strategy):
    """Buy when the fast SMA crosses above the slow one, close when it crosses below."""

    params = (("fast", 5), ("slow", 20))

    def __init__(self) -> None:
        self.cross = bt.ind.CrossOver(bt.ind.SMA(period=self.p.fast), bt.ind.SMA(period=self.p.slow))

    def next(self) -> None:
        if self.cross > 0:
            self.buy()
        elif self.cross < 0:
            self.close()
