"""The simulator's own trading hours, seen where a user sees them: in the trades it serves.

Each test names the rule it checks.  The simulator plays the service, so these rules come from
the exchanges and the vendor's product list, never from the client's model.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from backtrader_alltick.sim.market import MarketModel

NEW_YORK, HONG_KONG, SHANGHAI, UTC = "America/New_York", "Asia/Hong_Kong", "Asia/Shanghai", "UTC"
MINUTE = 60_000
HOUR = 60 * MINUTE
SYMBOLS = ["AAPL.US", "700.HK", "600519.SH", "EURUSD", "GOLD", "BTCUSDT", "US500"]


def at(zone: str, *fields: int) -> int:
    """Epoch ms of a wall-clock time in ``zone``."""
    return int(datetime(*fields, tzinfo=ZoneInfo(zone)).timestamp() * 1000)


@pytest.fixture(scope="module")
def models() -> dict[str, MarketModel]:
    start = at(UTC, 2022, 12, 1)
    return {mode: MarketModel(1, SYMBOLS, start, mode) for mode in ("regular", "extended", "overnight")}


def trades(model: MarketModel, symbol: str, start: int, end: int) -> list:
    return model.trades(symbol, start, end)


@pytest.mark.parametrize(
    ("mode", "pre", "after", "overnight"),
    [("regular", False, False, False), ("extended", True, True, False), ("overnight", True, True, True)],
)
def test_us_pre_market_after_hours_and_overnight_trade_only_in_their_modes(
    models, mode, pre, after, overnight
):
    """Nasdaq/NYSE hours: pre-market 04:00-09:30, after-hours 16:00-20:00 New York; overnight
    20:00-04:00 as the overnight venues (Blue Ocean ATS) trade, Sunday 20:00 -> Friday 20:00."""
    model = models[mode]

    def trades_in(*fields):
        start = at(NEW_YORK, *fields)
        return bool(trades(model, "AAPL.US", start, start + MINUTE))

    assert trades_in(2024, 3, 5, 10, 0)  # regular hours trade in every mode
    assert trades_in(2024, 3, 5, 4, 0) is pre and trades_in(2024, 3, 5, 9, 29) is pre
    assert not trades_in(2024, 3, 5, 3, 59) or overnight
    assert trades_in(2024, 3, 5, 16, 0) is after and trades_in(2024, 3, 5, 19, 59) is after
    assert trades_in(2024, 3, 5, 20, 0) is overnight and trades_in(2024, 3, 6, 3, 59) is overnight
    assert trades_in(2024, 3, 3, 20, 0) is overnight  # Sunday evening opens the week
    assert not trades_in(2024, 3, 3, 19, 59) and not trades_in(2024, 3, 2, 12, 0)  # the weekend
    assert not trades_in(2024, 3, 8, 20, 0)  # Friday 20:00 ends the week


@pytest.mark.parametrize("mode", ["regular", "extended", "overnight"])
def test_an_nyse_holiday_has_no_trades_at_all(models, mode):
    """NYSE "Holidays and Trading Hours": closed on 2023-07-04 (Independence Day), so no pre-market,
    after-hours, nor the overnight session leading into it."""
    model = models[mode]

    assert trades(model, "AAPL.US", at(NEW_YORK, 2023, 7, 3, 17, 0), at(NEW_YORK, 2023, 7, 4, 20, 0)) == []
    assert trades(model, "AAPL.US", at(NEW_YORK, 2023, 7, 5, 10), at(NEW_YORK, 2023, 7, 5, 11))


def test_an_nyse_early_close_ends_regular_hours_at_13_and_after_hours_at_17(models):
    """NYSE early closes: 13:00 on 2024-11-29 (the day after Thanksgiving); the late trading session
    (NYSE Arca) then ends at 17:00."""
    day = (2024, 11, 29)
    regular = trades(models["regular"], "AAPL.US", at(NEW_YORK, *day), at(NEW_YORK, 2024, 11, 30))
    extended = trades(models["extended"], "AAPL.US", at(NEW_YORK, *day, 13), at(NEW_YORK, 2024, 11, 30))

    assert regular and max(tick.time for tick in regular) < at(NEW_YORK, *day, 13)
    assert extended and max(tick.time for tick in extended) < at(NEW_YORK, *day, 17)
    assert max(tick.time for tick in extended) >= at(NEW_YORK, *day, 16, 59)


def test_hk_closing_auction_prints_between_16_08_and_16_10_in_extended_only(models):
    """HKEX trading hours: the closing auction session 16:00-16:10 matches at a random moment
    between 16:08 and 16:10, all at one price."""
    window = (at(HONG_KONG, 2024, 3, 5, 16), at(HONG_KONG, 2024, 3, 5, 17))

    auction = trades(models["extended"], "700.HK", *window)

    assert trades(models["regular"], "700.HK", *window) == []
    assert len(auction) >= 2 and len({tick.time for tick in auction}) == 1
    assert len({tick.price for tick in auction}) == 1
    assert at(HONG_KONG, 2024, 3, 5, 16, 8) <= auction[0].time < at(HONG_KONG, 2024, 3, 5, 16, 10)
    assert [tick.direction for tick in auction] == [0] * len(auction)  # a match has no aggressor


def test_hk_half_day_trades_the_morning_then_its_auction_and_a_holiday_not_at_all(models):
    """HKEX holiday schedule 2024: Christmas Eve is a half-trading day (morning session, then the
    closing auction 12:00-12:10, matching between 12:08 and 12:10); Christmas is a holiday."""
    model = models["extended"]

    afternoon = trades(model, "700.HK", at(HONG_KONG, 2024, 12, 24, 12), at(HONG_KONG, 2024, 12, 25))

    assert trades(model, "700.HK", at(HONG_KONG, 2024, 12, 24, 11, 59), at(HONG_KONG, 2024, 12, 24, 12))
    assert afternoon and len({tick.time for tick in afternoon}) == 1
    assert at(HONG_KONG, 2024, 12, 24, 12, 8) <= afternoon[0].time < at(HONG_KONG, 2024, 12, 24, 12, 10)
    assert trades(model, "700.HK", at(HONG_KONG, 2024, 12, 25), at(HONG_KONG, 2024, 12, 27)) == []


def test_a_share_call_auctions_print_at_09_25_and_at_exactly_15_00(models):
    """SSE trading rules: the opening call auction 09:15-09:25 prints its match at 09:25:00; the
    continuous auction runs 09:30-11:30 and 13:00-14:57; the closing call auction 14:57-15:00
    prints at 15:00:00.000, the session's end instant."""
    day = (2024, 3, 5)
    morning = trades(models["extended"], "600519.SH", at(SHANGHAI, *day, 9), at(SHANGHAI, *day, 9, 30))
    close = trades(models["extended"], "600519.SH", at(SHANGHAI, *day, 14, 57), at(SHANGHAI, *day, 16))
    regular = trades(models["regular"], "600519.SH", at(SHANGHAI, *day), at(SHANGHAI, 2024, 3, 6))

    assert morning and {tick.time for tick in morning} == {at(SHANGHAI, *day, 9, 25)}
    assert close and {tick.time for tick in close} == {at(SHANGHAI, *day, 15)}
    assert len({tick.price for tick in close}) == 1
    assert regular[0].time >= at(SHANGHAI, *day, 9, 30) and regular[-1].time < at(SHANGHAI, *day, 14, 57)
    daily = models["extended"].klines_between(
        "600519.SH", "1d", at(SHANGHAI, *day), at(SHANGHAI, 2024, 3, 6), at(SHANGHAI, 2024, 3, 7)
    )
    assert daily[0].open == morning[0].price and daily[0].close == close[-1].price


def first_and_last(model, symbol, start, end):
    ticks = trades(model, symbol, start, end)
    return ticks[0].time, ticks[-1].time


@pytest.mark.parametrize(
    ("sunday", "friday", "utc_open"),
    [
        ((2023, 7, 9), (2023, 7, 14), 21),
        ((2024, 1, 14), (2024, 1, 19), 22),
        ((2024, 3, 10), (2024, 3, 15), 21),
        ((2024, 11, 3), (2024, 11, 8), 22),
    ],
)
def test_forex_trades_sunday_17_to_friday_17_new_york_summer_and_winter(models, sunday, friday, utc_open):
    """alltick.md section 8 (the vendor's code list): forex trades Sunday 21:00 -> Friday 21:00 GMT
    in summer time, 22:00 -> 22:00 in winter, i.e. 17:00 -> 17:00 New York.  2024-03-10 and
    2024-11-03 are the Sundays US daylight saving starts and ends."""
    model = models["regular"]
    opens = at(UTC, *sunday, utc_open)
    closes = at(UTC, *friday, utc_open)

    first, _ = first_and_last(model, "EURUSD", opens - 86_400_000, opens + MINUTE)  # from Saturday
    _, last = first_and_last(model, "EURUSD", closes - MINUTE, closes + 86_400_000)  # to Saturday

    assert opens <= first < opens + MINUTE
    assert closes - MINUTE <= last < closes
    assert trades(model, "EURUSD", opens + 86_400_000 - MINUTE, opens + 86_400_000 + MINUTE)  # no daily break


@pytest.mark.parametrize(
    ("day", "utc_pause"),
    [
        ((2023, 7, 10), 21),
        ((2024, 1, 15), 22),
        ((2024, 3, 8), 22),
        ((2024, 3, 11), 21),
        ((2024, 11, 1), 21),
        ((2024, 11, 4), 22),
    ],
)
def test_gold_pauses_17_to_18_new_york_every_day(models, day, utc_pause):
    """alltick.md section 8: GOLD, Silver, USOIL, NGAS, Palladium, Platinum trade Sunday 22:00 ->
    Friday 21:00 with a daily break 21:00-22:00 GMT in summer, one hour later in winter (17:00-18:00
    New York), across the 2024-03-10 and 2024-11-03 clock changes (2024-03-08 and 2024-11-01 are
    the Fridays before them: the pause lasts the weekend)."""
    model = models["regular"]
    pause = at(UTC, *day, utc_pause)
    friday = datetime(*day).weekday() == 4

    assert trades(model, "GOLD", pause - MINUTE, pause)
    assert trades(model, "GOLD", pause, pause + HOUR) == []
    if not friday:
        first, _ = first_and_last(model, "GOLD", pause, pause + 2 * HOUR)
        assert pause + HOUR <= first < pause + HOUR + MINUTE


def test_gold_opens_sunday_18_new_york(models):
    """alltick.md section 8: the GOLD week opens Sunday 22:00 GMT in summer, 23:00 in winter."""
    summer, _ = first_and_last(models["regular"], "GOLD", at(UTC, 2023, 7, 8), at(UTC, 2023, 7, 10))
    winter, _ = first_and_last(models["regular"], "GOLD", at(UTC, 2024, 1, 13), at(UTC, 2024, 1, 15))

    assert at(UTC, 2023, 7, 9, 22) <= summer < at(UTC, 2023, 7, 9, 22, 1)
    assert at(UTC, 2024, 1, 14, 23) <= winter < at(UTC, 2024, 1, 14, 23, 1)


def test_cfd_indices_pause_17_to_18_us_eastern_and_crypto_never_stops(models):
    """The vendor's CFD code list: 18:00 Sunday -> 17:00 Friday US Eastern, daily break 17:00-18:00;
    crypto trades 24/7 (the vendor's FAQ)."""
    model = models["regular"]

    assert trades(model, "US500", at(NEW_YORK, 2024, 3, 5, 17), at(NEW_YORK, 2024, 3, 5, 18)) == []
    assert trades(model, "US500", at(NEW_YORK, 2024, 3, 5, 18), at(NEW_YORK, 2024, 3, 5, 18, 1))
    assert trades(model, "BTCUSDT", at(UTC, 2024, 3, 9, 12), at(UTC, 2024, 3, 9, 12, 1))  # a Saturday


@pytest.mark.parametrize(
    ("symbol", "monday", "first_utc", "last_utc"),
    [
        ("UKOIL", (2023, 7, 10), (0, 0), (21, 0)),  # no winter shift given: UTC hours all year
        ("UKOIL", (2024, 1, 15), (0, 0), (21, 0)),
        ("COPPER", (2023, 7, 10), (0, 0), (18, 0)),  # 01:00-19:00 London
        ("COPPER", (2024, 1, 15), (1, 0), (19, 0)),  # winter one hour later
        ("AUS200", (2023, 7, 10), (-3, 50), (21, 0)),  # Sunday 17:50 New York
        ("AUS200", (2024, 1, 15), (-2, 50), (22, 0)),
    ],
)
def test_oil_base_metals_and_aus200_trade_the_hours_of_their_own_lines(symbol, monday, first_utc, last_utc):
    """alltick.md section 8: UKOIL Monday 00:00 -> Friday 21:00, daily break 21:00-24:00; COPPER, Aluminum,
    Nickel, Lead, Zinc Monday 00:00 -> Friday 18:00, daily break 18:00-24:00, winter one hour later;
    AUS200 opens 17:50 on Sunday (US Eastern)."""
    model = MarketModel(1, [symbol], at(UTC, *monday) - 10 * 24 * HOUR, "regular")
    midnight = at(UTC, *monday)
    opens = midnight + first_utc[0] * HOUR + first_utc[1] * MINUTE
    closes = midnight + last_utc[0] * HOUR + last_utc[1] * MINUTE

    first, _ = first_and_last(model, symbol, midnight - 2 * 24 * HOUR, opens + MINUTE)  # from Saturday
    _, last = first_and_last(model, symbol, closes - MINUTE, closes + HOUR)

    assert opens <= first < opens + MINUTE
    assert closes - MINUTE <= last < closes
