"""Live feeds of one store share its /batch-kline calls: at start (lookback 1) and after a reconnect."""

from __future__ import annotations

import backtrader as bt
import pytest

from feedtools import as_ms_rows, run_guarded

MINUTE = 60_000
SYMBOLS = ("BTCUSDT", "ETHUSDT")
# Five market seconds into a minute: the start's fetches come well before the minute ends (one that
# came after would find the answer holding only newer bars, and rightly ask /kline).  The clock is
# held there until Cerebro runs, so that margin (2.75 wall s at 20x) is all the start's own.
START_MS = 1_709_650_805_000  # 2024-03-05 15:00:05 UTC
WAIT = 90.0  # wall seconds: only guards against a hang


def rest_calls(sim, endpoint: str) -> int:
    return sum(n for path, n in sim.counters["rest_requests_by_path"].items() if path.endswith(endpoint))


class DropOnceLive(bt.Strategy):
    """Once every feed is LIVE, cut the stream; stop once every feed has a bar closing after the cut."""

    params = (("sim", None), ("on_drop", None))

    def __init__(self) -> None:
        self.bars: dict[str, list[tuple]] = {data._name: [] for data in self.datas}
        self._live: set[str] = set()
        self._lengths = {data._name: 0 for data in self.datas}
        self.dropped_at: int | None = None

    def notify_data(self, data, status, *args, **kwargs) -> None:
        if status != data.LIVE:
            return
        self._live.add(data._name)
        if self.dropped_at is None and len(self._live) == len(self.datas):
            self.p.on_drop()
            self.dropped_at = self.p.sim.clock.now_ms()
            self.p.sim.drop_connections()

    def prenext(self) -> None:
        self.next()

    def next(self) -> None:
        for data in self.datas:
            if len(data) != self._lengths[data._name]:
                self._lengths[data._name] = len(data)
                row = (data.datetime[0], data.open[0], data.high[0], data.low[0], data.close[0])
                self.bars[data._name].extend(as_ms_rows([row]))
        if self.dropped_at is not None and all(
            rows and rows[-1][0] > self.dropped_at for rows in self.bars.values()
        ):
            self.env.runstop()


def test_two_live_feeds_of_one_store_start_and_reconnect_on_shared_batch_calls(make_sim, make_store):
    sim = make_sim(dialect="alltick", symbols=list(SYMBOLS), speed=20, start=START_MS, paused=True)
    store = make_store(sim, cache=False)
    asked: list[tuple[str, ...]] = []
    batch_klines = store.rest.batch_klines

    def spy(insts, period, count=2):
        # The real call, with which symbols each one carried noted.
        asked.append(tuple(sorted(inst.symbol for inst in insts)))
        return batch_klines(insts, period, count)

    store.rest.batch_klines = spy
    marks: dict[str, int] = {}

    def on_drop() -> None:
        marks["klines"], marks["asked"] = rest_calls(sim, "/kline"), len(asked)

    cerebro = bt.Cerebro(stdstats=False)
    for symbol in SYMBOLS:
        cerebro.adddata(
            store.getdata(dataname=symbol, timeframe=bt.TimeFrame.Minutes, lookback=1, qcheck=0.2),
            name=symbol,
        )
    cerebro.addstrategy(DropOnceLive, sim=sim, on_drop=on_drop)
    sim.clock.resume()
    strategy = run_guarded(cerebro, WAIT)

    assert strategy.dropped_at is not None
    assert marks["klines"] == 0  # the start's newest bar of both feeds came in batch answers
    assert asked[0] == tuple(sorted(SYMBOLS))  # both feeds' start in one call
    after_drop = asked[marks["asked"] :]
    assert any(len(symbols) == 2 for symbols in after_drop), after_drop  # the gap's bars: shared calls
    for symbol, rows in strategy.bars.items():
        ends = [row[0] for row in rows]
        assert ends == list(range(ends[0], ends[-1] + 1, MINUTE)), symbol  # no bar missing or repeated
        truth = {bar.end: bar for bar in sim.klines(symbol, "1m", ends[0] - MINUTE, ends[-1])}
        assert rows == [
            (end, *(pytest.approx(getattr(truth[end], name)) for name in ("open", "high", "low", "close")))
            for end, *_ in rows
        ], symbol
