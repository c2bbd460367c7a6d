"""Many live feeds of one store in one Cerebro: one shared wake-up, every bar of a minute in one next().

Backtrader asks each feed's ``_load`` in turn, and each may wait up to ``qcheck``.  The feeds of a
store share one wake-up, so a feed with nothing new (here a market that is closed, polled first)
waits only until some feed of the store has a bar, and the others then answer at once.
"""

from __future__ import annotations

import warnings

import backtrader as bt
import pytest

from backtrader_alltick.errors import MarketClosedWarning
from feedtools import run_guarded

TRADING = [f"C{n:02d}USDT" for n in range(20)]
QUIET = "700.HK"  # closed at the simulator's start (15:00 UTC) and for hours after
LONG_QCHECK = 30.0  # wall seconds Backtrader lets each feed wait per pass
WAIT = 90.0  # wall seconds: only guards against a hang


class Advances(bt.Strategy):
    """For each next() once every feed is LIVE, the close stamp of the bars delivered and which
    trading feeds advanced; stop after ``minutes`` minutes past the first live one."""

    params = (("minutes", 4), ("trading", ()))

    def __init__(self) -> None:
        self.calls: list[tuple[float, frozenset[str]]] = []
        self._lengths = {data._name: 0 for data in self.datas}
        self._live: set[str] = set()
        self.first_live: float | None = None

    def notify_data(self, data, status, *args, **kwargs) -> None:
        if status == data.LIVE:
            self._live.add(data._name)

    def prenext(self) -> None:
        self.next()

    def next(self) -> None:
        advanced = {data._name for data in self.datas if len(data) > self._lengths[data._name]}
        for data in self.datas:
            self._lengths[data._name] = len(data)
        if len(self._live) < len(self.datas):
            return
        stamps = {data.datetime[0] for data in self.datas if data._name in advanced}
        if self.first_live is None:
            self.first_live = max(stamps, default=None)
            return
        self.calls.append((max(stamps, default=0.0), frozenset(advanced & set(self.p.trading))))
        minute = 1 / 1440
        if self.calls[-1][0] >= self.first_live + (self.p.minutes + 1) * minute:
            self.env.runstop()


@pytest.fixture
def universe(make_sim, make_store):
    sim = make_sim(dialect="alltick", symbols=[QUIET, *TRADING])
    return make_store(sim, cache=False)


def _run(store, qcheck: float) -> Advances:
    cerebro = bt.Cerebro(stdstats=False)
    for symbol in [QUIET, *TRADING]:  # the quiet feed first: Cerebro polls it first in every pass
        cerebro.adddata(
            store.getdata(dataname=symbol, timeframe=bt.TimeFrame.Minutes, lookback=2, qcheck=qcheck),
            name=symbol,
        )
    cerebro.addstrategy(Advances, trading=tuple(TRADING))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MarketClosedWarning)
        return run_guarded(cerebro, WAIT)


def test_after_the_first_live_minute_every_next_sees_all_twenty_feeds_advanced(universe):
    strategy = _run(universe, qcheck=0.5)

    after_first_minute = [
        (stamp, moved) for stamp, moved in strategy.calls if stamp > strategy.first_live + 1 / 1440
    ]
    assert len(after_first_minute) >= 3, strategy.calls
    assert all(moved == set(TRADING) for _, moved in after_first_minute), after_first_minute


def test_a_quiet_feed_waits_for_the_bars_of_the_others_not_for_its_own_qcheck(universe):
    # A quiet feed waiting on its own input alone would hold every pass for qcheck, and the guard
    # would stop the run before the strategy saw live minutes.
    strategy = _run(universe, qcheck=LONG_QCHECK)

    assert strategy.first_live is not None
    assert len(strategy.calls) >= 4
    assert all(moved == set(TRADING) for _, moved in strategy.calls[1:])


CLOSED = ["1.HK", "5.HK", "700.HK", "941.HK", "2318.HK", "3690.HK"]  # no trades for hours
STATUS_WAIT = 20.0  # wall seconds, shorter than LONG_QCHECK: a status waiting for a pass's end misses it


class Statuses(bt.Strategy):
    """Every feed's statuses; once all are LIVE, cut the stream; stop when all are LIVE again."""

    params = (("sim", None),)

    def __init__(self) -> None:
        self.seen: dict[str, list[str]] = {data._name: [] for data in self.datas}
        self._live: set[str] = set()
        self.dropped = False

    def notify_data(self, data, status, *args, **kwargs) -> None:
        self.seen[data._name].append(data._getstatusname(status))
        if status != data.LIVE:
            return
        self._live.add(data._name)
        if len(self._live) < len(self.datas):
            return
        self._live.clear()
        if self.dropped:
            self.env.runstop()
        else:
            self.dropped = True
            self.p.sim.drop_connections()


def test_silent_feeds_tell_live_and_connbroken_without_waiting_for_a_long_qcheck(make_sim, make_store):
    # No feed has a bar: only their statuses can end a pass before qcheck.  Each must still reach
    # LIVE, say CONNBROKEN when the stream drops and LIVE again, though Cerebro asks most of them
    # nothing in a pass the first one waited through.
    sim = make_sim(dialect="alltick", symbols=CLOSED)
    store = make_store(sim, cache=False)
    cerebro = bt.Cerebro(stdstats=False)
    for symbol in CLOSED:
        cerebro.adddata(
            store.getdata(dataname=symbol, timeframe=bt.TimeFrame.Minutes, lookback=2, qcheck=LONG_QCHECK),
            name=symbol,
        )
    cerebro.addstrategy(Statuses, sim=sim)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MarketClosedWarning)
        strategy = run_guarded(cerebro, STATUS_WAIT)

    for symbol, statuses in strategy.seen.items():
        assert statuses[0] == "DELAYED" and statuses[-1] == "LIVE", (symbol, statuses)
        assert "CONNBROKEN" in statuses[statuses.index("LIVE") :], (symbol, statuses)
