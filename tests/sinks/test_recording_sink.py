"""RecordingSink: trades and books into Parquet part files that survive a kill and append on restart."""

from __future__ import annotations

import json
import logging
import threading

import pandas as pd
import pytest

from backtrader_alltick.errors import ConfigError
from backtrader_alltick.recording import Recording, part_paths
from backtrader_alltick.records import Depth, Kline, Tick
from backtrader_alltick.sinks.recording import RecordingSink

T0 = 1_709_650_800_000


def trades(symbol: str, start: int, count: int, seq0: int = 0) -> list[Tick]:
    return [
        Tick(
            symbol, start + 250 * n, 100.0 + n / 100, 0.5 + n, (100.0 + n / 100) * (0.5 + n), seq0 + n, n % 3
        )
        for n in range(count)
    ]


def test_written_trades_and_books_read_back_equal_per_symbol_in_time_order(tmp_path):
    path = tmp_path / "session.rec"
    book = Depth("BTCUSDT", T0 + 100, ((99.9, 1.0), (99.8, 2.0)), ((100.1, 3.0),))
    with RecordingSink(path, dialect="itick") as sink:
        sink.write(trades("BTCUSDT", T0, 5))
        sink.write(
            [
                Tick("EURUSD", T0 - 1_000, 1.08512, 3.0, 3.25536, None, 1),
                book,
                Kline("EURUSD", "1m", T0, T0 + 60_000, 1, 1, 1, 1),
            ]
        )

    recording = Recording(path)
    assert recording.symbols == ["BTCUSDT", "EURUSD"]
    assert recording.dialect == "itick"
    assert recording.ticks("BTCUSDT") == trades("BTCUSDT", T0, 5)
    assert recording.ticks("EURUSD") == [Tick("EURUSD", T0 - 1_000, 1.08512, 3.0, 3.25536, None, 1)]
    assert recording.books("BTCUSDT") == [book]
    assert (recording.start_ms, recording.end_ms) == (T0 - 1_000, T0 + 1_000)
    assert sink.skipped == 1  # bars are not part of a recording
    # pandas reads the trades of every part as one table
    assert len(pd.read_parquet(path / "ticks")) == 6


def test_a_restart_appends_new_parts_and_keeps_the_old_ones(tmp_path):
    path = tmp_path / "session.rec"
    with RecordingSink(path) as sink:
        sink.write(trades("BTCUSDT", T0, 3))
    first = [p.read_bytes() for p in part_paths(path, "ticks")]
    with RecordingSink(path) as sink:
        sink.write(trades("BTCUSDT", T0 + 10_000, 4, seq0=3))

    assert [p.read_bytes() for p in part_paths(path, "ticks")][:1] == first
    assert len(part_paths(path, "ticks")) == 2
    assert Recording(path).ticks("BTCUSDT") == trades("BTCUSDT", T0, 3) + trades("BTCUSDT", T0 + 10_000, 4, 3)


def test_each_flush_is_a_whole_part_on_disk_before_close(tmp_path):
    path = tmp_path / "session.rec"
    sink = RecordingSink(path, flush_interval=0)
    try:
        sink.write(trades("BTCUSDT", T0, 3))
        assert sink.flush(10)
        # Readable while the writer is still open: what a kill -9 at this moment would leave.
        assert Recording(path).ticks("BTCUSDT") == trades("BTCUSDT", T0, 3)
    finally:
        sink.close()


def test_a_part_cut_off_by_a_kill_is_ignored_by_readers_and_removed_by_the_next_writer(tmp_path):
    path = tmp_path / "session.rec"
    with RecordingSink(path) as sink:
        sink.write(trades("BTCUSDT", T0, 3))
    cut = path / "ticks" / ".part-000002.parquet.tmp"
    cut.write_bytes(b"PAR1 half a part")  # what a writer killed mid-part leaves behind

    assert Recording(path).ticks("BTCUSDT") == trades("BTCUSDT", T0, 3)
    assert len(pd.read_parquet(path / "ticks")) == 3
    RecordingSink(path).close()
    assert not cut.exists()


def test_a_recording_of_another_dialect_is_not_appended_to(tmp_path):
    path = tmp_path / "session.rec"
    RecordingSink(path, dialect="alltick").close()
    with pytest.raises(ConfigError, match="holds alltick data; append to it with --dialect alltick"):
        RecordingSink(path, dialect="itick")


def test_a_directory_that_is_not_a_recording_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="new or empty directory or an existing recording"):
        RecordingSink(tmp_path)
    with pytest.raises(ConfigError, match="must be a directory"):
        RecordingSink(tmp_path / "notes.txt")
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_the_meta_file_names_the_format_dialect_and_symbols(tmp_path):
    path = tmp_path / "session.rec"
    with RecordingSink(path, dialect="itick") as sink:
        sink.write(trades("AAPL.US", T0, 1))
    meta = json.loads((path / "recording.json").read_text())
    assert meta["format"] == "backtrader-alltick-recording" and meta["version"] == 1
    assert meta["dialect"] == "itick" and meta["symbols"] == ["AAPL.US"]


class _Signal(logging.Handler):
    def __init__(self, text: str) -> None:
        super().__init__(logging.WARNING)
        self.text, self.seen = text, threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.seen.set()


def test_a_batch_the_disk_refused_is_retried_whole_and_recorded_once(tmp_path):
    path = tmp_path / "session.rec"
    sink = RecordingSink(path, flush_interval=0)
    outage = _Signal("cannot write to the recording")
    logging.getLogger("backtrader_alltick.sinks.buffer").addHandler(outage)
    try:
        (path / "depth").rmdir()
        (path / "depth").write_text("in the way")  # books cannot be written, trades could
        sink.write(trades("BTCUSDT", T0, 3) + [Depth("BTCUSDT", T0, ((99.0, 1.0),), ((101.0, 1.0),))])
        assert outage.seen.wait(10)
        (path / "depth").unlink()
        (path / "depth").mkdir()
        assert sink.flush(10)
    finally:
        logging.getLogger("backtrader_alltick.sinks.buffer").removeHandler(outage)
        sink.close()

    recording = Recording(path)
    assert recording.ticks("BTCUSDT") == trades("BTCUSDT", T0, 3)
    assert len(recording.books("BTCUSDT")) == 1
