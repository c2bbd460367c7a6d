"""Real ``redis-server`` and ``influxd`` processes for the sink tests, one per test, on free loopback ports.

Missing binaries fail the tests with the install command: CI installs them (``.ci/run``).
"""

from __future__ import annotations

import pytest
from sink_servers import InfluxServer, RedisServer


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
