"""AllTickData(source="redis"): backfill, DELAYED -> LIVE, resume after Redis restarts, the _load contract."""

from __future__ import annotations

import threading

import backtrader as bt
import pytest
import redis

from backtrader_alltick import AllTickStore
from backtrader_alltick.errors import ConfigError, SessionPolicyWarning
from backtrader_alltick.records import Kline, Tick
from backtrader_alltick.sinks.redis import RedisSink
from feedtools import Recorder, as_ms_rows, kline_rows, run_guarded, utc

T0 = 1_700_000_040_000  # on a minute boundary
MINUTE = 60_000
FAST = {"backoff_initial": 0.01, "backoff_max": 0.05}


def make_bars(first, count, symbol="BTCUSDT"):
    return [
        Kline(
            symbol,
            "1m",
            T0 + n * MINUTE,
            T0 + (n + 1) * MINUTE,
            10.0 + n,
            11.5 + n,
            9.25 + n,
            10.75 + n,
            100.0 * (n + 1),
            1234.5 * n,
        )
        for n in range(first, first + count)
    ]


class Watcher(Recorder):
    """A Recorder that calls ``on_note(name)`` on every notification (from Cerebro's thread)."""

    params = (("on_note", None),)

    def notify_data(self, data, status, *args, **kwargs) -> None:
        super().notify_data(data, status, *args, **kwargs)
        if self.p.on_note is not None:
            self.p.on_note(data._getstatusname(status))


@pytest.fixture
def sink(redis_server):
    with RedisSink(redis_server.url, **FAST) as sink:
        yield sink


def run_consumer(url, *, stop_after=None, timeout=20.0, on_note=None, dataname="BTCUSDT", **kwargs):
    store = AllTickStore(dialect="alltick", cache=False)
    kwargs.setdefault("timeframe", bt.TimeFrame.Minutes)
    kwargs.setdefault("source", "redis")
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(store.getdata(dataname=dataname, source_url=url, qcheck=0.1, **kwargs), name="btc")
    cerebro.addstrategy(Watcher, stop_after=stop_after, on_note=on_note)
    try:
        return run_guarded(cerebro, timeout)
    finally:
        store.stop()


def on_first(note_name, action):
    """A notification hook that runs ``action`` on a worker thread the first time ``note_name`` comes."""
    fired = threading.Event()
    workers = []

    def hook(name):
        if name == note_name and not fired.is_set():
            fired.set()
            workers.append(threading.Thread(target=action))
            workers[-1].start()

    hook.workers = workers
    return hook


def test_consumer_backfills_the_newest_lookback_bars_then_delivers_live_ones(redis_server, sink):
    old = make_bars(0, 10)
    sink.write(old)
    assert sink.flush(timeout=10)
    new = make_bars(10, 3)

    def write_new_and_a_stale_copy():
        sink.write(new)
        # The sink writes from its own thread: the stale copy must come after the new bars, as it
        # would from a second writer that is behind this one.
        assert sink.flush(timeout=10)
        # A bar already delivered, written again under a later ID by another writer: not repeated.
        stale = old[-1]
        redis.Redis.from_url(redis_server.url).xadd(
            "alltick:bar:1m:BTCUSDT",
            {
                "start": str(stale.start),
                "end": str(stale.end),
                "open": "1.0",
                "high": "1.0",
                "low": "1.0",
                "close": "1.0",
                "volume": "1.0",
                "turnover": "0.0",
            },
            id=f"{new[-1].end + 1}-0",
        )
        sink.write(make_bars(13, 1))

    hook = on_first("LIVE", write_new_and_a_stale_copy)
    strategy = run_consumer(redis_server.url, lookback=4, stop_after=8, on_note=hook)
    for worker in hook.workers:
        worker.join()

    assert as_ms_rows(strategy.rows["btc"]) == kline_rows(old[-4:] + new + make_bars(13, 1))
    assert strategy.notes["btc"][:2] == ["DELAYED", "LIVE"]
    assert strategy.datas[0].stats["duplicate_bars"] == 1


def test_consumer_starts_at_fromdate(redis_server, sink):
    bars = make_bars(0, 10)
    sink.write(bars)
    assert sink.flush(timeout=10)

    strategy = run_consumer(redis_server.url, fromdate=utc(bars[3].start), stop_after=8)

    # bars[2] closes exactly at fromdate: kept, as Backtrader's filter keeps it.
    assert as_ms_rows(strategy.rows["btc"]) == kline_rows(bars[2:])


def test_consumer_reports_connbroken_while_redis_is_down_and_loses_nothing(redis_server, sink):
    sink.write(make_bars(0, 3))
    assert sink.flush(timeout=10)
    broken = threading.Event()

    def restart_redis_writing_meanwhile():
        redis_server.stop()
        assert broken.wait(10)
        sink.write(make_bars(3, 4))  # buffered by the sink until Redis is back
        redis_server.start()

    hook = on_first("LIVE", restart_redis_writing_meanwhile)

    def on_note(name):
        if name == "CONNBROKEN":
            broken.set()
        hook(name)

    strategy = run_consumer(redis_server.url, lookback=10, stop_after=7, on_note=on_note)
    for worker in hook.workers:
        worker.join()

    assert as_ms_rows(strategy.rows["btc"]) == kline_rows(make_bars(0, 7))
    assert strategy.notes["btc"] == ["DELAYED", "LIVE", "CONNBROKEN", "DELAYED", "LIVE"]
    assert strategy.datas[0].stats["reconnects"] == 1


def test_an_idle_consumer_goes_live_and_waits_for_bars(redis_server):
    # No CPU bound here: what an idle consumer costs is measured by benchmarks/bench_relay.py --only idle.
    strategy = run_consumer(redis_server.url, timeout=1.5)

    assert strategy.rows["btc"] == []
    assert strategy.notes["btc"] == ["DELAYED", "LIVE"]


def test_a_resampled_consumer_keeps_running_once_live_and_idle(redis_server, sink):
    # Idle and LIVE, Backtrader's resampler asks the feed for "now" (_timeoffset); the Redis
    # session once had no answer for it and the run died with an AttributeError.
    bars = make_bars(0, 11)  # the last 2-minute bar stays open, so the resampler asks
    sink.write(bars)
    assert sink.flush(timeout=10)
    store = AllTickStore(dialect="alltick", cache=False)
    cerebro = bt.Cerebro(stdstats=False)
    data = store.getdata(
        dataname="BTCUSDT",
        timeframe=bt.TimeFrame.Minutes,
        source="redis",
        source_url=redis_server.url,
        lookback=11,
        qcheck=0.1,
    )
    cerebro.resampledata(data, timeframe=bt.TimeFrame.Minutes, compression=2, name="btc")
    cerebro.addstrategy(Recorder)
    try:
        strategy = run_guarded(cerebro, 2.0)
    finally:
        store.stop()

    assert "LIVE" in strategy.notes["btc"]
    rows = as_ms_rows(strategy.rows["btc"])
    assert [row[0] for row in rows[:5]] == [bar.end for bar in bars[1::2]]
    # The open bar is closed by the clock (Backtrader stamps it): it holds the last minute only.
    assert len(rows) == 6 and rows[5][1:5] == (bars[-1].open, bars[-1].high, bars[-1].low, bars[-1].close)


def test_tick_consumer_delivers_every_trade(redis_server, sink):
    ticks = [Tick("BTCUSDT", T0 + n * 250, 100.0 + n, 1.0, 100.0 + n, seq=n) for n in range(6)]
    sink.write(ticks)
    assert sink.flush(timeout=10)

    strategy = run_consumer(redis_server.url, timeframe=bt.TimeFrame.Ticks, lookback=6, stop_after=6)

    rows = as_ms_rows(strategy.rows["btc"])
    assert [(row[0], row[4]) for row in rows] == [(tick.time, tick.price) for tick in ticks]


OPEN = 1_710_163_800_000  # 2024-03-11 13:30 UTC: the New York open, 09:30 summer time


def test_a_consumer_with_extended_hours_off_leaves_out_the_relays_pre_market_bars(redis_server, sink):
    # The relay kept every bar (its store's default); this consumer asks for the regular session only.
    bars = [
        Kline("AAPL.US", "1m", OPEN + n * MINUTE, OPEN + (n + 1) * MINUTE, 190.0, 191.0, 189.0, 190.5, 10.0)
        for n in range(-4, 4)
    ]
    sink.write(bars)
    assert sink.flush(timeout=10)

    with pytest.warns(SessionPolicyWarning) as said:
        strategy = run_consumer(
            redis_server.url, dataname="AAPL.US", lookback=8, stop_after=4, extended_hours=False
        )

    assert as_ms_rows(strategy.rows["btc"]) == kline_rows(bars[4:])
    assert strategy.datas[0].stats["offhours_bars"] == 4
    assert len([w for w in said if issubclass(w.category, SessionPolicyWarning)]) == 1


def test_a_tick_consumer_with_extended_hours_off_leaves_out_pre_market_trades(redis_server, sink):
    ticks = [Tick("AAPL.US", OPEN + n * 20_000, 190.0 + n, 1.0, 190.0 + n, seq=n) for n in range(-6, 4)]
    sink.write(ticks)
    assert sink.flush(timeout=10)

    with pytest.warns(SessionPolicyWarning) as said:
        strategy = run_consumer(
            redis_server.url,
            dataname="AAPL.US",
            timeframe=bt.TimeFrame.Ticks,
            lookback=10,
            stop_after=4,
            extended_hours=False,
        )

    rows = as_ms_rows(strategy.rows["btc"])
    assert [(row[0], row[4]) for row in rows] == [(tick.time, tick.price) for tick in ticks[6:]]
    assert strategy.datas[0].stats["offhours_trades"] == 6
    assert len([w for w in said if issubclass(w.category, SessionPolicyWarning)]) == 1


def test_redis_source_needs_a_url_and_a_live_feed():
    store = AllTickStore(dialect="alltick", cache=False)

    with pytest.raises(ConfigError, match="source_url"):
        store.getdata(dataname="BTCUSDT", historical=True, source="influx")
    with pytest.raises(ConfigError, match="was historical=True"):
        store.getdata(dataname="BTCUSDT", historical=True, source="redis", source_url="redis://127.0.0.1:1/0")
    strategy_notes = run_consumer("redis://127.0.0.1:1/0", timeout=3, source="influx").notes["btc"]
    assert strategy_notes == ["NOTSUBSCRIBED"]
