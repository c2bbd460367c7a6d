"""Fuzz both dialects' parsers with random and mutated pages and frames: no input crashes them.

Starting from the documented samples in tests/data, values, types and structure are
mutated at random.  Whatever comes in, a parser either raises an AllTickError subclass
or returns records that could be true: times from 1970 to 2200, finite prices above 0,
volumes of 0 or more.  (A bar whose high and low do not bound its open and close is
vendor data worth a finding in ``alltick-bt quality``, not a protocol error.)
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backtrader_alltick.errors import AllTickError
from backtrader_alltick.records import Depth, Kline, Quote, Tick
from backtrader_alltick.wire import alltick, itick
from backtrader_alltick.wire._decode import EARLIEST_MS, LATEST_MS

DATA = Path(__file__).resolve().parent.parent / "data"
SAMPLES = {
    dialect: [
        json.loads(path.read_text(encoding="utf-8")) for path in sorted((DATA / dialect).glob("*.json"))
    ]
    for dialect in ("alltick", "itick")
}
DIALECTS = {"alltick": alltick, "itick": itick}
SYMBOLS = ["BTCUSDT", "AAPL.US", "700.HK", "EURUSD", "GOLD"]
PERIODS = ["1m", "5m", "1h", "1d", "1w", "1M"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(
        [
            "NaN",
            "Infinity",
            "-1e400",
            "1e400",
            "-100000000000",
            "1700000000",
            "1700000000000",
            "0",
            "-1",
            "",
            "abc",
            "1e20",
            "7258118400",
        ]
    ),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def mutated(draw, samples: list) -> object:
    """A documented sample with a few of its values, types or containers changed."""
    document = json.loads(json.dumps(draw(st.sampled_from(samples))))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        document = _mutate(draw, document)
    return document


def _mutate(draw, node):
    keys = (
        sorted(node) if isinstance(node, dict) else list(range(len(node))) if isinstance(node, list) else []
    )
    if keys and draw(st.booleans()):
        key = draw(st.sampled_from(keys))
        action = draw(st.sampled_from(["recurse", "replace", "delete", "wrap", "duplicate"]))
        if action == "recurse":
            node[key] = _mutate(draw, node[key])
        elif action == "replace":
            node[key] = draw(values)
        elif action == "delete":
            del node[key]
        elif action == "wrap":
            node[key] = [node[key]]
        elif isinstance(node, list):
            node.append(node[key])  # a repeated record
        return node
    return draw(values) if draw(st.integers(min_value=0, max_value=3)) == 0 else node


def assert_could_be_true(record) -> None:
    if isinstance(record, Kline):
        assert EARLIEST_MS <= record.start < record.end
        assert record.start < LATEST_MS
        prices = (record.open, record.high, record.low, record.close)
        assert all(math.isfinite(p) and p > 0 for p in prices)
        assert all(math.isfinite(v) and v >= 0 for v in (record.volume, record.turnover))
    elif isinstance(record, Tick):
        assert EARLIEST_MS <= record.time < LATEST_MS
        assert math.isfinite(record.price) and record.price > 0
        assert all(math.isfinite(v) and v >= 0 for v in (record.volume, record.turnover))
    elif isinstance(record, Depth):
        assert record.time == 0 or EARLIEST_MS <= record.time < LATEST_MS
        for level_price, level_volume in record.bids + record.asks:
            assert math.isfinite(level_price) and level_price > 0
            assert math.isfinite(level_volume) and level_volume >= 0
    elif isinstance(record, Quote):
        assert EARLIEST_MS <= record.time < LATEST_MS
        assert math.isfinite(record.last) and record.last > 0


def parse_everything(wire, status: int, payload, symbol: str, period: str) -> list:
    """Every REST parser of the dialect on one payload; each must raise AllTickError or return records."""
    out = []
    parsers = [
        lambda: wire.parse_klines(status, payload, symbol, period),
        lambda: wire.parse_trades(status, payload, [symbol]),
        lambda: wire.parse_depth(status, payload, [symbol]),
    ]
    if wire is alltick:
        parsers.append(
            lambda: [
                bar
                for bars in wire.parse_batch_klines(status, payload, [(symbol, period)]).values()
                for bar in bars
            ]
        )
    if wire is itick:
        parsers.append(lambda: wire.parse_quotes(status, payload, [symbol]))
    for parse in parsers:
        try:
            out.extend(parse())
        except AllTickError:
            pass
    return out


def parse_as_frame(wire, document) -> list:
    try:
        return wire.parse_frame(json.dumps(document))
    except AllTickError:
        return []


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("dialect", ["alltick", "itick"])
@FUZZ
@given(data=st.data())
def test_mutated_pages_give_records_that_could_be_true_or_an_alltick_error(dialect, data):
    wire = DIALECTS[dialect]
    payload = data.draw(mutated(SAMPLES[dialect]))
    status = data.draw(st.sampled_from([200, 200, 200, 400, 401, 429, 500]))
    symbol, period = data.draw(st.sampled_from(SYMBOLS)), data.draw(st.sampled_from(PERIODS))

    for record in parse_everything(wire, status, payload, symbol, period):
        assert_could_be_true(record)


@pytest.mark.parametrize("dialect", ["alltick", "itick"])
@FUZZ
@given(data=st.data())
def test_mutated_frames_give_events_that_could_be_true_or_an_alltick_error(dialect, data):
    wire = DIALECTS[dialect]

    for event in parse_as_frame(wire, data.draw(mutated(SAMPLES[dialect]))):
        assert_could_be_true(event)


@pytest.mark.parametrize("dialect", ["alltick", "itick"])
@FUZZ
@given(payload=values, text=st.one_of(st.text(max_size=40), st.binary(max_size=40)))
def test_random_json_and_text_never_escape_the_error_tree(dialect, payload, text):
    wire = DIALECTS[dialect]

    for record in parse_everything(wire, 200, payload, "BTCUSDT", "1m") + parse_as_frame(wire, payload):
        assert_could_be_true(record)
    try:
        events = wire.parse_frame(text)
    except AllTickError:
        events = []
    for event in events:
        assert_could_be_true(event)
