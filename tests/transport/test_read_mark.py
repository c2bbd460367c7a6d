"""ReadMark: the moment through which a reader has handed out everything that reached its socket."""

from __future__ import annotations

import os
import socket
import threading

import pytest

from backtrader_alltick.transport.read_mark import ReadMark


class HandClock:
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
    while mark.through(5_000) != 5_000:  # until the reader is in its wait
        assert reader.is_alive()
    theirs.sendall(b"x")  # unread bytes: the reader vouches only for the moment it found none
    reader.join(10.0)
    assert woke == [True]
    assert mark.through(9_000) == 1_000


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
