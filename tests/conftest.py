"""Shared fixtures: a simulator of the AllTick service on loopback, one per test.

Fixtures
--------
``alltick_sim``
    ``Simulator(dialect="alltick", plan="unlimited", speed=60, seed=1)`` on ``127.0.0.1:0``.
    Its clock starts at 2024-03-05 15:00 UTC (US stocks, forex, metals, CFDs and crypto
    open; HK and A-shares closed) and runs 60x, so a one-minute bar closes every second.
``itick_sim``
    The same for the ``itick`` dialect (the shape of the seed article's API).
``sim``
    Parametrized over both dialects: a test using it runs once per dialect.
``make_sim``
    A factory for other settings, e.g. ``make_sim(dialect="itick", plan="free", speed=600)``;
    every simulator it made is closed after the test.

Every simulator is closed when the test ends: no thread or socket outlives it.  Steer and
observe one through ``sim.faults``, ``sim.counters``, ``sim.journal.wait_for(...)``,
``sim.drop_connections()``, ``sim.set_plan(...)`` and ``sim.add_token``/``revoke_token``.
"""

from __future__ import annotations

import pytest

from backtrader_alltick.sim import Simulator


@pytest.fixture
def make_sim():
    made: list[Simulator] = []

    def build(**settings) -> Simulator:
        settings.setdefault("plan", "unlimited")
        settings.setdefault("speed", 60)
        settings.setdefault("seed", 1)
        simulator = Simulator(**settings)
        made.append(simulator)
        return simulator

    yield build
    for simulator in made:
        simulator.close()


@pytest.fixture
def alltick_sim(make_sim) -> Simulator:
    return make_sim(dialect="alltick")


@pytest.fixture
def itick_sim(make_sim) -> Simulator:
    return make_sim(dialect="itick")


@pytest.fixture(params=["alltick", "itick"])
def sim(request, make_sim) -> Simulator:
    return make_sim(dialect=request.param)
