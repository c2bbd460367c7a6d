"""ReadMark: the moment through which a reader has handed out everything that reached its socket."""

from __future__ import annotations

import os
import socket
import threading

import pytest

from backtrader_alltick.records import Tick
from backtrader_alltick.transport.read_mark import AGREE_S, LAG_CAP_S, ReadMark


class HandClock:
    speed = 1.0

    def __init__(self, now_ms: int) -> None:
        self.now = now_ms

    def now_ms(self) -> int:
        return self.now


@pytest.fixture
def pair():
    ours, theirs = socket.socketpair()
    yield ours, theirs
    ours.close()
    theirs.close()


def test_a_reader_waiting_on_an_empty_socket_vouches_for_the_present(pair):
    ours, theirs = pair
    clock = HandClock(1_000)
    mark = ReadMark(clock)
    entered, woke = threading.Event(), []
    reader = threading.Thread(target=lambda: (entered.set(), woke.append(mark.wait_readable(ours, 10.0))))
    reader.start()
    entered.wait(10.0)
    moment = 5_000
    while mark.through(moment) != moment:  # until the reader is in its wait
        assert reader.is_alive()
        moment += 1_000  # a later question: the same one gets the same answer for a while
    theirs.sendall(b"x")  # unread bytes, after the moment vouched for
    reader.join(10.0)
    assert woke == [True]
    # The reader now vouches only for the moment it found the socket empty, but what had been handed
    # out when the last answer was given still has been: a later answer is never earlier.
    assert mark.through(moment + 1_000) == moment


def test_unread_bytes_hold_the_mark_where_the_socket_was_last_found_empty(pair):
    ours, theirs = pair
    clock = HandClock(1_000)
    mark = ReadMark(clock)
    theirs.sendall(b"x")
    clock.now = 2_000
    assert mark.wait_readable(ours, 0.0)  # a backlog: no moment found empty yet
    assert mark.through(3_000) < 1_000
    ours.recv(10)
    clock.now = 4_000
    assert not mark.wait_readable(ours, 0.0)  # empty at 4_000, then nothing came
    assert mark.through(5_000) == 4_000


def test_a_socket_numbered_past_1024_is_still_marked(pair):
    # A process with many connections and files gets descriptors select() refuses.
    resource = pytest.importorskip("resource")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft <= 2000:
        if hard != resource.RLIM_INFINITY and hard <= 2000:
            pytest.skip("the descriptor limit is too low to open a socket past 1024")
        resource.setrlimit(resource.RLIMIT_NOFILE, (2048, hard))
    ours, _ = pair
    high = socket.socket(fileno=os.dup2(ours.fileno(), 2000))
    try:
        mark = ReadMark(HandClock(7_000))

        assert mark.wait_readable(high, 0) is False  # nothing came: found empty at 7_000
        assert mark.through(9_000) == 7_000
    finally:
        high.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def trade(at_ms: int) -> Tick:
    return Tick("BTCUSDT", at_ms, 1.0, 1.0)


def test_a_service_sending_late_holds_the_mark_by_what_its_lag_exceeds_grace(pair):
    ours, _ = pair
    clock = HandClock(100_000)
    mark = ReadMark(clock)
    assert not mark.wait_readable(ours, 0.0)  # the reader keeps up: found empty at 100_000

    mark.handed_out([trade(95_000), trade(97_000)])  # the newest came 3 s after its stamp

    assert mark.lag_ms == 3_000
    assert mark.through(100_000, grace_ms=250) == 100_000 - 2_750
    assert mark.through(100_000, grace_ms=5_000) == 100_000  # a lag within grace holds nothing


def test_only_a_newer_trade_tells_the_lag_not_a_repeat_or_a_late_print(pair):
    clock = HandClock(100_000)
    mark = ReadMark(clock)
    mark.handed_out([trade(99_900)])
    clock.now = 100_100
    mark.handed_out([trade(40_000)])  # a late print (or a re-sent trade): the stream is on time

    assert mark.lag_ms == 100


def test_the_lag_is_the_largest_of_the_last_second_and_stays_while_the_stream_is_quiet(pair):
    clock = HandClock(100_000)
    mark = ReadMark(clock)
    mark.handed_out([trade(96_000)])  # 4 s late
    for step in range(1, 4):  # the stream catches up, frame by frame
        clock.now = 100_000 + 300 * step
        mark.handed_out([trade(clock.now - 10)])
    assert mark.lag_ms == 4_000  # within the second: the trades sent late may still be on their way
    clock.now = 101_500
    mark.handed_out([trade(101_490)])
    clock.now = 102_100
    mark.handed_out([trade(102_090)])
    assert mark.lag_ms == 10

    mark.handed_out([trade(102_095)])
    clock.now = 200_000  # quiet since: nothing says the service caught up or fell behind
    assert mark.lag_ms == 10


def test_a_stamp_from_long_ago_holds_a_bar_no_longer_than_the_cap(pair):
    clock = HandClock(10_000_000)
    mark = ReadMark(clock)
    mark.handed_out([trade(1_000)])  # a replayed session's stamp, not a lag

    assert mark.lag_ms == int(LAG_CAP_S * 1000)


def held_at_1_000_then_read_at_1_010(pair) -> tuple[ReadMark, int]:
    """A mark asked at 1_000 with a backlog unread (the held answer), whose reader then read it all
    and found the socket empty at 1_010."""
    ours, theirs = pair
    clock = HandClock(1_000)
    mark = ReadMark(clock)
    theirs.sendall(b"x")
    assert mark.wait_readable(ours, 0.0)  # a backlog: nothing vouched for yet
    held = mark.through(1_000)
    ours.recv(10)
    clock.now = 1_010
    assert not mark.wait_readable(ours, 0.0)  # read: empty at 1_010
    return mark, held


def test_feeds_asking_one_after_another_in_a_pass_get_the_same_answer(pair):
    # One pass of Cerebro asks for each feed of the connection in turn: a chunk read in between
    # must not make one feed hold a minute's bar and the next hand its own out.
    mark, held = held_at_1_000_then_read_at_1_010(pair)

    assert mark.through(1_010) == held  # the next feed of the pass holds its bar too
    agree_ms = int(AGREE_S * 1000)
    assert mark.through(1_000 + agree_ms + 1) == 1_010  # a later pass gets the present answer


def test_a_consumer_waiting_between_passes_gets_a_fresh_answer_and_the_next_pass_agrees_with_it(pair):
    # A bar held in one pass goes as soon as the reader has caught up (asked while the consumer
    # waits), not once the agreement window has passed; the feeds of the next pass then agree.
    mark, held = held_at_1_000_then_read_at_1_010(pair)

    assert mark.through(1_010) == held  # within the pass: the same answer
    assert mark.through(1_011, fresh=True) == 1_010  # waiting for the next pass: the reader's news
    assert mark.through(1_012) == 1_010  # the next pass agrees with it
