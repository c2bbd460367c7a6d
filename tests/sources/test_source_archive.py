"""History from the InfluxDB archive (``source="influx"``) follows Backtrader's fromdate/todate filter."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from backtrader_alltick import AllTickStore
from backtrader_alltick.records import Kline, Tick
from backtrader_alltick.sinks.influx import InfluxSink

MINUTE = 60_000
T0 = int(datetime(2024, 3, 4, 9, 50, tzinfo=timezone.utc).timestamp() * 1000)
EXPECTED = ["10:00", "10:01", "10:02", "10:03", "10:04", "10:05"]


@pytest.fixture
def archive_url(influx_server):
    bars = [Kline("BTCUSDT", "1m", T0 + n * MINUTE, T0 + (n + 1) * MINUTE, 1.0 + n, 2.0 + n, 0.5 + n, 1.5 + n,
                  10.0) for n in range(20)]
    ticks = [Tick("ETHUSDT", T0 + n * 20_000 + 1, 100.0 + n, 1.0) for n in range(60)]  # three a minute
    with InfluxSink(influx_server.url, "archive", flush_interval=0.02) as sink:
        sink.write(bars + ticks)
        assert sink.flush(timeout=10)
    return influx_server.url + "/archive"


@pytest.mark.parametrize("symbol", ["BTCUSDT", "ETHUSDT"])  # archived bars / bars built from archived ticks
def test_fromdate_and_todate_keep_the_bars_stamped_at_them(archive_url, symbol):
    store = AllTickStore(dialect="alltick", cache=False)

    frame = store.fetch_klines(symbol, "1m", fromdate="2024-03-04 10:00", todate="2024-03-04 10:05",
                               source="influx", source_url=archive_url)

    assert [ts.strftime("%H:%M") for ts in frame.index] == EXPECTED
    if symbol == "ETHUSDT":  # the bar closing at 10:00 is whole: built from its three trades
        assert frame["volume"].iloc[0] == 3.0
