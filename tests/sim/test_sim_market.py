"""The simulator's market model: deterministic, random-access, in session, consistent across periods."""

from __future__ import annotations

import pytest

from backtrader_alltick.sim import DEFAULT_START_MS, grid
from backtrader_alltick.sim.grid import DAY_MS
from backtrader_alltick.sim.market import MarketModel

NOW = DEFAULT_START_MS
SYMBOLS = ["AAPL.US", "700.HK", "EURUSD", "GOLD", "BTCUSDT", "US500"]


@pytest.fixture(scope="module")
def model():
    return MarketModel(seed=1, symbols=SYMBOLS, history_start_ms=NOW - 60 * DAY_MS)


def test_same_seed_same_trades_other_seed_other_trades(model):
    twin = MarketModel(seed=1, symbols=SYMBOLS, history_start_ms=NOW - 60 * DAY_MS)
    other = MarketModel(seed=2, symbols=SYMBOLS, history_start_ms=NOW - 60 * DAY_MS)

    window = (NOW - 3_600_000, NOW)
    assert model.trades("BTCUSDT", *window) == twin.trades("BTCUSDT", *window)
    assert model.trades("BTCUSDT", *window) != other.trades("BTCUSDT", *window)


def test_a_minute_alone_equals_the_same_minute_inside_a_day(model):
    fresh = MarketModel(seed=1, symbols=SYMBOLS, history_start_ms=NOW - 60 * DAY_MS)
    minute = NOW - 7 * 60_000

    from backtrader_alltick.sim import prices

    alone = prices.generate_day(prices.symbol_key(1, "BTCUSDT"), fresh.specs["BTCUSDT"], [minute // 60_000])

    inside = model.trades("BTCUSDT", minute, minute + 60_000)
    assert alone.time.tolist() == [tick.time for tick in inside]
    assert alone.seq.tolist() == [tick.seq for tick in inside]


def test_trades_are_ordered_unique_in_session_and_on_the_tick_grid(model):
    for symbol in SYMBOLS:
        ticks = model.trades(symbol, NOW - 3 * DAY_MS, NOW)
        hours = model.hours[symbol]
        assert ticks, symbol
        assert all(a.time <= b.time and a.seq < b.seq for a, b in zip(ticks, ticks[1:]))
        assert all(hours.is_open(tick.time, model.kinds) for tick in ticks[::50])
        assert all(float(str(tick.price)) == tick.price for tick in ticks[::50])
        assert any(a.time == b.time for a, b in zip(ticks, ticks[1:]))  # shared milliseconds happen


def test_per_minute_trade_counts_are_modest(model):
    ticks = model.trades("BTCUSDT", NOW - 3_600_000, NOW)

    per_minute = {}
    for tick in ticks:
        per_minute[tick.time // 60_000] = per_minute.get(tick.time // 60_000, 0) + 1
    assert len(per_minute) == 60 and 5 <= min(per_minute.values()) <= max(per_minute.values()) <= 30


@pytest.mark.parametrize("period", ["5m", "1h", "4h", "1d", "1w"])
def test_every_period_aggregates_the_same_trades(model, period):
    start = NOW - 20 * DAY_MS
    bars = model.klines_between("EURUSD", period, start, NOW, NOW)
    assert bars
    rule = model.hours["EURUSD"].rule
    for bar in bars[-3:]:
        ticks = model.trades("EURUSD", bar.start, grid.next_start(period, bar.start, rule))
        prices = [tick.price for tick in ticks]
        assert (bar.open, bar.high, bar.low, bar.close) == (prices[0], max(prices), min(prices), prices[-1])
        assert bar.volume == pytest.approx(sum(tick.volume for tick in ticks))
        assert bar.end == grid.next_start(period, bar.start, rule)


def test_forming_bar_counts_only_trades_before_now(model):
    now = NOW + 30_000

    forming = model.latest_klines("BTCUSDT", "1m", 1, now, now)[0]

    ticks = model.trades("BTCUSDT", NOW, now)
    assert forming.start == NOW and forming.close == ticks[-1].price
    assert forming.volume == pytest.approx(sum(tick.volume for tick in ticks))


def test_closed_markets_have_no_bars(model):
    weekend = model.klines_between("AAPL.US", "1h", NOW - 3 * DAY_MS, NOW - 2 * DAY_MS, NOW)  # a Saturday

    assert weekend == []


def test_depth_brackets_the_last_trade(model):
    last = model.last_trade("700.HK", NOW)
    book = model.depth("700.HK", NOW)

    assert len(book.bids) == 10 and book.best_bid <= last.price <= book.best_ask


def test_no_trades_on_a_holiday_or_after_an_early_close():
    """NYSE "Holidays and Trading Hours": closed 2023-07-04, early close 13:00 on 2023-07-03."""
    july = MarketModel(seed=1, symbols=["AAPL.US", "EURUSD"], history_start_ms=1_688_000_000_000)
    july_3, july_4, july_5 = 1_688_342_400_000, 1_688_428_800_000, 1_688_515_200_000  # 00:00 UTC
    now = july_5 + 2 * DAY_MS

    on_july_3 = july.trades("AAPL.US", july_3, july_4)
    assert july.trades("AAPL.US", july_4, july_5) == []  # Independence Day
    assert on_july_3 and on_july_3[-1].time < july_3 + 17 * 3_600_000  # closed at 13:00 New York
    assert july.trades("EURUSD", july_4, july_5)  # forex trades through the US holiday
    days = july.klines_between("AAPL.US", "1d", july_3 - DAY_MS, july_5 + DAY_MS, now)
    # A daily K-line ends with its trading date (midnight New York), not at the session close.
    assert [bar.start for bar in days] == [july_3 + 4 * 3_600_000, july_5 + 4 * 3_600_000]
    assert [bar.end for bar in days] == [july_4 + 4 * 3_600_000, july_5 + DAY_MS + 4 * 3_600_000]


def test_the_pusher_walks_a_universe_without_regenerating_its_tapes(monkeypatch):
    # Each pusher step reads every subscribed symbol's day: with more symbols than a fixed-size
    # cache holds, every step rebuilt every tape and the pusher fell seconds behind its clock.
    from backtrader_alltick.sim import market
    from backtrader_alltick.sim.pusher import Step

    universe = [f"U{index:04d}.US" for index in range(300)]
    built = []
    real_tape = market.day_tape
    monkeypatch.setattr(market, "day_tape", lambda *args: built.append(args[4]) or real_tape(*args))
    model = MarketModel(seed=1, symbols=universe, history_start_ms=NOW - DAY_MS)
    open_ms = 1_709_650_800_000  # 2024-03-05 15:00 UTC, New York's regular session

    for start in range(open_ms, open_ms + 1_000, 100):
        step = Step(model, start, start + 100)
        for symbol in universe:
            step.trades(symbol)

    assert len(built) == len(universe)
