import logging
import signal
import subprocess
import sys
import threading

import pytest

from backtrader_alltick.errors import ConfigError, ConnectError
from backtrader_alltick.records import Depth, Kline, Quote, Tick
from backtrader_alltick.sinks.redis import RedisSink
from backtrader_alltick.transport.redis_reader import Latest, RedisReader

T0 = 1_700_000_040_000
FAST = {"backoff_initial": 0.01, "backoff_max": 0.05}


def make_ticks(count, symbol="AAPL.US", first=0):
    return [
        Tick(
            symbol,
            T0 + (first + i) * 250,
            190.0 + (first + i) * 0.01,
            1.0 + i % 5,
            0.5 * i,
            seq=None if i % 4 == 0 else first + i,
            direction=i % 3,
        )
        for i in range(count)
    ]


def make_bars(count, symbol="AAPL.US", period="1m", first=0):
    return [
        Kline(
            symbol,
            period,
            T0 + n * 60_000,
            T0 + (n + 1) * 60_000,
            10.0 + n,
            11.5 + n,
            9.25 + n,
            10.75 + n,
            100.0 * (n + 1),
            1234.5 * n,
        )
        for n in range(first, first + count)
    ]


@pytest.fixture
def sink(redis_server):
    with RedisSink(redis_server.url, **FAST) as sink:
        yield sink


@pytest.fixture
def source(redis_server):
    with RedisReader(redis_server.url, reconnect_timeout=10, **FAST) as source:
        yield source


def records_of(entries):
    return [entry.record for entry in entries]


def test_ticks_read_back_equal_and_in_order(sink, source):
    ticks = make_ticks(300)

    sink.write(ticks)
    assert sink.flush(timeout=10)

    assert records_of(source.read_ticks("AAPL.US", count=1000)) == ticks


def test_quotes_and_depth_read_back_equal(sink, source):
    quotes = [
        Quote("EURUSD", T0, 1.0851),
        Quote(
            "EURUSD",
            T0 + 5,
            1.0852,
            open=1.08,
            high=1.09,
            low=1.07,
            volume=1e6,
            turnover=2.5e6,
            prev_close=1.0849,
        ),
    ]
    books = [Depth("EURUSD", T0, ((1.085, 1e6), (1.0849, 2e6)), ((1.0852, 5e5),)), Depth("EURUSD", T0 + 9)]

    sink.write(quotes + books)
    assert sink.flush(timeout=10)

    assert records_of(source.read_quotes("EURUSD")) == quotes
    assert records_of(source.read_depth("EURUSD")) == books


def test_last_holds_the_latest_record_of_each_kind(sink, source):
    ticks = make_ticks(10)
    minute_bars, hour_bars = make_bars(3), make_bars(2, period="1h")
    book = Depth("AAPL.US", T0 + 7, ((189.9, 300.0),), ((190.1, 200.0), (190.2, 50.0)))
    quote = Quote("AAPL.US", T0 + 8, 190.05, high=191.0)

    sink.write(ticks[:5] + minute_bars + [book] + ticks[5:] + hour_bars + [quote])
    assert sink.flush(timeout=10)

    expected = Latest(ticks[-1], quote, book, {"1m": minute_bars[-1], "1h": hour_bars[-1]})
    assert source.last("AAPL.US") == expected
    assert source.last("MSFT.US") == Latest()


def test_bar_stream_ids_are_the_bar_end(sink, source):
    bars = make_bars(3)

    sink.write(bars)
    assert sink.flush(timeout=10)

    assert [entry.id for entry in source.read_bars("AAPL.US", "1m")] == [f"{bar.end}-0" for bar in bars]


def test_restarted_relay_writing_the_same_bars_does_not_repeat_them(redis_server, sink, source):
    sink.write(make_bars(5))
    assert sink.flush(timeout=10)

    with RedisSink(redis_server.url, **FAST) as restarted:
        restarted.write(make_bars(8))  # its backfill overlaps the 5 bars already relayed
        assert restarted.flush(timeout=10)
        assert restarted.duplicates == 5

    assert records_of(source.read_bars("AAPL.US", "1m")) == make_bars(8)


def test_consumer_restart_resumes_from_its_last_id_without_gap_or_repeat(redis_server, sink):
    sink.write(make_bars(25) + make_ticks(40))
    assert sink.flush(timeout=10)
    bars, ticks, bar_id, tick_id = [], [], "0-0", "0-0"

    for _ in range(6):  # each page read by a fresh consumer that only kept the last ID
        with RedisReader(redis_server.url) as consumer:
            page = consumer.read_bars("AAPL.US", "1m", after_id=bar_id, count=7)
            bars += records_of(page)
            bar_id = page[-1].id if page else bar_id
            page = consumer.read_ticks("AAPL.US", after_id=tick_id, count=9)
            ticks += records_of(page)
            tick_id = page[-1].id if page else tick_id

    assert bars == make_bars(25)
    assert ticks == make_ticks(40)


def test_blocking_read_returns_a_bar_written_while_waiting(sink, source):
    sink.write(make_bars(1))
    assert sink.flush(timeout=10)
    results = []
    reader = threading.Thread(
        target=lambda: results.append(
            source.read_bars("AAPL.US", "1m", after_id=f"{T0 + 60_000}-0", block_ms=8000)
        )
    )
    reader.start()

    sink.write(make_bars(1, first=1))
    reader.join(timeout=10)

    assert records_of(results[0]) == make_bars(1, first=1)


def test_streams_are_capped_near_maxlen(redis_server, source):
    with RedisSink(redis_server.url, maxlen=100, **FAST) as sink:
        sink.write(make_ticks(3000))
        assert sink.flush(timeout=10)

    kept = records_of(source.read_ticks("AAPL.US", count=5000))

    assert 100 <= len(kept) < 3000
    assert kept == make_ticks(3000)[-len(kept) :]


def test_redis_restart_loses_nothing_within_the_bound(redis_server, sink, source):
    before, during = make_ticks(50), make_ticks(50, first=50)
    sink.write(before + make_bars(2))
    assert sink.flush(timeout=10)

    redis_server.stop()
    sink.write(during + make_bars(2, first=2))
    assert not sink.flush(timeout=0.2)
    assert sink.pending == 52
    redis_server.start()

    assert sink.flush(timeout=10)
    assert records_of(source.read_ticks("AAPL.US", count=1000)) == before + during
    assert records_of(source.read_bars("AAPL.US", "1m")) == make_bars(4)
    assert sink.dropped == 0


def test_a_sink_made_while_redis_is_down_writes_once_it_is_up(redis_server, source):
    redis_server.stop()
    with RedisSink(redis_server.url, **FAST) as sink:
        sink.write(make_ticks(5) + make_bars(1))
        assert not sink.flush(timeout=0.2)
        redis_server.start()
        assert sink.flush(timeout=10)

    assert records_of(source.read_ticks("AAPL.US")) == make_ticks(5)
    assert records_of(source.read_bars("AAPL.US", "1m")) == make_bars(1)


def test_redis_down_past_the_bound_drops_the_oldest_with_a_warning(redis_server, source, caplog):
    with RedisSink(redis_server.url, max_buffer=20, **FAST) as sink:
        redis_server.stop()
        with caplog.at_level(logging.WARNING, logger="backtrader_alltick.sinks"):
            sink.write(make_ticks(50))
        redis_server.start()
        assert sink.flush(timeout=10)

    assert sink.dropped == 30
    assert "dropped 30 oldest records" in caplog.text
    assert records_of(source.read_ticks("AAPL.US", count=100)) == make_ticks(50)[-20:]


def test_source_reports_a_broken_connection_and_recovers_after_a_restart(redis_server, sink):
    sink.write(make_bars(3))
    assert sink.flush(timeout=10)
    changes, broken = [], threading.Event()

    def on_connection(connected):
        changes.append(connected)
        if not connected:
            broken.set()

    results = []
    with RedisReader(redis_server.url, reconnect_timeout=20, on_connection=on_connection, **FAST) as source:
        redis_server.stop()
        reader = threading.Thread(target=lambda: results.append(source.read_bars("AAPL.US", "1m")))
        reader.start()
        assert broken.wait(timeout=10)
        redis_server.start()
        reader.join(timeout=20)

    assert records_of(results[0]) == make_bars(3)
    assert changes == [False, True]


def test_source_raises_connect_error_after_the_bound_without_the_password(redis_server):
    url = redis_server.url.replace("redis://", "redis://:hunter2secretpassword@")
    redis_server.stop()

    with RedisReader(url, reconnect_timeout=0.2, **FAST) as source, pytest.raises(ConnectError) as info:
        source.read_ticks("AAPL.US")

    assert "reconnect_timeout=0.2" in str(info.value)
    assert "hunter2secretpassword" not in str(info.value)


def test_write_refuses_records_it_cannot_relay(sink):
    with pytest.raises(ConfigError, match="RedisSink writes Tick, Quote, Depth and Kline records, was dict"):
        sink.write([{"price": 1.0}])


def test_close_sends_what_is_queued(redis_server, source):
    sink = RedisSink(redis_server.url, flush_interval=30.0, **FAST)
    sink.write(make_ticks(5))

    sink.close()

    assert records_of(source.read_ticks("AAPL.US")) == make_ticks(5)


def test_missing_redis_package_names_the_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "redis", None)

    with pytest.raises(ConfigError, match=r"pip install backtrader-alltick\[redis\]"):
        RedisSink()


def test_package_and_sinks_import_without_the_redis_package():
    code = "import sys; sys.modules['redis'] = None; import backtrader_alltick, backtrader_alltick.sinks"

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr


class Said(logging.Handler):
    """Sets ``event`` when a record whose message contains ``text`` is logged."""

    def __init__(self, text: str) -> None:
        super().__init__(logging.WARNING)
        self.text, self.event = text, threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.event.set()


def test_a_batch_whose_reply_was_lost_is_not_written_twice(redis_server, source):
    # Redis freezes (a fork, a slow disk) longer than the socket timeout, then runs the batch it
    # had received: the sink must not write those ticks again when it retries.
    ticks = [Tick("AAPL.US", T0 + n, 190.0 + n / 100, 1.0, 190.0, seq=n) for n in range(101)]
    timed_out = Said("retrying")  # the sink's word that its batch went unanswered
    sink_logger = logging.getLogger("backtrader_alltick.sinks")
    sink_logger.addHandler(timed_out)
    try:
        with RedisSink(redis_server.url, socket_timeout=0.3, backoff_initial=0.05, backoff_max=0.2) as sink:
            sink.write(ticks[:1])
            assert sink.flush(5)
            redis_server.process.send_signal(signal.SIGSTOP)
            try:
                sink.write(ticks[1:])
                assert timed_out.event.wait(30), "the sink never reported the frozen server"
            finally:
                redis_server.process.send_signal(signal.SIGCONT)
            assert sink.flush(10)
    finally:
        sink_logger.removeHandler(timed_out)

    assert [entry.record.seq for entry in source.read_ticks("AAPL.US", count=1000)] == list(range(101))
