"""StreamNotes: what a live source tells its user, each thing once."""

from __future__ import annotations

import logging

from backtrader_alltick.sources import SourceOptions
from backtrader_alltick.sources.stream_notes import HOLD_NOTE_S, StreamNotes
from backtrader_alltick.symbols import parse_symbol


def test_a_long_hold_for_the_stream_is_logged_once_naming_the_symbol_and_the_counter(caplog):
    notes = StreamNotes(parse_symbol("BTCUSDT"), SourceOptions())
    caplog.set_level(logging.WARNING, logger="backtrader_alltick")

    notes.held(HOLD_NOTE_S - 0.1)  # a short hold is the cost of complete bars, not news
    assert caplog.records == []
    notes.held(HOLD_NOTE_S)
    notes.held(HOLD_NOTE_S * 3)

    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert "BTCUSDT" in record.getMessage() and "stats['held_bars']" in record.getMessage()
