"""The seam without a socket: every ordering of stream and REST events, against bars built from the trades.

Whatever happened in the world (seamworld.py), the bars the seam delivers must be the bars
computed directly from every trade made.
"""

from __future__ import annotations

import collections
import copy
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from seamworld import GRACE_MS, MARGIN_MS, START, STEP_MS, World

from backtrader_alltick.markets import CRYPTO, MINUTE_MS, US_STOCKS
from backtrader_alltick.records import Kline, Tick
from backtrader_alltick.seam import Seam
from backtrader_alltick.timeframes import MINUTES, resolve

EVENTS = ("drop", "malformed", "resend", "boundary", "rest", "trade", "reconnect")


SKEWS = (0, 900, -GRACE_MS + 50)  # a clock behind the exchange's by more than grace loses trades
_WARM = {skew: World(skew) for skew in SKEWS}
for _world in _WARM.values():
    _world.warm_up()


def _shared_records(root) -> dict[int, object]:
    """A deepcopy memo naming every Tick and Kline reachable from ``root`` as itself.

    They are frozen and hold only numbers and strings, so each copied world may share them;
    everything else in it is still copied.  (Copying them was most of each run's time.)
    """
    memo: dict[int, object] = {}
    seen: set[int] = set()
    todo = [root]
    while todo:
        item = todo.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, (Tick, Kline)):
            memo[id(item)] = item
        elif isinstance(item, dict):
            todo.extend(item.keys())
            todo.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset, collections.deque)):
            todo.extend(item)
        elif type(item).__module__.startswith(("backtrader_alltick", "seamworld")):
            todo.extend(getattr(item, "__dict__", {}).values())
            todo.extend(getattr(item, name) for name in _slots(type(item)) if hasattr(item, name))
    return memo


def _slots(cls: type) -> list[str]:
    names = [klass.__dict__.get("__slots__", ()) for klass in cls.__mro__]
    return [name for group in names for name in ([group] if isinstance(group, str) else group)]


_SHARED = {skew: _shared_records(world) for skew, world in _WARM.items()}


def _run(events, skew_ms: int = 0) -> World:
    world = copy.deepcopy(_WARM[skew_ms], dict(_SHARED[skew_ms]))
    world.run(events)
    world.settle()
    world.check()
    return world


@pytest.mark.parametrize("first", EVENTS)
def test_every_ordering_of_seam_events_delivers_each_trade_in_exactly_one_bar(first):
    rest = [event for event in EVENTS if event != first]
    for order in itertools.permutations(rest):
        _run((first, *order))


@pytest.mark.parametrize("lead", ["drop", "malformed"])
def test_a_replayed_trade_of_the_last_minute_after_a_reset_does_not_anchor_the_seam(lead):
    # Two ways a stream resets near a boundary: a drop just before it, or a malformed frame just after
    # it; then the server replays the previous minute's last trade before anything fresh.
    if lead == "drop":
        events = ("trade", "drop", "boundary", "trade", "reconnect", "resend", "trade", "rest")
    else:
        events = ("trade", "boundary", "trade", "malformed", "resend", "trade", "rest")
    world = _run(events)
    assert any(source == "bars_live" for _, source in world.delivered[-3:])


def test_a_stale_trade_that_is_not_a_repeat_does_not_anchor_the_seam_either():
    # A late trade of the previous minute never seen before, first after a reconnect.
    world = World()
    world.warm_up()
    world.run(["trade", "drop", "boundary", "trade", "trade", "reconnect"])
    late = Tick("BTCUSDT", world.now - world.now % MINUTE_MS - 1, 100.0, 1.0, 100.0, seq=None)
    world.trades.append(late)
    world.seam.on_trade(late, world.now)
    world.settle()
    world.check()


def test_a_frame_lost_before_the_seam_is_anchored_with_the_service_clock_ahead_keeps_its_trade():
    # Found by hypothesis: the stream is back but no trade has anchored the seam when a malformed
    # frame loses a trade stamped (by a service clock 900 ms ahead of ours) in the next minute; the
    # replayed trade that follows must not anchor the seam before that minute.
    _run(["drop"] * 8 + ["reconnect", "tick", "malformed", "resend"], skew_ms=900)


EVENT_ALPHABET = st.sampled_from(EVENTS + ("tick", "overflow"))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(EVENT_ALPHABET, max_size=40), st.sampled_from(SKEWS))
def test_random_event_sequences_keep_the_seam_invariant(events, skew_ms):
    _run(events, skew_ms)


def test_trades_while_the_calendar_says_closed_make_complete_bars_from_the_first_one_on():
    # US stocks at 22:14 UTC (17:14 New York): the calendar says closed, the service trades (after
    # hours).  The seam goes at the slot's close like any other, so REST supplies the first part of
    # the slot in progress and the first stream bar after the start, and after a drop, is complete.
    world = World(market=US_STOCKS)
    world.reconnect()
    world.tick()
    world.trade()  # anchors the seam inside the slot, after its first trades
    assert world.jobs[0][2] == START + MINUTE_MS
    world.run(
        [
            "trade",
            "rest",
            "boundary",
            "trade",
            "drop",
            "trade",
            "boundary",
            "reconnect",
            "trade",
            "rest",
            "trade",
        ]
    )
    world.settle()
    world.check()
    assert [source for _, source in world.delivered][-1] == "bars_live"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(EVENT_ALPHABET, max_size=40))
def test_random_event_sequences_keep_the_seam_invariant_while_the_calendar_says_closed(events):
    world = World(market=US_STOCKS)
    world.warm_up()
    world.run(events)
    world.settle()
    world.check()


def test_the_first_seam_backfills_then_builds_and_a_silent_symbol_anchors_after_the_margin():
    world = World()
    world.reconnect()
    for _ in range(MARGIN_MS // STEP_MS + 1):
        world.tick()
    assert world.seam.anchored and world.jobs == [[1000, None, START + MINUTE_MS, None]]
    world.settle()
    world.check()
    sources = [source for _, source in world.delivered]
    assert sources[0] == "bars_rest" and sources[-1] == "bars_live"


def test_a_reset_just_before_a_boundary_on_our_clock_keeps_the_exchange_time_trades_it_threw_away():
    # The exchange's clock runs 900 ms ahead: trades of the next minute arrive before our boundary.
    world = copy.deepcopy(_WARM[900])
    while (world.now + 900) % MINUTE_MS >= 400 or world.now % MINUTE_MS < 59_000:
        world.tick()
    world.trade()  # stamped just after the boundary, ours is still before it
    world.run(["malformed", "resend", "trade", "rest"])
    world.settle()
    world.check()


@pytest.mark.parametrize("backfill", [True, False])
def test_a_seam_set_anew_after_a_drop_says_whether_rest_rebuilds_the_bars_it_cut(backfill):
    told, jobs = [], []
    seam = Seam(
        "BTCUSDT",
        resolve(MINUTES, 1, ("1m",), "BTCUSDT"),
        CRYPTO,
        request_rest=lambda after, upto: jobs.append((after, upto)) or len(jobs),
        backfill=backfill,
        on_reseam=lambda *said: told.append(said),
    )
    seam.on_stream_up(START)
    seam.on_trade(Tick("BTCUSDT", START + 1000, 100.0, 1.0), START + 1000)  # the first seam: no one told
    seam.on_rest(1, [Kline("BTCUSDT", "1m", START - MINUTE_MS, START, 100, 100, 100, 100, 1, 100)], done=True)

    seam.on_stream_down(START + 5000)
    seam.on_stream_up(START + 6000)
    seam.on_trade(Tick("BTCUSDT", START + 7000, 100.0, 1.0), START + 7000)

    assert told == [("the stream dropped", START, START + MINUTE_MS, backfill)]
    assert len(jobs) == (2 if backfill else 1)
