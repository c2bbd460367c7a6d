"""Fuzz the live path: random and mutated frames of both dialects through the stream parser into the seam.

Only :class:`AllTickError` subclasses may come out of parsing, nothing may come out of bar
building, and no bar is ever wrong: whatever frames are broken, duplicated or replayed,
the bars delivered equal the bars computed from the trades.  (A mutation that turns one
valid trade into another valid trade cannot be told from a real trade; such frames are
replaced by a cut one, which the parser must reject.)
"""

from __future__ import annotations

import copy
import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from seamworld import World

from backtrader_alltick.errors import AllTickError
from backtrader_alltick.records import Tick
from backtrader_alltick.wire import get_dialect

DIALECTS = ("alltick", "itick")


def render(dialect: str, trade: Tick) -> str:
    """A trade push as each vendor sends it (the simulator's rendering)."""
    if dialect == "alltick":
        return json.dumps(
            {
                "cmd_id": 22998,
                "data": {
                    "code": "BTCUSDT",
                    "seq": str(trade.seq),
                    "tick_time": str(trade.time),
                    "price": repr(trade.price),
                    "volume": repr(trade.volume),
                    "turnover": repr(trade.turnover),
                    "trade_direction": 1,
                },
            }
        )
    return json.dumps(
        {
            "code": 1,
            "data": {
                "s": "BTCUSDT",
                "r": "BA",
                "ld": trade.price,
                "v": trade.volume,
                "tu": trade.turnover,
                "t": trade.time,
                "type": "tick",
            },
        }
    )


def mutate(text: str, edits: list[tuple[int, int, str]]) -> str:
    """Apply (position, length to cut, text to insert) edits to a frame."""
    for position, cut, insert in edits:
        position %= len(text) + 1
        text = text[:position] + insert + text[position + cut :]
    return text


EDITS = st.lists(
    st.tuples(
        st.integers(0, 400),
        st.integers(0, 8),
        st.sampled_from(
            [
                "",
                "0",
                "-",
                "1e400",
                "NaN",
                '"',
                "}",
                "{",
                ",",
                ":",
                "null",
                "[]",
                "e",
                ".",
                "9" * 30,
                "\\u0000",
                "true",
                "-1",
            ]
        ),
    ),
    min_size=1,
    max_size=4,
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
FIELDS = {
    "alltick": ("cmd_id", "data", "code", "seq", "tick_time", "price", "volume", "turnover", "ret"),
    "itick": ("code", "data", "s", "r", "ld", "v", "tu", "t", "type", "resAc", "msg"),
}


def reshaped_frames(dialect: str):
    """Valid-looking frames whose fields hold values of any JSON type."""

    def build(values):
        frame = json.loads(render(dialect, Tick("BTCUSDT", 1_700_000_000_000, 100.5, 2.0, 201.0, seq=7)))
        for name, value in values.items():
            data = frame.get("data")
            target = data if isinstance(data, dict) and name in data else frame
            target[name] = value
        return json.dumps(frame)

    return st.dictionaries(st.sampled_from(FIELDS[dialect]), JSON_VALUES, max_size=4).map(build)


def any_frame(dialect: str):
    valid = render(dialect, Tick("BTCUSDT", 1_700_000_000_000, 100.5, 2.0, 201.0, seq=7))
    return st.one_of(
        st.text(max_size=200),
        st.binary(max_size=200),
        EDITS.map(lambda e: mutate(valid, e)),
        reshaped_frames(dialect),
    )


def _parse(dialect: str, frame) -> list | AllTickError:
    try:
        return get_dialect(dialect).parse_frame(frame)
    except AllTickError as e:
        return e


@pytest.mark.parametrize("dialect", DIALECTS)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_frame_gives_events_or_an_alltick_error_and_never_an_impossible_bar(dialect, data):
    frames = data.draw(st.lists(any_frame(dialect), min_size=1, max_size=6))
    world = World()
    world.reconnect()
    for frame in frames:
        world.tick()
        parsed = _parse(dialect, frame)
        if isinstance(parsed, AllTickError):
            world.seam.on_malformed(world.now)
            continue
        assert isinstance(parsed, list)
        for event in parsed:
            if isinstance(event, Tick) and event.symbol == "BTCUSDT":
                world.seam.on_trade(event, world.now)
    for _ in range(400):
        world.tick()
    world.seam.on_rest(1000, [], True)
    for bar, _ in world.delivered:
        assert all(math.isfinite(v) for v in (bar.open, bar.high, bar.low, bar.close, bar.volume))
        assert bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high
        assert bar.volume >= 0


class FrameWorld(World):
    """A world whose stream sends real frames of ``dialect`` through its parser, disturbed as drawn."""

    def __init__(self, dialect: str) -> None:
        super().__init__()
        self.dialect = dialect
        self.disturbances: list = []
        self.broken = 0

    def push(self, trade: Tick, *, malformed: bool = False) -> None:
        frame = render(self.dialect, trade)
        kind, edits = self.disturbances.pop(0) if self.disturbances else ("intact", None)
        if malformed or kind == "mutate":
            mutated = mutate(frame, edits) if edits else frame[: len(frame) // 2]
            expected = get_dialect(self.dialect).parse_frame(frame)
            if _parse(self.dialect, mutated) == expected or not isinstance(
                _parse(self.dialect, mutated), AllTickError
            ):
                mutated = frame[: len(frame) // 2]  # a different valid trade: not detectable, cut it
            frame = mutated
        for _ in range(2 if kind == "duplicate" else 1):
            self.receive(frame, trade)

    def push_again(self, trade: Tick) -> None:
        # A resent trade comes in the same frame as the first time: without a seq (iTick) its identity
        # is the whole trade as parsed, not the world's record of it.
        for event in _parse(self.dialect, render(self.dialect, trade)):
            if isinstance(event, Tick):
                self.seam.on_trade(event, self.now)

    def receive(self, frame: str, trade: Tick) -> None:
        parsed = _parse(self.dialect, frame)
        if isinstance(parsed, AllTickError):
            self.broken += 1
            self.seam.on_malformed(self.now)
            return
        for event in parsed:
            if isinstance(event, Tick):
                assert event.time == trade.time and event.price == trade.price
                self.pushed.append(trade)
                self.seam.on_trade(event, self.now)


DISTURBANCE = st.one_of(
    st.just(("intact", None)), st.just(("duplicate", None)), st.tuples(st.just("mutate"), EDITS)
)
WORLD_EVENTS = st.sampled_from(
    ("trade", "trade", "trade", "drop", "reconnect", "resend", "boundary", "rest", "tick")
)
_WARM = {}


def _warm(dialect: str) -> FrameWorld:
    if dialect not in _WARM:
        _WARM[dialect] = FrameWorld(dialect)
        _WARM[dialect].warm_up()
    return copy.deepcopy(_WARM[dialect])


@pytest.mark.parametrize("dialect", DIALECTS)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=st.lists(WORLD_EVENTS, max_size=30), disturbances=st.lists(DISTURBANCE, max_size=30))
def test_fuzzed_frames_never_make_a_wrong_bar(dialect, events, disturbances):
    world = _warm(dialect)
    world.disturbances = list(disturbances)
    world.run(events)
    world.disturbances = []
    world.settle()
    world.check()


@pytest.mark.parametrize(
    "frame", ['{"cmd_id": [], "data": {}}', '{"cmd_id": {"a": 1}}', '{"resAc": [], "data": 1}']
)
@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_command_that_is_a_list_or_object_is_not_a_crash(dialect, frame):
    assert isinstance(_parse(dialect, frame), (list, AllTickError))


@pytest.mark.parametrize(
    "price, volume",
    [("NaN", "1"), ("Infinity", "1"), ("-1", "1"), ("0", "1"), ("100.5", "-5"), ("100.5", "1e400")],
)
@pytest.mark.parametrize("dialect", DIALECTS)
def test_an_impossible_trade_is_a_malformed_frame_not_a_bar(dialect, price, volume):
    frame = json.loads(render(dialect, Tick("BTCUSDT", 1_700_000_000_000, 100.5, 2.0, 201.0, seq=7)))
    fields = ("price", "volume") if dialect == "alltick" else ("ld", "v")
    frame["data"].update(dict(zip(fields, (price, volume))))
    assert isinstance(_parse(dialect, json.dumps(frame)), AllTickError)
