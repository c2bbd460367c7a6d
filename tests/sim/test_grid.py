"""The simulator's own K-line grid: which trades a K-line holds, the time it carries, when it is final.

Sources: alltick.md 4.1 and itick.md 5.1 (the periods served, bars stamped at their start);
alltick.md section 8 "Trading-hours notes" (forex, metals and CFDs close at 17:00 New York, so
their trading date rolls there); exchange calendars for stocks (the exchange's local day).
"""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import requests

from backtrader_alltick.sim import grid
from backtrader_alltick.sim.market import MarketModel

MINUTE = 60_000
HOUR = 3_600_000
DAY = 86_400_000


def at(zone: str, *fields: int) -> int:
    return int(datetime(*fields, tzinfo=ZoneInfo(zone)).timestamp() * 1000)


@pytest.fixture(scope="module")
def model() -> MarketModel:
    return MarketModel(
        1,
        ["AAPL.US", "700.HK", "600519.SH", "EURUSD", "GOLD", "BTCUSDT"],
        at("UTC", 2023, 6, 1),
        "regular",
        late_print_ms=500,
    )


def bar_holding(model, symbol, period, moment, now):
    return next(
        bar
        for bar in model.klines_between(symbol, period, moment - 40 * DAY, moment + DAY, now)
        if bar.start <= moment < bar.end
    )


def test_a_forex_trade_at_17_30_new_york_belongs_to_the_next_trading_dates_daily_kline(model):
    """Forex closes at 17:00 New York (alltick.md section 8): a trade at 17:30 New York on Monday
    2023-07-10 is Tuesday's; Tuesday's daily K-line starts Monday 17:00 New York (21:00 UTC)."""
    trade = model.trades(
        "EURUSD", at("America/New_York", 2023, 7, 10, 17, 30), at("America/New_York", 2023, 7, 10, 17, 31)
    )[0]
    now = at("UTC", 2023, 7, 20)

    tuesday = bar_holding(model, "EURUSD", "1d", trade.time, now)
    monday = bar_holding(model, "EURUSD", "1d", trade.time - HOUR, now)

    assert grid.trading_date(trade.time, model.hours["EURUSD"].rule).isoformat() == "2023-07-11"
    assert tuesday.start == at("UTC", 2023, 7, 10, 21) and tuesday.end == at("UTC", 2023, 7, 11, 21)
    assert monday.end == tuesday.start
    ticks = model.trades("EURUSD", tuesday.start, tuesday.end)
    assert (tuesday.open, tuesday.close) == (ticks[0].price, ticks[-1].price)
    assert tuesday.volume == pytest.approx(sum(tick.volume for tick in ticks))


@pytest.mark.parametrize(
    ("symbol", "moment", "day", "week", "month"),
    [
        # stocks: local midnight of the exchange's day (New York is UTC-4 in July, UTC-5 in January)
        (
            "AAPL.US",
            ("America/New_York", 2023, 7, 12, 10),
            ("UTC", 2023, 7, 12, 4),
            ("UTC", 2023, 7, 10, 4),
            ("UTC", 2023, 7, 1, 4),
        ),
        (
            "AAPL.US",
            ("America/New_York", 2024, 1, 17, 10),
            ("UTC", 2024, 1, 17, 5),
            ("UTC", 2024, 1, 15, 5),
            ("UTC", 2024, 1, 1, 5),
        ),
        (
            "700.HK",
            ("Asia/Hong_Kong", 2023, 7, 12, 10),
            ("UTC", 2023, 7, 11, 16),
            ("UTC", 2023, 7, 9, 16),
            ("UTC", 2023, 6, 30, 16),
        ),
        # forex and metals: 17:00 New York of the day before (21:00 UTC in summer, 22:00 in winter)
        (
            "EURUSD",
            ("America/New_York", 2024, 1, 17, 10),
            ("UTC", 2024, 1, 16, 22),
            ("UTC", 2024, 1, 14, 22),
            ("UTC", 2023, 12, 31, 22),
        ),
        (
            "GOLD",
            ("America/New_York", 2023, 7, 12, 10),
            ("UTC", 2023, 7, 11, 21),
            ("UTC", 2023, 7, 9, 21),
            ("UTC", 2023, 6, 30, 21),
        ),
        # crypto: the UTC day
        (
            "BTCUSDT",
            ("UTC", 2023, 7, 12, 10),
            ("UTC", 2023, 7, 12),
            ("UTC", 2023, 7, 10),
            ("UTC", 2023, 7, 1),
        ),
    ],
)
def test_daily_weekly_monthly_wire_times_are_the_start_of_their_first_trading_date(
    model, symbol, moment, day, week, month
):
    """Daily K-lines carry the start of their trading date; weekly the start of its Monday; monthly the
    start of the 1st (the trading-date calendar, not the UTC one)."""
    moment_ms = at(*moment)
    now = moment_ms + 45 * DAY

    for period, expected in (("1d", day), ("1w", week), ("1M", month)):
        assert bar_holding(model, symbol, period, moment_ms, now).start == at(*expected), period


def test_a_daily_kline_is_not_final_before_its_trading_date_ends(model):
    """A K-line is final when its coverage has ended: AAPL's 2023-07-12 daily K-line is still forming
    after the 16:00 close (a late print follows it) and final at midnight New York."""
    close = at("America/New_York", 2023, 7, 12, 16)
    midnight = at("America/New_York", 2023, 7, 13)
    start = at("America/New_York", 2023, 7, 12)

    evening = model.klines_between("AAPL.US", "1d", start, midnight, close + HOUR)
    forming = model.latest_klines("AAPL.US", "1d", 1, close + HOUR, close + HOUR)[-1]
    final = model.klines_between("AAPL.US", "1d", start, midnight, midnight)
    late = model.trades("AAPL.US", close, close + MINUTE)

    assert evening == []
    assert forming.start == start and forming.end == midnight
    assert [late_tick.time for late_tick in late] == [close + 500]
    assert final == [forming] and final[0].close == late[0].price


def test_intraday_periods_sit_on_the_utc_epoch_grid(model):
    """alltick.md 4.1: bars stamped at their start, consecutive 1-minute bars 60 s apart; the grid is
    the UTC epoch's (4h bars of crypto start at 00:00, 04:00, ... UTC)."""
    now = at("UTC", 2023, 7, 13)

    for period, minutes in grid.INTRADAY_MINUTES.items():
        bars = model.klines_between("BTCUSDT", period, at("UTC", 2023, 7, 12), now, now)
        assert all(
            bar.start % (minutes * MINUTE) == 0 and bar.end - bar.start == minutes * MINUTE for bar in bars
        ), period
        assert len(bars) == 1440 // minutes


def test_the_daily_kline_served_over_rest_is_the_trading_dates(make_sim):
    """The AllTick /kline answer for EURUSD daily (kline_type 8) carries 21:00 UTC in summer."""
    sim = make_sim(dialect="alltick", start=at("America/New_York", 2023, 7, 12, 18), symbols=["EURUSD"])
    query = {
        "trace": "t",
        "data": {
            "code": "EURUSD",
            "kline_type": 8,
            "kline_timestamp_end": 0,
            "query_kline_num": 3,
            "adjust_type": 0,
        },
    }

    rows = requests.get(
        sim.rest_url + "/quote-b-api/kline",
        params={"token": sim.token, "query": json.dumps(query)},
        timeout=10,
    ).json()["data"]["kline_list"]

    assert [int(row["timestamp"]) * 1000 for row in rows] == [at("UTC", 2023, 7, d, 21) for d in (10, 11, 12)]


@pytest.mark.parametrize("mode", ["regular", "extended", "overnight"])
@pytest.mark.parametrize("symbol", ["AAPL.US", "700.HK", "600519.SH", "GOLD"])
def test_every_kline_aggregates_exactly_the_trades_of_its_coverage_in_every_mode(mode, symbol):
    """K-lines are aggregations of the trades the stream pushes, auction and late prints included."""
    model = MarketModel(1, [symbol], at("UTC", 2024, 2, 1), mode, late_print_ms=250)
    start, now = at("UTC", 2024, 3, 4), at("UTC", 2024, 3, 8)

    for period in ("1m", "1h", "1d"):
        bars = model.klines_between(symbol, period, start, now, now)
        assert bars, period
        for bar in bars[:: max(1, len(bars) // 40)]:
            ticks = model.trades(symbol, bar.start, bar.end)
            price = [tick.price for tick in ticks]
            assert (bar.open, bar.high, bar.low, bar.close) == (price[0], max(price), min(price), price[-1])
            assert bar.volume == pytest.approx(sum(tick.volume for tick in ticks))
