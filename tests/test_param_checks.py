"""Checks of what users pass: ISO strings read alike on every supported Python, windows in order."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

import pytest

from backtrader_alltick.errors import ConfigError
from backtrader_alltick.param_checks import as_moment, check_order, check_window, moment_ms, parse_iso

UTC = timezone.utc


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("2024-03-04", date(2024, 3, 4)),
        ("2024-03-04 15:30", datetime(2024, 3, 4, 15, 30)),
        ("2024-03-04T15:30:05", datetime(2024, 3, 4, 15, 30, 5)),
        # Python 3.10's datetime.fromisoformat refuses each of these; 3.11 reads them so.
        ("2024-03-04T15:30Z", datetime(2024, 3, 4, 15, 30, tzinfo=UTC)),
        ("2024-03-04 23:59:59.99999", datetime(2024, 3, 4, 23, 59, 59, 999990)),
        ("2024-03-04T15:30:00.5Z", datetime(2024, 3, 4, 15, 30, 0, 500000, tzinfo=UTC)),
        ("2024-03-04T15:30:00.1234567", datetime(2024, 3, 4, 15, 30, 0, 123456)),  # past micros: cut off
        ("2024-03-04T15:30:00,25", datetime(2024, 3, 4, 15, 30, 0, 250000)),
        (
            "2024-03-04T15:30+0530",
            datetime(2024, 3, 4, 15, 30, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        ),
        ("2024-03-04T15:30-05", datetime(2024, 3, 4, 15, 30, tzinfo=timezone(timedelta(hours=-5)))),
        ("2024-03-04T15:30:00+00:00", datetime(2024, 3, 4, 15, 30, tzinfo=UTC)),
        (" 2024-03-04T15 ", datetime(2024, 3, 4, 15)),
    ],
)
def test_iso_strings_read_as_python_3_11_reads_them(text, moment):
    assert parse_iso(text) == moment
    assert as_moment("fromdate", text) == moment


@pytest.mark.parametrize(
    "text",
    [
        "2024-3-4",
        "2024-03-04T",
        "2024-03-04T15:30:00.",
        "2024-13-01",
        "2024-03-04T25:00",
        "04.03.2024",
        "2024-03-04T15:30+25:00",
        "yesterday",
    ],
)
def test_what_is_not_an_iso_date_is_refused_naming_the_parameter(text):
    with pytest.raises(ValueError):
        parse_iso(text)
    with pytest.raises(ConfigError, match=f"todate must be a datetime, .* was {re.escape(repr(text))}"):
        as_moment("todate", text)


def test_a_todate_with_five_fraction_digits_is_backtraders_end_of_day():
    assert moment_ms("todate", "2024-03-04 23:59:59.99999") == moment_ms(
        "todate", date(2024, 3, 4), end_of_day=True
    )


def test_a_window_that_ends_before_it_starts_is_refused_naming_its_bounds():
    check_window(None, 5)
    check_window(5, 5)
    with pytest.raises(ConfigError, match="start_ms must not be after end_ms, was 1970-01-01"):
        check_window(6, 5, ("start_ms", "end_ms"))
    with pytest.raises(ConfigError, match="fromdate must not be after todate"):
        check_order("2024-03-05", "2024-03-04T23:59Z")
    check_order("2024-03-04", "2024-03-04")  # a date alone is its whole day
