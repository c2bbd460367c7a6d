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

``make_store``
    ``make_store(sim, **params)`` builds an ``AllTickStore`` on a simulator with a cache file
    in the test's tmp directory; every store it made is stopped after the test.
``worker_pools``
    ``worker_pools("forkserver")`` makes Backtrader's optimisation (``maxcpus`` > 1) start its
    workers that way, in pools that raise instead of hanging when they cannot finish
    (``worker_pools.py``); every pool is terminated after the test.
``redis_server`` / ``influx_server``
    A real ``redis-server`` / ``influxd`` on a free loopback port, one per test;
    ``stop()``/``start()`` keep port and data.  Missing binaries fail with the install command.

No ``ALLTICK_*`` variable or config file of the machine's user reaches a test (``user_settings``,
autouse): ``ALLTICK_CONFIG`` names a file that does not exist unless a test writes it.

Every simulator is closed when the test ends: no thread or socket outlives it.  ``no_thread_left``
(autouse) fails a test after which a thread named ``alltick-*`` or ``sim-*`` it started is still
alive once its fixtures are torn down (``thread_leaks.py``): a stop or close that left one behind.  Steer and
observe one through ``sim.faults``, ``sim.counters``, ``sim.journal.wait_for(...)``,
``sim.drop_connections()``, ``sim.set_plan(...)`` and ``sim.add_token``/``revoke_token``.
"""

from __future__ import annotations

import multiprocessing
import os

import pytest
from sinks.sink_servers import InfluxServer, RedisServer
from thread_leaks import describe, left_behind, summary, threads_now
from worker_pools import watched_pool_factory

from backtrader_alltick import AllTickStore
from backtrader_alltick.sim import Simulator


@pytest.fixture(autouse=True)
def user_settings(monkeypatch, tmp_path):
    """The path of the config file tests see (absent until written); no ALLTICK_* variable is set."""
    for name in [name for name in os.environ if name.startswith("ALLTICK_")]:
        monkeypatch.delenv(name)
    path = tmp_path / "user-config" / "config.toml"  # nothing is made in tmp_path until a test writes it
    monkeypatch.setenv("ALLTICK_CONFIG", str(path))
    return path


def pytest_configure(config) -> None:
    config.addinivalue_line(
        "markers",
        "threads_checked_by_module: the test's threads belong to a module-scoped fixture, which checks "
        "them when it closes (no_thread_left leaves the test alone)",
    )


@pytest.fixture(autouse=True)
def no_thread_left(request):
    """Fail a test after which a thread of the package or the simulator it started is still alive.

    Autouse fixtures are set up first and torn down last within a test: the check runs once every
    simulator, store and pool the test's fixtures made is closed.  See ``thread_leaks.py``.
    """
    if request.node.get_closest_marker("threads_checked_by_module"):
        yield
        return
    before = threads_now()
    yield
    if alive := left_behind(before):
        pytest.fail(describe(alive), pytrace=False)


def pytest_terminal_summary(terminalreporter) -> None:
    terminalreporter.write_line(summary())


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


@pytest.fixture
def make_store(tmp_path):
    stores = []

    def make(sim, **params) -> AllTickStore:
        params.setdefault("cache", tmp_path / "klines.sqlite")
        store = AllTickStore.from_simulator(sim, **params)
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.stop()


@pytest.fixture
def worker_pools(monkeypatch):
    made = []

    def use(start_method: str) -> None:
        monkeypatch.setattr(multiprocessing, "Pool", watched_pool_factory(start_method, made))

    yield use
    for pool in made:
        pool.terminate()


def _start(server_class, workdir):
    try:
        server = server_class(workdir)
    except FileNotFoundError as e:
        pytest.fail(str(e), pytrace=False)
    server.start()
    return server


@pytest.fixture
def redis_server(tmp_path):
    """A running redis-server with an append-only file; ``stop()``/``start()`` keep port and data."""
    server = _start(RedisServer, tmp_path / "redis")
    yield server
    server.stop()


@pytest.fixture
def influx_server(tmp_path):
    """A running influxd 1.x; ``stop()``/``start()`` keep port and data."""
    server = _start(InfluxServer, tmp_path / "influx")
    yield server
    server.stop()
