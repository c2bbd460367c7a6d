"""Simulator(replay=PATH): a recording served over REST and WebSocket as the live service served it."""

from __future__ import annotations

import queue
from datetime import datetime, timezone

import pytest
from simprocess import serving

from backtrader_alltick import AllTickStore, cli
from backtrader_alltick.errors import ConfigError
from backtrader_alltick.markets import MINUTE_MS
from backtrader_alltick.recording import Recording
from backtrader_alltick.records import Depth, Tick
from backtrader_alltick.sim import Simulator
from backtrader_alltick.sim.market import MarketModel
from backtrader_alltick.sim.replay import RecordedMarket
from backtrader_alltick.sinks.recording import RecordingSink
from backtrader_alltick.symbols import parse_symbol

START = 1_709_650_800_000  # 2024-03-05T15:00:00Z
SYMBOLS = ["BTCUSDT", "AAPL.US", "EURUSD"]
SERVICE = MarketModel(seed=1, symbols=SYMBOLS, history_start_ms=0)


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """Ten minutes of the seed-1 market as a live relay would have recorded them (from 15:00:20)."""
    path = tmp_path_factory.mktemp("replay") / "session.rec"
    with RecordingSink(path, dialect="alltick") as sink:
        for symbol in SYMBOLS:
            sink.write(wire_ticks(symbol, START + 20_000, START + 10 * MINUTE_MS))
    return path


def wire_ticks(symbol: str, start_ms: int, end_ms: int) -> list[Tick]:
    # Turnover as the simulator's dialects push it: price x size from the integer ticks.
    return [
        Tick(t.symbol, t.time, t.price, t.volume, t.price * t.volume, t.seq, t.direction)
        for t in SERVICE.trades(symbol, start_ms, end_ms)
    ]


def test_klines_of_whole_recorded_minutes_equal_the_services(recording):
    market = RecordedMarket(Recording(recording))
    end = START + 10 * MINUTE_MS
    for symbol in SYMBOLS:
        replayed = market.klines_between(symbol, "1m", START + MINUTE_MS, end, now_ms=end)
        assert [(k.end, k.open, k.high, k.low, k.close) for k in replayed] == [
            (k.end, k.open, k.high, k.low, k.close)
            for k in SERVICE.klines_between(symbol, "1m", START + MINUTE_MS, end, now_ms=end)
        ]
        assert len(replayed) == 9
    # The first minute holds only what was recorded (from 15:00:20), as the recording did.
    first = market.klines_between("BTCUSDT", "1m", START, START + MINUTE_MS, now_ms=end)[0]
    assert first.open == wire_ticks("BTCUSDT", START + 20_000, START + MINUTE_MS)[0].price


def test_the_replay_clock_starts_at_the_first_recorded_trade(recording):
    with Simulator(replay=recording, speed=60) as sim:
        first = min(SERVICE.trades(s, START + 20_000, START + MINUTE_MS)[0].time for s in SYMBOLS)
        assert sim.start_ms == first
        assert sorted(sim.symbols) == sorted(SYMBOLS)


@pytest.mark.parametrize("dialect", ["alltick", "itick"])
def test_rest_serves_closed_bars_built_from_the_recording(recording, dialect, make_store):
    with Simulator(replay=recording, speed=600, dialect=dialect, start=START + 6 * MINUTE_MS) as sim:
        store = make_store(sim, cache=False)
        frame = store.fetch_klines("AAPL.US", "1m", fromdate=datetime(2024, 3, 5, 15, 2, tzinfo=timezone.utc))
        now = sim.clock.now_ms()
    ends = [int(ts.timestamp() * 1000) for ts in frame.index]
    truth = {k.end: k for k in SERVICE.klines_between("AAPL.US", "1m", START, now, now_ms=now)}
    # From the bar closing at fromdate (Backtrader's filter keeps it; the one before is partial, the
    # recording starts at 15:00:20) to the newest closed bar.
    assert len(ends) >= 3 and ends[0] == START + 2 * MINUTE_MS and ends[-1] <= now
    assert [(row.open, row.high, row.low, row.close, row.volume) for row in frame.itertuples()] == [
        (k.open, k.high, k.low, k.close, k.volume) for k in (truth[end] for end in ends)
    ]


@pytest.mark.parametrize("dialect", ["alltick", "itick"])
def test_websocket_pushes_the_recorded_trades_from_the_clock_start_on(recording, dialect, make_store):
    begin = START + 2 * MINUTE_MS
    with Simulator(replay=recording, speed=600, dialect=dialect, start=begin, symbols=["BTCUSDT"]) as sim:
        store = make_store(sim, cache=False)
        inbox: queue.Queue = queue.Queue()
        store.listen(parse_symbol("BTCUSDT"), inbox.put)
        got = []
        while not got or got[-1].time < begin + 2 * MINUTE_MS:
            item = inbox.get(timeout=20)
            if isinstance(item, Tick):
                got.append(item)
    expected = wire_ticks("BTCUSDT", got[0].time, got[-1].time + 1)
    assert got[0].time >= begin  # history before the start is never pushed
    assert [(t.time, t.price, t.volume) for t in got] == [(t.time, t.price, t.volume) for t in expected]
    if dialect == "alltick":
        assert [t.seq for t in got] == [t.seq for t in expected]  # the service's own sequence numbers


def test_faults_apply_to_a_replay_as_to_the_synthetic_market(recording, make_store):
    with Simulator(replay=recording, speed=600, faults={"duplicate_every": 4}, symbols=["BTCUSDT"]) as sim:
        store = make_store(sim, cache=False)
        inbox: queue.Queue = queue.Queue()
        store.listen(parse_symbol("BTCUSDT"), inbox.put)
        got: list[Tick] = []
        repeated: list[Tick] = []
        while len(repeated) < 3:
            item = inbox.get(timeout=20)
            if isinstance(item, Tick):
                (repeated if item in got else got).append(item)

    # The client sees recorded trades pushed twice, as it would from the synthetic market.
    recorded = {(t.time, t.seq) for t in wire_ticks("BTCUSDT", got[0].time, got[-1].time + 1)}
    assert {(t.time, t.seq) for t in got} <= recorded
    assert {(t.time, t.seq) for t in repeated} <= {(t.time, t.seq) for t in got}


def test_the_end_leaves_out_later_trades(recording):
    with Simulator(replay=recording, speed=60, end=START + 5 * MINUTE_MS) as sim:
        assert sim.model.recording.end_ms < START + 5 * MINUTE_MS
        assert (
            sim.model.klines_between(
                "EURUSD", "1m", START, START + 10 * MINUTE_MS, now_ms=START + 10 * MINUTE_MS
            )[-1].end
            == START + 5 * MINUTE_MS
        )


def test_recorded_books_are_served_when_depth_was_recorded(tmp_path):
    path = tmp_path / "books.rec"
    book = Depth("BTCUSDT", START + 10, ((63000.0, 1.5), (62999.5, 2.0)), ((63000.5, 0.5),))
    with RecordingSink(path) as sink:
        sink.write([Tick("BTCUSDT", START, 63000.25, 0.1, 6300.025, 1, 1), book])
    with Simulator(replay=path, speed=60) as sim:
        assert sim.model.depth("BTCUSDT", START + 11) == book
        assert sim.model.depth("BTCUSDT", START + 5) is None


def test_bad_replay_settings_are_config_errors_that_say_what_is_allowed(recording):
    with pytest.raises(ConfigError, match=r"symbols must be recorded in .*was TSLA.US"):
        Simulator(replay=recording, symbols=["TSLA.US"])
    with pytest.raises(ConfigError, match="start \\(--from\\) must lie within the recording"):
        Simulator(replay=recording, start=START - MINUTE_MS)
    with pytest.raises(ConfigError, match="pass replay=PATH too"):
        Simulator(end=START)


def test_sim_cli_replays_a_recording_and_prints_the_same_json_line(recording):
    with serving(
        "--replay", str(recording), "--speed", "120", "--from", "2024-03-05T15:03", "--to", "2024-03-05T15:08"
    ) as (line, exit_code):
        store = AllTickStore(
            token=line["token"],
            rest_url=line["rest_url"],
            ws_url=line["ws_url"],
            plan=line["plan"],
            cache=False,
        )
        try:
            frame = store.fetch_klines("EURUSD", "1m", count=2)
        finally:
            store.stop()
    code = exit_code[0]

    assert code == 0
    assert set(line) == {"rest_url", "ws_url", "token", "dialect", "plan", "speed", "start", "symbols"}
    assert line["start"] == START + 3 * MINUTE_MS and sorted(line["symbols"]) == sorted(SYMBOLS)
    assert int(frame.index[-1].timestamp() * 1000) <= START + 5 * MINUTE_MS


def test_from_without_replay_is_a_usage_error(capsys):
    assert cli.main(["sim", "--from", "2024-03-05"]) == 1
    assert "pass --replay PATH too" in capsys.readouterr().err
