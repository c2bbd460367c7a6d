"""Live AllTickData through a real Cerebro against the simulator: golden bars, seam, faults, contract."""

from __future__ import annotations

import logging
import math
import socket
import threading
from datetime import datetime, timezone

import backtrader as bt
import pytest
from scripted_servers import JsonRestServer, ScriptedWebSocketServer, close_with, send_then_drain

from backtrader_alltick import AllTickStore
from backtrader_alltick.bars import combine
from backtrader_alltick.clock import wall_seconds
from backtrader_alltick.errors import AllTickError, AuthError, ConfigError, SymbolNotFound
from backtrader_alltick.sim import Simulator
from backtrader_alltick.symbols import parse_symbol
from backtrader_alltick.transport import rest, retry
from feedtools import Recorder, as_ms_rows, run_guarded

MINUTE = 60_000
SPEED = 240  # four 1-minute bars per wall second
DIALECTS = ["alltick", "itick"]


@pytest.fixture(params=DIALECTS)
def fast_sim(request):
    with Simulator(dialect=request.param, plan="unlimited", speed=SPEED, seed=3) as sim:
        yield sim


def run_live(store, feeds, *, stop_after, timeout=30.0, resample=None, strategy=Recorder, stop_on=None):
    """Run a live Cerebro until every feed has ``stop_after`` bars (or ``timeout`` wall seconds)."""
    cerebro = bt.Cerebro(stdstats=False)
    for name, kwargs in feeds.items():
        data = store.getdata(qcheck=0.1, grace=0.25, **kwargs)
        if resample:
            cerebro.resampledata(data, name=name, **resample)
        else:
            cerebro.adddata(data, name=name)
    cerebro.addstrategy(strategy, stop_after=stop_after, **({} if stop_on is None else {"stop_on": stop_on}))
    return run_guarded(cerebro, timeout)


def assert_golden(sim, rows, symbol, period="1m"):
    rows = as_ms_rows(rows)
    truth = {k.end: k for k in sim.klines(symbol, period, rows[0][0] - 10 * MINUTE, rows[-1][0])}
    ends = [row[0] for row in rows]
    assert ends == sorted(set(ends)), "bars repeated or out of order"
    step = rows[1][0] - rows[0][0]
    assert all(b - a == step for a, b in zip(ends, ends[1:])), "a bar is missing"
    for end, *ohlcv in rows:
        k = truth[end]
        assert tuple(ohlcv[:4]) == (k.open, k.high, k.low, k.close), f"bar at {end} differs"
        assert ohlcv[4] == pytest.approx(k.volume, rel=1e-9)


def test_live_bars_equal_ground_truth_across_the_seam(fast_sim, make_store):
    store = make_store(fast_sim)

    strategy = run_live(
        store, {"btc": dict(dataname="BTCUSDT", timeframe=bt.TimeFrame.Minutes, lookback=5)}, stop_after=14
    )

    assert len(strategy.rows["btc"]) >= 14
    assert_golden(fast_sim, strategy.rows["btc"], "BTCUSDT")
    feed = strategy.datas[0]
    assert feed.stats["bars_rest"] >= 5 and feed.stats["bars_live"] >= 1
    assert strategy.notes["btc"][:2] == ["DELAYED", "LIVE"]


def test_resampledata_on_live_bars_closes_on_edge(make_store):
    with Simulator(dialect="alltick", plan="unlimited", speed=SPEED, seed=5) as sim:
        store = make_store(sim)
        strategy = run_live(
            store,
            {"eur": dict(dataname="EURUSD", timeframe=bt.TimeFrame.Minutes, lookback=30)},
            stop_after=8,
            resample=dict(timeframe=bt.TimeFrame.Minutes, compression=5),
        )
        # The first 5-minute bar is partial: the 30 backfilled minutes start inside it.
        assert_golden(sim, strategy.rows["eur"][1:], "EURUSD", "5m")


def test_bars_survive_dropped_connections(fast_sim, make_store):
    fast_sim.faults.update(drop_every=1.5)
    store = make_store(fast_sim)

    strategy = run_live(
        store,
        {"btc": dict(dataname="BTCUSDT", timeframe=bt.TimeFrame.Minutes, lookback=3)},
        stop_after=20,
        timeout=45,
    )

    assert len(strategy.rows["btc"]) >= 20
    assert_golden(fast_sim, strategy.rows["btc"], "BTCUSDT")
    assert strategy.datas[0].stats["reconnects"] >= 1
    assert "CONNBROKEN" in strategy.notes["btc"]


class FaultAfter(Recorder):
    """Switch simulator faults on once the feed has delivered ``after`` bars."""

    params = (("sim", None), ("after", 8), ("faults", None))

    def next(self) -> None:
        super().next()
        if len(self.data) == self.p.after:
            self.p.sim.faults.update(**self.p.faults)


def test_unanswered_heartbeats_replace_the_connection_and_bars_stay_exact(fast_sim, make_store):
    fast_sim.faults.update(ignore_heartbeats=True)
    store = make_store(fast_sim, heartbeat=0.2, stale_after=0.7)

    strategy = run_live(
        store,
        {"btc": dict(dataname="BTCUSDT", timeframe=bt.TimeFrame.Minutes, lookback=3)},
        stop_after=16,
        timeout=40,
    )

    assert_golden(fast_sim, strategy.rows["btc"], "BTCUSDT")
    family = store.wire.family(strategy.datas[0].inst)
    assert store.stream_stats[family]["stale_timeouts"] >= 1
    assert "CONNBROKEN" in strategy.notes["btc"]


def test_duplicated_reordered_and_malformed_frames_do_not_change_bars(fast_sim, make_store):
    fast_sim.faults.update(duplicate_every=7)
    if fast_sim.dialect == "alltick":
        # iTick pushes carry no sequence number: two trades of one millisecond swapped on the
        # wire cannot be put back in order, so only AllTick is held to exact open/close here.
        fast_sim.faults.update(reorder_every=5)
    store = make_store(fast_sim)
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(
        store.getdata(dataname="BTCUSDT", timeframe=bt.TimeFrame.Minutes, lookback=3, qcheck=0.1), name="btc"
    )
    # Malformed frames replace real pushes mid-stream: the trades they carried are lost, so
    # the bars in progress must be rebuilt from REST.
    cerebro.addstrategy(FaultAfter, stop_after=16, sim=fast_sim, faults=dict(malformed_frames=3))
    strategy = run_guarded(cerebro, 30)

    assert len(strategy.rows["btc"]) >= 16
    assert_golden(fast_sim, strategy.rows["btc"], "BTCUSDT")
    assert store.stream_stats[store.wire.family(strategy.datas[0].inst)]["malformed"] == 3
    assert strategy.datas[0].stats["duplicates"] > 0


class UntilBadIsRefused(Recorder):
    """Stop once ``btc`` has ``stop_after`` bars and ``bad`` has been told NOTSUBSCRIBED (``bad`` never
    has a bar, so waiting for every feed's would run to the timeout)."""

    def next(self) -> None:
        super().next()
        if len(self.rows["btc"]) >= self.p.stop_after and "NOTSUBSCRIBED" in self.notes["bad"]:
            self.env.runstop()


def test_unknown_symbol_is_notsubscribed_while_others_keep_running(make_store):
    with Simulator(dialect="alltick", plan="unlimited", speed=SPEED, seed=3) as sim:
        store = make_store(sim)
        strategy = run_live(
            store,
            {
                "btc": dict(dataname="BTCUSDT", timeframe=bt.TimeFrame.Minutes, lookback=3),
                "bad": dict(dataname="NOPE.US", timeframe=bt.TimeFrame.Minutes, lookback=3),
            },
            stop_after=8,
            timeout=15,
            strategy=UntilBadIsRefused,
        )

    assert "NOTSUBSCRIBED" in strategy.notes["bad"]
    assert len(strategy.rows["btc"]) >= 8


def test_unsupported_timeframe_is_notified(alltick_sim, make_store):
    store = make_store(alltick_sim)

    strategy = run_live(
        store,
        {
            "btc": dict(dataname="BTCUSDT", timeframe=bt.TimeFrame.Minutes, lookback=2),
            "sec": dict(dataname="BTCUSDT", timeframe=bt.TimeFrame.Seconds, compression=7),
        },
        stop_after=3,
        timeout=15,
        stop_on=("btc",),
    )

    assert strategy.notes["sec"] == ["NOTSUPPORTED_TIMEFRAME"]


def test_rejected_token_stops_with_a_clear_error_not_a_reconnect_storm(fast_sim, tmp_path):
    store = AllTickStore(
        token="sentinel-bad-token-987654",
        dialect=fast_sim.dialect,
        rest_url=fast_sim.rest_url,
        ws_url=fast_sim.ws_url,
        clock=fast_sim.clock,
        plan="unlimited",
        cache=False,
    )
    try:
        strategy = run_live(
            store, {"btc": dict(dataname="BTCUSDT", timeframe=bt.TimeFrame.Minutes)}, stop_after=1, timeout=10
        )
    finally:
        store.stop()

    feed = strategy.datas[0]
    assert strategy.notes["btc"][-1] in ("DISCONNECTED", "NOTSUBSCRIBED")
    assert "token" in str(feed.last_error).lower()
    assert "sentinel-bad-token-987654" not in str(feed.last_error)
    assert fast_sim.counters["ws_connections_opened"] <= 2


def test_several_feeds_share_one_connection_per_family(make_store):
    with Simulator(dialect="alltick", plan="unlimited", speed=SPEED, seed=3) as sim:
        store = make_store(sim)
        run_live(
            store,
            {
                "btc": dict(dataname="BTCUSDT", timeframe=bt.TimeFrame.Minutes, lookback=2),
                "eth": dict(dataname="EURUSD", timeframe=bt.TimeFrame.Minutes, lookback=2),
                "gold": dict(dataname="GOLD", timeframe=bt.TimeFrame.Minutes, lookback=2),
                "aapl": dict(dataname="AAPL.US", timeframe=bt.TimeFrame.Minutes, lookback=2),
            },
            stop_after=4,
            timeout=20,
        )

        assert sim.counters["ws_connections_opened"] == 2  # one stock socket, one forex/crypto socket


class UntilBitcoin(Recorder):
    """Stop once BTCUSDT alone has ``stop_after`` bars."""

    def next(self) -> None:
        super().next()
        if len(self.rows["btc"]) >= self.p.stop_after:
            self.env.runstop()


def test_silent_feed_does_not_stall_the_others(make_store):
    # What an idle live loop costs in CPU is measured by benchmarks/bench_live.py.
    with Simulator(dialect="alltick", plan="unlimited", speed=SPEED, seed=3) as sim:
        store = make_store(sim)
        strategy = run_live(
            store,
            {
                "btc": dict(dataname="BTCUSDT", timeframe=bt.TimeFrame.Minutes, lookback=2),
                "hk": dict(dataname="700.HK", timeframe=bt.TimeFrame.Minutes, lookback=2),  # HK is closed now
            },
            stop_after=6,
            timeout=30,
            strategy=UntilBitcoin,
        )

        assert len(strategy.rows["btc"]) >= 6 and strategy.rows["hk"] == []
        assert_golden(sim, strategy.rows["btc"], "BTCUSDT")


def test_tick_timeframe_delivers_every_trade(alltick_sim, make_store):
    store = make_store(alltick_sim)

    strategy = run_live(
        store, {"btc": dict(dataname="BTCUSDT", timeframe=bt.TimeFrame.Ticks)}, stop_after=30, timeout=15
    )

    rows = as_ms_rows(strategy.rows["btc"])
    trades = alltick_sim.trades("BTCUSDT", rows[0][0], rows[-1][0] + 1)
    assert [(r[0], r[4]) for r in rows] == [(t.time, t.price) for t in trades][: len(rows)]


class LagProbe(Recorder):
    """Also record how long after its close (wall seconds) each live bar reached next()."""

    params = (("clock", None),)

    def __init__(self) -> None:
        super().__init__()
        self.lags: list[float] = []

    def next(self) -> None:
        name = self.data._name
        if "LIVE" in self.notes[name] and len(self.data) != self.lengths[name]:  # live bars only
            end_ms = round(bt.num2date(self.data.datetime[0]).timestamp() * 1000)
            self.lags.append((self.p.clock.now_ms() - end_ms) / 1000 / self.p.clock.speed)
        super().next()


def test_a_live_bar_reaches_next_once_its_close_plus_grace_has_passed(make_store):
    with Simulator(dialect="alltick", plan="unlimited", speed=60, seed=3) as sim:
        store = make_store(sim)
        cerebro = bt.Cerebro(stdstats=False)
        cerebro.adddata(
            store.getdata(
                dataname="BTCUSDT", timeframe=bt.TimeFrame.Minutes, lookback=1, qcheck=0.2, grace=0.1
            ),
            name="btc",
        )
        cerebro.addstrategy(LagProbe, stop_after=6, clock=sim.clock)
        strategy = cerebro.run()[0]

    # By the service's clock a live bar is final only once grace has passed after its close, so
    # trades stamped just before the boundary are in it.  How soon after that it arrives is
    # measured by benchmarks/bench_live.py (bar close -> next()).
    assert len(strategy.lags) >= 3
    assert min(strategy.lags) >= 0.1


class ReplayRecorder(bt.Strategy):
    """Record every update of the replayed bar, and each completed bar when the next one starts."""

    params = (("stop_after", 3),)

    def __init__(self) -> None:
        self.updates = 0
        self.completed: list[tuple] = []
        self._last: tuple | None = None
        self._length = 0

    def next(self) -> None:
        self.updates += 1
        if len(self.data) != self._length and self._last is not None and self._length:
            self.completed.append(self._last)
        self._length = len(self.data)
        d = self.data
        self._last = (d.datetime[0], d.open[0], d.high[0], d.low[0], d.close[0], d.volume[0])
        if len(self.completed) >= self.p.stop_after:
            self.env.runstop()


def test_replaydata_on_live_bars_updates_the_forming_bar_and_completes_it_exactly(make_store):
    with Simulator(dialect="alltick", plan="unlimited", speed=SPEED, seed=5) as sim:
        store = make_store(sim)
        cerebro = bt.Cerebro(stdstats=False)
        data = store.getdata(dataname="BTCUSDT", timeframe=bt.TimeFrame.Minutes, lookback=12, qcheck=0.1)
        cerebro.replaydata(data, timeframe=bt.TimeFrame.Minutes, compression=5)
        cerebro.addstrategy(ReplayRecorder, stop_after=4)
        strategy = run_guarded(cerebro, 30)

        assert strategy.updates > len(strategy.completed)  # next() saw the bar while it was forming
        # The first replayed bar is partial (the backfill starts inside it); the others are exact.
        assert_golden(sim, strategy.completed[1:], "BTCUSDT", "5m")


def test_bidask_lines_follow_the_order_book(make_store):
    with Simulator(dialect="alltick", plan="unlimited", speed=SPEED, seed=3) as sim:
        store = make_store(sim)
        strategy = run_live(
            store,
            {"btc": dict(dataname="BTCUSDT", timeframe=bt.TimeFrame.Minutes, lookback=2, bidask=True)},
            stop_after=6,
        )

    feed = strategy.datas[0]
    rest, rows = feed.stats["bars_rest"], len(strategy.rows["btc"])
    bids, asks = feed.bid.get(size=rows), feed.ask.get(size=rows)
    closes = feed.close.get(size=rows)
    # A bar from REST closed before the book the feed holds: no quote, not today's.
    assert rest >= 2
    assert all(math.isnan(bid) and math.isnan(ask) for bid, ask in zip(bids[:rest], asks[:rest]))
    live = [
        (bid, ask, close)
        for bid, ask, close in zip(bids[rest:], asks[rest:], closes[rest:])
        if not math.isnan(bid)
    ]
    assert live and all(bid < ask and abs(bid - close) / close < 0.01 for bid, ask, close in live)


class DropAfter(Recorder):
    """Cut every simulator connection once the feed has delivered ``after`` bars."""

    params = (("sim", None), ("after", 4))

    def next(self) -> None:
        super().next()
        if len(self.data) == self.p.after:
            self.p.sim.drop_connections()


def test_without_reconnect_a_drop_ends_the_feed_with_disconnected(make_store):
    with Simulator(dialect="alltick", plan="unlimited", speed=SPEED, seed=3) as sim:
        store = make_store(sim, reconnect=False)
        cerebro = bt.Cerebro(stdstats=False)
        cerebro.adddata(
            store.getdata(dataname="BTCUSDT", timeframe=bt.TimeFrame.Minutes, lookback=2, qcheck=0.1),
            name="btc",
        )
        cerebro.addstrategy(DropAfter, sim=sim, after=5)
        strategy = run_guarded(cerebro, 30)  # ends by itself: the only feed is over

    assert strategy.notes["btc"][-1] == "DISCONNECTED"
    assert sim.counters["ws_connections_opened"] == 1


class StoreMessages(Recorder):
    def __init__(self) -> None:
        super().__init__()
        self.store_messages: list[str] = []
        self.store_args: list = []

    def notify_store(self, msg, *args, **kwargs) -> None:
        self.store_messages.append(msg)
        self.store_args.extend(args)


def test_cerebro_runs_the_store_and_closes_its_socket_at_the_end(make_store):
    with Simulator(dialect="alltick", plan="unlimited", speed=SPEED, seed=3) as sim:
        store = make_store(sim)
        cerebro = bt.Cerebro(stdstats=False)
        cerebro.adddata(
            store.getdata(dataname="BTCUSDT", timeframe=bt.TimeFrame.Minutes, lookback=2, qcheck=0.1),
            name="btc",
        )
        cerebro.addstrategy(StoreMessages, stop_after=4)
        strategy = cerebro.run()[0]

        assert "stream other: connected" in strategy.store_messages
        sim.journal.wait_for(lambda entry: entry.kind == "ws_close", timeout=5)
        assert sim.counters["ws_connections_open"] == 0


def test_synthetic_live_bars_and_two_timeframes_of_one_symbol(make_store):
    with Simulator(dialect="alltick", plan="unlimited", speed=SPEED, seed=3) as sim:
        store = make_store(sim)
        strategy = run_live(
            store,
            {
                "m1": dict(dataname="BTCUSDT", timeframe=bt.TimeFrame.Minutes, lookback=6),
                "m3": dict(dataname="BTCUSDT", timeframe=bt.TimeFrame.Minutes, compression=3, lookback=3),
            },
            stop_after=8,
            timeout=40,
        )

        assert_golden(sim, strategy.rows["m1"], "BTCUSDT")
        rows = as_ms_rows(strategy.rows["m3"])
        minutes = sim.klines("BTCUSDT", "1m", rows[0][0] - 3 * MINUTE, rows[-1][0])
        spec = store.resolve_timeframe(parse_symbol("BTCUSDT"), bt.TimeFrame.Minutes, 3)
        truth = {k.end: k for k in combine(minutes, spec, parse_symbol("BTCUSDT").market)}
        assert [r[0] for r in rows] == sorted(truth)[-len(rows) :]
        for end, *ohlcv in rows:
            assert tuple(ohlcv[:4]) == (truth[end].open, truth[end].high, truth[end].low, truth[end].close)
        assert sim.counters["ws_connections_opened"] == 1


def test_a_slow_websocket_upgrade_loses_no_bar_at_the_start(make_store):
    with Simulator(dialect="alltick", plan="unlimited", speed=SPEED, seed=3) as sim:
        sim.faults.update(slow_ms=3000)  # REST answers and the upgrade each take three seconds
        store = make_store(sim)
        strategy = run_live(
            store,
            {"btc": dict(dataname="BTCUSDT", timeframe=bt.TimeFrame.Minutes, lookback=3)},
            stop_after=30,
            timeout=45,
        )

        assert_golden(sim, strategy.rows["btc"], "BTCUSDT")


class SlowOnce(Recorder):
    """A strategy that once spends a second in next(), while trades keep arriving."""

    def next(self) -> None:
        super().next()
        if len(self.data) == 6:
            threading.Event().wait(1.0)  # the strategy's own work, not a synchronisation


def test_an_inbox_overflow_is_rebuilt_from_rest(make_store):
    with Simulator(dialect="alltick", plan="unlimited", speed=SPEED, seed=3) as sim:
        store = make_store(sim)
        cerebro = bt.Cerebro(stdstats=False)
        cerebro.adddata(
            store.getdata(
                dataname="BTCUSDT", timeframe=bt.TimeFrame.Minutes, lookback=3, qcheck=0.1, inbox_size=20
            ),
            name="btc",
        )
        cerebro.addstrategy(SlowOnce, stop_after=20)
        strategy = run_guarded(cerebro, 40)

        assert strategy.datas[0].stats["overflows"] > 0
        assert len(strategy.rows["btc"]) >= 20
        assert_golden(sim, strategy.rows["btc"], "BTCUSDT")


def test_adddata_and_resampledata_of_one_live_feed_read_the_store_clock(make_store):
    with Simulator(dialect="alltick", plan="unlimited", speed=SPEED, seed=5) as sim:
        store = make_store(sim)
        cerebro = bt.Cerebro(stdstats=False)
        data = store.getdata(dataname="EURUSD", timeframe=bt.TimeFrame.Minutes, lookback=20, qcheck=0.1)
        cerebro.adddata(data, name="m1")
        cerebro.resampledata(data, name="m5", timeframe=bt.TimeFrame.Minutes, compression=5)
        cerebro.addstrategy(Recorder, stop_after=4)
        strategy = run_guarded(cerebro, 30)

        assert_golden(sim, strategy.rows["m5"][1:], "EURUSD", "5m")


# -- No endless waits ----------------------------------------------------------------------------


@pytest.mark.parametrize("ws_url", ["http://127.0.0.1:8080", "garbage", "ws://"])
def test_a_websocket_url_that_cannot_be_valid_fails_at_store_construction(alltick_sim, ws_url):
    with pytest.raises(ConfigError, match=r"^ws_url must be a ws:// or wss:// URL"):
        AllTickStore(token=alltick_sim.token, rest_url=alltick_sim.rest_url, ws_url=ws_url, cache=False)


def test_a_bad_alltick_ws_url_variable_is_named_in_the_error(alltick_sim, monkeypatch):
    monkeypatch.setenv("ALLTICK_WS_URL", "https://quote.alltick.co")

    with pytest.raises(ConfigError, match=r"^ALLTICK_WS_URL must be a ws:// or wss:// URL"):
        AllTickStore(token=alltick_sim.token, cache=False)


def _store_beside(sim, **params) -> AllTickStore:
    # The simulator's REST and clock with another WebSocket server (or none at ws_url).
    params.setdefault("rest_url", sim.rest_url)
    params.setdefault("ws_url", sim.ws_url)
    return AllTickStore(
        token=sim.token, dialect=sim.dialect, clock=sim.clock, plan="unlimited", cache=False, **params
    )


def run_one_feed(store, timeout: float, strategy=Recorder, seen=None, **data_kwargs):
    cerebro = bt.Cerebro(stdstats=False)
    data_kwargs = {
        "dataname": "BTCUSDT",
        "timeframe": bt.TimeFrame.Minutes,
        "lookback": 2,
        "qcheck": 0.1,
        **data_kwargs,
    }
    cerebro.adddata(store.getdata(**data_kwargs), name="feed")
    cerebro.addstrategy(strategy, **({} if seen is None else {"seen": seen}))
    try:
        return run_guarded(cerebro, timeout)
    finally:
        store.stop()


STREAM_LOGGER = "backtrader_alltick.transport.stream_link"


class RecordSeen(logging.Handler):
    """Sets ``seen`` once a log record matching ``wanted`` is emitted."""

    def __init__(self, wanted) -> None:
        super().__init__(logging.DEBUG)
        self.wanted = wanted
        self.seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.wanted(record):
            self.seen.set()


class UntilRecordSeen(Recorder):
    """Stop the run once ``seen`` is set (Cerebro's live loop runs even while no bar arrives)."""

    params = (("seen", None),)

    def start(self) -> None:
        seen, env = self.p.seen, self.env
        threading.Thread(target=lambda: seen.wait(60) and env.runstop(), daemon=True).start()


def test_a_refused_websocket_host_is_connbroken_and_logged_and_retried(alltick_sim, caplog):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        refused = f"ws://127.0.0.1:{probe.getsockname()[1]}"
    store = _store_beside(alltick_sim, ws_url=refused, reconntimeout=0.0)
    retried = RecordSeen(lambda record: "attempt" in record.msg and "failed" in record.msg)
    caplog.set_level(logging.INFO, logger=STREAM_LOGGER)
    logging.getLogger(STREAM_LOGGER).addHandler(retried)
    try:
        strategy = run_one_feed(store, timeout=60, strategy=UntilRecordSeen, seen=retried.seen)
    finally:
        logging.getLogger(STREAM_LOGGER).removeHandler(retried)

    assert retried.seen.is_set(), "the stream never tried again"
    assert strategy.notes["feed"][:2] == ["DELAYED", "CONNBROKEN"]
    assert "Connection refused" in caplog.text
    assert store.stream_stats["other"]["connect_failures"] >= 2  # retried, not given up


ALLTICK_401_FRAME = '{"ret":401,"msg":"token invalid","trace":"","data":{}}'


@pytest.mark.parametrize("refusal", [close_with(1008, "token invalid"), send_then_drain(ALLTICK_401_FRAME)])
def test_a_token_refused_on_the_websocket_ends_the_feed_and_tells_the_store(alltick_sim, refusal):
    with ScriptedWebSocketServer(refusal) as server:
        store = _store_beside(alltick_sim, ws_url=server.url)

        strategy = run_one_feed(store, timeout=20, strategy=StoreMessages)  # ends by itself

    feed = strategy.datas[0]
    assert strategy.notes["feed"][-1] in ("DISCONNECTED", "NOTSUBSCRIBED")
    assert isinstance(feed.last_error, AuthError)
    assert any(isinstance(getattr(arg, "error", arg), AuthError) for arg in strategy.store_args)
    assert server.connections == 1


def test_a_token_refused_over_rest_ends_the_feed_and_tells_the_store(alltick_sim):
    # The stream accepts (and stays quiet); only the REST backfill refuses the token.
    with ScriptedWebSocketServer(send_then_drain()) as server:
        store = AllTickStore(
            token="sentinel-bad-token-987654",
            rest_url=alltick_sim.rest_url,
            ws_url=server.url,
            clock=alltick_sim.clock,
            plan="unlimited",
            cache=False,
        )

        strategy = run_one_feed(store, timeout=20, strategy=StoreMessages)

    assert strategy.notes["feed"][-1] == "DISCONNECTED"
    assert isinstance(strategy.datas[0].last_error, AuthError)
    assert "BTCUSDT: DISCONNECTED" in strategy.store_messages
    assert strategy.datas[0].last_error in strategy.store_args


# -- Unknown symbols -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "feed",
    [
        dict(timeframe=bt.TimeFrame.Minutes),
        dict(timeframe=bt.TimeFrame.Minutes, backfill_start=False),
        dict(timeframe=bt.TimeFrame.Ticks),
    ],
)
def test_an_unknown_symbol_is_notsubscribed_with_symbol_not_found_on_both_dialects(fast_sim, feed):
    store = AllTickStore.from_simulator(fast_sim, cache=False)

    strategy = run_one_feed(store, timeout=20, dataname="NOPE.US", **feed)  # ends by itself

    assert strategy.notes["feed"][-1] == "NOTSUBSCRIBED"
    assert isinstance(strategy.datas[0].last_error, SymbolNotFound)
    assert "NOPE.US" in str(strategy.datas[0].last_error)


def test_an_unknown_symbol_answered_with_empty_data_is_still_notsubscribed(itick_sim):
    # itick.md 9.2: an unknown code may come back as code 0 with empty data, K-lines and ticks alike.
    with JsonRestServer(lambda path: {"code": 0, "msg": None, "data": None}) as rest:
        store = _store_beside(itick_sim, rest_url=rest.url)

        strategy = run_one_feed(store, timeout=20, dataname="NOPE.US")

    assert strategy.notes["feed"][-1] == "NOTSUBSCRIBED"
    assert isinstance(strategy.datas[0].last_error, SymbolNotFound)


class FaultAtBoundary(Recorder):
    """Once live, fire ``fault(sim)`` at ``offset_ms`` of market time from the next minute boundary."""

    params = (("sim", None), ("fault", None), ("offset_ms", 0), ("fired_at", None))

    def next(self) -> None:
        super().next()
        if self.p.fired_at is None and "LIVE" in self.notes[self.data._name]:
            clock = self.p.sim.clock
            boundary = (clock.now_ms() // MINUTE + 2) * MINUTE
            self.p.fired_at = boundary + self.p.offset_ms
            threading.Timer(wall_seconds(clock, self.p.fired_at), self.p.fault, (self.p.sim,)).start()


def _drop(sim) -> None:
    sim.drop_connections()


def _malformed(sim) -> None:
    sim.faults.update(malformed_frames=1)


@pytest.mark.parametrize("dialect, symbol", [("alltick", "EURUSD"), ("itick", "BTCUSDT")])
@pytest.mark.parametrize("fault, offset_ms", [(_drop, -400), (_malformed, 2500)], ids=["drop", "malformed"])
def test_a_stale_resent_trade_after_a_seam_reset_does_not_cut_the_next_bar(
    make_store, dialect, symbol, fault, offset_ms
):
    # The server replays the last trade of the previous minute (same seq, already delivered) after a
    # drop just before a boundary, or after a malformed frame just after one.
    with Simulator(
        dialect=dialect, plan="unlimited", speed=60, seed=11, faults=dict(resend_stale_trade=True)
    ) as sim:
        store = make_store(sim)
        cerebro = bt.Cerebro(stdstats=False)
        cerebro.adddata(
            store.getdata(
                dataname=symbol, timeframe=bt.TimeFrame.Minutes, lookback=3, qcheck=0.1, grace=0.25
            ),
            name="x",
        )
        cerebro.addstrategy(FaultAtBoundary, stop_after=10, sim=sim, fault=fault, offset_ms=offset_ms)
        strategy = run_guarded(cerebro, 40)

        assert sim.counters["faults"].get("resend_stale_trade", 0) >= 1
        assert len(strategy.rows["x"]) >= 10
        assert_golden(sim, strategy.rows["x"], symbol)


class DropThenUntilLiveAgain(DropAfter):
    """Cut the connections after ``after`` bars; stop once the feed is LIVE again after CONNBROKEN."""

    def notify_data(self, data, status, *args, **kwargs) -> None:
        super().notify_data(data, status, *args, **kwargs)
        notes = self.notes[data._name]
        if "CONNBROKEN" in notes and "LIVE" in notes[notes.index("CONNBROKEN") :]:
            self.env.runstop()


def test_a_tick_feed_goes_live_again_after_a_reconnect(make_store):
    with Simulator(dialect="alltick", plan="unlimited", speed=SPEED, seed=3) as sim:
        store = make_store(sim)
        cerebro = bt.Cerebro(stdstats=False)
        cerebro.adddata(
            store.getdata(dataname="BTCUSDT", timeframe=bt.TimeFrame.Ticks, qcheck=0.1), name="btc"
        )
        # 400 trades bound a run whose feed never goes LIVE again (the assertion then says so).
        cerebro.addstrategy(DropThenUntilLiveAgain, stop_after=400, sim=sim, after=10)
        strategy = run_guarded(cerebro, 30)

    notes = strategy.notes["btc"]
    assert "CONNBROKEN" in notes
    assert "LIVE" in notes[notes.index("CONNBROKEN") :]


def test_a_crashing_backfill_fails_the_feed_with_a_notification(make_store, monkeypatch):
    from backtrader_alltick.sources.stream_rest import StreamRest

    def broken(self, moment_ms):
        raise ZeroDivisionError("a bug in the grid")

    monkeypatch.setattr(StreamRest, "next_final", broken)  # a bug inside the backfill worker
    with Simulator(dialect="alltick", plan="unlimited", speed=SPEED, seed=3) as sim:
        store = make_store(sim)
        strategy = run_live(
            store,
            {"btc": dict(dataname="BTCUSDT", timeframe=bt.TimeFrame.Minutes, lookback=3)},
            stop_after=50,
            timeout=20,
        )

    feed = strategy.datas[0]
    assert "DISCONNECTED" in strategy.notes["btc"]
    assert isinstance(feed.last_error, AllTickError) and "ZeroDivisionError" in str(feed.last_error)


def test_a_fromdate_ahead_of_the_service_clock_waits_for_it_and_starts_there(make_store):
    # A replay's clock starts at the first recorded trade, before a fromdate the strategy is told to
    # use: the feed must wait for the bars, not end NOTSUBSCRIBED because fromdate is after "now".
    with Simulator(dialect="alltick", plan="unlimited", speed=SPEED, seed=3) as sim:
        store = make_store(sim)
        fromdate = sim.start_ms + 3 * MINUTE
        moment = datetime.fromtimestamp(fromdate / 1000, timezone.utc)
        strategy = run_live(
            store,
            {"btc": dict(dataname="BTCUSDT", timeframe=bt.TimeFrame.Minutes, fromdate=moment)},
            stop_after=4,
        )

    feed = strategy.datas[0]
    assert feed.last_error is None
    rows = as_ms_rows(strategy.rows["btc"])
    assert rows[0][0] == fromdate  # the bar closing at fromdate comes first, as Backtrader's filter keeps it
    assert_golden(sim, strategy.rows["btc"], "BTCUSDT")
    assert "LIVE" in strategy.notes["btc"]


class UntilLiveAgain(Recorder):
    """Stop once the feed is LIVE again after a CONNBROKEN."""

    def next(self) -> None:
        super().next()
        notes = self.notes[self.data._name]
        if "CONNBROKEN" in notes and "LIVE" in notes[notes.index("CONNBROKEN") :]:
            self.env.runstop()


def test_a_rest_outage_longer_than_the_clients_retries_delays_the_bars_and_loses_none(
    fast_sim, make_store, monkeypatch
):
    # Eight 503s: the REST client's five retries of the first backfill all fail, then the source's
    # first ask-again fails too; the feed says CONNBROKEN, waits, and goes LIVE with every bar exact.
    # The client's backoff is halved (its schedule kept): its five waits still take 3.9 wall s at
    # least, some 15 bars at this speed for the feed to get back.
    monkeypatch.setattr(
        rest,
        "backoff_delay",
        lambda attempt, initial, cap, **pace: retry.backoff_delay(attempt, initial / 2, cap / 2, **pace),
    )
    fast_sim.faults.update(server_error_burst=8)
    store = make_store(fast_sim)

    strategy = run_live(
        store,
        {"btc": dict(dataname="BTCUSDT", timeframe=bt.TimeFrame.Minutes, lookback=3)},
        stop_after=None,
        timeout=90,
        strategy=UntilLiveAgain,
    )

    notes = strategy.notes["btc"]
    assert "CONNBROKEN" in notes and "LIVE" in notes[notes.index("CONNBROKEN") :]
    assert strategy.datas[0].last_error is None
    assert len(strategy.rows["btc"]) >= 12
    assert_golden(fast_sim, strategy.rows["btc"], "BTCUSDT")
