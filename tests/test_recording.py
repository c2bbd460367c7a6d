"""Recording (the reader): windows, ordering, and clear errors for what is not a recording."""

from __future__ import annotations

import pytest

from backtrader_alltick.errors import ConfigError, ProtocolError
from backtrader_alltick.recording import Recording
from backtrader_alltick.records import Tick
from backtrader_alltick.sinks.recording import RecordingSink

T0 = 1_709_650_800_000


def write(path, ticks) -> None:
    with RecordingSink(path) as sink:
        sink.write(ticks)


def test_a_window_keeps_the_trades_from_start_up_to_but_not_including_end(tmp_path):
    write(tmp_path / "r", [Tick("BTCUSDT", T0 + n * 1000, 1.0 + n, 1.0, seq=n) for n in range(10)])
    recording = Recording(tmp_path / "r", start_ms=T0 + 2000, end_ms=T0 + 5000)
    assert [t.seq for t in recording.ticks("BTCUSDT")] == [2, 3, 4]


def test_trades_are_sorted_by_time_across_parts_keeping_the_service_order_within_a_millisecond(tmp_path):
    path = tmp_path / "r"
    write(path, [Tick("BTCUSDT", T0 + 5, 2.0, 1.0, seq=7), Tick("BTCUSDT", T0 + 5, 1.0, 1.0, seq=8)])
    write(path, [Tick("BTCUSDT", T0, 3.0, 1.0, seq=1)])  # an export of an earlier interval, appended
    assert [t.seq for t in Recording(path).ticks("BTCUSDT")] == [1, 7, 8]


def test_an_empty_window_or_recording_says_so(tmp_path):
    write(tmp_path / "r", [Tick("BTCUSDT", T0, 1.0, 1.0)])
    with pytest.raises(ConfigError, match="holds no trades in the window"):
        Recording(tmp_path / "r", start_ms=T0 + 1)
    RecordingSink(tmp_path / "empty").close()
    with pytest.raises(ConfigError, match="holds no trades; record some first"):
        Recording(tmp_path / "empty")


def test_a_window_that_ends_before_it_starts_is_a_config_error(tmp_path):
    write(tmp_path / "r", [Tick("BTCUSDT", T0, 1.0, 1.0)])
    with pytest.raises(ConfigError, match="--from must be before --to"):
        Recording(tmp_path / "r", start_ms=T0, end_ms=T0)


def test_a_path_that_is_not_a_recording_names_the_command_that_writes_one(tmp_path):
    with pytest.raises(ConfigError, match="written by 'alltick-bt record --file'"):
        Recording(tmp_path)
    (tmp_path / "recording.json").write_text('{"format": "something-else"}')
    with pytest.raises(ProtocolError, match="format 'something-else'"):
        Recording(tmp_path)


def test_a_damaged_part_is_a_protocol_error_naming_it(tmp_path):
    write(tmp_path / "r", [Tick("BTCUSDT", T0, 1.0, 1.0)])
    (tmp_path / "r" / "ticks" / "part-000009.parquet").write_bytes(b"not parquet")
    with pytest.raises(ProtocolError, match="part-000009.parquet cannot be read"):
        Recording(tmp_path / "r")
