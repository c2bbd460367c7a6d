"""The demo behind ``alltick-bt demo``: a backtest on K-lines, then a paper-trading session on live bars.

Both halves run the same SMA-cross strategy on Backtrader's own broker.  The backtest
loads closed 1-minute K-lines over REST; the paper session subscribes to trade ticks,
receives a short REST backfill (so the averages are warm), then trades only on bars
built live from ticks, and stops after a set number of live bars.  With the
simulator's fast clock a trading hour passes in well under a minute.

Nothing here prints; :func:`format_report` turns a :class:`DemoReport` into text.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import backtrader as bt

from .errors import ConfigError, FeedEndedWarning, TransportError
from .symbols import parse_symbol

if TYPE_CHECKING:
    from .sim import Simulator
    from .store import AllTickStore

logger: logging.Logger = logging.getLogger(__name__)

DEFAULT_SYMBOL = "BTCUSDT"  # trades around the clock, so the demo also works on the real service at night
# Wall seconds a live bar waits after its end for the last trades.  On the simulator's fast clock a
# busy machine (a CI run) can stall the socket thread for a fraction of a second; a trade that came
# after its bar had closed would change the bar, and the demo's numbers with it.
GRACE_S = 0.5


class SmaCross(bt.Strategy):
    """Long when the fast SMA crosses above the slow one, flat when it crosses below.

    Params: ``fast`` (5), ``slow`` (20), ``live_only`` (False: trade on every bar; True:
    only on bars built live, from the stream, once the feed is LIVE), ``live_bars`` (0: run
    until the data ends; N: stop the run after N live bars).

    Example::

        cerebro.addstrategy(SmaCross, fast=3, slow=10, live_only=True, live_bars=30)
    """

    params: tuple[tuple[str, object], ...] = (
        ("fast", 5),
        ("slow", 20),
        ("live_only", False),
        ("live_bars", 0),
    )

    def __init__(self) -> None:
        self.cross: bt.Indicator = bt.ind.CrossOver(
            bt.ind.SMA(period=self.p.fast), bt.ind.SMA(period=self.p.slow)
        )
        self.cross.plotinfo.plot = False  # the two averages on the price chart already show it
        self.is_live: bool = False
        self.notifications: list[str] = []
        self.live_bar_count: int = 0
        self.closed_trades: list[float] = []
        self.orders_filled: int = 0

    def notify_data(self, data: bt.AbstractDataBase, status: int, *args: Any, **kwargs: Any) -> None:
        self.notifications.append(data._getstatusname(status))
        self.is_live = status == data.LIVE

    def notify_order(self, order: bt.Order) -> None:
        if order.status == order.Completed:
            self.orders_filled += 1

    def _built_live(self) -> bool:
        # LIVE is told before the last one or two REST bars (Backtrader's convention), how many depending
        # on how late this thread takes them; the feed's count of REST bars, final once LIVE is told,
        # says which bar is the first built from the stream, the same in every run.
        rest_bars = getattr(self.data, "stats", {}).get("bars_rest", 0)
        return self.is_live and len(self.data) > rest_bars

    def notify_trade(self, trade: bt.Trade) -> None:
        if trade.isclosed:
            self.closed_trades.append(trade.pnlcomm)

    def next(self) -> None:
        live = self._built_live()
        if live:
            self.live_bar_count += 1
        if self.p.live_only and not live:
            return
        if self.cross > 0 and not self.position:
            self.buy()
        elif self.cross < 0 and self.position:
            self.close()
        if self.p.live_bars and self.live_bar_count >= self.p.live_bars:
            self.env.runstop()


@dataclass
class SessionReport:
    """What one Cerebro run did: bars seen, trades, P&L and the feed's notifications."""

    name: str
    symbol: str
    bars: int = 0
    live_bars: int = 0
    first_bar: str = ""
    last_bar: str = ""
    orders_filled: int = 0
    trades: list[float] = field(default_factory=list)
    start_value: float = 0.0
    end_value: float = 0.0
    notifications: list[str] = field(default_factory=list)
    feed_stats: dict[str, int] = field(default_factory=dict)

    @property
    def pnl(self) -> float:
        return self.end_value - self.start_value


@dataclass
class DemoReport:
    """Both halves of the demo, where the data came from, and the chart written."""

    source: str
    backtest: SessionReport
    paper: SessionReport
    chart: Path | None = None


def run_backtest(
    store: AllTickStore,
    symbol: str = DEFAULT_SYMBOL,
    *,
    bars: int = 500,
    cash: float = 100_000.0,
    fast: int = 5,
    slow: int = 20,
) -> tuple[bt.Cerebro, SessionReport]:
    """Backtest :class:`SmaCross` on the newest ``bars`` closed 1-minute K-lines of ``symbol``."""
    cerebro = _cerebro(cash)
    cerebro.adddata(
        store.getdata(
            dataname=symbol, timeframe=bt.TimeFrame.Minutes, compression=1, historical=True, lookback=bars
        ),
        name=symbol,
    )
    cerebro.addstrategy(SmaCross, fast=fast, slow=slow)
    cerebro.run()
    return cerebro, _report("backtest", symbol, cerebro, cash)


def run_paper(
    store: AllTickStore,
    symbol: str = DEFAULT_SYMBOL,
    *,
    live_bars: int = 60,
    warmup: int = 20,
    cash: float = 100_000.0,
    fast: int = 3,
    slow: int = 8,
    wall_timeout: float = 120.0,
    simulator: Simulator | None = None,
) -> tuple[bt.Cerebro, SessionReport]:
    """Paper-trade :class:`SmaCross` on live 1-minute bars until ``live_bars`` of them have closed.

    ``warmup`` closed bars are backfilled over REST first.  A run that has not finished
    after ``wall_timeout`` wall seconds is stopped and reported as an error.  A
    ``simulator`` whose clock is paused is resumed once the feed has subscribed, and held in
    its first minute until the feed has placed its seam (:func:`~.sim.holding.resume_when_anchored`),
    so the session has the same bars in every run, however slow the machine.
    """
    cerebro = _cerebro(cash)
    data = store.getdata(
        dataname=symbol,
        timeframe=bt.TimeFrame.Minutes,
        compression=1,
        lookback=warmup,
        qcheck=0.2,
        grace=GRACE_S,
    )
    cerebro.adddata(data, name=symbol)
    cerebro.addstrategy(SmaCross, fast=fast, slow=slow, live_only=True, live_bars=live_bars)
    expired = threading.Event()

    def give_up() -> None:
        expired.set()
        cerebro.runstop()

    watchdog = threading.Timer(wall_timeout, give_up)
    watchdog.daemon = True
    watchdog.start()
    ended = threading.Event()
    if simulator is not None and simulator.clock.paused:
        from .sim import resume_when_anchored

        resume_when_anchored(simulator, parse_symbol(symbol).symbol, ended=ended)
    try:
        with warnings.catch_warnings():
            # The error that ends the feed is raised below: its warning would say it twice.
            warnings.simplefilter("ignore", FeedEndedWarning)
            cerebro.run()
    finally:
        ended.set()
        watchdog.cancel()
    report = _report("paper", symbol, cerebro, cash)
    if data.last_error is not None:
        raise data.last_error
    if expired.is_set():
        raise TransportError(
            f"the paper session of {symbol} saw {report.live_bars} of {live_bars} live bars "
            f"in {wall_timeout:.0f} s; check the stream (run with -v) or lower --minutes"
        )
    return cerebro, report


def run_demo(
    store: AllTickStore,
    symbol: str = DEFAULT_SYMBOL,
    *,
    source: str,
    minutes: int = 60,
    history: int = 500,
    chart: str | Path | None = None,
    wall_timeout: float = 120.0,
    simulator: Simulator | None = None,
) -> DemoReport:
    """Run the backtest, then the paper session, and save the paper session's chart.

    ``minutes`` is the length of the paper session in live 1-minute bars; ``chart``
    is the PNG to write (None: no chart).  ``simulator`` is the
    :class:`~backtrader_alltick.sim.Simulator` behind ``store``, if any: made with
    ``paused=True``, its market stands still during the backtest and while the paper feed
    connects, and the demo prints the same numbers in every run, however fast the machine.
    """
    if minutes < 1:
        raise ConfigError(f"minutes must be 1 or more, was {minutes!r}")
    _, backtest = run_backtest(store, symbol, bars=history)
    logger.info("backtest done: %d bars, %d trades", backtest.bars, len(backtest.trades))
    paper_cerebro, paper = run_paper(
        store, symbol, live_bars=minutes, wall_timeout=wall_timeout, simulator=simulator
    )
    written = None
    if chart is not None:
        from .plot import save_cerebro_plot

        written = save_cerebro_plot(
            paper_cerebro,
            chart,
            style="candle",
            volume=False,
            barup="#26a69a",
            bardown="#ef5350",
            barupfill=True,
        )
    return DemoReport(source, backtest, paper, written)


def format_report(report: DemoReport) -> str:
    """The demo's summary as plain text, one fact per line."""
    lines = [f"data: {report.source}"]
    for session in (report.backtest, report.paper):
        won = sum(1 for pnl in session.trades if pnl > 0)
        notes = (
            ", ".join(
                f"{name} x{count}" if count > 1 else name
                for name, count in Counter(session.notifications).items()
            )
            or "none"
        )
        bars = f"{session.bars} bars of {session.symbol} 1m"
        if session.name == "paper":
            backfilled = session.bars - session.live_bars
            bars += f" ({backfilled} backfilled over REST, {session.live_bars} built live)"
        lines += [
            f"{session.name}:",
            f"  bars:          {bars}",
            f"  period:        {session.first_bar} .. {session.last_bar} (bar close, UTC)",
            f"  orders filled: {session.orders_filled}",
            f"  trades:        {len(session.trades)} closed ({won} won, {len(session.trades) - won} lost)",
            f"  P&L:           {session.pnl:+,.2f} "
            f"(value {session.start_value:,.2f} -> {session.end_value:,.2f})",
            f"  notifications: {notes}",
        ]
    if report.chart is not None:
        lines.append(f"chart: {report.chart}")
    return "\n".join(lines)


def _cerebro(cash: float) -> bt.Cerebro:
    # Backtrader's standard observers, except that buy/sell marks sit just beyond the bar: its
    # default distance, 1.5 %, puts them outside the chart for a quiet minute of BTCUSDT.
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.addobserver(bt.observers.Value)
    cerebro.addobserver(bt.observers.BuySell, barplot=True, bardist=0.0004)
    cerebro.addobserver(bt.observers.Trades)
    cerebro.broker.setcash(cash)
    cerebro.broker.setcommission(commission=0.0002)
    # Fractional sizes: a unit of BTCUSDT costs more than half the cash.
    cerebro.addsizer(bt.sizers.PercentSizer, percents=50)
    return cerebro


def _report(name: str, symbol: str, cerebro: bt.Cerebro, cash: float) -> SessionReport:
    strategy = cerebro.runstrats[0][0]
    data = strategy.datas[0]
    report = SessionReport(
        name,
        symbol,
        bars=len(data),
        live_bars=strategy.live_bar_count,
        orders_filled=strategy.orders_filled,
        trades=list(strategy.closed_trades),
        start_value=cash,
        end_value=cerebro.broker.getvalue(),
        notifications=list(strategy.notifications),
        feed_stats=dict(data.stats),
    )
    if len(data):
        report.first_bar = _iso(data.datetime.datetime(1 - len(data)))
        report.last_bar = _iso(data.datetime.datetime(0))
    return report


def _iso(moment: datetime) -> str:
    return moment.replace(tzinfo=timezone.utc).strftime("%Y-%m-%d %H:%M")
