"""History from the InfluxDB archive (``source="influx"``) follows Backtrader's fromdate/todate filter."""

from __future__ import annotations

from datetime import datetime, timezone

import backtrader as bt
import pytest

from backtrader_alltick import AllTickStore
from backtrader_alltick.records import Kline, Tick
from backtrader_alltick.sinks.influx import InfluxSink
from backtrader_alltick.symbols import parse_symbol
from backtrader_alltick.timeframes import slot_of
from feedtools import Recorder, as_ms_rows, utc

MINUTE = 60_000
T0 = int(datetime(2024, 3, 4, 9, 50, tzinfo=timezone.utc).timestamp() * 1000)
EXPECTED = ["10:00", "10:01", "10:02", "10:03", "10:04", "10:05"]


@pytest.fixture
def archive_url(influx_server):
    bars = [
        Kline(
            "BTCUSDT", "1m", T0 + n * MINUTE, T0 + (n + 1) * MINUTE, 1.0 + n, 2.0 + n, 0.5 + n, 1.5 + n, 10.0
        )
        for n in range(20)
    ]
    ticks = [Tick("ETHUSDT", T0 + n * 20_000 + 1, 100.0 + n, 1.0) for n in range(60)]  # three a minute
    with InfluxSink(influx_server.url, "archive", flush_interval=0.02) as sink:
        sink.write(bars + ticks)
        assert sink.flush(timeout=10)
    return influx_server.url + "/archive"


@pytest.mark.parametrize("symbol", ["BTCUSDT", "ETHUSDT"])  # archived bars / bars built from archived ticks
def test_fromdate_and_todate_keep_the_bars_stamped_at_them(archive_url, symbol):
    store = AllTickStore(dialect="alltick", cache=False)

    frame = store.fetch_klines(
        symbol,
        "1m",
        fromdate="2024-03-04 10:00",
        todate="2024-03-04 10:05",
        source="influx",
        source_url=archive_url,
    )

    assert [ts.strftime("%H:%M") for ts in frame.index] == EXPECTED
    if symbol == "ETHUSDT":  # the bar closing at 10:00 is whole: built from its three trades
        assert frame["volume"].iloc[0] == 3.0


@pytest.fixture
def served_archive(alltick_sim, influx_server):
    """The simulator's closed 1m bars of BTCUSDT and trades of ETHUSDT over the hour before its start."""
    start = alltick_sim.clock.now_ms() - 3_600_000
    end = alltick_sim.clock.now_ms() - 60_000
    bars = alltick_sim.klines("BTCUSDT", "1m", start, end)
    ticks = alltick_sim.trades("ETHUSDT", start, end)
    with InfluxSink(influx_server.url, "served", flush_interval=0.02) as sink:
        sink.write(bars + ticks)
        assert sink.flush(timeout=10)
    return influx_server.url + "/served"


def _feed_rows(store, symbol, compression, fromdate, todate, **source):
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(
        store.getdata(
            dataname=symbol,
            timeframe=bt.TimeFrame.Minutes,
            compression=compression,
            historical=True,
            fromdate=fromdate,
            todate=todate,
            **source,
        ),
        name="x",
    )
    cerebro.addstrategy(Recorder)
    return as_ms_rows(cerebro.run()[0].rows["x"])


@pytest.mark.parametrize("symbol", ["BTCUSDT", "ETHUSDT"])  # archived bars / bars built from archived ticks
# the archived period / combined from it / periods AllTick serves natively, combined from 1m all the same
@pytest.mark.parametrize("compression", [1, 3, 5, 15])
def test_a_fromdate_inside_a_bar_keeps_that_bar_as_the_rest_path_does(
    alltick_sim, make_store, served_archive, symbol, compression
):
    store = make_store(alltick_sim)
    now = alltick_sim.clock.now_ms()
    inst = parse_symbol(symbol)
    asked = now - now % 60_000 - 40 * 60_000 + 30_000  # inside a 1m bar, 40 minutes back
    holding = slot_of(store.resolve_timeframe(inst, bt.TimeFrame.Minutes, compression), asked, inst.market)
    assert holding.start < asked < holding.end
    fromdate, todate = utc(asked), utc(asked + 15 * 60_000)

    rest = _feed_rows(store, symbol, compression, fromdate, todate)
    archived = _feed_rows(
        store, symbol, compression, fromdate, todate, source="influx", source_url=served_archive
    )

    assert rest[0][0] == holding.end  # the bar holding fromdate, stamped after it
    assert archived and [row[0] for row in archived] == [row[0] for row in rest]
    for got, served in zip(archived, rest):
        assert got == pytest.approx(served)  # bars built from ticks may sum volumes in another order
    frame = store.fetch_klines(
        symbol,
        bt.TimeFrame.Minutes,
        compression,
        fromdate=fromdate,
        todate=todate,
        source="influx",
        source_url=served_archive,
    )
    assert int(frame.index[0].timestamp() * 1000) == rest[0][0]
