"""AllTickStore against the simulator: arguments, fromdate/todate, the broker it has not, pickling."""

from __future__ import annotations

import dataclasses
import os
import pickle
import subprocess
import sys
import threading
from datetime import date, datetime, timezone

import backtrader as bt
import pandas as pd
import pytest

from backtrader_alltick import AllTickStore, plans
from backtrader_alltick.errors import AuthError, ConfigError, UnsupportedTimeframe
from backtrader_alltick.frames import klines_frame
from backtrader_alltick.history import Window
from backtrader_alltick.sim.plan_table import service_plan
from backtrader_alltick.symbols import parse_symbol

FROM, TO = datetime(2024, 3, 4, 10, 0), datetime(2024, 3, 4, 10, 5)


def ms(moment: datetime) -> int:
    return int(moment.replace(tzinfo=timezone.utc).timestamp() * 1000)


def stamps(frame: pd.DataFrame) -> list[str]:
    return [ts.strftime("%H:%M") for ts in frame.index]


def test_getbroker_says_the_plugin_serves_data_and_backtraders_broker_trades():
    with pytest.raises(ConfigError, match=r"market data only.*bt\.brokers\.BackBroker"):
        AllTickStore.getbroker()


@pytest.mark.parametrize(
    ("timeframe", "compression", "fromdate", "todate", "expected"),
    [
        (bt.TimeFrame.Minutes, 1, FROM, TO, ["10:00", "10:01", "10:02", "10:03", "10:04", "10:05"]),
        ("1m", 3, FROM.replace(minute=3), FROM.replace(minute=12), ["10:03", "10:06", "10:09", "10:12"]),
        ("5m", 1, FROM, FROM.replace(minute=10), ["10:00", "10:05", "10:10"]),
    ],
)
def test_fromdate_and_todate_keep_bars_stamped_exactly_at_them_from_rest_and_from_cache(
    alltick_sim, make_store, timeframe, compression, fromdate, todate, expected
):
    store = make_store(alltick_sim)

    cold = store.fetch_klines("BTCUSDT", timeframe, compression, fromdate=fromdate, todate=todate)
    requests = alltick_sim.counters["rest_requests"]
    warm = store.fetch_klines("BTCUSDT", timeframe, compression, fromdate=fromdate, todate=todate)

    assert stamps(cold) == expected  # Backtrader's filter: fromdate <= datetime <= todate
    assert alltick_sim.counters["rest_requests"] == requests  # the second answer came from the cache
    pd.testing.assert_frame_equal(warm, cold)


@pytest.mark.parametrize(
    ("fromdate", "todate", "closes"),
    [
        # A date is the market's trading day, as an intraday feed reads it: for crypto the bars closing
        # from 01:00 to 24:00 UTC (the one closing at 00:00 is the previous day's last hour).
        (date(2024, 3, 4), date(2024, 3, 4), list(range(1, 24)) + [0]),
        ("2024-03-04", "2024-03-04", list(range(1, 24)) + [0]),
        (pd.Timestamp("2024-03-04 00:00"), pd.Timestamp("2024-03-04 23:59:59.99999"), list(range(24))),
        ("2024-03-04T00:00:00+00:00", "2024-03-04 23:59:59.99999", list(range(24))),
        (
            datetime(2024, 3, 4, tzinfo=timezone.utc),
            datetime(2024, 3, 4, 23, 59, 59, 999990),
            list(range(24)),
        ),
    ],
)
def test_fetch_klines_takes_dates_timestamps_and_iso_strings_like_backtrader(
    alltick_sim, make_store, fromdate, todate, closes
):
    frame = make_store(alltick_sim).fetch_klines("BTCUSDT", "1h", fromdate=fromdate, todate=todate)

    assert [ts.hour for ts in frame.index] == closes
    assert frame.index[0].date() == date(2024, 3, 4)


def test_fetch_klines_over_dates_without_a_trading_day_is_empty(alltick_sim, make_store):
    store = make_store(alltick_sim)

    weekend = store.fetch_klines("EURUSD", "1m", fromdate=date(2024, 3, 2), todate=date(2024, 3, 3))

    assert weekend.empty and list(weekend.columns) == ["open", "high", "low", "close", "volume", "turnover"]
    with pytest.raises(ConfigError, match="fromdate must not be after todate"):
        store.fetch_klines("EURUSD", "1m", fromdate=date(2024, 3, 4), todate=date(2024, 3, 3))


def test_an_empty_daily_frame_has_the_daily_index_so_it_concatenates_with_a_full_one(alltick_sim, make_store):
    store = make_store(alltick_sim)

    before_history = store.fetch_klines("AAPL.US", "1d", fromdate="2020-01-01", todate="2020-02-01")
    recent = store.fetch_klines("AAPL.US", "1d", count=3)

    assert before_history.empty
    assert (
        (before_history.index.name, before_history.index.tz)
        == (recent.index.name, recent.index.tz)
        == ("date", None)
    )


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"fromdate": 20240304}, "fromdate"),
        ({"fromdate": "yesterday"}, "fromdate"),
        ({"todate": "2024-13-01"}, "todate"),
        ({"timeframe": None}, "timeframe"),
        ({"timeframe": 4.0}, "timeframe"),
        ({"timeframe": "5x"}, "timeframe"),
        ({"count": "5"}, "count"),
        ({"count": 2.5}, "count"),
        ({"count": 0}, "count"),
        ({"count": True}, "count"),
        ({"compression": 1.5}, "compression"),
        ({"compression": 0}, "compression"),
    ],
)
def test_fetch_klines_refuses_other_arguments_naming_the_parameter(
    alltick_sim, make_store, kwargs, parameter
):
    store = make_store(alltick_sim)

    with pytest.raises(ConfigError, match=rf"^{parameter} must .*, was "):
        store.fetch_klines("BTCUSDT", **kwargs)
    assert alltick_sim.counters["rest_requests"] == 0  # refused before anything was sent


def test_a_period_name_is_a_timeframe_in_the_clis_grammar(alltick_sim, make_store):
    store = make_store(alltick_sim)

    named = store.fetch_klines("BTCUSDT", "3m", count=4)

    assert named.equals(store.fetch_klines("BTCUSDT", bt.TimeFrame.Minutes, 3, count=4))
    two_hours = store.fetch_klines("BTCUSDT", "2h", count=2)
    assert two_hours.equals(store.fetch_klines("BTCUSDT", "1h", 2, count=2))


def test_a_token_that_is_not_a_string_is_refused_without_quoting_it():
    with pytest.raises(ConfigError) as info:
        AllTickStore(token=12345678901234)

    assert str(info.value) == "token must be a string, was a value of type int"
    assert "12345678901234" not in str(info.value)


def test_the_store_says_whether_it_has_a_token_and_hands_it_to_no_caller(
    alltick_sim, make_store, monkeypatch
):
    monkeypatch.delenv("ALLTICK_TOKEN", raising=False)
    store = make_store(alltick_sim)

    assert store.has_token and not AllTickStore(cache=False).has_token
    assert not hasattr(store, "token")


def test_fetch_klines_frames_what_the_history_entry_point_returns(alltick_sim, make_store):
    store = make_store(alltick_sim)
    inst = parse_symbol("BTCUSDT")
    spec = store.resolve_timeframe(inst, "1m", 3)

    frame = store.fetch_klines("BTCUSDT", "1m", 3, fromdate=FROM, todate=FROM.replace(minute=30))
    got = store.history.get_range(inst, spec, Window(ms(FROM), ms(FROM.replace(minute=30))))

    pd.testing.assert_frame_equal(frame, klines_frame(got.bars, inst.market, spec.period))
    assert [bar.end for bar in got.bars] == [ms(FROM.replace(minute=m)) for m in range(0, 31, 3)]
    assert got.complete_ms >= got.bars[-1].end


def test_a_pickled_store_reopens_from_its_configuration(alltick_sim, make_store):
    store = make_store(alltick_sim)
    before = store.fetch_klines("BTCUSDT", "1m", fromdate=FROM, todate=TO)  # opens REST and the cache

    copy = pickle.loads(pickle.dumps(store))
    try:
        assert repr(copy) == repr(store)
        pd.testing.assert_frame_equal(copy.fetch_klines("BTCUSDT", "1m", fromdate=FROM, todate=TO), before)
    finally:
        copy.stop()


def test_a_pickle_on_disk_holds_no_token_and_another_run_cannot_use_it(alltick_sim, make_store, tmp_path):
    store = make_store(alltick_sim)
    path = tmp_path / "store.pickle"
    path.write_bytes(pickle.dumps(store))

    assert alltick_sim.token.encode() not in path.read_bytes()
    script = (
        "import logging, pickle, sys\n"
        "logging.basicConfig()\n"
        "store = pickle.loads(open(sys.argv[1], 'rb').read())\n"
        "store.fetch_klines('BTCUSDT', '1m', count=5)\n"
    )
    env = {key: value for key, value in os.environ.items() if key != "ALLTICK_TOKEN"}
    result = subprocess.run(
        [sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 1
    assert "sealed by another run" in result.stderr and AuthError.__name__ in result.stderr


def test_kline_downloads_and_historical_feeds_do_not_offer_ticks(alltick_sim, make_store):
    store = make_store(alltick_sim)

    with pytest.raises(UnsupportedTimeframe) as download:
        store.fetch_klines("BTCUSDT", bt.TimeFrame.Seconds, 5, count=5)
    with pytest.raises(UnsupportedTimeframe) as backtest:
        store.getdata(dataname="BTCUSDT", timeframe=bt.TimeFrame.Ticks, historical=True)

    assert download.value.supported[0].startswith("Minutes x N") and "Ticks" not in download.value.supported
    assert "Ticks" not in backtest.value.supported and "historical trades" in str(backtest.value)


def test_a_premium_store_serves_450_symbols_on_3_connections_and_every_symbol_ticks(make_sim, make_store):
    symbols = [f"S{index:04d}.US" for index in range(450)]
    sim = make_sim(plan="premium", symbols=symbols, speed=60)
    store = make_store(sim)
    seen, everyone = set(), threading.Event()

    def on_record(record):
        seen.add(record.symbol)
        if len(seen) == len(symbols):
            everyone.set()

    store.check_capacity(symbols)
    for symbol in symbols:
        store.listen(parse_symbol(symbol), on_record)
    assert everyone.wait(60), f"{len(seen)} of 450 symbols ticked"

    served = sorted(len(session.trade_codes) for session in sim.sessions())
    assert served == [50, 200, 200]
    assert store.stream_stats["stock"]["links"] == 3
    # The simulator spaces attempts and requests of different connections as the service does.
    assert sim.counters["ws_connections_rejected"] == 0 and "606" not in sim.counters["errors_sent"]


class Ticking:
    """Which symbols ticked, and since when; tests wait on it, never sleep."""

    def __init__(self) -> None:
        self.symbols: set[str] = set()
        self.changed = threading.Condition()

    def on_record(self, record) -> None:
        with self.changed:
            if record.symbol not in self.symbols:
                self.symbols.add(record.symbol)
                self.changed.notify_all()

    def wait_for(self, wanted, timeout: float = 60.0) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: set(wanted) <= self.symbols, timeout), sorted(
                set(wanted) - self.symbols
            )


def _capped_plans(per_connection: int):
    # Premium's 3 connections with a small cap per connection, and spacing short enough for a test;
    # the simulator enforces its own copy.  The client keeps twice the spacing the simulator asks
    # for: simulator and client share one interpreter, so a busy machine delays the simulator's
    # reads by more than the client's margin, which a short spacing does not absorb.
    service = dataclasses.replace(
        service_plan("alltick", "premium"),
        ws_symbols=per_connection,
        reconnect_interval=0.5,
        ws_connection_spacing=0.5,
    )
    client = dataclasses.replace(
        plans.get_plan("alltick", "premium"), ws_symbols=per_connection, reconnect_interval=1.0
    )
    return service, client


def test_a_dropped_connections_symbols_move_to_the_others_and_every_symbol_keeps_ticking(
    make_sim, make_store
):
    # 25 symbols on connections of 10: [10, 10, 5].  Five leave the first connection; then the
    # second drops and cannot come back (another process took the token's third connection): its
    # ten symbols go on ticking on the two that are up, none of which serves more than 10.
    symbols = [f"S{index:04d}.US" for index in range(25)]
    service, client = _capped_plans(10)
    sim = make_sim(plan=service, symbols=symbols, speed=60)
    store = make_store(sim, plan=client)
    ticking = Ticking()
    heard: dict[str, list[str]] = {symbol: [] for symbol in symbols}
    listeners = {
        symbol: (lambda status, symbol=symbol: heard[symbol].append(status.kind)) for symbol in symbols
    }
    for symbol in symbols:
        store.listen(symbol, ticking.on_record, on_status=listeners[symbol])
    ticking.wait_for(symbols)
    assert store.hub.placement("stock") == [10, 10, 5]

    for symbol in symbols[:5]:
        store.unlisten(symbol, ticking.on_record, on_status=listeners[symbol])
    sim.set_plan(dataclasses.replace(service, ws_connections=2))
    victim = next(session for session in sim.sessions() if "S0012.US" in session.trade_codes)
    victim.connection.abort()
    with ticking.changed:
        ticking.symbols.clear()
    ticking.wait_for(symbols[5:])
    served = [session.trade_codes for session in sim.sessions()]

    assert store.hub.placement("stock") == [10, 0, 10]
    assert all(len(codes) <= 10 for codes in served)
    assert sorted(code for codes in served for code in codes) == symbols[5:]
    # The moved symbols' feeds saw their connection drop and their new one up; the others nothing.
    assert all(heard[symbol] == ["connected", "disconnected", "connected"] for symbol in symbols[10:20])
    assert all(heard[symbol] == ["connected"] for symbol in symbols[5:10] + symbols[20:])
    # notify_store names the connection, since the family has several.
    notes = [message for message, _, _ in store.get_notifications()]
    assert {"stream stock#1: connected", "stream stock#2: disconnected"} <= set(notes)


def test_a_dropped_connection_breaks_only_the_symbols_it_carries(make_sim, make_store):
    # 20 symbols on two full connections of 10: the second drops.  Its symbols hear it drop and
    # come back; the first connection's hear nothing, so their feeds never show CONNBROKEN.
    symbols = [f"S{index:04d}.US" for index in range(20)]
    service, client = _capped_plans(10)
    sim = make_sim(plan=service, symbols=symbols, speed=60)
    store = make_store(sim, plan=client)
    heard: dict[str, list[str]] = {symbol: [] for symbol in symbols}
    changed = threading.Condition()

    def listener(symbol):
        def on_status(status):
            with changed:
                heard[symbol].append(status.kind)
                changed.notify_all()

        return on_status

    for symbol in symbols:
        store.listen(symbol, lambda record: None, on_status=listener(symbol))
    with changed:
        assert changed.wait_for(lambda: all(kinds == ["connected"] for kinds in heard.values()), 60)
    assert store.hub.placement("stock") == [10, 10]
    second = sim.journal.wait_for(
        lambda entry: entry.kind == "ws_message" and "S0015.US" in str(entry.message), timeout=30
    )
    victim = next(session for session in sim.sessions() if session.connection.id == second.connection)
    victim.connection.abort()
    with changed:
        assert changed.wait_for(lambda: all(len(heard[symbol]) == 3 for symbol in symbols[10:]), 60)

    assert all(heard[symbol] == ["connected"] for symbol in symbols[:10])
    assert all(heard[symbol] == ["connected", "disconnected", "connected"] for symbol in symbols[10:])
    assert store.hub.is_connected("stock", "S0003.US")


def test_601_symbols_on_premium_are_a_config_error_before_any_connection(make_sim, make_store):
    sim = make_sim(plan="premium", symbols=[f"S{index:04d}.US" for index in range(601)])
    store = make_store(sim)

    with pytest.raises(ConfigError, match="601 stock codes are wanted; plan 'premium' serves at most 600"):
        store.check_capacity(sim.symbols)

    assert sim.counters["ws_connections_opened"] == 0


class FailsOnFirstBar(bt.Strategy):
    def next(self) -> None:
        raise ZeroDivisionError("a bug in the strategy")


def test_stopping_the_store_after_a_run_that_raised_ends_its_feeds_threads(alltick_sim, make_store):
    # Cerebro does not stop the feeds of a run that raised; the user's `finally: store.stop()` must
    # still end the live feed's backfill worker, which would otherwise reopen the store's REST client.
    store = make_store(alltick_sim, cache=False)
    before = set(threading.enumerate())
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(store.getdata(dataname="BTCUSDT", timeframe=bt.TimeFrame.Minutes, lookback=3))
    cerebro.addstrategy(FailsOnFirstBar)
    with pytest.raises(ZeroDivisionError):
        cerebro.run()

    store.stop()

    left = [t for t in threading.enumerate() if t not in before and t.name.startswith("alltick-")]
    for thread in left:
        thread.join(10.0 / len(left))
    assert [thread.name for thread in left if thread.is_alive()] == []
