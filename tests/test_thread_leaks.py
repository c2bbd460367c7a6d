"""thread_leaks.py: a watched thread alive after its test is reported, an ending one is not."""

from __future__ import annotations

import threading

from thread_leaks import describe, left_behind, threads_now


def test_a_watched_thread_still_running_is_reported_with_where_it_waits():
    before = threads_now()
    release = threading.Event()
    stuck = threading.Thread(target=release.wait, name="alltick-test-stuck", daemon=True)
    other = threading.Thread(target=release.wait, name="not-ours", daemon=True)
    stuck.start()
    other.start()
    try:
        alive = left_behind(before, join_s=0.0)
        assert alive == [stuck]
        assert "alltick-test-stuck" in describe(alive) and ", in wait" in describe(alive)
    finally:
        release.set()
        stuck.join()
        other.join()


def test_a_watched_thread_that_ends_within_the_join_is_not_reported():
    before = threads_now()
    release = threading.Event()
    ending = threading.Thread(target=release.wait, name="sim-test-ending", daemon=True)
    ending.start()
    release.set()

    assert left_behind(before) == []
