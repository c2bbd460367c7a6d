"""Dates given as ISO strings read the same on every supported Python (3.10's fromisoformat is stricter)."""

from datetime import datetime, timezone

import pytest

from backtrader_alltick.errors import ConfigError
from backtrader_alltick.param_checks import as_moment, moment_ms

HALF_PAST_THREE = int(datetime(2024, 3, 1, 15, 30, tzinfo=timezone.utc).timestamp() * 1000)


@pytest.mark.parametrize("text", [
    "2024-03-01T15:30Z",
    "2024-03-01T15:30:00Z",
    "2024-03-01 15:30:00.000Z",
    "2024-03-01T16:30+01:00",
    "2024-03-01T16:30+0100",
    "2024-03-01T16:30:00+01",
    "2024-03-01T15:30:00.0000000+00:00",
])
def test_moment_ms_iso_strings_with_zones_read_as_the_same_instant(text):
    assert moment_ms("fromdate", text) == HALF_PAST_THREE


def test_moment_ms_fraction_of_five_digits_keeps_its_microseconds():
    assert as_moment("todate", "2024-03-04 23:59:59.99999") == datetime(2024, 3, 4, 23, 59, 59, 999990)


@pytest.mark.parametrize("text", ["2024-03-01T15:30Zulu", "2024-13-01T15:30", "yesterday",
                                  "2024-03-01T25:00Z"])
def test_as_moment_not_a_date_raises_config_error_naming_the_parameter(text):
    with pytest.raises(ConfigError, match="fromdate must be"):
        as_moment("fromdate", text)
