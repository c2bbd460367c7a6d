"""The exception tree: every error survives the trip to another process whole."""

from __future__ import annotations

import pickle

import pytest

from backtrader_alltick import errors
from backtrader_alltick.errors import (
    AllTickError,
    APIError,
    AuthError,
    CacheError,
    ConfigError,
    ConnectError,
    InvalidSymbol,
    PlanLimitError,
    ProtocolError,
    RateLimited,
    SymbolNotFound,
    Timeout,
    TransportError,
    UnsupportedTimeframe,
)

# One of each, built as the package raises them.
SAMPLES = [
    AllTickError("something failed"),
    ConfigError("fromdate must come before todate"),
    UnsupportedTimeframe("7 Seconds", "BTCUSDT", ["Minutes x 1", "Days x 1"], reason="no such period"),
    InvalidSymbol("NOPE", "has no region; write 'NOPE.US'"),
    CacheError("/tmp/notes.txt", "is not a K-line cache"),
    CacheError("/tmp/quota.sqlite", "is a directory", "request-quota ledger"),
    TransportError("connection reset"),
    ConnectError("connection refused"),
    Timeout("no answer in 30 s"),
    ProtocolError("not JSON"),
    APIError("server error", status=500, code=1, symbol="BTCUSDT"),
    AuthError("token invalid", status=401, code=401),
    RateLimited("too fast", retry_after=1.5, status=429, code=605),
    PlanLimitError("daily cap used up", code="per_day"),
    SymbolNotFound("unknown code", code=600, symbol="NOPE.US"),
]


def test_every_error_class_has_a_sample():
    classes = {getattr(errors, name) for name in errors.__all__}
    error_classes = {cls for cls in classes if isinstance(cls, type) and issubclass(cls, AllTickError)}
    assert error_classes == {type(sample) for sample in SAMPLES}


@pytest.mark.parametrize("error", SAMPLES, ids=lambda error: type(error).__name__)
def test_an_error_pickled_in_a_worker_is_the_same_error_in_the_parent(error):
    # cerebro.optstrategy(maxcpus=N) sends a worker's error back pickled; one that cannot be rebuilt
    # kills multiprocessing.Pool's result thread and cerebro.run() waits for ever.
    copy = pickle.loads(pickle.dumps(error))

    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert copy.args == error.args
    assert vars(copy) == vars(error)
