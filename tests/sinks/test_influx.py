import logging
import re

import pytest
import requests

from backtrader_alltick.errors import ConfigError
from backtrader_alltick.records import Depth, Kline, Quote, Tick
from backtrader_alltick.sinks.influx import InfluxSink
from backtrader_alltick.transport.influx_reader import InfluxReader
from backtrader_alltick.wire import influx_lines

T0 = 1_700_000_040_000
FAST = {"flush_interval": 0.02, "backoff_initial": 0.01, "backoff_max": 0.05}
AWKWARD_SYMBOLS = [".DJI.US", "Silver", "BRK B.US", "A,B=C D", "it's\\odd"]


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


def make_ticks(count, symbol="AAPL.US", first=0):
    # Three ticks per millisecond: they must all survive, in order.
    return [
        Tick(
            symbol,
            T0 + n // 3,
            190.0 + n * 0.01,
            1.0 + n % 5,
            0.5 * n,
            seq=None if n % 4 == 0 else n,
            direction=n % 3,
        )
        for n in range(first, first + count)
    ]


@pytest.fixture
def sink(influx_server):
    with InfluxSink(influx_server.url, "archive", **FAST) as sink:
        yield sink


@pytest.fixture
def source(influx_server):
    with InfluxReader(influx_server.url, "archive") as source:
        yield source


# -- line protocol (pure) -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("symbol", "escaped"),
    [
        (".DJI.US", ".DJI.US"),
        ("Silver", "Silver"),
        ("BRK B.US", r"BRK\ B.US"),
        ("A,B=C D", r"A\,B\=C\ D"),
    ],
)
def test_bar_line_escapes_commas_equals_and_spaces_in_tags(symbol, escaped):
    bar = Kline(symbol, "1m", T0, T0 + 60_000, 1.0, 1.25, 0.5, 1.125, 300.0, 0.0)

    line = influx_lines.bar_line(bar, "alltick")

    assert line == (
        f"bar,dialect=alltick,period=1m,symbol={escaped} open=1.0,high=1.25,low=0.5,close=1.125,"
        f"volume=300.0,turnover=0.0,start={T0}i {(T0 + 60_000) * 1000}"
    )


def test_tick_line_marks_integers_and_leaves_out_a_missing_seq():
    with_seq = Tick("BTCUSDT", T0, 37000.5, 0.01, 370.005, seq=42, direction=1)
    without_seq = Tick("BTCUSDT", T0, 37000.5)

    assert influx_lines.tick_line(with_seq, T0 * 1000) == (
        f"tick,symbol=BTCUSDT price=37000.5,volume=0.01,turnover=370.005,direction=1i,seq=42i {T0 * 1000}"
    )
    assert influx_lines.tick_line(without_seq, T0 * 1000 + 1) == (
        f"tick,symbol=BTCUSDT price=37000.5,volume=0.0,turnover=0.0,direction=0i {T0 * 1000 + 1}"
    )


def test_tick_stamper_separates_ticks_of_one_millisecond_per_symbol():
    stamper = influx_lines.TickStamper()
    ticks = [
        Tick("A", T0, 1.0),
        Tick("A", T0, 2.0),
        Tick("B", T0, 3.0),
        Tick("A", T0 + 1, 4.0),
        Tick("A", T0, 5.0),
    ]

    stamps = [stamper.stamp(tick) for tick in ticks]

    assert stamps == [T0 * 1000, T0 * 1000 + 1, T0 * 1000, T0 * 1000 + 1000, T0 * 1000 + 2]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("two\nlines", "cannot hold line breaks, was 'two\\nlines'"),
        ("", "cannot be empty, was ''"),
    ],
)
def test_escape_tag_refuses_what_line_protocol_cannot_carry(value, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        influx_lines.escape_tag(value)


def test_influxql_literals_escape_quotes_and_backslashes():
    assert influx_lines.quote_literal("it's\\odd") == "'it\\'s\\\\odd'"
    assert influx_lines.quote_identifier('my "db"') == '"my \\"db\\""'


# -- against a real influxd ---------------------------------------------------------------------------


def databases(url):
    answer = requests.get(f"{url}/query", params={"q": "SHOW DATABASES"}, timeout=5).json()
    return [row[0] for row in answer["results"][0]["series"][0]["values"]]


def test_sink_creates_its_database_on_start(influx_server):
    with InfluxSink(influx_server.url, "fresh archive", **FAST):
        assert "fresh archive" in databases(influx_server.url)


def test_bars_and_ticks_read_back_equal(sink, source):
    bars, ticks = make_bars(30) + make_bars(5, period="1h"), make_ticks(100)

    sink.write(bars + ticks)
    assert sink.flush(timeout=10)

    assert source.klines("AAPL.US", "1m", T0, T0 + 10**9) == bars[:30]
    assert source.klines("AAPL.US", "1h", T0, T0 + 10**9) == bars[30:]
    assert source.ticks("AAPL.US", T0, T0 + 10**9) == ticks


@pytest.mark.parametrize("symbol", AWKWARD_SYMBOLS)
def test_awkward_symbols_read_back_equal(sink, source, symbol):
    bars, ticks = make_bars(3, symbol=symbol), make_ticks(7, symbol=symbol)

    sink.write(bars + ticks + make_bars(2, symbol="OTHER.US"))
    assert sink.flush(timeout=10)

    assert source.klines(symbol, "1m", T0, T0 + 10**9) == bars
    assert source.ticks(symbol, T0, T0 + 10**9) == ticks


def test_ranges_include_both_ends(sink, source):
    bars, ticks = make_bars(5), make_ticks(12)
    sink.write(bars + ticks)
    assert sink.flush(timeout=10)

    assert source.klines("AAPL.US", "1m", bars[1].end, bars[3].end) == bars[1:4]
    assert source.ticks("AAPL.US", T0 + 1, T0 + 2) == ticks[3:9]


def test_dialect_filter_keeps_archives_of_two_dialects_apart(influx_server, source):
    with InfluxSink(influx_server.url, "archive", dialect="itick", **FAST) as itick:
        itick.write(make_bars(3))
    itick_only = InfluxReader(influx_server.url, "archive", dialect="itick")
    alltick_only = InfluxReader(influx_server.url, "archive", dialect="alltick")

    assert itick_only.klines("AAPL.US", "1m", T0, T0 + 10**9) == make_bars(3)
    assert alltick_only.klines("AAPL.US", "1m", T0, T0 + 10**9) == []


def test_missing_database_reads_as_empty(influx_server):
    with InfluxReader(influx_server.url, "never written") as source:
        assert source.klines("AAPL.US", "1m", T0, T0 + 10**9) == []
        assert source.ticks("AAPL.US", T0, T0 + 10**9) == []


def test_influx_restart_loses_nothing_within_the_bound(influx_server, sink, source):
    sink.write(make_bars(10))
    assert sink.flush(timeout=10)

    influx_server.stop()
    sink.write(make_bars(10, first=10) + make_ticks(20))
    assert not sink.flush(timeout=0.2)
    influx_server.start()

    assert sink.flush(timeout=10)
    assert source.klines("AAPL.US", "1m", T0, T0 + 10**9) == make_bars(20)
    assert source.ticks("AAPL.US", T0, T0 + 10**9) == make_ticks(20)
    assert sink.dropped == 0


def test_influx_down_past_the_bound_warns_with_counts_and_keeps_the_newest(influx_server, source, caplog):
    with InfluxSink(influx_server.url, "archive", max_buffer=15, **FAST) as sink:
        influx_server.stop()
        with caplog.at_level(logging.WARNING, logger="backtrader_alltick.sinks"):
            sink.write(make_bars(40))
        influx_server.start()
        assert sink.flush(timeout=10)

    assert sink.dropped == 25
    assert "dropped 25 oldest records" in caplog.text
    assert source.klines("AAPL.US", "1m", T0, T0 + 10**9) == make_bars(40)[-15:]


def test_sink_started_while_influx_is_down_creates_the_database_later(influx_server, source):
    influx_server.stop()
    with InfluxSink(influx_server.url, "archive", **FAST) as sink:
        sink.write(make_bars(4))
        influx_server.start()
        assert sink.flush(timeout=10)

    assert source.klines("AAPL.US", "1m", T0, T0 + 10**9) == make_bars(4)


def test_close_flushes_what_is_queued(influx_server, source):
    sink = InfluxSink(influx_server.url, "archive", flush_interval=30.0)
    sink.write(make_bars(6))

    sink.close()

    assert source.klines("AAPL.US", "1m", T0, T0 + 10**9) == make_bars(6)


def test_quotes_and_depth_are_skipped_with_one_warning_per_kind(sink, caplog):
    with caplog.at_level(logging.WARNING, logger="backtrader_alltick.sinks"):
        sink.write([Quote("AAPL.US", T0, 1.0), Quote("AAPL.US", T0 + 1, 1.1), Depth("AAPL.US", T0)])

    assert sink.skipped == 3
    assert caplog.text.count("are skipped") == 2


def test_a_bar_with_nan_is_refused_and_the_others_archived(sink, source, caplog):
    broken = Kline("AAPL.US", "1m", T0 - 60_000, T0, float("nan"), 1.0, 1.0, 1.0)

    with caplog.at_level(logging.ERROR, logger="backtrader_alltick.sinks"):
        sink.write([broken] + make_bars(2))
    assert sink.flush(timeout=10)

    assert "cannot archive a Kline of AAPL.US" in caplog.text
    assert sink.rejected == 1
    assert source.klines("AAPL.US", "1m", T0 - 60_000, T0 + 10**9) == make_bars(2)
