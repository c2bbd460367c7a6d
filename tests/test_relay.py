"""The relay against the simulator and real redis-server/influxd: one upstream, golden bars, restarts."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import backtrader as bt
import pytest

from backtrader_alltick import AllTickStore, plans, timeframes
from backtrader_alltick.bars import combine
from backtrader_alltick.clock import wall_seconds
from backtrader_alltick.errors import ConfigError
from backtrader_alltick.history import Window
from backtrader_alltick.relay import Relay
from backtrader_alltick.sim import DEFAULT_START_MS, Simulator
from backtrader_alltick.sim.plan_table import service_plan
from backtrader_alltick.symbols import parse_symbol
from backtrader_alltick.transport.influx_reader import InfluxReader
from backtrader_alltick.transport.redis_reader import RedisReader
from feedtools import Recorder, as_ms_rows, kline_rows, run_guarded, utc

MINUTE = 60_000
SPEED = 240  # four 1-minute bars per wall second
FAST_SINK = {"backoff_initial": 0.02, "backoff_max": 0.2}


@pytest.fixture
def fast_sim():
    with Simulator(dialect="alltick", plan="unlimited", speed=SPEED, seed=3) as sim:
        yield sim


@pytest.fixture
def make_relay():
    made = []

    def make(sim, symbols=("BTCUSDT",), **kwargs):
        store = AllTickStore.from_simulator(sim, cache=False)
        kwargs.setdefault("lookback", 5)
        kwargs.setdefault("redis_options", FAST_SINK)
        relay = Relay(store, symbols, **kwargs)
        made.append(relay)
        return relay.start()

    yield make
    for relay in made:
        relay.stop()
        relay.store.stop()


def wait_for_bars(url, symbol, period, count, timeout=20.0):
    """Block (on XREAD, not sleeps) until the stream holds ``count`` bars; return them all."""
    entries, after = [], "0-0"
    deadline = time.monotonic() + timeout
    with RedisReader(url, reconnect_timeout=timeout) as source:
        while len(entries) < count:
            assert time.monotonic() < deadline, f"only {len(entries)} of {count} {period} bars arrived"
            batch = source.read_bars(symbol, period, after, block_ms=500)
            if batch:
                entries.extend(batch)
                after = batch[-1].id
    return [entry.record for entry in entries]


def wait_market(sim, market_ms):
    # Lets simulated time pass (a downtime), not a synchronisation: nothing else signals it.
    threading.Event().wait(wall_seconds(sim.clock, market_ms))


def assert_contiguous_golden(sim, rows, symbol, period="1m"):
    ends = [row[0] for row in rows]
    assert ends == sorted(set(ends)), "bars repeated or out of order"
    step = {"1m": MINUTE, "3m": 3 * MINUTE, "5m": 5 * MINUTE}[period]
    assert all(b - a == step for a, b in zip(ends, ends[1:])), "a bar is missing"
    # The simulator serves native periods; others are its 1-minute truth combined.
    minutes = sim.klines(symbol, "1m", ends[0] - step, ends[-1])
    spec = timeframes.resolve(timeframes.MINUTES, step // MINUTE, ("1m",), symbol)
    truth = {k.end: k for k in combine(minutes, spec, parse_symbol(symbol).market)}
    for end, *ohlcv in rows:
        k = truth[end]
        assert tuple(ohlcv[:4]) == (k.open, k.high, k.low, k.close), f"bar at {end} differs"
        assert ohlcv[4] == pytest.approx(k.volume, rel=1e-9)


def run_consumer(sim, url, fromdate_ms, stop_after, results, name, timeout=30.0):
    store = AllTickStore(dialect=sim.dialect, clock=sim.clock, cache=False)
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(
        store.getdata(
            dataname="BTCUSDT",
            timeframe=bt.TimeFrame.Minutes,
            source="redis",
            source_url=url,
            fromdate=utc(fromdate_ms),
            qcheck=0.1,
        ),
        name="btc",
    )
    cerebro.addstrategy(Recorder, stop_after=stop_after)
    try:
        results[name] = run_guarded(cerebro, timeout)
    finally:
        store.stop()


def start_consumer(sim, url):
    """A consumer Cerebro in a thread, from the first relayed bar, once the relay has written eight."""
    first = wait_for_bars(url, "BTCUSDT", "1m", 1)[0]
    results: dict = {}
    consumer = threading.Thread(
        target=run_consumer, args=(sim, url, first.start, 20, results, "c"), kwargs={"timeout": 40}
    )
    consumer.start()
    wait_for_bars(url, "BTCUSDT", "1m", 8)
    return consumer, results


def test_relay_timeframes_read_like_the_cli(fast_sim):
    store = AllTickStore.from_simulator(fast_sim, cache=False)

    relay = Relay(store, ["BTCUSDT"], redis_url="redis://127.0.0.1:1/0", timeframes=("5m", "2h", "1d"))

    assert [spec.period for spec in relay.specs["BTCUSDT"]] == ["5m", "2h", "1d"]
    with pytest.raises(ConfigError, match="timeframe must look like 1m, 5m, 1h, 1d, 1w or 1M, was '5x'"):
        Relay(store, ["BTCUSDT"], redis_url="redis://127.0.0.1:1/0", timeframes=("1m", "5x"))


def test_relay_without_a_sink_is_refused(fast_sim):
    store = AllTickStore.from_simulator(fast_sim, cache=False)

    with pytest.raises(ConfigError, match="pass redis_url, influx_url and/or recording, was none"):
        Relay(store, ["BTCUSDT"])


def test_two_consumers_get_identical_golden_bars_over_one_upstream_connection(
    fast_sim, redis_server, make_relay
):
    relay = make_relay(fast_sim, redis_url=redis_server.url, timeframes=("1m", "3m"))
    first = wait_for_bars(redis_server.url, "BTCUSDT", "1m", 1)[0]
    results: dict = {}

    consumers = [
        threading.Thread(
            target=run_consumer, args=(fast_sim, redis_server.url, first.start, 12, results, name)
        )
        for name in ("a", "b")
    ]
    for consumer in consumers:
        consumer.start()
    for consumer in consumers:
        consumer.join()

    rows_a, rows_b = (as_ms_rows(results[name].rows["btc"])[:12] for name in ("a", "b"))
    assert len(rows_a) == 12 and rows_a == rows_b
    assert rows_a[0][0] == first.end
    assert_contiguous_golden(fast_sim, rows_a, "BTCUSDT")
    assert results["a"].notes["btc"][:2] == ["DELAYED", "LIVE"]
    assert fast_sim.counters["ws_connections_opened"] == 1  # consumers never touch the service
    three = wait_for_bars(redis_server.url, "BTCUSDT", "3m", 3)
    assert_contiguous_golden(fast_sim, kline_rows(three), "BTCUSDT", "3m")
    assert relay.stats["bars"]["1m"] >= 12 and relay.stats["errors"] == 0


def test_relay_bars_stay_golden_across_upstream_reconnects(fast_sim, redis_server, make_relay):
    fast_sim.faults.update(drop_every=1.5)
    relay = make_relay(fast_sim, redis_url=redis_server.url)

    bars = wait_for_bars(redis_server.url, "BTCUSDT", "1m", 20, timeout=40)

    assert_contiguous_golden(fast_sim, kline_rows(bars), "BTCUSDT")
    assert relay.stats["upstream_drops"] >= 1
    assert fast_sim.counters["ws_connections_opened"] >= 2


def test_trades_the_service_sends_twice_are_relayed_once(fast_sim, redis_server, make_relay):
    fast_sim.faults.update(duplicate_every=4)
    relay = make_relay(fast_sim, redis_url=redis_server.url, types=("tick",))

    wait_for_bars(redis_server.url, "BTCUSDT", "1m", 5 + 3)  # past the backfill: bars built from trades
    assert relay.flush(10)
    with RedisReader(redis_server.url) as source:
        seqs = [entry.record.seq for entry in source.read_ticks("BTCUSDT", count=100_000)]

    assert fast_sim.counters["faults"]["duplicate_every"] > 0
    assert len(seqs) == len(set(seqs)) > 0


def test_consumer_sees_no_gap_and_no_repeat_when_the_relay_restarts(fast_sim, redis_server, make_relay):
    relay = make_relay(fast_sim, redis_url=redis_server.url)
    consumer, results = start_consumer(fast_sim, redis_server.url)

    relay.stop()
    relay.store.stop()  # as if its process ended: the upstream connection closes too
    wait_market(fast_sim, fast_sim.clock.now_ms() + 4 * MINUTE)  # the relay is down for four bars
    make_relay(fast_sim, redis_url=redis_server.url)
    consumer.join()

    rows = as_ms_rows(results["c"].rows["btc"])
    assert len(rows) >= 20
    assert_contiguous_golden(fast_sim, rows, "BTCUSDT")


def test_redis_restart_loses_nothing_and_consumers_report_connbroken(fast_sim, redis_server, make_relay):
    make_relay(fast_sim, redis_url=redis_server.url)
    consumer, results = start_consumer(fast_sim, redis_server.url)

    redis_server.stop()
    wait_market(fast_sim, fast_sim.clock.now_ms() + 4 * MINUTE)  # Redis is down for four bars
    redis_server.start()
    consumer.join()

    strategy = results["c"]
    rows = as_ms_rows(strategy.rows["btc"])
    assert len(rows) >= 20
    assert_contiguous_golden(fast_sim, rows, "BTCUSDT")
    notes = strategy.notes["btc"]
    assert "CONNBROKEN" in notes and notes[-1] == "LIVE"
    assert strategy.datas[0].stats["reconnects"] >= 1


def test_archived_bars_and_ticks_read_back_equal_across_an_influx_restart(
    fast_sim, redis_server, influx_server, make_relay
):
    relay = make_relay(
        fast_sim,
        redis_url=redis_server.url,
        influx_url=influx_server.url,
        archive_ticks=True,
        influx_options={"flush_interval": 0.1, **FAST_SINK},
    )
    wait_for_bars(redis_server.url, "BTCUSDT", "1m", 6)

    influx_server.stop()
    wait_market(fast_sim, fast_sim.clock.now_ms() + 3 * MINUTE)
    influx_server.start()
    bars = wait_for_bars(redis_server.url, "BTCUSDT", "1m", 14)
    relay.stop()  # flushes both sinks

    assert relay.stats["influx"]["dropped"] == 0
    with InfluxReader(influx_server.url, "alltick") as archive:
        archived = archive.klines("BTCUSDT", "1m", bars[0].end, bars[-1].end)
        # Ticks are recorded from the relay's subscription on: compare from the first whole minute after.
        first_tick = archive.ticks("BTCUSDT", bars[0].start, bars[-1].end)[0]
        window = (first_tick.time - first_tick.time % MINUTE + MINUTE, bars[-1].end)
        ticks = archive.ticks("BTCUSDT", window[0], window[1] - 1)
    assert window[1] - window[0] >= 5 * MINUTE
    assert kline_rows(archived[: len(bars)]) == kline_rows(bars)
    assert_contiguous_golden(fast_sim, kline_rows(archived), "BTCUSDT")
    truth = fast_sim.trades("BTCUSDT", *window)
    assert [(t.time, t.price, t.volume) for t in ticks] == [(t.time, t.price, t.volume) for t in truth]


def test_archive_serves_recorded_and_tick_built_history(fast_sim, redis_server, influx_server, make_relay):
    relay = make_relay(
        fast_sim,
        redis_url=redis_server.url,
        influx_url=influx_server.url,
        archive_ticks=True,
        influx_options={"flush_interval": 0.1},
    )
    bars = wait_for_bars(redis_server.url, "BTCUSDT", "1m", 20)
    relay.stop()
    store = AllTickStore(dialect="alltick", clock=fast_sim.clock, cache=False)
    inst = parse_symbol("BTCUSDT")
    with InfluxReader(influx_server.url, "alltick") as archive:
        first_tick = archive.ticks("BTCUSDT", bars[0].start, bars[-1].end)[0]
    # Whole 5-minute slots after the first archived trade: their every trade was archived.  The first
    # of them closes 5 minutes after it starts (fromdate keeps bars stamped at or after it).
    after_seam = first_tick.time - first_tick.time % (5 * MINUTE) + 10 * MINUTE

    def archived(compression, start):
        spec = store.resolve_timeframe(inst, "1m", compression)
        return store.history.get_range(
            inst, spec, Window(start, bars[-1].end), source="influx", source_url=influx_server.url
        ).bars

    frame = store.fetch_klines(
        "BTCUSDT", "1m", fromdate=utc(bars[0].end), source="influx", source_url=influx_server.url
    )
    combined = archived(3, bars[0].start)  # 3m was not recorded: combined from the archived 1m bars
    built = archived(5, after_seam)  # neither 5m nor its native period was recorded: built from ticks
    store.stop()

    assert [int(ts.timestamp() * 1000) for ts in frame.index][: len(bars)] == [bar.end for bar in bars]
    assert len(combined) >= 5
    assert_contiguous_golden(fast_sim, kline_rows(combined[1:]), "BTCUSDT", "3m")
    assert len(built) >= 1
    assert_contiguous_golden(fast_sim, kline_rows(built), "BTCUSDT", "5m")


def test_historical_feed_reads_the_influx_archive(fast_sim, redis_server, influx_server, make_relay):
    relay = make_relay(
        fast_sim,
        redis_url=redis_server.url,
        influx_url=influx_server.url,
        influx_options={"flush_interval": 0.1},
    )
    bars = wait_for_bars(redis_server.url, "BTCUSDT", "1m", 8)
    relay.flush()
    store = AllTickStore(dialect="alltick", clock=fast_sim.clock, cache=False)
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(
        store.getdata(
            dataname="BTCUSDT",
            timeframe=bt.TimeFrame.Minutes,
            historical=True,
            source="influx",
            source_url=influx_server.url + "/alltick",
            fromdate=utc(bars[0].start),
            todate=utc(bars[-1].end),
        ),
        name="btc",
    )
    cerebro.addstrategy(Recorder)

    strategy = cerebro.run()[0]

    assert as_ms_rows(strategy.rows["btc"]) == kline_rows(bars)


def test_example_runs_one_relay_for_two_strategies(tmp_path, redis_server):
    env = {key: value for key, value in os.environ.items() if key != "ALLTICK_TOKEN"}
    example = Path(__file__).resolve().parent.parent / "examples" / "relay_two_strategies.py"

    result = subprocess.run(
        [sys.executable, str(example), "--redis", redis_server.url],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )

    assert result.returncode == 0, result.stderr
    assert "upstream connections: 1" in result.stdout
    assert "both strategies saw the same 32 bars: True" in result.stdout


def test_a_relay_with_only_a_recording_keeps_every_trade_and_book_and_builds_no_bars(
    fast_sim, make_relay, tmp_path
):
    from backtrader_alltick.recording import Recording

    path = tmp_path / "session.rec"
    books = threading.Event()
    relay = make_relay(
        fast_sim,
        ["BTCUSDT"],
        types=("tick", "depth"),
        recording=path,
        recording_options={"flush_interval": 0.05},
    )
    relay.store.listen(
        parse_symbol("BTCUSDT"),
        lambda record: books.set() if relay.stats["depth"] >= 20 else None,
        depth=True,
    )
    assert books.wait(20)
    relay.stop()

    recording = Recording(path)
    ticks = recording.ticks("BTCUSDT")
    truth = fast_sim.model.trades("BTCUSDT", ticks[0].time, ticks[-1].time + 1)
    assert [(t.time, t.price, t.volume, t.seq) for t in ticks] == [
        (t.time, t.price, t.volume, t.seq) for t in truth
    ]
    assert len(recording.books("BTCUSDT")) >= 20 and recording.dialect == "alltick"
    assert relay.stats["bars"] == {} and relay.stats["file"]["written"] == len(ticks) + relay.stats["depth"]


def test_a_crash_while_building_bars_is_an_error_of_the_relay_not_a_silent_stop(
    fast_sim, redis_server, make_relay, monkeypatch
):
    def broken_poll(self, timeout):  # stands for a bug in bar building
        raise RuntimeError("boom")

    monkeypatch.setattr("backtrader_alltick.relay.StreamBars.poll", broken_poll)
    relay = make_relay(fast_sim, redis_url=redis_server.url)

    relay._bars._thread.join(10)  # the dispatcher ends on the crash

    assert [str(error) for error in relay.errors] == ["building bars crashed: RuntimeError('boom')"]


def test_a_relay_records_a_universe_over_two_capped_connections_every_bar_golden(redis_server):
    # 50 symbols on a plan of 25 codes per connection: the simulator serves each socket's first 25
    # only (its own table), so a code on the wrong connection would be silently dead.
    symbols = [f"U{index:04d}.US" for index in range(50)]
    service = dataclasses.replace(
        service_plan("alltick", "premium"),
        ws_symbols=25,
        reconnect_interval=0.1,
        ws_request_spacing=0.2,
        ws_connection_spacing=0.1,
        endpoint_interval=0.0,
        batch_interval=0.0,
    )
    client = dataclasses.replace(
        plans.get_plan("alltick", "premium"),
        ws_symbols=25,
        reconnect_interval=0.1,
        ws_request_spacing=0.3,
        endpoint_interval=0.0,
        batch_interval=0.0,
    )
    # One market minute per wall second; a bar closes a market minute after its end (grace), so a
    # busy machine's late tick still makes its bar.
    with Simulator(dialect="alltick", plan=service, speed=60, seed=5, symbols=symbols) as sim:
        store = AllTickStore.from_simulator(sim, plan=client, cache=False)
        relay = Relay(
            store, symbols, redis_url=redis_server.url, lookback=2, grace=1.0, redis_options=FAST_SINK
        )
        try:
            relay.start()
            for symbol in symbols:
                wait_for_bars(redis_server.url, symbol, "1m", 3, timeout=60)
            served = sorted(len(session.trade_codes) for session in sim.sessions())
        finally:
            relay.stop()
            store.stop()
        with RedisReader(redis_server.url) as source:
            recorded = {
                symbol: [entry.record for entry in source.newest_bars(symbol, "1m", 1000)]
                for symbol in symbols
            }

    assert served == [25, 25]
    for symbol, bars in recorded.items():
        truth = {bar.end: bar for bar in sim.klines(symbol, "1m", bars[0].start, bars[-1].end)}
        assert [(bar.end, bar.open, bar.high, bar.low, bar.close, bar.volume) for bar in bars] == [
            (
                bar.end,
                truth[bar.end].open,
                truth[bar.end].high,
                truth[bar.end].low,
                truth[bar.end].close,
                truth[bar.end].volume,
            )
            for bar in bars
        ], symbol
    assert relay.stats["errors"] == 0


def rest_calls(sim, endpoint):
    return sum(n for path, n in sim.counters["rest_requests_by_path"].items() if path.endswith(endpoint))


def test_after_a_reconnect_a_relay_of_many_symbols_backfills_in_batches_every_bar_golden(redis_server):
    symbols = [f"R{index:02d}USDT" for index in range(30)]
    # The clock starts 30 s into a minute, held until the relay starts: its first live bar closes
    # 1.5 wall s after the start's backfill.  At 20x; at 40x the reconnect asks /kline per symbol.
    with Simulator(
        dialect="alltick",
        plan="unlimited",
        speed=20,
        seed=7,
        symbols=symbols,
        start=DEFAULT_START_MS + 30_000,
        paused=True,
    ) as sim:
        store = AllTickStore.from_simulator(sim, cache=False)
        relay = Relay(
            store, symbols, redis_url=redis_server.url, lookback=2, grace=1.0, redis_options=FAST_SINK
        )
        try:
            sim.clock.resume()
            relay.start()
            for symbol in symbols:
                wait_for_bars(redis_server.url, symbol, "1m", 3, timeout=60)
            klines, batches = rest_calls(sim, "/kline"), rest_calls(sim, "/batch-kline")
            dropped_at = sim.clock.now_ms()
            assert sim.drop_connections() >= 1
            for symbol in symbols:  # bars on both sides of the drop, up to minutes after it
                bars = wait_for_bars(redis_server.url, symbol, "1m", 8, timeout=60)
                assert bars[-1].end >= dropped_at + 3 * MINUTE or wait_for_bars(
                    redis_server.url, symbol, "1m", len(bars) + 3, timeout=60
                )
            klines, batches = rest_calls(sim, "/kline") - klines, rest_calls(sim, "/batch-kline") - batches
        finally:
            relay.stop()
            store.stop()
        with RedisReader(redis_server.url) as source:
            recorded = {
                symbol: [entry.record for entry in source.newest_bars(symbol, "1m", 1000)]
                for symbol in symbols
            }

    assert relay.stats["upstream_drops"] >= 1 and relay.stats["errors"] == 0
    # One /kline per symbol per bar of the gap before; the gap's bars now come in a few batch answers.
    assert batches >= 1 and klines < len(symbols) / 3, (klines, batches)
    for symbol, bars in recorded.items():
        assert [bar.end for bar in bars] == list(range(bars[0].end, bars[-1].end + 1, MINUTE)), symbol
        truth = {bar.end: bar for bar in sim.klines(symbol, "1m", bars[0].start, bars[-1].end)}
        assert [(bar.end, bar.open, bar.high, bar.low, bar.close) for bar in bars] == [
            (bar.end, *(getattr(truth[bar.end], name) for name in ("open", "high", "low", "close")))
            for bar in bars
        ], symbol
        assert [bar.volume for bar in bars] == pytest.approx(
            [truth[bar.end].volume for bar in bars], rel=1e-9
        )
