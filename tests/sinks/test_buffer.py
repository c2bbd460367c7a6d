"""The buffered writer shared by the sinks, driven through a scripted ``_send`` (no server needed)."""

import logging
import re

import pytest

from backtrader_alltick.errors import APIError, ConfigError, ConnectError
from backtrader_alltick.sinks.buffer import BufferedWriter


class ScriptedSink(BufferedWriter):
    """Fails with the scripted errors in turn, then accepts every batch."""

    def __init__(self, failures=(), **options):
        settings = {
            "target": "scripted://",
            "batch": 3,
            "max_buffer": 100,
            "flush_interval": 0.0,
            "retries": 2,
            "backoff_initial": 0.001,
            "backoff_max": 0.005,
        }
        super().__init__(**{**settings, **options})
        self.failures = list(failures)
        self.batches = []
        self._start()

    def _send(self, items):
        if self.failures:
            raise self.failures.pop(0)
        self.batches.append(items)


def test_batches_hold_at_most_batch_records_in_order():
    with ScriptedSink() as sink:
        sink.write(range(7))
        assert sink.flush(timeout=5)

    assert [x for batch in sink.batches for x in batch] == list(range(7))
    assert max(len(batch) for batch in sink.batches) <= 3
    assert sink.written == 7


def test_unreachable_server_is_retried_until_it_answers():
    with ScriptedSink([ConnectError("down")] * 5) as sink:
        sink.write(range(3))
        assert sink.flush(timeout=5)

    assert sink.batches == [[0, 1, 2]]
    assert sink.dropped == 0


def test_server_error_is_retried_then_the_batch_is_dropped_with_an_error(caplog):
    failing = [APIError("boom", status=500)] * 3  # retries=2: the first batch fails three times

    with caplog.at_level(logging.ERROR), ScriptedSink(failing) as sink:
        sink.write(range(6))
        assert sink.flush(timeout=5)

    assert sink.batches == [[3, 4, 5]]
    assert sink.rejected == 3
    assert "rejected a batch of 3 records; they are dropped: boom" in caplog.text


def test_rejected_batch_is_dropped_at_once():
    with ScriptedSink([APIError("bad line", status=400)]) as sink:
        sink.write(range(6))
        assert sink.flush(timeout=5)

    assert sink.batches == [[3, 4, 5]]
    assert sink.rejected == 3


def test_close_while_unreachable_gives_up_after_its_timeout_and_counts_the_loss(caplog):
    sink = ScriptedSink([ConnectError("down")] * 10_000)
    sink.write(range(5))

    with caplog.at_level(logging.WARNING):
        sink.close(timeout=0.1)

    assert sink.dropped == 5
    assert "5 unsent records are lost" in caplog.text
    assert not sink._thread.is_alive()


def test_write_after_close_is_refused():
    sink = ScriptedSink()
    sink.close()

    with pytest.raises(ConfigError, match=re.escape("is closed; create a new one to write")):
        sink.write([1])


@pytest.mark.parametrize(("option", "value"), [("batch", 0), ("max_buffer", -1), ("flush_interval", -0.5)])
def test_invalid_options_name_the_parameter_and_value(option, value):
    with pytest.raises(ConfigError, match=f"{option} must be .*, was {value}"):
        BufferedWriter(
            **{
                "target": "x",
                "batch": 1,
                "max_buffer": 1,
                "flush_interval": 0.0,
                "retries": 0,
                "backoff_initial": 0.1,
                "backoff_max": 1.0,
                option: value,
            }
        )


@pytest.mark.parametrize(("initial", "cap"), [(0.0, 1.0), (2.0, 1.0)])
def test_a_backoff_that_cannot_pace_retries_is_refused_when_the_writer_is_made(initial, cap):
    # Not later, in the flush thread, where the error would only be logged.
    message = f"backoff needs 0 < initial <= cap, was initial={initial}, cap={cap}"
    with pytest.raises(ConfigError, match=re.escape(message)):
        BufferedWriter(
            target="x",
            batch=1,
            max_buffer=1,
            flush_interval=0.0,
            retries=0,
            backoff_initial=initial,
            backoff_max=cap,
        )
