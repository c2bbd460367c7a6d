"""K-line frames: indexed as the feed stamps bars, and a dated window kept by those stamps."""

from __future__ import annotations

from datetime import date

import backtrader as bt
import pytest

from backtrader_alltick import timeframes
from backtrader_alltick.frames import KLINE_COLUMNS, klines_frame, window_frame, window_to_load
from backtrader_alltick.markets import DAY_MS
from backtrader_alltick.param_checks import bar_window
from backtrader_alltick.sim.market import MarketModel
from backtrader_alltick.symbols import parse_symbol

FRIDAY = 1_709_251_200_000  # 2024-03-01 00:00 UTC, a Friday
MINUTE = 60_000
BTC = parse_symbol("BTCUSDT")
NATIVES = ("1m", "5m", "15m", "30m", "1h", "2h", "4h", "1d", "1w", "1M")


@pytest.fixture(scope="module")
def model() -> MarketModel:
    return MarketModel(seed=1, symbols=["BTCUSDT"], history_start_ms=FRIDAY - 30 * DAY_MS)


def test_daily_window_keeps_bars_by_trading_date_and_the_newest_count(model):
    daily = model.klines_between(
        "BTCUSDT", "1d", FRIDAY - 20 * DAY_MS, FRIDAY + 10 * DAY_MS, FRIDAY + 20 * DAY_MS
    )

    def load(first, last, count):
        return [k for k in daily if (first is None or k.end >= first) and (last is None or k.end <= last)]

    spec = timeframes.resolve(bt.TimeFrame.Days, 1, NATIVES, "BTCUSDT")
    start, end = bar_window(BTC.market, False, date(2024, 3, 1), date(2024, 3, 5))
    asked = window_to_load(spec, start, end, None)
    # A crypto day closes at 00:00 after its date: loaded wider, then kept by its date.
    assert asked == (start - 2 * DAY_MS, end + 2 * DAY_MS, None)
    frame = window_frame(load(*asked), BTC.market, spec, start, end, None)
    assert [str(d.date()) for d in frame.index] == [
        "2024-03-01",
        "2024-03-02",
        "2024-03-03",
        "2024-03-04",
        "2024-03-05",
    ]
    asked = window_to_load(spec, start, end, 2)
    assert asked[2] == 4
    newest = window_frame(load(*asked), BTC.market, spec, start, end, 2)
    assert [str(d.date()) for d in newest.index] == ["2024-03-04", "2024-03-05"]


def test_an_intraday_window_is_loaded_as_asked_and_indexed_by_close_time(model):
    minutes = model.klines_between("BTCUSDT", "1m", FRIDAY, FRIDAY + 5 * MINUTE, FRIDAY + DAY_MS)

    spec = timeframes.resolve(bt.TimeFrame.Minutes, 1, NATIVES, "BTCUSDT")
    assert window_to_load(spec, FRIDAY, FRIDAY + 5 * MINUTE, 3) == (FRIDAY, FRIDAY + 5 * MINUTE, 3)
    frame = window_frame(minutes, BTC.market, spec, FRIDAY, FRIDAY + 5 * MINUTE, 3)
    assert list(frame.columns) == KLINE_COLUMNS
    assert frame.index[0].value // 1_000_000 == minutes[0].end and str(frame.index.tz) == "UTC"


def test_a_window_around_no_trading_day_loads_nothing_and_keeps_the_daily_index():
    spec = timeframes.resolve(bt.TimeFrame.Days, 1, NATIVES, "BTCUSDT")
    assert window_to_load(spec, FRIDAY + DAY_MS, FRIDAY, None) is None  # the service is asked nothing
    frame = window_frame([], BTC.market, spec, FRIDAY + DAY_MS, FRIDAY, None)
    assert frame.empty and frame.index.name == "date"
    assert klines_frame([], BTC.market, "1m").index.name == "datetime"
