"""Market calendars: exchange holidays, early closes and lunch breaks; weekly sessions as the fallback."""

from __future__ import annotations

import builtins
import dataclasses
import logging
from datetime import date, datetime, timezone

import pytest

from backtrader_alltick import calendars
from backtrader_alltick.markets import CRYPTO, FOREX, HK_STOCKS, SH_STOCKS, SZ_STOCKS, US_STOCKS


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp() * 1000)


def test_us_holiday_and_early_close_come_from_the_exchange_calendar():
    assert not US_STOCKS.is_trading_day(date(2023, 7, 4))
    assert US_STOCKS.session_close(date(2023, 7, 3)) == ms("2023-07-03 17:00")  # 13:00 New York
    assert US_STOCKS.session_close(date(2023, 7, 5)) == ms("2023-07-05 20:00")
    assert not US_STOCKS.is_open(ms("2023-07-04 15:00"))
    assert not US_STOCKS.is_open(ms("2023-07-03 17:30"))
    assert US_STOCKS.open_spans(ms("2023-07-03 00:00"), ms("2023-07-06 00:00")) == [
        (ms("2023-07-03 13:30"), ms("2023-07-03 17:00")),
        (ms("2023-07-05 13:30"), ms("2023-07-05 20:00")),
    ]


def test_hong_kong_has_a_lunch_break_and_a_half_day_on_christmas_eve():
    assert HK_STOCKS.sessions_on(date(2023, 12, 29)) == (
        (ms("2023-12-29 01:30"), ms("2023-12-29 04:00")),
        (ms("2023-12-29 05:00"), ms("2023-12-29 08:00")),
    )
    assert HK_STOCKS.sessions_on(date(2024, 12, 24)) == ((ms("2024-12-24 01:30"), ms("2024-12-24 04:00")),)
    assert not HK_STOCKS.is_trading_day(date(2024, 2, 12))  # Lunar New Year


def test_shanghai_and_shenzhen_close_for_golden_week():
    for market in (SH_STOCKS, SZ_STOCKS):
        assert [market.is_trading_day(date(2023, 10, d)) for d in range(2, 10)] == [
            False,
            False,
            False,
            False,
            False,
            False,
            False,
            True,
        ]  # Oct 2-6, a weekend, then Monday


def test_forex_and_crypto_keep_their_weekly_sessions():
    assert FOREX.is_trading_day(date(2023, 7, 4)) and FOREX.is_trading_day(date(2023, 12, 25))
    assert FOREX.session_close(date(2023, 7, 7)) == ms("2023-07-07 21:00")  # 17:00 New York, summer time
    assert not FOREX.is_trading_day(date(2023, 7, 8))
    assert CRYPTO.session_close(date(2023, 7, 8)) == ms("2023-07-09 00:00")


@pytest.mark.parametrize(
    "day, opens, closes",
    [
        (date(2023, 7, 10), "2023-07-09 21:00", "2023-07-10 21:00"),  # summer: Sunday 21:00 -> 21:00 UTC
        (date(2024, 1, 15), "2024-01-14 22:00", "2024-01-15 22:00"),  # winter: Sunday 22:00 -> 22:00 UTC
        (date(2024, 3, 11), "2024-03-10 21:00", "2024-03-11 21:00"),  # New York moved on Sunday 2024-03-10
        (date(2024, 11, 4), "2024-11-03 22:00", "2024-11-04 22:00"),  # and back on Sunday 2024-11-03
    ],
)
def test_forex_sessions_follow_new_york_summer_time(day, opens, closes):
    """AllTick's product list (protocol/alltick.md, "Trading-hours notes"): forex trades Sunday 21:00 ->
    Friday 21:00 GMT in summer time, Sunday 22:00 -> Friday 22:00 in winter: the 17:00 New York roll."""
    assert FOREX.sessions_on(day) == ((ms(opens), ms(closes)),)


@pytest.mark.parametrize(
    "day, opens, breaks",
    [
        (date(2023, 7, 10), "2023-07-09 22:00", "2023-07-10 21:00"),  # summer: 22:00 -> 21:00 UTC
        (date(2024, 1, 15), "2024-01-14 23:00", "2024-01-15 22:00"),  # winter: one hour later
    ],
)
def test_gold_sessions_break_an_hour_each_day_by_new_york_time(day, opens, breaks):
    """AllTick's product list: GOLD, Silver, USOIL, NGAS, Palladium, Platinum trade Sunday 22:00 ->
    Friday 21:00 with a daily break 21:00-22:00 (winter one hour later)."""
    from backtrader_alltick.symbols import parse_symbol

    assert parse_symbol("GOLD").market.sessions_on(day) == ((ms(opens), ms(breaks)),)
    friday = date(2023, 7, 14)
    assert parse_symbol("GOLD").market.session_close(friday) == ms("2023-07-14 21:00")
    assert not parse_symbol("GOLD").market.is_open(ms("2023-07-10 21:30"))  # the daily break


@pytest.mark.parametrize(
    "symbol, day, opens, closes",
    [
        # UKOIL: Monday 00:00 -> Friday 21:00, daily break 21:00-24:00, no winter shift given.
        ("UKOIL", date(2023, 7, 10), "2023-07-10 00:00", "2023-07-10 21:00"),
        ("UKOIL", date(2024, 1, 15), "2024-01-15 00:00", "2024-01-15 21:00"),
        # COPPER, Aluminum, Nickel, Lead, Zinc: Monday 00:00 -> Friday 18:00, break 18:00-24:00, winter one
        # hour later (London's clock: 01:00-19:00 London all year).
        ("COPPER", date(2023, 7, 10), "2023-07-10 00:00", "2023-07-10 18:00"),
        ("Zinc", date(2024, 1, 15), "2024-01-15 01:00", "2024-01-15 19:00"),
        # CFD indices: 18:00 Sunday -> 17:00 Friday US Eastern, break 17:00-18:00; AUS200 opens 17:50 Sunday.
        ("AUS200", date(2023, 7, 10), "2023-07-09 21:50", "2023-07-10 21:00"),
        ("AUS200", date(2023, 7, 11), "2023-07-10 22:00", "2023-07-11 21:00"),
        ("AUS200", date(2024, 1, 15), "2024-01-14 22:50", "2024-01-15 22:00"),
        ("US500", date(2024, 1, 15), "2024-01-14 23:00", "2024-01-15 22:00"),
    ],
)
def test_oil_base_metals_and_cfds_keep_the_hours_the_product_list_gives_them(symbol, day, opens, closes):
    """AllTick's product list (protocol/alltick.md, "Trading-hours notes") gives UKOIL, the base metals
    and AUS200 hours of their own; their trading date still rolls at 17:00 New York."""
    from backtrader_alltick.symbols import parse_symbol

    market = parse_symbol(symbol).market
    assert market.sessions_on(day) == ((ms(opens), ms(closes)),)
    assert market.close_date(ms(closes)) == day
    assert not market.is_open(ms(closes)) and market.is_open(ms(closes) - 1)


def test_close_date_puts_a_bar_closing_at_midnight_on_the_day_before():
    assert CRYPTO.close_date(ms("2023-07-09 00:00")) == date(2023, 7, 8)
    assert FOREX.close_date(ms("2023-07-07 21:00")) == date(2023, 7, 7)
    assert FOREX.close_date(ms("2023-07-06 21:01")) == date(2023, 7, 7)  # the forex day starts at 17:00 NY
    assert FOREX.close_date(ms("2024-01-05 21:30")) == date(2024, 1, 5)  # 16:30 New York in winter
    assert US_STOCKS.close_date(ms("2023-07-03 17:00")) == date(2023, 7, 3)


def test_next_close_is_where_the_trading_day_of_a_bar_ends():
    assert US_STOCKS.next_close(ms("2023-07-03 14:00")) == ms("2023-07-03 17:00")  # early close
    assert US_STOCKS.next_close(ms("2023-07-03 17:00")) == ms("2023-07-03 17:00")  # the last bar itself
    assert US_STOCKS.next_close(ms("2023-07-03 18:00")) == ms("2023-07-05 20:00")  # skips the holiday
    assert CRYPTO.next_close(ms("2023-07-09 00:00")) == ms("2023-07-09 00:00")


def test_public_api_keeps_its_meaning():
    # session_end of a day the market does not trade: the close its weekday would have had.
    assert US_STOCKS.session_end(US_STOCKS.day_start(ms("2023-07-04 15:00"))) == ms("2023-07-04 20:00")
    assert US_STOCKS.session_end(US_STOCKS.day_start(ms("2023-07-03 15:00"))) == ms("2023-07-03 17:00")
    assert US_STOCKS.day_start(ms("2023-07-04 15:00")) == ms("2023-07-04 04:00")
    assert US_STOCKS.local(ms("2023-07-04 15:00")).hour == 11


def test_closed_note_says_why_and_until_when():
    assert US_STOCKS.closed_note(ms("2023-07-05 15:00")) is None
    assert US_STOCKS.closed_note(ms("2023-07-04 15:00")) == (
        "US market closed: 2023-07-04 is not a trading day (a holiday); next open 2023-07-05 13:30 UTC"
    )
    assert "(early close)" in US_STOCKS.closed_note(ms("2023-07-03 18:00"))


def test_closed_note_of_a_rolled_market_tells_the_close_on_its_own_clock():
    from backtrader_alltick.symbols import parse_symbol

    # AllTick's product list: COPPER stops at 19:00 London in winter (14:00 New York), UKOIL at 21:00 UTC.
    assert "2024-01-15's session closed at 19:00 Europe/London" in parse_symbol("COPPER").market.closed_note(
        ms("2024-01-15 19:30")
    )
    assert "2024-01-15's session closed at 21:00 UTC" in parse_symbol("UKOIL").market.closed_note(
        ms("2024-01-15 21:30")
    )


def test_without_the_calendars_extra_markets_fall_back_to_weekly_sessions(monkeypatch, caplog):
    real_import = builtins.__import__

    def no_exchange_calendars(name, *args, **kwargs):
        if name == "exchange_calendars":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_exchange_calendars)
    calendars.exchange_sessions.cache_clear()
    try:
        with caplog.at_level(logging.INFO, logger="backtrader_alltick"):
            assert US_STOCKS.is_trading_day(date(2023, 7, 4))
            assert US_STOCKS.session_close(date(2023, 7, 3)) == ms("2023-07-03 20:00")
        assert "pip install 'backtrader-alltick[calendars]'" in caplog.text
    finally:
        monkeypatch.undo()
        calendars.exchange_sessions.cache_clear()
    assert not US_STOCKS.is_trading_day(date(2023, 7, 4))


def test_outside_the_calendars_years_the_weekly_sessions_apply():
    assert US_STOCKS.is_trading_day(date(1999, 12, 24))  # before the calendar starts: weekly sessions
    assert US_STOCKS.sessions_on(date(1999, 12, 25)) == ()  # a Saturday


def test_a_market_without_an_exchange_uses_weekly_sessions_only():
    weekly = dataclasses.replace(US_STOCKS, exchange=None)

    assert weekly.is_trading_day(date(2023, 7, 4))
    assert weekly.sessions_on(date(2023, 7, 5)) == US_STOCKS.sessions_on(date(2023, 7, 5))


@pytest.mark.parametrize("market", [US_STOCKS, HK_STOCKS, SH_STOCKS, FOREX, CRYPTO])
def test_every_session_of_a_trading_date_lies_in_that_local_day(market):
    for day in (date(2023, 7, 3), date(2023, 12, 29), date(2024, 3, 11)):
        for low, high in market.sessions_on(day):
            assert market.local(low).date() == day
            assert market.close_date(high) == day
